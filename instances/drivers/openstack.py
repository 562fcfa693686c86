"""The OpenStack backend: Nova servers through openstacksdk (the only module that imports ``openstack``).

Where servers live (DESIGN.md §6):
- provider-managed and appliance categories run in the provider's service
  project (the project of the configured cloud, as Octavia's amphorae do) and
  reach the tenant through Neutron ports the driver creates on the tenant's
  network; they are locked with a reason so nobody bypasses the dashboard;
- ``user`` categories run in the tenant's own Keystone project
  (``connect_as_project``); the service account needs a role there.

Every server carries the tags ``adminvms`` and ``adminvms-instance:<uuid>``
(Nova filters tags server-side), so a retried create finds the server an
earlier try made, and reconcile lists ours in one paginated call. Ports carry
the same tags. A replacement (heal, rollout) is the instance's next server
generation and carries ``adminvms-generation:<n>`` too (none for the first,
generation 0): a create is idempotent per instance and generation, so a heal
makes a second server instead of finding the old one. It takes no port the old
server holds; it reuses a port of ours for the instance that no server holds
(Nova keeps the ports it did not make when a server is deleted behind our back,
so the management address survives a heal of a vanished server) and makes the
others.

Hard anti-affinity reaches beyond the category's server group: a spare handed
to a project (``assign``) stays in the pool's group (Nova moves no server
between groups), so a create passes Nova's ``different_host`` scheduler hint
with the servers the services name (``ServerSpec.different_host``) besides the
``group`` hint. Nova honours that hint only with ``DifferentHostFilter`` in
``[filter_scheduler] enabled_filters`` (not among Nova's defaults): a cloud
with spare pools for hard anti-affinity categories needs it enabled, or those
launches may share a host with the project's spares.

What a tenant controls never decides what the provider's servers run or reach
(DESIGN.md rule 9): a project's network is looked up inside that project's own
Keystone project and the management network inside the service project (or by
its configured id), never by a name any project may take; a server's tags and
metadata (which a tenant may edit on a ``user`` server in its own project)
never choose which ports are deleted or where the appliance GUI is; and locks
are made through an admin scope of another project (``LOCK_CLOUD``), so that
members of the service project cannot lift them. The compute microversion is pinned to 2.73: tags at create
(2.52), server groups with one ``policy`` (2.64), lock with a reason (2.73).

Every connection retries what a client behind a cloud's load balancer must
(``_RetryingSession``). Settings of the same names in ``clouds.yaml``
(``connect_retries``, ``<service>_status_code_retries``...) win, except that
a POST or PATCH is never resent on a status code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime

import keystoneauth1.exceptions as ks_exc
import keystoneauth1.session as ks_session
import openstack
import openstack.config
import openstack.connection
import openstack.exceptions as os_exc
from django.conf import settings

from .base import (
    IMAGE_CATEGORY_TAG,
    INSTANCE_TAG_PREFIX,
    LOCK_REASON,
    STAMP_TAG,
    VOLUME_CATEGORY_KEY,
    AdoptSpec,
    BackendUnavailable,
    ComputeDriver,
    DriverError,
    FlavorSpec,
    ForeignServer,
    ImageInfo,
    ServerInfo,
    ServerNotFound,
    ServerSpec,
    ServerStatus,
    VolumeInfo,
    stamp_metadata,
)

log = logging.getLogger(__name__)

COMPUTE_MICROVERSION = "2.73"
GUI_PORT_KEY = "adminvms_gui_port"
GENERATION_TAG_PREFIX = "adminvms-generation:"

_STATUS = {
    "BUILD": ServerStatus.BUILDING,
    "ACTIVE": ServerStatus.ACTIVE,
    "SHUTOFF": ServerStatus.STOPPED,
    "REBOOT": ServerStatus.REBOOTING,
    "HARD_REBOOT": ServerStatus.REBOOTING,
    "ERROR": ServerStatus.ERROR,
    "DELETED": ServerStatus.DELETING,
    "SOFT_DELETED": ServerStatus.DELETING,
    "PAUSED": ServerStatus.STOPPED,
    "SUSPENDED": ServerStatus.STOPPED,
    "SHELVED": ServerStatus.STOPPED,
    "SHELVED_OFFLOADED": ServerStatus.STOPPED,
}


# keystoneauth waits 0.5 s, then 1 s: enough for a connection closed under us, while an API that is really
# gone costs 1.5 s per call. Longer outages are for the task's retries (1, 2, 4... s), which free the worker.
CONNECT_RETRIES = 2
STATUS_CODE_RETRIES = 2
RETRIABLE_STATUS_CODES = [429, 502, 503, 504]
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class _RetryingSession(ks_session.Session):
    """keystoneauth's session with the retries a client of a real cloud needs.

    Connection failures (refused, reset, timed out) are retried for every call,
    as keystoneauth does with ``connect_retries``: an API server (gunicorn,
    uWSGI) or a load balancer closes an idle keep-alive connection whenever it
    likes, and a client that reuses it just then gets "Connection reset by
    peer" for a request the server never read. (keystoneauth also reports a
    read timeout as a connect timeout and retries it: a cloud configured with
    an ``api_timeout`` could see a slow POST sent twice. We set none.)

    Status codes (429, 502-504) are retried only for idempotent methods:
    keystoneauth's ``status_code_retries`` would resend any method, and a
    POST that made a server or a port before a proxy answered 502/504 would
    make a second one. Those fail, and the task retries them through the
    driver, which finds what an earlier try made by its tags.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("connect_retries", CONNECT_RETRIES)
        super().__init__(*args, **kwargs)

    def request(self, url, method, *args, **kwargs):
        if method.upper() in IDEMPOTENT_METHODS:
            kwargs.setdefault("status_code_retries", STATUS_CODE_RETRIES)
            kwargs.setdefault("retriable_status_codes", RETRIABLE_STATUS_CODES)
        else:
            kwargs["status_code_retries"] = 0
        return super().request(url, method, *args, **kwargs)


def connect(cloud: str | None) -> openstack.connection.Connection:
    """A connection to ``cloud`` (clouds.yaml, or ``OS_*`` variables when None) through ``_RetryingSession``.

    ``connect_as_project`` reuses its config, so tenants' connections retry alike.
    """
    config = openstack.config.OpenStackConfig(session_constructor=_RetryingSession, app_name="adminvms")
    region = config.get_one(cloud=cloud, compute_api_version=COMPUTE_MICROVERSION)
    return openstack.connection.Connection(config=region)


def _conf() -> dict:
    return settings.ADMINVMS["OPENSTACK"]


def _instance_tag(instance_id: str) -> str:
    return f"{INSTANCE_TAG_PREFIX}{instance_id}"


def _tagged_instance(tags: Iterable[str] | None) -> str:
    """The instance UUID a server's tags name, or an empty string."""
    return next((t[len(INSTANCE_TAG_PREFIX) :] for t in tags or () if t.startswith(INSTANCE_TAG_PREFIX)), "")


def _server_tags(instance_id: str, generation: int) -> list[str]:
    """The tags of the instance's server of ``generation``: the first (0) carries no generation tag."""
    tags = [STAMP_TAG, _instance_tag(instance_id)]
    if generation:
        tags.append(f"{GENERATION_TAG_PREFIX}{generation}")
    return tags


def _generation(tags: Iterable[str] | None) -> int | None:
    """The generation a server's tags name (0 without a generation tag); None when they name it twice
    or not as a number, which no server of ours does."""
    found = [t[len(GENERATION_TAG_PREFIX) :] for t in tags or () if t.startswith(GENERATION_TAG_PREFIX)]
    if not found:
        return 0
    if len(found) == 1 and found[0].isdigit():
        return int(found[0])
    return None


def _metadata(spec: ServerSpec) -> dict[str, str]:
    """The metadata a server of ``spec`` carries: its stamps, and where its appliance GUI listens."""
    metadata = {k: v[:255] for k, v in spec.metadata.items()}
    if spec.gui_port:
        metadata[GUI_PORT_KEY] = str(spec.gui_port)
    return metadata


class _Translate:
    """Turn SDK and keystoneauth exceptions into our driver errors."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, DriverError):
            return False
        if isinstance(exc, os_exc.NotFoundException):
            raise ServerNotFound(str(exc)) from exc
        if isinstance(exc, ks_exc.ConnectFailure | ks_exc.ConnectTimeout | ks_exc.ServiceUnavailable):
            raise BackendUnavailable(f"OpenStack does not answer: {exc}") from exc
        if isinstance(exc, ks_exc.EndpointNotFound | ks_exc.DiscoveryFailure):
            raise BackendUnavailable(f"OpenStack's catalog is not reachable: {exc}") from exc
        if isinstance(exc, ks_exc.Unauthorized | ks_exc.AuthorizationFailure):
            raise DriverError(f"OpenStack refused the service account's credentials: {exc}") from exc
        if isinstance(exc, os_exc.HttpException):
            status = getattr(exc, "status_code", None) or 0
            message = getattr(exc, "details", None) or str(exc)
            if status >= 500:
                raise BackendUnavailable(f"OpenStack answered {status}: {message}") from exc
            raise DriverError(f"OpenStack refused the request ({status}): {message}") from exc
        if isinstance(exc, os_exc.DuplicateResource):
            # Trying again finds the same two: a configuration problem for the provider, not an outage.
            raise DriverError(f"OpenStack holds more than one match: {exc}") from exc
        if isinstance(exc, os_exc.SDKException | ks_exc.ClientException):
            raise BackendUnavailable(f"OpenStack call failed: {exc}") from exc
        return False


class OpenStackDriver(ComputeDriver):
    name = "openstack"
    kinds = frozenset({"vm"})

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._conn = None
        self._lock_conn = None
        self._tenant_conns: dict[str, object] = {}
        self._networks: dict[tuple[str, str], object] = {}

    # --- connections ----------------------------------------------------------------

    @property
    def conn(self):
        """The service account's connection: one per worker process, reused."""
        with self._lock:
            if self._conn is None:
                with _Translate():
                    self._conn = connect(_conf()["CLOUD"] or None)
            return self._conn

    @property
    def lock_conn(self):
        """The connection that locks: an admin scope of another project when ``LOCK_CLOUD`` names one."""
        with self._lock:
            if self._lock_conn is None:
                cloud = _conf().get("LOCK_CLOUD")
                if not cloud:
                    return self.conn
                with _Translate():
                    self._lock_conn = connect(cloud)
            return self._lock_conn

    def _project_id(self, spec: ServerSpec) -> str:
        if spec.project_backend_id:
            return spec.project_backend_id
        project = self.conn.identity.find_project(spec.project, ignore_missing=True)
        if project is None:
            raise DriverError(f"Project '{spec.project}' has no Keystone project of that name; map it first.")
        return project.id

    def _conn_for(self, spec: ServerSpec):
        """Managed categories: the service project. User categories: the tenant's own project."""
        if spec.managed:
            return self.conn
        project_id = self._project_id(spec)
        with self._lock:
            if project_id not in self._tenant_conns:
                self._tenant_conns[project_id] = self.conn.connect_as_project({"id": project_id})
            return self._tenant_conns[project_id]

    def supports(self, kind: str) -> str:
        if kind == "vm":
            return ""
        try:
            has_zun = bool(self.conn.endpoint_for("container"))
        except Exception:  # the cloud is unreachable (no catalog entry answers None)
            has_zun = False
        if not has_zun:
            return "Backend 'openstack' runs no containers here: the cloud has no Zun (container) service."
        return "Backend 'openstack' has no Zun driver in adminvms yet; run containers on the docker backend."

    # --- helpers ---------------------------------------------------------------------

    def _network(self, name: str, project_id: str):
        """The network ``name`` of Keystone project ``project_id``: a same-named network of
        another project is neither taken nor a reason to fail."""
        key = (project_id, name)
        if key not in self._networks:
            network = self.conn.network.find_network(name, project_id=project_id, ignore_missing=True)
            if network is None:
                raise DriverError(
                    f"Network '{name}' does not exist in project {project_id} (check ADMINVMS_OS_* settings)."
                )
            self._networks[key] = network
        return self._networks[key]

    def _management_network(self):
        if network_id := _conf().get("MANAGEMENT_NETWORK_ID"):
            key = ("", network_id)
            if key not in self._networks:
                self._networks[key] = self.conn.network.get_network(network_id)
            return self._networks[key]
        return self._network(_conf()["MANAGEMENT_NETWORK"], self.conn.current_project_id)

    def _networks_for(self, spec: ServerSpec) -> list[tuple[str, object]]:
        wanted = []
        if spec.network_placement in ("project", "both"):
            name = _conf()["PROJECT_NETWORK"].format(project=spec.project)
            wanted.append(("project", self._network(name, self._project_id(spec))))
        if spec.network_placement in ("management", "both"):
            wanted.append(("management", self._management_network()))
        return wanted

    def _free_ports(self, instance_id: str, owner_project_id: str) -> dict[str, object]:
        """Network id → a port of ours for the instance that no server holds: made by a try that died
        before its create, or left by a server deleted behind our back (Nova unbinds and keeps the
        ports it did not make). A port a server holds is never taken: during a heal it is the old
        server's, and Nova would refuse it anyway."""
        free: dict[str, object] = {}
        for port in self.conn.network.ports(tags=_instance_tag(instance_id), project_id=owner_project_id):
            if not port.device_id and STAMP_TAG in (port.tags or []):
                free.setdefault(port.network_id, port)
        return free

    def _new_port(self, spec: ServerSpec, network, owner_project_id: str, kind: str):
        port = self.conn.network.create_port(
            network_id=network.id,
            project_id=owner_project_id,
            name=f"adminvms-{spec.name}-{kind}",
            description=f"adminvms instance {spec.instance_id} ({kind} network)",
        )
        self.conn.network.set_tags(port, [STAMP_TAG, _instance_tag(spec.instance_id)])
        return port

    def _ports(self, spec: ServerSpec, owner_project_id: str) -> tuple[list[str], list[str]]:
        """One port per network, tagged with the instance: a free one of ours (``_free_ports``), else a
        new one made by the service account. → (every port's id, the ids of those made here)."""
        free = self._free_ports(spec.instance_id, owner_project_id)
        ports, made = [], []
        for kind, network in self._networks_for(spec):
            port = free.get(network.id)
            if port is None:
                port = self._new_port(spec, network, owner_project_id, kind)
                made.append(port.id)
            ports.append(port.id)
        return ports, made

    def _server_group(self, spec: ServerSpec, conn) -> str | None:
        if not spec.anti_affinity:
            return None
        name = f"adminvms-{spec.project}-{spec.category}"
        for group in conn.compute.server_groups():
            if group.name == name:
                return group.id
        group = conn.compute.create_server_group(name=name, policy=spec.anti_affinity)
        return group.id

    def _stamped_ports(self, **filters) -> dict[str, list]:
        """Our stamped ports, by the server they are bound to (one paginated listing)."""
        ports: dict[str, list] = {}
        for port in self.conn.network.ports(tags=STAMP_TAG, **filters):
            if port.device_id:
                ports.setdefault(port.device_id, []).append(port)
        return ports

    def _info(self, server, ports: list | None = None) -> ServerInfo:
        """What Nova says of ``server``; its management address and GUI endpoint from ``ports``,
        the stamped ports bound to it (listed by the caller, in bulk where it lists servers)."""
        status = _STATUS.get(server.status, ServerStatus.BUILDING)
        task_state = getattr(server, "task_state", None)
        if status == ServerStatus.ACTIVE and task_state:
            # Nova answers ACTIVE while a reboot is still under way (task_state "rebooting").
            status = ServerStatus.REBOOTING
        instance_id = _tagged_instance(server.tags)
        # Only a server of the service project is the provider's own: a tenant can neither attach it
        # to a network nor edit its metadata. Its management address is the one of the port we made
        # on the management network, known by the network's id; names (which a tenant may give its
        # own network) classify nothing. A tenant's server gets no management address and no GUI.
        provider_owned = server.project_id == self.conn.current_project_id
        management_ips: list[str] = []
        if provider_owned:
            management_id = self._management_network().id
            for port in ports or ():
                if port.network_id == management_id and STAMP_TAG in (port.tags or []):
                    management_ips.extend(ip["ip_address"] for ip in port.fixed_ips or [])
        addresses: dict[str, list[str]] = {}
        for entries in (server.addresses or {}).values():
            for entry in entries:
                kind = "management" if entry["addr"] in management_ips else "project"
                addresses.setdefault(kind, []).append(entry["addr"])
        endpoint = ""
        gui_port = (server.metadata or {}).get(GUI_PORT_KEY) if provider_owned else None
        if gui_port and management_ips:
            endpoint = f"{management_ips[0]}:{gui_port}"
        fault = ""
        if status == ServerStatus.ERROR:
            fault = (server.fault or {}).get("message") or "Nova reported ERROR without a fault message."
        return ServerInfo(
            backend_id=server.id,
            instance_id=instance_id,
            status=status,
            host=server.compute_host or server.hypervisor_hostname or "",
            addresses=addresses,
            management_endpoint=endpoint,
            fault=fault,
            locked=bool(server.is_locked),
        )

    def _single(self, server) -> ServerInfo:
        return self._info(server, self._stamped_ports(device_id=server.id).get(server.id, []))

    def _servers(self, **filters) -> Iterable:
        return self.conn.compute.servers(details=True, all_projects=True, **filters)

    def _generation_servers(self, instance_id: str, generation: int, **filters) -> Iterable:
        """The servers stamped with the instance and generation (Nova matches all the tags given; a
        server without a generation tag is generation 0, so those of later ones are left out here)."""
        tags = ",".join(_server_tags(instance_id, generation))
        return (s for s in self._servers(tags=tags, **filters) if _generation(s.tags) == generation)

    # --- the interface -------------------------------------------------------------------

    def find(self, instance_id: str, generation: int = 0) -> ServerInfo | None:
        with _Translate():
            for server in self._generation_servers(instance_id, generation):
                return self._single(server)
        return None

    def create(self, spec: ServerSpec) -> ServerInfo:
        with _Translate():
            owner = self.conn.current_project_id if spec.managed else self._project_id(spec)
            # The server an earlier try made, of this generation, in the project it was made in: a
            # tenant may stamp a server of her own with an instance's tag, and that never stands in for ours.
            existing = next(iter(self._generation_servers(spec.instance_id, spec.generation, project_id=owner)), None)
            if existing is not None:
                return self._single(existing)
            conn = self._conn_for(spec)
            image = self._image(spec, owner)
            flavor_ref = (spec.flavor.backend_id or spec.flavor.name) if spec.flavor else ""
            flavor = self.conn.compute.find_flavor(flavor_ref, ignore_missing=True) if flavor_ref else None
            if flavor is None:
                raise DriverError(f"Flavor '{flavor_ref}' does not exist in Nova.")
            ports, made = self._ports(spec, owner)
            attrs = {
                "name": spec.name,
                "image_id": image.id,
                "flavor_id": flavor.id,
                "networks": [{"port": port} for port in ports],
                "tags": _server_tags(spec.instance_id, spec.generation),
                "metadata": _metadata(spec),
            }
            if spec.availability_zone:
                attrs["availability_zone"] = spec.availability_zone
            try:
                hints = {}
                if group := self._server_group(spec, conn):
                    hints["group"] = group
                if spec.different_host:
                    hints["different_host"] = list(spec.different_host)
                if hints:
                    attrs["scheduler_hints"] = hints
                server = conn.compute.create_server(**attrs)
            except os_exc.HttpException as exc:
                if exc.status_code is not None and 400 <= exc.status_code < 500:
                    # Refused, and a retry would be refused again: the ports made for it go. A free port
                    # it was given stays: a twin create may hold it by now (Nova's "port in use").
                    for port in made:
                        self.conn.network.delete_port(port, ignore_missing=True)
                raise
            # No lock yet: Nova refuses actions on a server that is not in a cell. The service locks it once ACTIVE.
            return self.get(server.id)

    def get(self, backend_id: str) -> ServerInfo:
        with _Translate():
            server = self.conn.compute.get_server(backend_id)
        if server.status in ("DELETED", "SOFT_DELETED"):
            raise ServerNotFound(f"Server {backend_id} is deleted.")
        with _Translate():
            return self._single(server)

    def reboot(self, backend_id: str, *, hard: bool = False) -> None:
        with _Translate():
            self.conn.compute.reboot_server(backend_id, "HARD" if hard else "SOFT")

    def _power(self, backend_id: str, *, action: str, done: str) -> None:
        with _Translate():
            try:
                getattr(self.conn.compute, f"{action}_server")(backend_id)
            except os_exc.ConflictException:
                # Already in the state asked for (a retried task): not an error.
                if self.conn.compute.get_server(backend_id).status != done:
                    raise

    def stop(self, backend_id: str) -> None:
        self._power(backend_id, action="stop", done="SHUTOFF")

    def start(self, backend_id: str) -> None:
        self._power(backend_id, action="start", done="ACTIVE")

    def delete(self, backend_id: str) -> None:
        with _Translate():
            try:
                server = self.conn.compute.get_server(backend_id)
            except os_exc.NotFoundException:
                return
            # Ports we made are not deleted with the server (Nova preserves ports it did not create).
            # Ours are those bound to this very server and stamped by us; never what the server's
            # tags name (a tenant may tag her own server with another instance's tag), nor a port of
            # another of the instance's servers (the old one of a heal).
            ours = [p for p in self.conn.network.ports(device_id=server.id) if STAMP_TAG in (p.tags or [])]
            # A server that never bound its ports (refused by the scheduler: "No valid host") holds
            # none, yet was given the instance's free ones. On the provider's own server (whose tags
            # no tenant edits) those are the free ports of its instance: no other server holds them.
            provider_owned = server.project_id == self.conn.current_project_id
            if not ours and provider_owned and (instance_id := _tagged_instance(server.tags)):
                ours = list(self._free_ports(instance_id, server.project_id).values())
            self.conn.compute.delete_server(backend_id, ignore_missing=True)
            for port in ours:
                self.conn.network.delete_port(port, ignore_missing=True)

    def release(self, spec: ServerSpec) -> None:
        """Delete the ports of ours a server of the instance left behind unbound (deleted behind our back:
        Nova keeps the ports it did not make), in the project they were made in."""
        with _Translate():
            owner = self.conn.current_project_id if spec.managed else self._project_id(spec)
            for port in self._free_ports(spec.instance_id, owner).values():
                self.conn.network.delete_port(port, ignore_missing=True)

    def lock(self, backend_id: str, *, reason: str) -> None:
        with _Translate():
            self.lock_conn.compute.lock_server(backend_id, locked_reason=reason)

    def assign(self, backend_id: str, spec: ServerSpec) -> ServerInfo:
        """Hand a spare to ``spec``'s launch: a port on the project's network where the category asks
        (made as a create makes it, stamped and tagged for the instance, in the service project)
        attached to the spare, its name, and its metadata stamps. The tags stay: a spare is made as
        the instance it becomes (same id, generation 0).

        The spare stays locked throughout: Nova lets an admin (the service account) attach, rename
        and set metadata on a locked server, as it lets one reboot or delete it (checked on the test
        control plane), so no unlock leaves a window for anyone else. A retry attaches nothing twice:
        a port of ours the spare holds on a network is that network's; a free one is attached first.
        """
        with _Translate():
            server = self.conn.compute.get_server(backend_id)
            if server.status in ("DELETED", "SOFT_DELETED"):
                raise ServerNotFound(f"Server {backend_id} is deleted.")
            owner = self.conn.current_project_id
            if server.project_id != owner or _instance_tag(spec.instance_id) not in (server.tags or []):
                raise DriverError(f"Server {backend_id} is not a spare made for instance {spec.instance_id}.")
            held = {p.network_id for p in self.conn.network.ports(device_id=server.id) if STAMP_TAG in (p.tags or [])}
            missing = [(kind, net) for kind, net in self._networks_for(spec) if net.id not in held]
            if missing:
                free = self._free_ports(spec.instance_id, owner)
                for kind, network in missing:
                    port = free.get(network.id) or self._new_port(spec, network, owner, kind)
                    self.conn.compute.create_server_interface(server, port_id=port.id)
            if server.name != spec.name:
                self.conn.compute.update_server(server, name=spec.name)
            self.conn.compute.set_server_metadata(server, **_metadata(spec))
            return self._single(self.conn.compute.get_server(backend_id))

    def list_flavors(self) -> list[FlavorSpec]:
        with _Translate():
            return [
                FlavorSpec(f.name, f.vcpus, f.ram, f.disk, f.id)
                for f in self.conn.compute.flavors(details=True)
                if f.is_public is not False
            ]

    def _image_owners(self) -> set[str]:
        return set(_conf().get("IMAGE_OWNERS") or ()) or {self.conn.current_project_id}

    def _is_provider_image(self, image) -> bool:
        # The service account's listing holds every project's private images too (FACTS.md): only
        # public ones (which only an admin may publish) and those of the provider's own projects are
        # the provider's. A community or shared image is any project's to make: it is its owner's.
        return image.visibility == "public" or image.owner in self._image_owners()

    def _image(self, spec: ServerSpec, owner: str):
        """The image by its Glance id, never by a name any project may give its own image; the
        provider's for a managed server, the provider's or the owner project's own otherwise."""
        try:
            image = self.conn.image.get_image(spec.image)
        except os_exc.NotFoundException:
            image = None
        if image is None or image.status != "active":
            raise DriverError(f"Image '{spec.image_name or spec.image}' is not an active image id in Glance.")
        if not self._is_provider_image(image) and (spec.managed or image.owner != owner):
            raise DriverError(
                f"Image '{spec.image_name or spec.image}' is not the provider's; it boots no such server."
            )
        return image

    def list_images(self) -> list[ImageInfo]:
        with _Translate():
            return [
                ImageInfo(
                    backend_id=i.id,
                    name=i.name or i.id,
                    kind="vm",
                    tags=tuple(i.tags or ()),
                    min_ram_mb=i.min_ram or 0,
                    min_disk_gb=i.min_disk or 0,
                    provider=self._is_provider_image(i),
                    owner=i.owner or "",
                )
                for i in self.conn.image.images(status="active")
            ]

    def list_projects(self) -> dict[str, str]:
        with _Translate():
            return {p.name: p.id for p in self.conn.identity.projects()}

    def list_volumes(self) -> list[VolumeInfo]:
        """Cinder's volumes of every project, attachments included: one paginated listing (none on a cloud
        without Cinder)."""
        with _Translate():
            if not self.conn.has_service("block-storage"):
                return []
            provider = self.conn.current_project_id
            return [
                VolumeInfo(
                    backend_id=v.id,
                    name=v.name or v.id,
                    size_gb=v.size or 0,
                    status=v.status or "",
                    metadata={str(k): str(val) for k, val in (v.metadata or {}).items()},
                    backend_project=v.project_id or "",
                    provider_owned=v.project_id == provider,
                    attachments=tuple(a["server_id"] for a in v.attachments or () if a.get("server_id")),
                )
                for v in self.conn.block_storage.volumes(details=True, all_projects=True)
            ]

    def set_volume_categories(self, backend_id: str, slugs: list[str]) -> bool:
        with _Translate():
            volume = self.conn.block_storage.get_volume(backend_id)
            if slugs:
                self.conn.block_storage.set_volume_metadata(volume, **{VOLUME_CATEGORY_KEY: ",".join(slugs)})
            elif VOLUME_CATEGORY_KEY in (volume.metadata or {}):
                self.conn.block_storage.delete_volume_metadata(volume, keys=[VOLUME_CATEGORY_KEY])
        return True

    def set_image_categories(self, backend_id: str, slugs: list[str]) -> bool:
        with _Translate():
            image = self.conn.image.get_image(backend_id)
            current = {t for t in image.tags or () if t.startswith(IMAGE_CATEGORY_TAG)}
            wanted = {f"{IMAGE_CATEGORY_TAG}{slug}" for slug in slugs}
            for tag in sorted(wanted - current):
                self.conn.image.add_tag(image, tag)
            for tag in sorted(current - wanted):
                self.conn.image.remove_tag(image, tag)
        return True

    def list_foreign(self) -> list[ForeignServer]:
        """Every server of every project without our tag, and Glance's images for their names: two paginated
        listings, whatever the number."""
        with _Translate():
            images = {i.id: i.name or i.id for i in self.conn.image.images()}
            provider = self.conn.current_project_id
            foreign = []
            for server in self._servers(not_tags=STAMP_TAG):
                if server.status in ("DELETED", "SOFT_DELETED"):
                    continue
                image_id = (server.image or {}).get("id", "") if isinstance(server.image, dict) else server.image.id
                foreign.append(
                    ForeignServer(
                        backend_id=server.id,
                        name=server.name or server.id,
                        kind="vm",
                        status=_STATUS.get(server.status, ServerStatus.BUILDING),
                        metadata={str(k): str(v) for k, v in (server.metadata or {}).items()},
                        image_id=image_id or "",
                        image_name=images.get(image_id, ""),
                        flavor=(server.flavor.name if server.flavor else "") or "",
                        backend_project=server.project_id or "",
                        provider_owned=server.project_id == provider,
                        host=server.compute_host or server.hypervisor_hostname or "",
                        availability_zone=server.availability_zone or "",
                        created_at=datetime.fromisoformat(server.created_at) if server.created_at else None,
                    )
                )
            return foreign

    def adopt(self, backend_id: str, spec: AdoptSpec) -> ServerInfo:
        """The tags and metadata a create puts on a server, on its ports too when it is the provider's
        (so that a terminate removes them with it), and the lock for a managed one."""
        tag = _instance_tag(spec.instance_id)
        with _Translate():
            server = self.conn.compute.get_server(backend_id)
            if server.status in ("DELETED", "SOFT_DELETED"):
                raise ServerNotFound(f"Server {backend_id} is deleted.")
            if any(t.startswith(INSTANCE_TAG_PREFIX) and t != tag for t in server.tags or []):
                raise DriverError(f"Server {backend_id} is stamped for another instance already.")
            server.set_tags(self.conn.compute, sorted({*(server.tags or []), STAMP_TAG, tag}))
            self.conn.compute.set_server_metadata(
                server, **stamp_metadata(spec.instance_id, spec.category, spec.project)
            )
            if server.project_id == self.conn.current_project_id:
                for port in self.conn.network.ports(device_id=server.id):
                    self.conn.network.set_tags(port, sorted({*(port.tags or []), STAMP_TAG, tag}))
            if spec.managed:
                self.lock_conn.compute.lock_server(backend_id, locked_reason=LOCK_REASON)
            return self._single(self.conn.compute.get_server(backend_id))

    def list_servers(self) -> list[ServerInfo]:
        """Every stamped server, and our stamped ports: two paginated listings, whatever the number."""
        with _Translate():
            ports = self._stamped_ports()
            return [self._info(server, ports.get(server.id, [])) for server in self._servers(tags=STAMP_TAG)]

    def list_servers_pages(self, page_size: int) -> Iterator[list[ServerInfo]]:
        """Nova's pages of stamped servers, each requested as it is needed (the SDK follows Nova's next
        link: a page of its ``max_limit``, 1,000 by default; an explicit ``limit`` would cost one more
        request after a short last page), handed out ``page_size`` at a time; our stamped ports are
        listed once before, as ``list_servers`` does."""
        with _Translate():
            ports = self._stamped_ports()
            page: list[ServerInfo] = []
            for server in self._servers(tags=STAMP_TAG):
                page.append(self._info(server, ports.get(server.id, [])))
                if len(page) == page_size:
                    yield page
                    page = []
            if page:
                yield page
