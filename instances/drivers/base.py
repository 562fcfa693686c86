"""The compute driver interface and the small dataclasses it returns.

Drivers never return SDK objects. Every call is short: a driver issues the
request and returns; tasks poll ``get`` for transitions by re-enqueueing
themselves. ``create`` is idempotent: called again for the same instance UUID
it returns the server it made before.
"""

from __future__ import annotations

import abc
import http.client
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

LOCK_REASON = "Managed by adminvms: act on it through the dashboard."
# The backend metadata key naming the categories a provider's volume serves.
VOLUME_CATEGORY_KEY = "adminvms:category"
# The image tag prefix naming a category a provider's image is offered for (Glance).
IMAGE_CATEGORY_TAG = "adminvms:category="
# Every server we make carries these, so a retried create and reconcile find it.
STAMP_TAG = "adminvms"
INSTANCE_TAG_PREFIX = "adminvms-instance:"


GENERATION_KEY = "adminvms_generation"


def stamp_metadata(instance_id: str, category: str, project: str) -> dict[str, str]:
    """The metadata every server of ours carries: written at launch, and by adoption."""
    return {"adminvms_instance": str(instance_id), "adminvms_category": category, "adminvms_project": project}


class ServerStatus(StrEnum):
    """A backend server's state, in our words."""

    BUILDING = "BUILDING"
    ACTIVE = "ACTIVE"
    STOPPED = "STOPPED"
    REBOOTING = "REBOOTING"
    DELETING = "DELETING"
    ERROR = "ERROR"


class DriverError(Exception):
    """The backend refused or failed the request; the fault is for humans."""

    transient = False


class BackendUnavailable(DriverError):
    """The backend did not answer (connection refused, timeout): worth retrying."""

    transient = True


class ServerNotFound(DriverError):
    pass


@dataclass(frozen=True)
class FlavorSpec:
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    backend_id: str = ""


@dataclass(frozen=True)
class ServerSpec:
    """What to create: everything a driver needs, resolved by the service layer."""

    instance_id: str
    name: str
    kind: str  # "vm" or "container"
    project: str  # project slug
    project_backend_id: str  # e.g. the Keystone project id; may be empty
    category: str  # category slug
    managed: bool  # provider-managed or appliance: lives in the service project, locked
    flavor: FlavorSpec | None
    image: str  # backend image id or reference
    image_name: str
    network_placement: str  # "project", "management" or "both"
    availability_zone: str = ""
    anti_affinity: str = ""  # "", "anti-affinity" or "soft-anti-affinity"
    gui_port: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # The instance's server number: 0 for the first, one more for each replacement (heal, rollout).
    # A create is idempotent per instance and generation; a server of generation 0 carries no stamp of it.
    generation: int = 0
    # Backend ids of servers this one must not share a host with (hard anti-affinity with servers
    # outside the category's server group, such as spares a launch took from the pool).
    different_host: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeTarget:
    """One health probe: an HTTP GET of ``path`` on ``port`` at the server's management address."""

    backend_id: str
    addresses: dict[str, list[str]]
    port: int
    path: str
    timeout: float

    @property
    def address(self) -> str:
        """The management address: the worker's way to the server (never a tenant's network)."""
        return (self.addresses.get("management") or [""])[0]


def http_probe(target: ProbeTarget) -> str:
    """GET the target; an empty string when it answers 2xx or 3xx, else why not."""
    if not target.address:
        return "The server has no management address to probe."
    conn = http.client.HTTPConnection(target.address, target.port, timeout=target.timeout)
    try:
        conn.request("GET", target.path or "/", headers={"User-Agent": "adminvms-health-check"})
        response = conn.getresponse()
        response.read(65536)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return f"GET {target.path or '/'} on port {target.port}: {exc or type(exc).__name__}"
    finally:
        conn.close()
    if 200 <= response.status < 400:
        return ""
    return f"GET {target.path or '/'} on port {target.port} answered {response.status}."


@dataclass(frozen=True)
class ImageInfo:
    """An image the backend offers (mirrored into the catalog by ``sync_catalog``)."""

    backend_id: str
    name: str
    kind: str
    tags: tuple[str, ...] = ()
    min_ram_mb: int = 0
    min_disk_gb: int = 0
    # The provider's own (public, or owned by the provider's projects); else a project's private
    # image, whose backend project is ``owner``.
    provider: bool = True
    owner: str = ""


@dataclass(frozen=True)
class ServerInfo:
    """What a backend says about one server."""

    backend_id: str
    instance_id: str  # from our stamp; empty if the server carries none
    status: ServerStatus
    host: str = ""
    addresses: dict[str, list[str]] = field(default_factory=dict)
    management_endpoint: str = ""
    fault: str = ""
    locked: bool = False


@dataclass(frozen=True)
class ForeignServer:
    """A server or container on a backend that carries no stamp of ours: one adoption may take."""

    backend_id: str
    name: str
    kind: str  # "vm" or "container"
    status: ServerStatus
    metadata: dict[str, str] = field(default_factory=dict)  # OpenStack metadata, Docker labels
    image_id: str = ""
    image_name: str = ""
    flavor: str = ""  # the flavor's name
    backend_project: str = ""  # the backend's project id (Keystone's), empty where there is none
    provider_owned: bool = True  # lives in the provider's own project (or on its engine), not a tenant's
    host: str = ""
    availability_zone: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class VolumeInfo:
    """What a backend says about one volume (Cinder's, Docker's)."""

    backend_id: str
    name: str
    size_gb: int
    status: str  # the backend's word: available, in-use, creating…
    metadata: dict[str, str] = field(default_factory=dict)  # Cinder metadata, Docker labels
    backend_project: str = ""
    provider_owned: bool = True  # the provider's own project's (or its engine's), not a tenant's
    attachments: tuple[str, ...] = ()  # backend ids of the servers it is attached to


@dataclass(frozen=True)
class AdoptSpec:
    """What adoption writes on a server: the stamps a create would have put there, and a lock for managed ones."""

    instance_id: str
    name: str
    category: str
    project: str
    managed: bool


class ComputeDriver(abc.ABC):
    """One compute backend. Implementations: sim, docker, openstack."""

    name: str = ""
    simulated: bool = False
    kinds: frozenset[str] = frozenset({"vm", "container"})

    @abc.abstractmethod
    def create(self, spec: ServerSpec) -> ServerInfo:
        """Create the server, or return the one already made for ``spec.instance_id``."""

    @abc.abstractmethod
    def find(self, instance_id: str, generation: int = 0) -> ServerInfo | None:
        """The server stamped with our instance UUID (and generation), if one exists."""

    @abc.abstractmethod
    def get(self, backend_id: str) -> ServerInfo:
        """The server's current state; raises ServerNotFound when it is gone."""

    @abc.abstractmethod
    def reboot(self, backend_id: str, *, hard: bool = False) -> None: ...

    @abc.abstractmethod
    def stop(self, backend_id: str) -> None: ...

    @abc.abstractmethod
    def start(self, backend_id: str) -> None: ...

    @abc.abstractmethod
    def delete(self, backend_id: str) -> None:
        """Delete the server; deleting one that is already gone is not an error."""

    # --- the catalog (optional: a backend without one mirrors nothing) ---------------

    def list_flavors(self) -> list[FlavorSpec]:
        return []

    def list_images(self) -> list[ImageInfo]:
        return []

    def list_projects(self) -> dict[str, str]:
        """Project name → backend project id (e.g. Keystone's)."""
        return {}

    def release(self, spec: ServerSpec) -> None:
        """Free what the backend kept of an instance whose server is gone (ports made for it); a no-op where
        nothing outlives a server."""
        return None

    def lock(self, backend_id: str, *, reason: str) -> None:
        """Lock the server so that only admins (we) may act on it; a no-op where the backend has no locks."""
        return None

    @abc.abstractmethod
    def list_servers(self) -> list[ServerInfo]:
        """Every server stamped by us, in bulk (reconcile): calls grow with pages, not servers."""

    def list_servers_pages(self, page_size: int) -> Iterator[list[ServerInfo]]:
        """What ``list_servers`` lists, ``page_size`` servers at a time, so that reconcile holds one page.
        A backend whose API pages asks for each page as it is needed; this default slices one listing."""
        servers = self.list_servers()
        for start in range(0, len(servers), page_size):
            yield servers[start : start + page_size]

    def list_volumes(self) -> list[VolumeInfo]:
        """Every volume of every project with its attachments, in bulk: calls grow with pages, not volumes."""
        return []

    def set_volume_categories(self, backend_id: str, slugs: list[str]) -> bool:
        """Write the categories a volume serves into its backend metadata (``adminvms:category``, comma-separated;
        removed when empty), so that other tools read the same; False where the backend cannot store it."""
        return False

    def set_image_categories(self, backend_id: str, slugs: list[str]) -> bool:
        """Make an image's tags name exactly these categories (``adminvms:category=<slug>``), other tags kept;
        False where the backend cannot store them."""
        return False

    def list_foreign(self) -> list[ForeignServer]:
        """Every server without our stamp, in bulk (adoption); a backend that cannot list them lists none."""
        return []

    def adopt(self, backend_id: str, spec: AdoptSpec) -> ServerInfo:
        """Stamp a foreign server as instance ``spec.instance_id`` (and lock it when managed), as a create would
        have; ``ServerNotFound`` when it is gone. Stamping a server stamped so already changes nothing."""
        raise DriverError(f"Backend '{self.name}' cannot adopt servers.")

    def assign(self, backend_id: str, spec: ServerSpec) -> ServerInfo:
        """Hand a spare (made on the management network in the pool's project) to ``spec``'s launch:
        attach it to the project's network where ``spec.network_placement`` asks, and rename and
        restamp it where the backend allows. Doing it twice changes nothing."""
        raise DriverError(f"Backend '{self.name}' cannot hand over spares.")

    def probe_many(self, targets: list[ProbeTarget], *, parallel: int) -> dict[str, str]:
        """Probe each target, at most ``parallel`` at a time: backend id → error, empty when healthy."""
        if not targets:
            return {}
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(targets)))) as pool:
            return dict(zip((t.backend_id for t in targets), pool.map(http_probe, targets), strict=True))

    def image_refusal(self, reference: str) -> str:
        """Why this backend will not run image ``reference`` for the provider, or an empty string."""
        return ""

    def supports(self, kind: str) -> str:
        """Why this backend cannot run ``kind``, or an empty string."""
        return "" if kind in self.kinds else f"Backend '{self.name}' cannot run {kind}s."
