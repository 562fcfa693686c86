"""The fleet: auto-heal behind a circuit breaker, rolling replacement to a new image, spare pools.

``fleet_run`` is the worker's periodic pass (Celery beat). Each backend has a build budget
(``BUILD_RATE_LIMIT`` servers a minute, as Octavia's ``build_rate_limit``); heals spend it first,
then rollouts, then spares. Every step is an action of the operation table (``heal``, ``replace``,
``launch``, ``terminate``) with its events, run by the one Celery task like any other.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from categories.models import Image, InstanceCategory
from categories.selectors import category_default_image, image_refusal
from tenancy import policy
from tenancy.errors import Conflict, InvalidInput, require

from .. import operations
from ..choices import ActionStatus, BreakerScope, Health, RolloutStatus, Status
from ..drivers.registry import enabled_backends
from ..models import HealBreaker, Instance, InstanceAction, InstanceEvent, Rollout
from ..operations import ActionType
from .health import UNHEALTHY_EVENTS
from .lifecycle import action_claim, spares_launch
from .records import Result, conf

_BUILDS = (ActionType.HEAL, ActionType.REPLACE)


@dataclass
class FleetReport:
    breakers_opened: list[str] = field(default_factory=list)
    heals: int = 0
    heals_paused: int = 0
    replacements: int = 0
    spares_launched: int = 0
    spares_retired: int = 0


# --- the build budget ----------------------------------------------------------------------


def build_budgets(now=None) -> dict[str, int]:
    """Backend → servers the fleet may still start building this minute."""
    now = now or timezone.now()
    started = Counter(
        InstanceAction.objects.filter(created_at__gte=now - timedelta(seconds=60))
        .filter(Q(action__in=_BUILDS) | Q(action=ActionType.LAUNCH, params__spare=True))
        .values_list("instance__backend", flat=True)
    )
    limit = int(conf("BUILD_RATE_LIMIT"))
    return {backend: max(0, limit - started[backend]) for backend in enabled_backends()}


# --- the circuit breaker -------------------------------------------------------------------


def _unhealthy_q() -> Q:
    return Q(event__in=UNHEALTHY_EVENTS) | Q(event="status_synced", result=Result.ERROR)


def breakers_evaluate(now=None) -> list[HealBreaker]:
    """Open a breaker for each category and backend where more than ``HEAL_BREAKER_SHARE`` of the
    auto-healed instances (and at least ``HEAL_BREAKER_MIN``) turned unhealthy within the window,
    counted since the last time an admin resumed it. A blip of the control network makes many
    instances unhealthy at once: then nothing is replaced until a human looks."""
    now = now or timezone.now()
    window_start = now - timedelta(seconds=float(conf("HEAL_BREAKER_WINDOW")))
    share, minimum = float(conf("HEAL_BREAKER_SHARE")), int(conf("HEAL_BREAKER_MIN"))
    healed = Instance.objects.filter(category__auto_heal=True, is_spare=False)
    resumed = {
        (scope, key): at
        for scope, key, at in HealBreaker.objects.filter(resumed_at__gte=window_start)
        .order_by("resumed_at")
        .values_list("scope", "key", "resumed_at")
    }
    already_open = set(HealBreaker.objects.filter(resumed_at__isnull=True).values_list("scope", "key"))
    turned: dict[tuple[str, str], set] = defaultdict(set)
    events = InstanceEvent.objects.filter(
        _unhealthy_q(), created_at__gte=window_start, instance__in=healed
    ).values_list("instance_id", "instance__category__slug", "instance__backend", "created_at")
    for instance_id, slug, backend, at in events:
        for scope, key in ((BreakerScope.CATEGORY, slug), (BreakerScope.BACKEND, backend)):
            if at > resumed.get((scope, key), window_start):
                turned[(scope, key)].add(instance_id)
    # The totals read every auto-healed row of a scope: counted only where enough turned to matter.
    columns = {BreakerScope.CATEGORY: "category__slug", BreakerScope.BACKEND: "backend"}
    opened = []
    for (scope, key), ids in sorted(turned.items()):
        if (scope, key) in already_open or len(ids) < minimum:
            continue
        total = healed.live().filter(**{columns[scope]: key}).count()
        if len(ids) <= share * total:
            continue
        reason = (
            f"{len(ids)} of {total} auto-healed instances of {scope} '{key}' turned unhealthy within "
            f"{int(conf('HEAL_BREAKER_WINDOW'))} s (more than {share:.0%}): auto-heal is paused there "
            "until a provider admin resumes it."
        )
        try:
            with transaction.atomic():
                opened.append(
                    HealBreaker.objects.create(scope=scope, key=key, unhealthy=len(ids), total=total, reason=reason)
                )
        except IntegrityError:
            continue  # another worker opened it just now
    return opened


def open_breakers():
    return HealBreaker.objects.filter(resumed_at__isnull=True)


def breaker_resume(*, user, breaker: HealBreaker) -> HealBreaker:
    """An admin closes the breaker: auto-heal resumes there, and counts afresh from now."""
    require(policy.can_operate_fleet(user))
    updated = HealBreaker.objects.filter(pk=breaker.pk, resumed_at__isnull=True).update(
        resumed_at=timezone.now(), resumed_by=user
    )
    if not updated:
        raise Conflict("This breaker was resumed already.")
    breaker.refresh_from_db()
    return breaker


# --- auto-heal -----------------------------------------------------------------------------


def heals_start(budgets: dict[str, int], report: FleetReport) -> None:
    """Start a heal for each unhealthy instance of an auto-heal category, oldest verdict first,
    within the budget and where no breaker is open. One automatic try per unhealthy spell, and one
    automatic heal per instance per breaker window: an instance whose heal failed since it turned
    unhealthy, or that was healed and turned unhealthy again within the window (a server that keeps
    breaking, whatever it runs on), waits for an admin's "Heal"."""
    heal = operations.get(ActionType.HEAL)
    paused = set(open_breakers().values_list("scope", "key"))
    window_start = timezone.now() - timedelta(seconds=float(conf("HEAL_BREAKER_WINDOW")))
    failed_heal = InstanceAction.objects.filter(
        instance=OuterRef("pk"), action=ActionType.HEAL, status=ActionStatus.FAILED,
        created_at__gte=OuterRef("health_since"),
    )  # fmt: skip
    recent_auto_heal = InstanceAction.objects.filter(
        instance=OuterRef("pk"), action=ActionType.HEAL, requested_by__isnull=True, created_at__gte=window_start
    )
    candidates = (
        Instance.objects.filter(
            category__auto_heal=True, is_spare=False, health=Health.UNHEALTHY, task_state="",
            status__in=heal.start_from,
        )
        .exclude(Exists(failed_heal))
        .exclude(Exists(recent_auto_heal))
        .select_related("category")
        .order_by("health_since")
    )  # fmt: skip
    for inst in candidates:
        if (BreakerScope.CATEGORY, inst.category.slug) in paused or (BreakerScope.BACKEND, inst.backend) in paused:
            report.heals_paused += 1
            continue
        if budgets.get(inst.backend, 0) <= 0:
            continue
        try:
            with transaction.atomic():
                action_claim(instance=inst, row=heal, user=None, params={"reason": inst.health_error[:500]})
        except Conflict:
            continue
        budgets[inst.backend] -= 1
        report.heals += 1


# --- rolling replacement -------------------------------------------------------------------


def rollout_start(
    *, user, category: InstanceCategory, image: Image | None = None, batch_size: int = 1, pause_seconds: int = 0
) -> Rollout:
    """Start replacing the category's ACTIVE instances with ``image`` (or, without one, the newest
    image tagged with the category's ``image_tag``), ``batch_size`` at a time."""
    require(policy.can_operate_fleet(user))
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 100:
        raise InvalidInput("The batch size is between 1 and 100.", field="batch_size")
    if not isinstance(pause_seconds, int) or not 0 <= pause_seconds <= 86400:
        raise InvalidInput("The pause is between 0 and 86400 seconds.", field="pause_seconds")
    if image is None:
        if not category.image_tag:
            raise InvalidInput(
                f"Category '{category.slug}' has no image tag: name the image to roll out.", field="image"
            )
        image = category_default_image(category)
        if image is None:
            raise InvalidInput(f"No image is tagged '{category.image_tag}'.", field="image")
    if problem := image_refusal(category, image, None):
        raise InvalidInput(problem, field="image")
    total = _rollout_pending(category, image).count()
    try:
        with transaction.atomic():
            return Rollout.objects.create(
                category=category, image=image, batch_size=batch_size, pause_seconds=pause_seconds, total=total,
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )  # fmt: skip
    except IntegrityError:
        busy = f"Category '{category.slug}' has a rollout under way; pause, finish or abort it first."
        raise Conflict(busy) from None


_NEXT_STATUS = {
    "pause": ({RolloutStatus.RUNNING}, RolloutStatus.PAUSED),
    "resume": ({RolloutStatus.PAUSED}, RolloutStatus.RUNNING),
    "abort": ({RolloutStatus.RUNNING, RolloutStatus.PAUSED}, RolloutStatus.ABORTED),
}


def rollout_verbs(rollout: Rollout) -> list[str]:
    """The verbs ``rollout_set`` takes on ``rollout`` in its status now."""
    return [verb for verb, (allowed, _target) in _NEXT_STATUS.items() if rollout.status in allowed]


def rollout_set(*, user, rollout: Rollout, verb: str) -> Rollout:
    """Pause, resume or abort a rollout; replacements already under way finish either way."""
    require(policy.can_operate_fleet(user))
    if verb not in _NEXT_STATUS:
        raise InvalidInput(f"Unknown rollout verb '{verb}'; use pause, resume or abort.", field="action")
    allowed, target = _NEXT_STATUS[verb]
    changes = {"status": target}
    if target == RolloutStatus.ABORTED:
        changes.update(finished_at=timezone.now(), message=f"Aborted by {user}.")
    if not Rollout.objects.filter(pk=rollout.pk, status__in=allowed).update(**changes):
        rollout.refresh_from_db()
        raise Conflict(f"The rollout is {rollout.status}; it cannot {verb}.")
    rollout.refresh_from_db()
    return rollout


def _rollout_pending(category: InstanceCategory, image: Image):
    return Instance.objects.filter(category=category, is_spare=False, status=Status.ACTIVE).exclude(image=image)


def rollouts_progress(rollouts) -> dict:
    """Rollout id → how many of its replacements succeeded, failed and are under way; one query."""
    counts: dict = defaultdict(Counter)
    rows = InstanceAction.objects.filter(rollout__in=rollouts).values("rollout_id", "status").annotate(n=Count("pk"))
    for row in rows:
        counts[row["rollout_id"]][row["status"]] = row["n"]
    return {
        r.pk: {
            "succeeded": counts[r.pk][ActionStatus.SUCCEEDED],
            "failed": counts[r.pk][ActionStatus.FAILED],
            "running": counts[r.pk][ActionStatus.PENDING] + counts[r.pk][ActionStatus.RUNNING],
        }
        for r in rollouts
    }


def rollout_progress(rollout: Rollout) -> dict[str, int]:
    """How many replacements of ``rollout`` succeeded, failed and are under way."""
    return rollouts_progress([rollout])[rollout.pk]


def _rollout_end(rollout: Rollout, status: str, message: str) -> None:
    Rollout.objects.filter(pk=rollout.pk, status=RolloutStatus.RUNNING).update(
        status=status, message=message, finished_at=timezone.now()
    )


def rollout_advance(rollout: Rollout, budgets: dict[str, int], report: FleetReport) -> None:
    """One step of a running rollout: wait for its batch; stop at a failure; after the pause, start
    the next batch; finish when no ACTIVE instance runs another image."""
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().select_related("category", "image").get(pk=rollout.pk)
        if rollout.status != RolloutStatus.RUNNING:
            return
        actions = rollout.actions.all()
        if actions.filter(status__in=[ActionStatus.PENDING, ActionStatus.RUNNING]).exists():
            return
        if failed := actions.filter(status=ActionStatus.FAILED).select_related("instance").first():
            _rollout_end(
                rollout, RolloutStatus.FAILED,
                f"The replacement of '{failed.instance.name}' failed ({failed.message}); the rollout stopped "
                "and the instances not yet replaced stay on their image.",
            )  # fmt: skip
            return
        now = timezone.now()
        last = actions.order_by("-finished_at").values_list("finished_at", flat=True).first()
        if last and rollout.batch_finished_at != last:
            Rollout.objects.filter(pk=rollout.pk).update(batch_finished_at=last)
        if last and now < last + timedelta(seconds=rollout.pause_seconds):
            return
        category, image = rollout.category, rollout.image
        pending = _rollout_pending(category, image).order_by("created_at")
        if not pending.exists():
            left = Instance.objects.live().filter(category=category, is_spare=False).exclude(image=image).count()
            message = f"{actions.count()} instance(s) replaced."
            if left:
                message += f" {left} instance(s) not ACTIVE when their turn came stay on their image."
            if category.default_image_id and not category.image_tag and category.default_image_id != image.pk:
                # New launches and spares follow the fleet.
                InstanceCategory.objects.filter(pk=category.pk).update(default_image=image)
                message += f" The category's default image is now '{image.name}'."
            _rollout_end(rollout, RolloutStatus.SUCCEEDED, message)
            return
        replace = operations.get(ActionType.REPLACE)
        for inst in pending.filter(task_state="")[: rollout.batch_size]:
            if budgets.get(inst.backend, 0) <= 0:
                break
            try:
                with transaction.atomic():
                    action_claim(
                        instance=inst, row=replace, user=rollout.created_by, params={"image": str(image.pk)},
                        rollout=rollout,
                    )  # fmt: skip
            except Conflict:
                continue
            budgets[inst.backend] -= 1
            report.replacements += 1


# --- spare pools ---------------------------------------------------------------------------


def pool_refill(category: InstanceCategory, budgets: dict[str, int], report: FleetReport) -> None:
    """Keep ``spare_pool_size`` ready spares of ``category``: retire broken, unhealthy, outdated and
    extra ones, and launch the missing ones within the budget. A spare whose launch failed in the
    breaker's window holds the refill back (a broken image must not churn servers)."""
    terminate = operations.get(ActionType.TERMINATE)
    backend = category.backend or conf("DEFAULT_BACKEND")
    if backend not in enabled_backends():
        return
    with transaction.atomic():
        InstanceCategory.objects.select_for_update().filter(pk=category.pk).first()
        spares = list(
            Instance.objects.filter(is_spare=True, category=category)
            .exclude(status__in=[Status.DELETED, Status.DELETING])
            .order_by("created_at")
        )
        # A pool set to 0, or of a deactivated category, retires its spares.
        size = category.spare_pool_size if category.is_active else 0
        image, flavor = category_default_image(category), category.default_flavor
        keep, retire = [], []
        for spare in spares:
            outdated = spare.image_id != (image.pk if image else None) or spare.flavor_id != (
                flavor.pk if flavor else None
            )
            broken = spare.status == Status.ERROR or spare.health == Health.UNHEALTHY
            if spare.task_state and not broken:
                keep.append(spare)  # building
            elif broken or outdated or len(keep) >= size:
                retire.append(spare)
            else:
                keep.append(spare)
        for spare in retire:
            if spare.task_state:
                continue
            try:
                with transaction.atomic():
                    action_claim(instance=spare, row=terminate, user=None, params={})
                report.spares_retired += 1
            except Conflict:
                continue
        window = timezone.now() - timedelta(seconds=float(conf("HEAL_BREAKER_WINDOW")))
        if InstanceAction.objects.filter(
            instance__category=category, action=ActionType.LAUNCH, params__spare=True, status=ActionStatus.FAILED,
            finished_at__gte=window,
        ).exists():  # fmt: skip
            return
        missing = min(size - len(keep), budgets.get(backend, 0))
        if missing > 0:
            try:
                report.spares_launched += len(spares_launch(category=category, count=missing))
            except InvalidInput:
                return  # no default flavor or image yet: nothing to make spares of
            budgets[backend] -= missing


def fleet_run() -> FleetReport:
    """The worker's periodic pass: breakers, heals, rollouts, then spares, within each backend's budget."""
    report, budgets = FleetReport(), build_budgets()
    report.breakers_opened = [f"{b.scope}:{b.key}" for b in breakers_evaluate()]
    heals_start(budgets, report)
    for rollout in Rollout.objects.filter(status=RolloutStatus.RUNNING):
        rollout_advance(rollout, budgets, report)
    has_spares = Instance.objects.filter(is_spare=True, category=OuterRef("pk")).exclude(
        status__in=[Status.DELETED, Status.DELETING]
    )
    pools = InstanceCategory.objects.filter(Q(is_active=True, spare_pool_size__gt=0) | Q(Exists(has_spares)))
    for category in pools.select_related("default_flavor", "default_image"):
        pool_refill(category, budgets, report)
    return report
