"""The simulated cloud: a real implementation of the driver interface.

Its servers are rows of ``SimServer`` in our database, so the web process and
every worker share one cloud. Transitions take configurable time (0 in tests)
and complete lazily when someone looks. Fault injection:

- an image named ``fail-boot`` boots into ERROR with a fault;
- ``ADMINVMS_SIM_ERROR_RATE`` makes that fraction of boots fail at random;
- ``ADMINVMS_SIM_API_LATENCY`` makes every call return that many seconds after
  it took effect (a slow cloud API: a worker may die after the effect, before
  the answer);
- ``ADMINVMS_SIM_OUTAGE`` makes every call fail as if the API were down
  (``BackendUnavailable``, which tasks retry with backoff, then give up);
- hard anti-affinity with more replicas than ``ADMINVMS_SIM_HOSTS`` ends in
  ERROR with Nova's "No valid host" fault;
- an image named ``fail-health`` boots, but its appliance never answers a
  health probe; clearing a server's ``answers_probes`` kills its process.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from ipaddress import IPv4Address

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Max
from django.utils import timezone

from ..base import (
    LOCK_REASON,
    STAMP_TAG,
    VOLUME_CATEGORY_KEY,
    AdoptSpec,
    BackendUnavailable,
    ComputeDriver,
    DriverError,
    ForeignServer,
    ProbeTarget,
    ServerInfo,
    ServerNotFound,
    ServerSpec,
    ServerStatus,
    VolumeInfo,
    stamp_metadata,
)
from .models import SimServer, SimVolume

STAMP_KEY = STAMP_TAG

_STATUS = {
    "BUILD": ServerStatus.BUILDING,
    "ACTIVE": ServerStatus.ACTIVE,
    "SHUTOFF": ServerStatus.STOPPED,
    "REBOOT": ServerStatus.REBOOTING,
    "DELETING": ServerStatus.DELETING,
    "ERROR": ServerStatus.ERROR,
}
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


def _conf(key: str) -> float:
    return settings.ADMINVMS[key]


def _network_base(name: str, first_octet: int) -> IPv4Address:
    digest = hashlib.sha256(name.encode()).digest()
    return IPv4Address(f"{first_octet}.{digest[0]}.{digest[1]}.0")


class SimDriver(ComputeDriver):
    name = "sim"
    simulated = True

    # --- helpers -------------------------------------------------------------

    def _check_outage(self) -> None:
        if settings.ADMINVMS.get("SIM_OUTAGE"):
            raise BackendUnavailable("The simulated cloud's API does not answer (ADMINVMS_SIM_OUTAGE).")

    def _latency(self) -> None:
        if delay := _conf("SIM_API_LATENCY"):
            time.sleep(delay)

    def _after(self, key: str):
        return timezone.now() + timedelta(seconds=_conf(key))

    @staticmethod
    def _settle(queryset) -> None:
        """Complete every transition that is due, in a few bulk statements."""
        now = timezone.now()
        due = queryset.filter(ready_at__lte=now).exclude(pending="")
        due.filter(pending="DELETED").delete()
        for target in ("ACTIVE", "SHUTOFF", "ERROR"):
            due.filter(pending=target).update(status=target, pending="", ready_at=None)

    @staticmethod
    def _settled(row: SimServer) -> SimServer | None:
        """``row`` with its transition completed if it is due (one conditional statement, none when
        nothing is due); ``None`` when that deleted it."""
        if not row.pending or row.ready_at is None or row.ready_at > timezone.now():
            return row
        due = SimServer.objects.filter(pk=row.pk, pending=row.pending, ready_at=row.ready_at)
        if row.pending == "DELETED":
            due.delete()
            return None
        if row.pending in ("ACTIVE", "SHUTOFF", "ERROR") and due.update(status=row.pending, pending="", ready_at=None):
            row.status, row.pending, row.ready_at = row.pending, "", None
            return row
        # Another call completed or replaced the transition meanwhile: read what it left.
        return SimServer.objects.filter(pk=row.pk).first()

    def _row(self, backend_id: str) -> SimServer:
        self._check_outage()
        try:
            row = self._settled(SimServer.objects.get(pk=backend_id))
        except (SimServer.DoesNotExist, ValueError, ValidationError, DriverError) as exc:
            raise ServerNotFound(f"No server {backend_id}.") from exc
        if row is None:
            raise ServerNotFound(f"No server {backend_id}.")
        return row

    @staticmethod
    def _info(row: SimServer) -> ServerInfo:
        return ServerInfo(
            backend_id=str(row.pk),
            instance_id=str(row.instance_uuid) if row.instance_uuid else "",
            status=_STATUS[row.status],
            host=row.host,
            addresses=row.addresses,
            management_endpoint=row.management_endpoint,
            fault=row.fault,
            locked=row.locked,
        )

    @staticmethod
    def _next_seq() -> int:
        """The new server's sequence number (its addresses, its host): one more than the highest, read
        from the index, so that a cloud of 100,000 servers reads none of them to make one."""
        return (SimServer.objects.aggregate(top=Max("seq"))["top"] or 0) + 1

    def _pick_host(self, spec: ServerSpec, group: str, seq: int) -> str:
        """Round robin by sequence number; in a server group (anti-affinity), a host the group does
        not use yet (the first by name), else for soft anti-affinity the one it uses least. Only the
        group's servers are read (indexed), never the whole cloud's."""
        hosts = [f"sim-host-{n}" for n in range(1, int(_conf("SIM_HOSTS")) + 1)]
        if not (spec.anti_affinity and group):
            return hosts[seq % len(hosts)]
        used = Counter(
            SimServer.objects.filter(server_group=group).exclude(status="DELETING").values_list("host", flat=True)
        )
        taken = set(used)
        if spec.anti_affinity == "anti-affinity" and spec.different_host:
            # Nova's different_host hint: the hosts of these servers, besides the group's.
            taken |= set(SimServer.objects.filter(pk__in=spec.different_host).values_list("host", flat=True))
        if free := [h for h in hosts if h not in taken]:
            return free[0]
        if spec.anti_affinity == "anti-affinity":
            return ""
        return min(hosts, key=lambda h: (used.get(h, 0), h))

    @staticmethod
    def _addresses(spec: ServerSpec, seq: int) -> dict[str, list[str]]:
        offset = 2 + seq % 250
        addresses: dict[str, list[str]] = {}
        if spec.network_placement in ("project", "both"):
            addresses["project"] = [str(_network_base(spec.project, 10) + offset)]
        if spec.network_placement in ("management", "both"):
            addresses["management"] = [str(_network_base("management", 172) + offset)]
        return addresses

    # --- the interface ---------------------------------------------------------

    def find(self, instance_id: str, generation: int = 0) -> ServerInfo | None:
        self._check_outage()
        for row in SimServer.objects.filter(instance_uuid=instance_id, generation=generation):
            if (row := self._settled(row)) is not None and row.status != "DELETING":
                return self._info(row)
        return None

    def create(self, spec: ServerSpec) -> ServerInfo:
        if (existing := self.find(spec.instance_id, spec.generation)) is not None:
            return existing
        group = f"{spec.project}/{spec.category}" if spec.anti_affinity else ""
        seq = self._next_seq()
        host = self._pick_host(spec, group, seq)
        addresses = self._addresses(spec, seq)
        endpoint = ""
        if spec.gui_port:
            gui_net = addresses.get("management") or addresses.get("project") or []
            endpoint = f"{gui_net[0]}:{spec.gui_port}" if gui_net else ""
        fault, target = "", "ACTIVE"
        if not host:
            fault, target = NO_VALID_HOST, "ERROR"
        elif spec.image_name == "fail-boot":
            fault, target = "Simulated boot failure: image 'fail-boot' does not boot.", "ERROR"
        elif random.random() < _conf("SIM_ERROR_RATE"):
            fault, target = "Simulated failure injected by ADMINVMS_SIM_ERROR_RATE.", "ERROR"
        # Without a boot time the server is born in its target state: what any look would settle it to.
        booting = _conf("SIM_BOOT_SECONDS") > 0
        row = SimServer.objects.create(
            instance_uuid=spec.instance_id,
            generation=spec.generation,
            seq=seq,
            answers_probes=spec.image_name != "fail-health",
            name=spec.name,
            kind=spec.kind,
            project_ref=spec.project,
            category_ref=spec.category,
            image_ref=spec.image,
            flavor=spec.flavor.__dict__ if spec.flavor else {},
            host=host,
            server_group=group,
            status="BUILD" if booting else target,
            pending=target if booting else "",
            ready_at=self._after("SIM_BOOT_SECONDS") if booting else None,
            fault=fault,
            addresses=addresses if host else {},
            management_endpoint=endpoint if host else "",
            locked=False,
            metadata=spec.metadata,
        )
        self._latency()
        return self.get(str(row.pk)) if _conf("SIM_API_LATENCY") else self._info(self._settled(row))

    def get(self, backend_id: str) -> ServerInfo:
        return self._info(self._row(backend_id))

    def _transition(self, backend_id: str, *, allowed: set[str], noop: set[str], status: str, target: str, delay: str):
        row = self._row(backend_id)
        if row.status in noop or row.pending == target:
            return
        if row.status not in allowed:
            raise DriverError(f"Cannot act on server {backend_id} in state {row.status}.")
        SimServer.objects.filter(pk=row.pk).update(status=status, pending=target, ready_at=self._after(delay))
        self._latency()

    def reboot(self, backend_id: str, *, hard: bool = False) -> None:
        allowed = {"ACTIVE", "SHUTOFF", "ERROR"} if hard else {"ACTIVE"}
        self._transition(
            backend_id,
            allowed=allowed,
            noop={"REBOOT"},
            status="REBOOT",
            target="ACTIVE",
            delay="SIM_REBOOT_SECONDS",
        )

    def stop(self, backend_id: str) -> None:
        self._transition(
            backend_id,
            allowed={"ACTIVE"},
            noop={"SHUTOFF"},
            status="ACTIVE",
            target="SHUTOFF",
            delay="SIM_STOP_SECONDS",
        )

    def start(self, backend_id: str) -> None:
        self._transition(
            backend_id,
            allowed={"SHUTOFF"},
            noop={"ACTIVE"},
            status="SHUTOFF",
            target="ACTIVE",
            delay="SIM_BOOT_SECONDS",
        )

    def delete(self, backend_id: str) -> None:
        if _conf("SIM_DELETE_SECONDS") <= 0:
            # Gone at once: one statement, whatever state it was in (a missing one is no error).
            self._check_outage()
            try:
                SimServer.objects.filter(pk=backend_id).delete()
            except (ValueError, ValidationError):
                return
            self._latency()
            return
        try:
            self._row(backend_id)
        except ServerNotFound:
            return
        else:
            SimServer.objects.filter(pk=backend_id).update(
                status="DELETING", pending="DELETED", ready_at=self._after("SIM_DELETE_SECONDS")
            )
        self._latency()

    def assign(self, backend_id: str, spec: ServerSpec) -> ServerInfo:
        row = self._row(backend_id)
        if row.instance_uuid and str(row.instance_uuid) != spec.instance_id:
            raise DriverError(f"Server {backend_id} belongs to another instance.")
        addresses = dict(row.addresses or {})
        if spec.network_placement in ("project", "both") and "project" not in addresses:
            addresses["project"] = self._addresses(spec, self._next_seq())["project"]
        group = f"{spec.project}/{spec.category}" if spec.anti_affinity else ""
        SimServer.objects.filter(pk=row.pk).update(
            name=spec.name,
            project_ref=spec.project,
            server_group=group,
            addresses=addresses,
            metadata={**(row.metadata or {}), **spec.metadata},
        )
        self._latency()
        return self.get(backend_id)

    def probe_many(self, targets: list[ProbeTarget], *, parallel: int) -> dict[str, str]:
        """The simulated appliances answer from the cloud's own state, in one query."""
        self._check_outage()
        ids = [t.backend_id for t in targets]
        self._settle(SimServer.objects.filter(pk__in=ids))
        rows = SimServer.objects.filter(pk__in=ids).values_list("pk", "status", "answers_probes")
        state = {str(pk): (status, answers) for pk, status, answers in rows}
        results = {}
        for target in targets:
            status, answers = state.get(target.backend_id, ("", False))
            if not status:
                results[target.backend_id] = "The server is gone."
            elif status != "ACTIVE":
                results[target.backend_id] = f"The server is {status}."
            elif not answers:
                results[target.backend_id] = (
                    f"GET {target.path or '/'} on port {target.port}: [Errno 111] Connection refused"
                )
            else:
                results[target.backend_id] = ""
        return results

    def lock(self, backend_id: str, *, reason: str) -> None:
        self._check_outage()
        try:
            locked = SimServer.objects.filter(pk=backend_id).update(locked=True, lock_reason=reason)
        except (ValueError, ValidationError):
            locked = 0
        if not locked:
            raise ServerNotFound(f"No server {backend_id}.")

    def list_servers(self) -> list[ServerInfo]:
        self._check_outage()
        self._settle(SimServer.objects.all())
        return [self._info(row) for row in SimServer.objects.all()]

    def list_servers_pages(self, page_size: int) -> Iterator[list[ServerInfo]]:
        """One keyset query a page (by id, the listing's order), after settling what is due once; a page
        may fail (an outage) like a real cloud's."""
        self._check_outage()
        self._settle(SimServer.objects.all())
        listed = SimServer.objects.order_by("pk").only(
            "id", "instance_uuid", "status", "host", "addresses", "management_endpoint", "fault", "locked"
        )
        after = None
        while True:
            self._check_outage()
            rows = list((listed.filter(pk__gt=after) if after else listed)[:page_size])
            if rows:
                yield [self._info(row) for row in rows]
            if len(rows) < page_size:
                return
            after = rows[-1].pk

    # The simulated cloud's own projects: a server there is the provider's, any other a tenant's.
    PROVIDER_PROJECTS = frozenset({"", "service"})

    def list_volumes(self) -> list[VolumeInfo]:
        self._check_outage()
        return [
            VolumeInfo(
                backend_id=str(v.pk),
                name=v.name,
                size_gb=v.size_gb,
                status="in-use" if v.attached_to else "available",
                metadata={str(k): str(val) for k, val in (v.metadata or {}).items()},
                backend_project=v.project_ref,
                provider_owned=v.project_ref in self.PROVIDER_PROJECTS,
                attachments=tuple(str(a) for a in v.attached_to or ()),
            )
            for v in SimVolume.objects.all()
        ]

    def set_volume_categories(self, backend_id: str, slugs: list[str]) -> bool:
        self._check_outage()
        volume = SimVolume.objects.filter(pk=backend_id).first()
        if volume is None:
            raise ServerNotFound(f"No volume {backend_id}.")
        metadata = {k: v for k, v in (volume.metadata or {}).items() if k != VOLUME_CATEGORY_KEY}
        if slugs:
            metadata[VOLUME_CATEGORY_KEY] = ",".join(slugs)
        SimVolume.objects.filter(pk=backend_id).update(metadata=metadata)
        return True

    def list_foreign(self) -> list[ForeignServer]:
        self._check_outage()
        rows = SimServer.objects.filter(instance_uuid__isnull=True)
        self._settle(rows)
        return [
            ForeignServer(
                backend_id=str(row.pk),
                name=row.name,
                kind=row.kind,
                status=_STATUS[row.status],
                metadata={str(k): str(v) for k, v in (row.metadata or {}).items()},
                image_id=row.image_ref,
                image_name=row.image_ref,
                flavor=(row.flavor or {}).get("name", ""),
                backend_project=row.project_ref,
                provider_owned=row.project_ref in self.PROVIDER_PROJECTS,
                host=row.host,
                created_at=row.created_at,
            )
            for row in rows
        ]

    def adopt(self, backend_id: str, spec: AdoptSpec) -> ServerInfo:
        row = self._row(backend_id)
        if row.instance_uuid and str(row.instance_uuid) != spec.instance_id:
            raise DriverError(f"Server {backend_id} is stamped for another instance already.")
        row.instance_uuid = spec.instance_id
        row.metadata = {
            **(row.metadata or {}),
            STAMP_KEY: "1",
            **stamp_metadata(spec.instance_id, spec.category, spec.project),
        }
        fields = ["instance_uuid", "metadata"]
        if spec.managed:
            row.locked, row.lock_reason = True, LOCK_REASON
            fields += ["locked", "lock_reason"]
        row.save(update_fields=fields)
        return self._info(row)
