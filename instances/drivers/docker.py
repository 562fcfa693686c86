"""Containers on a Docker Engine (``DOCKER_HOST``, default the local socket).

The only module that imports ``docker``. Every container carries our labels
(``adminvms=1``, the instance UUID, its category and project) and the name
``adminvms-<instance UUID>``: a retried create finds the container made before,
and two concurrent creates cannot both succeed (container names are unique).
A replacement (heal, rollout) is the instance's next generation: the container
``adminvms-<instance UUID>-<generation>`` with the label ``adminvms.generation``
(absent on generation 0), made beside the old one, which the service deletes
once the instance has moved.

Networks: one bridge network per project (``adminvms-project-<slug>``) and one
``adminvms-management``, made on demand; ``network_placement`` decides which
the container joins. Docker isolates bridge networks from each other, so
projects do not see each other. The category's GUI port is published on
``ADMINVMS["DOCKER_PUBLISH_HOST"]`` (default 127.0.0.1) on an ephemeral host
port, recorded as the management endpoint; the engine picks a new host port
whenever the container starts again, so every action reports the current one.

Spares wait on the management network only; ``assign`` hands one to a launch
by connecting it to the project's network. Docker cannot change a container's
labels or (usefully) its host name, so a spare keeps those it was made with
(its instance UUID is the launched instance's, so it is still found): the
database row holds the instance's name and project.

Health probes GET the health-check port on the container's management address.
With a local engine (a Unix socket, or a TCP URL on loopback) the host reaches
it: the bridge networks made here are not ``--internal``, and the host is
their gateway. A remote engine's container addresses are out of reach, so
there the probe goes where the GUI proxy goes: to the port the engine
published on the Docker host (on ``DOCKER_PUBLISH_HOST``, which must then be
an address of that host the workers reach, or 0.0.0.0). Only the GUI port is
published, so a health-check port other than the GUI port cannot be probed on
a remote engine: the probe fails and says so.

Calls are short: stop and restart wait at most ``DOCKER_STOP_TIMEOUT`` seconds
before the engine kills the process; containers run with an init process
(``--init``) that forwards signals, so that is rarely needed.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from urllib.parse import urlsplit

import docker
import docker.errors
import requests.exceptions
from django.conf import settings
from django.utils.text import slugify

from .base import (
    STAMP_TAG,
    AdoptSpec,
    BackendUnavailable,
    ComputeDriver,
    DriverError,
    ForeignServer,
    ProbeTarget,
    ServerInfo,
    ServerNotFound,
    ServerSpec,
    VolumeInfo,
)
from .base import ServerStatus as S

LABEL_STAMP = STAMP_TAG  # "adminvms=1": made by us
LABEL_INSTANCE = f"{STAMP_TAG}.instance"
LABEL_CATEGORY = f"{STAMP_TAG}.category"
LABEL_PROJECT = f"{STAMP_TAG}.project"
LABEL_NAME = f"{STAMP_TAG}.name"
LABEL_MANAGED = f"{STAMP_TAG}.managed"
LABEL_GENERATION = f"{STAMP_TAG}.generation"  # the instance's server number; absent on generation 0
LABEL_NETWORK = f"{STAMP_TAG}.network"  # on networks: "project" or "management"
MANAGEMENT_NETWORK = f"{STAMP_TAG}-management"
PROJECT_NETWORK_PREFIX = f"{STAMP_TAG}-project-"

_STATUS = {
    "created": S.BUILDING,
    "restarting": S.BUILDING,
    "running": S.ACTIVE,
    "paused": S.STOPPED,
    "exited": S.STOPPED,
    "dead": S.ERROR,
    "removing": S.DELETING,
}
# Exit codes of a process ended by `docker stop`: SIGTERM (through the init), or SIGKILL after the timeout.
_STOPPED_BY_SIGNAL = {0, 128 + 9, 128 + 15}
_EXITED = re.compile(r"^(?:Exited|Restarting) \((-?\d+)\)")


def _conf(key: str, default):
    return settings.ADMINVMS.get(key, default)


def container_name(instance_id: str, generation: int = 0) -> str:
    return f"{STAMP_TAG}-{instance_id}-{generation}" if generation else f"{STAMP_TAG}-{instance_id}"


def _generation(summary: dict) -> int:
    """The generation a container (list summary or inspect form) was made for."""
    labels = summary.get("Labels") or (summary.get("Config") or {}).get("Labels") or {}
    try:
        return int(labels.get(LABEL_GENERATION) or 0)
    except ValueError:
        return -1  # not a number we wrote: no generation of ours


def project_network(project: str) -> str:
    return f"{PROJECT_NETWORK_PREFIX}{project}"


def _network_kind(name: str) -> str:
    if name == MANAGEMENT_NETWORK:
        return "management"
    if name.startswith(PROJECT_NETWORK_PREFIX):
        return "project"
    return ""


def _engine() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _engine_is_remote() -> bool:
    """Whether the engine runs on another host, whose container addresses this host cannot reach."""
    url = urlsplit(_engine())
    return url.scheme in ("tcp", "ssh", "http", "https") and (url.hostname or "") not in (
        "localhost", "127.0.0.1", "::1",
    )  # fmt: skip


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Docker SDK errors → our driver errors; the message says what we tried."""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise ServerNotFound(f"Cannot {what}: {exc.explanation or exc}") from exc
    except docker.errors.APIError as exc:
        raise DriverError(f"Docker refused to {what}: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        # Engine down, socket missing, timeout: the request may be retried.
        raise BackendUnavailable(f"The Docker Engine at {_engine()} does not answer ({what}): {exc}") from exc


def _by_age(networks: list[dict]) -> dict[str, list[str]]:
    """Network name → ids of the networks of that name, oldest first (the engine's name filter matches substrings)."""

    def age(network: dict) -> tuple:
        try:
            created = datetime.fromisoformat(network.get("Created", "")).timestamp()
        except ValueError:
            created = 0.0
        return created, network["Id"]

    by_name: dict[str, list[str]] = {}
    for network in sorted(networks, key=age):
        by_name.setdefault(network["Name"], []).append(network["Id"])
    return by_name


def _refused_with(exc: DriverError, status_code: int) -> bool:
    """Whether the engine answered ``exc``'s request with ``status_code``."""
    cause = exc.__cause__
    return isinstance(cause, docker.errors.APIError) and cause.status_code == status_code


class DockerDriver(ComputeDriver):
    name = "docker"
    kinds = frozenset({"container"})

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: docker.DockerClient | None = None
        self._client_pid = 0
        self._cpus = 0
        self._engine_name = ""

    # --- helpers -------------------------------------------------------------

    def _api(self) -> docker.APIClient:
        """The process's one low-level client, made on first use.

        A client made before a fork (a Celery prefork parent) is not reused in
        the child: its pooled connections belong to the parent. A failed
        connection is not cached, so the next call tries again.
        """
        with self._lock:
            if self._client is None or self._client_pid != os.getpid():
                with _translated("connect"):
                    client = docker.from_env(timeout=int(_conf("DOCKER_API_TIMEOUT", 30)))
                    info = client.info()
                self._cpus, self._engine_name = int(info.get("NCPU") or 0), str(info.get("Name") or "")
                self._client, self._client_pid = client, os.getpid()
            return self._client.api

    def _publish_host(self) -> str:
        return str(_conf("DOCKER_PUBLISH_HOST", "127.0.0.1"))

    def _endpoint_host(self, bound: str) -> str:
        """Where the dashboard reaches a port published on ``bound``."""
        if bound and bound not in ("0.0.0.0", "::"):  # noqa: S104 (a comparison, not a bind)
            return bound
        remote = urlsplit(_engine())
        return remote.hostname if remote.scheme in ("tcp", "ssh", "http", "https") and remote.hostname else "127.0.0.1"

    def _info(self, attrs: dict) -> ServerInfo:
        """ServerInfo from either the list summary or the inspect form of a container."""
        if isinstance(attrs.get("State"), dict):  # inspect
            state = attrs["State"]
            status_word = state.get("Status", "")
            exit_code = state.get("ExitCode")
            labels = (attrs.get("Config") or {}).get("Labels") or {}
            ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
            published = [
                (b.get("HostIp", ""), b.get("HostPort", ""), key) for key, bs in ports.items() for b in bs or []
            ]
            oom, error = state.get("OOMKilled"), state.get("Error", "")
        else:  # the list summary: one call for every container
            status_word = attrs.get("State", "")
            match = _EXITED.match(attrs.get("Status", ""))
            exit_code = int(match.group(1)) if match else None
            labels = attrs.get("Labels") or {}
            published = [
                (p.get("IP", ""), str(p.get("PublicPort", "")), f"{p.get('PrivatePort')}/{p.get('Type', 'tcp')}")
                for p in attrs.get("Ports") or []
                if p.get("PublicPort")
            ]
            oom, error = False, ""
        status = _STATUS.get(status_word, S.ERROR)
        fault = ""
        if oom:
            status, fault = S.ERROR, "The container was killed: out of memory (the flavor's RAM limit)."
        elif status_word == "dead":
            fault = f"The container is dead: {error or 'the engine could not stop or remove it'}."
        elif error and status_word != "running":  # the engine could not start it
            status, fault = S.ERROR, f"The container failed: {error}"
        elif status_word not in _STATUS:
            fault = f"The container is in an unknown state '{status_word}'."
        elif status_word == "restarting" and exit_code:
            # The process keeps exiting and the restart policy starts it again (a crash loop): the engine
            # waits longer each time, so the container is mostly seen here, between two short runs.
            status, fault = S.ERROR, f"The container keeps exiting with code {exit_code}; the engine restarts it."
        elif status_word == "exited" and exit_code is not None and exit_code not in _STOPPED_BY_SIGNAL:
            # Still STOPPED (a stop may end a process with any code); the fault says why it may have ended.
            fault = f"The container exited with code {exit_code}."

        addresses: dict[str, list[str]] = {}
        for net_name, net in sorted(((attrs.get("NetworkSettings") or {}).get("Networks") or {}).items()):
            kind = _network_kind(net_name)
            for ip in (net.get("IPAddress"), net.get("GlobalIPv6Address")):
                if kind and ip:
                    addresses.setdefault(kind, []).append(ip)
        endpoint = ""
        gui_port = labels.get(f"{STAMP_TAG}.gui-port", "")
        for host_ip, host_port, container_port in published:
            if gui_port and container_port == f"{gui_port}/tcp" and host_port:
                host = self._endpoint_host(host_ip)
                endpoint = f"[{host}]:{host_port}" if ":" in host else f"{host}:{host_port}"
                if "." in host:  # an IPv4 binding wins over its IPv6 twin
                    break
        return ServerInfo(
            backend_id=attrs.get("Id", ""),
            instance_id=labels.get(LABEL_INSTANCE, ""),
            status=status,
            host=self._engine_name,  # the engine's host name: where the container runs
            addresses={kind: addresses[kind] for kind in ("project", "management") if kind in addresses},
            management_endpoint=endpoint,
            fault=fault,
            # Docker has no locks, and needs none: nobody but the provider talks to the
            # engine, so a managed container is as locked as can be (and lock() stays a no-op).
            locked=labels.get(LABEL_MANAGED) == "1",
        )

    def _inspect(self, backend_id: str) -> ServerInfo:
        api = self._api()
        with _translated(f"inspect container {backend_id}"):
            return self._info(api.inspect_container(backend_id))

    def _summaries(self, **label_filter: str) -> list[dict]:
        api = self._api()
        labels = [f"{key}={value}" if value else key for key, value in label_filter.items()]
        with _translated("list containers"):
            return api.containers(all=True, filters={"label": labels} if labels else None)

    def _networks(self, spec: ServerSpec) -> dict[str, str]:
        """Name → id of the networks ``spec`` joins, made when missing (one list call when they exist).

        Network names are not unique on the engine and its duplicate check
        races: two workers making a project's first containers at once may both
        create the network. Everyone uses the oldest network of a name and
        removes the younger twins (see ``_twins_removed``).
        """
        wanted: dict[str, str] = {}
        if spec.network_placement in ("project", "both"):
            wanted[project_network(spec.project)] = "project"
        if spec.network_placement in ("management", "both"):
            wanted[MANAGEMENT_NETWORK] = "management"
        if not wanted:
            raise DriverError(f"Unknown network placement '{spec.network_placement}'.")
        api = self._api()
        with _translated("list networks"):
            present = _by_age(api.networks(names=list(wanted)))
        chosen = {}
        for name, kind in wanted.items():
            if name in present and len(present[name]) == 1:
                chosen[name] = present[name][0]
            else:
                if name not in present:
                    self._create_network(name, kind, spec.project)
                chosen[name] = self._twins_removed(name)
        return chosen

    def _create_network(self, name: str, kind: str, project: str) -> None:
        labels = {LABEL_STAMP: "1", LABEL_NETWORK: kind}
        if kind == "project":
            labels[LABEL_PROJECT] = project
        try:
            with _translated(f"create network {name}"):
                self._api().create_network(name, driver="bridge", labels=labels, check_duplicate=True)
        except DriverError as exc:
            if not _refused_with(exc, 409):  # 409: another worker made it first, fine
                raise

    def _twins_removed(self, name: str) -> str:
        """Keep one network named ``name`` and remove its twins; the id of the one kept.

        The one kept is the oldest, unless a twin already serves containers (a
        race lost twice): then the oldest of those. Safe for anyone to do, as
        every racer keeps the same one; a twin that cannot be removed now is
        tried again next time.
        """
        api = self._api()
        with _translated("list networks"):
            ids = _by_age(api.networks(names=[name])).get(name) or []
        if len(ids) > 1:
            used, gone = [], set()
            for network_id in ids:
                try:
                    with _translated(f"inspect network {name}"):
                        if api.inspect_network(network_id).get("Containers"):
                            used.append(network_id)
                except ServerNotFound:
                    gone.add(network_id)  # a racer removed it just now
            ids = [i for i in used[:1] + ids if i not in gone]
            ids = list(dict.fromkeys(ids))
        if not ids:
            raise BackendUnavailable(f"Network {name} vanished while it was being made; try again.")
        for twin in ids[1:]:
            with suppress(DriverError), _translated(f"remove duplicate network {name}"):
                api.remove_network(twin)
        return ids[0]

    def _converge(self, summary: dict, networks: dict[str, str]) -> ServerInfo:
        """Finish what an earlier create began: join missing networks, start a container never started."""
        cid, state = summary["Id"], summary.get("State", "")
        if state in ("removing", "dead"):
            return self._info(summary)
        self._join(summary, networks)
        if state == "created":
            self._start_new(cid, networks)
        return self._inspect(cid)

    def _join(self, container: dict, networks: dict[str, str]) -> None:
        """Connect the container (list summary or inspect form) to those of ``networks`` it is not on."""
        api, cid = self._api(), container["Id"]
        joined = {n.get("NetworkID") for n in ((container.get("NetworkSettings") or {}).get("Networks") or {}).values()}
        for name, network_id in networks.items():
            if network_id not in joined:
                try:
                    with _translated(f"connect container {cid[:12]} to network {name}"):
                        api.connect_container_to_network(cid, network_id)
                except DriverError as exc:
                    if "already exists" not in str(exc):  # a racing delivery connected it first
                        raise

    def _made_for(self, instance_id: str, generation: int) -> list[dict]:
        """The containers (list summaries) made for this instance and generation: none, or one."""
        found = self._summaries(**{LABEL_INSTANCE: instance_id})
        return [summary for summary in found if _generation(summary) == generation]

    def _start_new(self, cid: str, networks: dict[str, str]) -> None:
        """Start a container never started yet.

        The engine finds a container's networks by name when it starts it, so
        a racing create's twin network (see ``_networks``) makes the name
        ambiguous until its maker removes it, and the removal of a twin this
        container was made on leaves it without a network. Both are races:
        remove the twins and try once more; a container left without its
        network holds nothing yet, so it is removed and the (retried) create
        makes a new one.
        """
        api = self._api()
        for attempt in (1, 2):
            try:
                with _translated(f"start container {cid[:12]}"):
                    api.start(cid)
                return
            except DriverError as exc:
                if "is ambiguous" in str(exc) and attempt == 1:
                    for name in networks:
                        self._twins_removed(name)
                    continue
                if "is ambiguous" in str(exc) or ("network" in str(exc) and "not found" in str(exc)):
                    with suppress(DriverError), _translated(f"remove container {cid[:12]}"):
                        api.remove_container(cid, force=True)
                    raise BackendUnavailable(f"{exc} (racing creates of a network; try again)") from exc
                raise

    def _limits(self, spec: ServerSpec) -> dict:
        if spec.flavor is None:
            return {}
        limits: dict = {}
        if spec.flavor.vcpus:
            # The engine refuses more CPUs than the host has; such a limit means "no limit" anyway.
            cpus = min(spec.flavor.vcpus, self._cpus) if self._cpus else spec.flavor.vcpus
            limits["nano_cpus"] = int(cpus * 1_000_000_000)
        if spec.flavor.ram_mb:
            limits["mem_limit"] = limits["memswap_limit"] = spec.flavor.ram_mb * 1024 * 1024
        return limits

    # --- the interface ---------------------------------------------------------

    def find(self, instance_id: str, generation: int = 0) -> ServerInfo | None:
        live = [s for s in self._made_for(instance_id, generation) if s.get("State") != "removing"]
        return self._info(live[0]) if live else None

    def create(self, spec: ServerSpec) -> ServerInfo:
        try:
            return self._create(spec)
        except ServerNotFound as exc:
            # Not "the server is gone": something made for it (a twin network, a
            # container a racing delivery removed) changed under us. Retry.
            raise BackendUnavailable(f"{exc} (changed while it was being made; try again)") from exc
        except DriverError as exc:
            if _refused_with(exc, 409) and "removal" in str(exc):  # a racing delivery is removing it (_start_new)
                raise BackendUnavailable(f"{exc} (changed while it was being made; try again)") from exc
            raise

    def image_refusal(self, reference: str) -> str:
        # A prefix names a registry host or a namespace whole: "registry.example.com" is read as
        # "registry.example.com/", so that "registry.example.com.evil.net/x" never passes.
        prefixes = [p if p.endswith("/") else f"{p}/" for p in _conf("DOCKER_IMAGE_PREFIXES", ["adminvms/"])]
        if any(reference.startswith(prefix) for prefix in prefixes):
            return ""
        return (
            f"Image '{reference}' is not one of the provider's: container images must start with "
            f"{' or '.join(repr(p) for p in prefixes) or '(no prefix is configured)'} (ADMINVMS_DOCKER_IMAGE_PREFIXES)."
        )

    def _create(self, spec: ServerSpec) -> ServerInfo:
        if refusal := self.supports(spec.kind):
            raise DriverError(refusal)
        if not spec.image:
            raise DriverError("No image given: a container needs a Docker image reference.")
        if refusal := self.image_refusal(spec.image):
            raise DriverError(refusal)
        networks = self._networks(spec)
        if existing := self._made_for(spec.instance_id, spec.generation):
            return self._converge(existing[0], networks)

        api = self._api()
        first_network = next(iter(networks.values()))
        labels = {
            LABEL_STAMP: "1",
            LABEL_INSTANCE: spec.instance_id,
            LABEL_CATEGORY: spec.category,
            LABEL_PROJECT: spec.project,
            LABEL_NAME: spec.name,
            LABEL_MANAGED: "1" if spec.managed else "0",
            **{f"{STAMP_TAG}.meta.{key}": value for key, value in spec.metadata.items()},
        }
        if spec.generation:
            labels[LABEL_GENERATION] = str(spec.generation)
        ports = None
        if spec.gui_port:
            labels[f"{STAMP_TAG}.gui-port"] = str(spec.gui_port)
            ports = {spec.gui_port: (self._publish_host(),)}  # an ephemeral port on that address
        host_config = api.create_host_config(
            network_mode=first_network,
            port_bindings=ports,
            init=True,  # forwards SIGTERM and reaps zombies: stop is quick even for a bare `sleep`
            restart_policy={"Name": str(_conf("DOCKER_RESTART_POLICY", "unless-stopped"))},
            **self._limits(spec),
        )
        try:
            with _translated(f"create a container from image '{spec.image}'"):
                created = api.create_container(
                    spec.image,
                    name=container_name(spec.instance_id, spec.generation),
                    hostname=(slugify(spec.name)[:63].strip("-") or None),
                    labels=labels,
                    ports=list(ports or ()),
                    host_config=host_config,
                    networking_config=api.create_networking_config({first_network: api.create_endpoint_config()}),
                )
        except ServerNotFound as exc:  # a 404 on create: the image (or, after a race, a network) is missing
            if isinstance(exc.__cause__, docker.errors.ImageNotFound):
                raise DriverError(
                    f"The image '{spec.image}' is not present on the Docker host; "
                    "load or pull it there, or fix the category's image reference."
                ) from exc
            raise
        except DriverError as exc:
            if not _refused_with(exc, 409):
                raise
            # 409, the name is taken: a concurrent delivery of this create made it first. The engine
            # reserves the name before it lists the container, so the container may not show yet.
            if existing := self._made_for(spec.instance_id, spec.generation):
                return self._converge(existing[0], networks)
            raise BackendUnavailable(f"{exc} (a concurrent create is making it; try again)") from exc
        just_made = {
            "Id": created["Id"],
            "State": "created",
            "NetworkSettings": {"Networks": {"": {"NetworkID": first_network}}},
        }
        return self._converge(just_made, networks)

    def get(self, backend_id: str) -> ServerInfo:
        if not backend_id:
            raise ServerNotFound("No container id.")
        return self._inspect(backend_id)

    def reboot(self, backend_id: str, *, hard: bool = False) -> None:
        api = self._api()
        timeout = 0 if hard else int(_conf("DOCKER_STOP_TIMEOUT", 10))
        with _translated(f"restart container {backend_id[:12]}"):
            api.restart(backend_id, timeout=timeout)

    def stop(self, backend_id: str) -> None:
        api = self._api()
        with _translated(f"stop container {backend_id[:12]}"):
            api.stop(backend_id, timeout=int(_conf("DOCKER_STOP_TIMEOUT", 10)))

    def start(self, backend_id: str) -> None:
        api = self._api()
        with _translated(f"start container {backend_id[:12]}"):
            api.start(backend_id)

    def delete(self, backend_id: str) -> None:
        api = self._api()
        try:
            with _translated(f"remove container {backend_id[:12]}"):
                api.remove_container(backend_id, force=True, v=True)
        except ServerNotFound:
            return  # already gone
        except DriverError as exc:
            if _refused_with(exc, 409) and "in progress" in str(exc):
                return  # someone is removing it already; get() reports DELETING until it is gone
            raise

    def assign(self, backend_id: str, spec: ServerSpec) -> ServerInfo:
        """Hand a spare to ``spec``'s launch: connect it to the project's network (made on demand) when
        ``spec.network_placement`` is "project" or "both"; it stays on the management network.

        Docker fixes a container's labels (and its host name) when it is made: the spare keeps the name,
        project and metadata labels of the pool, and the database row holds the instance's. Its instance
        label is the launched instance's already (a spare becomes the instance it was made as), so
        ``find`` and reconcile still know it. Doing it twice changes nothing."""
        api = self._api()
        with _translated(f"inspect container {backend_id[:12]}"):
            attrs = api.inspect_container(backend_id)
        owner = ((attrs.get("Config") or {}).get("Labels") or {}).get(LABEL_INSTANCE, "")
        if owner and owner != spec.instance_id:
            raise DriverError(f"Container {backend_id[:12]} belongs to another instance.")
        if spec.network_placement in ("project", "both"):
            self._join(attrs, self._networks(spec))
        return self._inspect(backend_id)

    def probe_many(self, targets: list[ProbeTarget], *, parallel: int) -> dict[str, str]:
        """Local engine: the default probes of the container addresses. Remote engine: through the ports the
        engine published on its host (one list call for all), as the module's docstring explains."""
        if not targets or not _engine_is_remote():
            return super().probe_many(targets, parallel=parallel)
        published: dict[tuple[str, int], tuple[str, int]] = {}  # (container, its port) → (host, host port)
        for summary in self._summaries():
            for port in summary.get("Ports") or []:
                if port.get("PublicPort") and port.get("Type", "tcp") == "tcp":
                    where = (self._endpoint_host(port.get("IP", "")), int(port["PublicPort"]))
                    published.setdefault((summary["Id"], int(port["PrivatePort"])), where)
        results, reachable = {}, []
        for target in targets:
            if where := published.get((target.backend_id, target.port)):
                host, port = where
                reachable.append(
                    ProbeTarget(target.backend_id, {"management": [host]}, port, target.path, target.timeout)
                )
            else:
                results[target.backend_id] = (
                    f"Port {target.port} is not published on the remote Docker host {_engine()} (the container is "
                    "not running, or the health-check port is not the GUI port): it cannot be probed from here."
                )
        return {**results, **super().probe_many(reachable, parallel=parallel)}

    def list_servers(self) -> list[ServerInfo]:
        # One call, whatever the number of containers: the list summary, never an inspect each. Every
        # container, ours by label and adopted ones (whose labels Docker cannot change) by their id.
        return [self._info(summary) for summary in self._summaries()]

    def list_volumes(self) -> list[VolumeInfo]:
        """Two calls: the engine's volumes, and its containers' mounts for the attachments. Docker keeps no
        size (0) and every volume on the engine is the provider's."""
        api = self._api()
        with _translated("list volumes"):
            volumes = api.volumes().get("Volumes") or []
        mounted: dict[str, list[str]] = {}
        for summary in self._summaries():
            for mount in summary.get("Mounts") or []:
                if mount.get("Type") == "volume" and mount.get("Name"):
                    mounted.setdefault(mount["Name"], []).append(summary.get("Id", ""))
        return [
            VolumeInfo(
                backend_id=v["Name"],
                name=v["Name"],
                size_gb=0,
                status="in-use" if mounted.get(v["Name"]) else "available",
                metadata={str(k): str(val) for k, val in (v.get("Labels") or {}).items()},
                attachments=tuple(mounted.get(v["Name"], ())),
            )
            for v in volumes
        ]

    def list_foreign(self) -> list[ForeignServer]:
        """Containers without our label: every one on the engine is the provider's (tenants have no engine)."""
        foreign = []
        for summary in self._summaries():
            labels = summary.get("Labels") or {}
            if labels.get(LABEL_INSTANCE):
                continue
            info = self._info(summary)
            created = summary.get("Created")
            foreign.append(
                ForeignServer(
                    backend_id=info.backend_id,
                    name=((summary.get("Names") or ["/"])[0]).lstrip("/"),
                    kind="container",
                    status=info.status,
                    metadata={str(k): str(v) for k, v in labels.items()},
                    image_id=summary.get("ImageID", ""),
                    image_name=summary.get("Image", ""),
                    host=info.host,
                    created_at=datetime.fromtimestamp(created, UTC) if created else None,
                )
            )
        return foreign

    def adopt(self, backend_id: str, spec: AdoptSpec) -> ServerInfo:
        """Docker fixes a container's labels when it is made: nothing can be written on it, so adoption is
        recorded here alone (by the container's id, which every later call uses) and the container keeps
        running untouched. A managed container needs no lock: nobody but the provider talks to the engine."""
        return self.get(backend_id)
