"""The request side: launch, and every verb of the operation table on an instance.

Each function validates, writes the instance and its action in one transaction,
and enqueues the work on commit; it returns at once (the API answers 202). The
worker side is ``execution``.
"""

from __future__ import annotations

import hashlib
import json

from django.db import IntegrityError, transaction
from django.utils import timezone

from categories.choices import AntiAffinity, Kind
from categories.models import Flavor, Image, InstanceCategory
from categories.selectors import category_default_image, image_refusal
from categories.services import category_standard
from tenancy import policy
from tenancy.errors import Conflict, IdempotencyMismatch, InvalidInput, NotFound, QuotaExceeded, require
from tenancy.models import Project

from .. import operations
from ..choices import Health, Status
from ..drivers.base import stamp_metadata
from ..drivers.registry import backend_refusal, default_backend, get_driver
from ..models import NAME_MAX_LENGTH, Instance, InstanceAction, LaunchRequest
from ..operations import ActionType
from .records import action_open, conf


def _resolve_project(user, project: Project | None) -> Project:
    if project is not None:
        return project
    if policy.is_provider_admin(user):
        raise InvalidInput("A provider admin must name the project to launch into.", field="project")
    require(policy.can_launch_somewhere(user))
    member_of = policy.member_project_ids(user)
    if len(member_of) == 1:
        return Project.objects.get(pk=member_of[0])
    raise InvalidInput("You are a member of several projects; name one.", field="project")


def _resolve_category(category: InstanceCategory | None) -> InstanceCategory:
    if category is None:
        category = category_standard()
    if not category.is_active:
        raise InvalidInput(f"Category '{category.slug}' is inactive and launches nothing.", field="category")
    if problem := category.placement_refusal():  # a row saved before the rule, or past the services
        raise InvalidInput(problem, field="network_placement")
    return category


def _resolve_flavor(category: InstanceCategory, flavor: Flavor | None) -> Flavor | None:
    if flavor is None:
        flavor = category.default_flavor
        if flavor is None:
            if category.kind == Kind.CONTAINER:
                return None
            raise InvalidInput(f"Category '{category.slug}' has no default flavor; name one.", field="flavor")
    if problem := category.flavor_refusal(flavor):
        raise InvalidInput(problem, field="flavor")
    return flavor


def _resolve_image(
    category: InstanceCategory, project: Project, image: Image | None, flavor: Flavor | None, driver
) -> Image:
    if image is None:
        image = category_default_image(category)
        if image is None:
            raise InvalidInput(f"Category '{category.slug}' has no default image; name one.", field="image")
    if problem := image_refusal(category, image, project) or driver.image_refusal(image.reference):
        raise InvalidInput(problem, field="image")
    if flavor is not None and (flavor.ram_mb < image.min_ram_mb or flavor.disk_gb < image.min_disk_gb):
        raise InvalidInput(f"Flavor '{flavor.name}' is too small for image '{image.name}'.", field="flavor")
    return image


def _check_quota(*, project: Project, category: InstanceCategory, count: int, min_count: int) -> int:
    """How many to launch: ``count``, or as many as the quota leaves down to ``min_count``.

    Holds under parallel launches: the project row is locked until commit (on
    SQLite the IMMEDIATE transaction holds the database's write lock)."""
    Project.objects.select_for_update().filter(pk=project.pk).first()
    if category.max_instances is None:
        return count
    used = Instance.objects.live().filter(project=project, category=category).count()
    free = category.max_instances - used
    if free < min_count:
        requested = f"{min_count} to {count}" if min_count < count else f"{count}"
        raise QuotaExceeded(
            f"Quota exceeded: project '{project.slug}' may hold {category.max_instances} instance(s) "
            f"of category '{category.slug}'; {used} in use, {requested} requested.",
            field="count",
        )
    return min(count, free)


# Tags are the user's own labels; these prefixes name what adminvms and AWS tools mean by a tag.
RESERVED_TAG_PREFIXES = ("adminvms:", "aws:")
MAX_TAGS = 50


def _clean_tags(tags) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise InvalidInput("Tags are an object of string keys and string values.", field="tags")
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"At most {MAX_TAGS} tags.", field="tags")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise InvalidInput("A tag key has 1 to 128 characters, a value at most 256.", field="tags")
        if not (key + value).isprintable():
            raise InvalidInput(f"Tag '{key}' holds a control character.", field="tags")
        if key.lower().startswith(RESERVED_TAG_PREFIXES):
            reserved = " or ".join(RESERVED_TAG_PREFIXES)
            raise InvalidInput(f"Tag keys starting with {reserved} are reserved.", field="tags")
    return dict(tags)


def _fingerprint(**request) -> str:
    """A digest of a launch request as given (objects by primary key), to recognise its retry."""
    plain = {key: str(getattr(value, "pk", value)) if value is not None else None for key, value in request.items()}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


def _earlier_launch(user, client_token: str, fingerprint: str) -> list[Instance] | None:
    earlier = LaunchRequest.objects.filter(user=user, client_token=client_token).first()
    if earlier is None:
        return None
    if earlier.fingerprint != fingerprint:
        raise IdempotencyMismatch("This client token was used for a different launch request.", field="client_token")
    return list(earlier.instances.with_related().order_by("created_at", "name"))


@transaction.atomic
def instance_launch(
    *,
    user,
    name: str,
    project: Project | None = None,
    category: InstanceCategory | None = None,
    flavor: Flavor | None = None,
    image: Image | None = None,
    count: int = 1,
    min_count: int | None = None,
    tags: dict[str, str] | None = None,
    client_token: str = "",
) -> list[Instance]:
    """Launch ``count`` instances of ``category`` (``standard`` when omitted); with
    ``min_count``, as many as the quota leaves between ``min_count`` and ``count``.

    Fills in the category's default flavor and image, checks the allowed
    flavors, minimums, quota and policy, writes BUILDING instances with their
    launch actions, and enqueues the work on commit.

    With a ``client_token``, the launch is idempotent for ``user``: the same token
    with the same request returns the instances the first one made (whatever they
    are now); with a different request it is refused.
    """
    if len(client_token) > 64 or not client_token.isprintable():
        raise InvalidInput("A client token has at most 64 printable characters.", field="client_token")
    fingerprint = _fingerprint(
        name=name,
        project=project,
        category=category,
        flavor=flavor,
        image=image,
        count=count,
        min_count=min_count,
        tags=json.dumps(tags, sort_keys=True),
    )
    tags = _clean_tags(tags)
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A name is required.", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(f"The name is longer than {NAME_MAX_LENGTH} characters.", field="name")
    if not all(ch == " " or (ch.isprintable() and not ch.isspace()) for ch in name):
        # Nova and Neutron refuse control characters, and a tab or line break in a name misleads every listing.
        raise InvalidInput("The name may hold letters, digits, punctuation and spaces only.", field="name")
    max_count = conf("MAX_LAUNCH_COUNT")
    if not isinstance(count, int) or not 1 <= count <= max_count:
        raise InvalidInput(f"Count must be between 1 and {max_count}.", field="count")
    min_count = count if min_count is None else min_count
    if not isinstance(min_count, int) or not 1 <= min_count <= count:
        raise InvalidInput(f"The least count must be between 1 and {count}.", field="count")
    project = _resolve_project(user, project)
    category = category or category_standard()
    verdict = policy.can_launch(user, category=category, project=project)
    if verdict.denial == policy.Denial.NOT_FOUND:
        # An unknown project or category reads like bad input, and the same whether it exists or is hidden.
        raise InvalidInput(f"Unknown {verdict.field}.", field=verdict.field)
    require(verdict)
    # A retry of an earlier launch answers what it made, once the caller may still launch there.
    if client_token and (earlier := _earlier_launch(user, client_token, fingerprint)) is not None:
        return earlier
    category = _resolve_category(category)
    backend = category.backend or default_backend()
    if problem := backend_refusal(backend):
        raise InvalidInput(problem, field="category")
    driver = get_driver(backend)
    if problem := driver.supports(category.kind):
        raise InvalidInput(problem, field="category")
    flavor = _resolve_flavor(category, flavor)
    image = _resolve_image(category, project, image, flavor, driver)
    count = _check_quota(project=project, category=category, count=count, min_count=min_count)
    try:
        with transaction.atomic():
            request = LaunchRequest.objects.create(
                user=user if getattr(user, "is_authenticated", False) else None,
                project=project,
                client_token=client_token,
                fingerprint=fingerprint,
            )
    except IntegrityError:
        # The same token, launched in parallel and committed while this one waited: answer with its instances.
        return _earlier_launch(user, client_token, fingerprint) or []

    launch = operations.get(ActionType.LAUNCH)
    created = []
    for n in range(1, count + 1):
        instance = _launching(
            category=category, project=project, flavor=flavor, image=image, backend=backend,
            name=name if count == 1 else f"{name}-{n}", tags=tags, launch_request=request,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )  # fmt: skip
        if (spare := spare_take(instance)) is not None:
            action_open(instance=spare, user=user, action=launch.name, params={FROM_POOL: True})
            created.append(spare)
            continue
        instance.save()
        action_open(instance=instance, user=user, action=launch.name)
        created.append(instance)
    return created


# The launch action's parameter that marks a launch served from the spare pool (the driver's
# ``assign`` instead of ``create``), and the one that marks a spare's own launch.
FROM_POOL = "from_pool"
SPARE = "spare"
_SPARE_FIELDS = (
    "name", "project", "tags", "launch_request", "created_by", "status", "task_state", "metadata", "is_spare",
    "created_at", "updated_at",
)  # fmt: skip


def _launching(*, category, project, flavor, image, backend: str, **fields) -> Instance:
    """An unsaved instance as a launch writes it: the launch row's status and task state, the
    category's availability zone, and the metadata stamps of its category and project."""
    launch = operations.get(ActionType.LAUNCH)
    instance = Instance(
        category=category, project=project, flavor=flavor, image=image, backend=backend,
        status=launch.transitional_status, task_state=launch.task_state,
        availability_zone=category.availability_zone, **fields,
    )  # fmt: skip
    instance.metadata = {**category.extra_metadata, **stamp_metadata(instance.pk, category.slug, project.slug)}
    return instance


def _next_generation(instance: Instance) -> int:
    """A generation no server of the instance was made for: one past the instance's and past every
    earlier replacement's (a failed one that could not be deleted must never be taken for a new one)."""
    replacing = [op.name for op in operations.ACTIONS if op.replaces]
    earlier = instance.actions.filter(action__in=replacing).values_list("params__generation", flat=True)
    return 1 + max([instance.generation, *(int(g) for g in earlier if g is not None)])


def spare_take(wanted: Instance) -> Instance | None:
    """Turn a ready spare that fits ``wanted`` (an unsaved launch) into it, or ``None`` when none fits.

    A spare fits when it is of the same category, backend, availability zone, flavor and image, is
    ACTIVE and not unhealthy, and, for hard anti-affinity, runs on a host where none of the project's
    instances of the category runs (the spare was made in the pool's server group, not the project's).
    Of two launches that want one spare, one gets it (a conditional UPDATE); the other looks again.
    """
    category = wanted.category
    if not category.spare_pool_size:
        return None
    spares = Instance.objects.filter(
        is_spare=True,
        category=category,
        backend=wanted.backend,
        availability_zone=wanted.availability_zone,
        flavor=wanted.flavor,
        image=wanted.image,
        status=Status.ACTIVE,
        task_state="",
    ).exclude(health=Health.UNHEALTHY)
    used_hosts = set(
        Instance.objects.live()
        .filter(project=wanted.project, category=category, is_spare=False)
        .exclude(host="")
        .values_list("host", flat=True)
    )
    if category.anti_affinity == AntiAffinity.HARD:
        spares = spares.exclude(host__in=used_hosts)
    # Soft anti-affinity (or none): a spare on a host the project does not use yet first.
    candidates = sorted(spares.order_by("created_at")[:50], key=lambda s: s.host in used_hosts)
    launch = operations.get(ActionType.LAUNCH)
    for spare in candidates:
        now = timezone.now()
        metadata = {**category.extra_metadata, **stamp_metadata(spare.pk, category.slug, wanted.project.slug)}
        changes = {
            "name": wanted.name,
            "project": wanted.project,
            "tags": wanted.tags,
            "launch_request": wanted.launch_request,
            "created_by": wanted.created_by,
            "status": launch.transitional_status,
            "task_state": launch.task_state,
            "metadata": metadata,
            "is_spare": False,
            "created_at": now,
            "updated_at": now,
        }
        if Instance.objects.filter(pk=spare.pk, is_spare=True, task_state="", status=Status.ACTIVE).update(**changes):
            for key in _SPARE_FIELDS:
                setattr(spare, key, changes[key])
            return spare
    return None


def spare_project() -> Project:
    """The provider's project that holds the spare pools (``ADMINVMS_SPARE_PROJECT``); no member sees it."""
    project, _ = Project.objects.get_or_create(
        slug=conf("SPARE_PROJECT"), defaults={"name": "Spare pools", "description": "The provider's ready spares."}
    )
    return project


@transaction.atomic
def spares_launch(*, category: InstanceCategory, count: int) -> list[Instance]:
    """Launch ``count`` spares of ``category``: its default flavor and image, in the pool's project."""
    category = _resolve_category(category)
    backend = category.backend or default_backend()
    if problem := backend_refusal(backend):
        raise InvalidInput(problem, field="category")
    driver = get_driver(backend)
    pool = spare_project()
    flavor = _resolve_flavor(category, None)
    image = _resolve_image(category, pool, None, flavor, driver)
    launch = operations.get(ActionType.LAUNCH)
    made = []
    for _ in range(count):
        spare = _launching(category=category, project=pool, flavor=flavor, image=image, backend=backend, is_spare=True)
        spare.name = f"spare-{category.slug}-{str(spare.pk)[:8]}"
        spare.save()
        action_open(instance=spare, user=None, action=launch.name, params={SPARE: True})
        made.append(spare)
    return made


@transaction.atomic
def instance_act(*, user, instance: Instance, operation: str, params=None) -> InstanceAction:
    """Run a verb of the operation table (reboot, stop, start, terminate…) on ``instance``.

    Checks policy and state, then claims the instance atomically: of two
    concurrent requests exactly one wins, the other gets 409. ``params`` may hold
    the operation's flags (a request body, a form's data); the row keeps only
    those it declares. The instance shows the row's task state (and
    transitional status) until the worker finishes.
    """
    try:
        row = operations.get(operation)
    except KeyError:
        raise NotFound(f"No such operation '{operation}'.") from None
    if not row.runs_action or row.creates:
        raise InvalidInput(f"'{operation}' is not an action on an existing instance.", field="action")
    if row.name == ActionType.REPLACE:
        raise InvalidInput("Servers are replaced with a new image by a rollout; start one instead.", field="action")
    require(policy.can(user, row.name, instance))
    return action_claim(instance=instance, row=row, user=user, params=row.clean_params(params))


def action_claim(*, instance: Instance, row: operations.Operation, user, params: dict, **extra) -> InstanceAction:
    """Claim ``instance`` for ``row`` atomically and open the action; ``Conflict`` when it is busy or its
    status does not allow it. The caller checked policy (a user's request) or is the provider's own
    worker (a heal, a rollout, the spare pool)."""
    changes = {"task_state": row.task_state, "updated_at": timezone.now()}
    if row.transitional_status:
        changes["status"] = row.transitional_status
    claimed = Instance.objects.filter(pk=instance.pk, task_state="", status__in=row.start_from).update(**changes)
    if not claimed:
        instance.refresh_from_db()
        raise Conflict(instance.lifecycle_refusal(row.name))
    for key, value in changes.items():
        setattr(instance, key, value)
    if row.replaces:
        params = {**params, "generation": _next_generation(instance)}
    return action_open(instance=instance, user=user, action=row.name, params=params, **extra)
