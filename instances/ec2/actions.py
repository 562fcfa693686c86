"""The EC2 actions: each one more caller of the services, selectors, filters and policy.

No rule lives here: launches go through ``instance_launch``, verbs through ``instance_act``,
listings through the same visibility and FilterSets as the REST API, and what a caller may
read of an instance through ``present_instance``. This module translates: parameters to
service arguments, domain errors to EC2 codes, rows to EC2's documents.
"""

from __future__ import annotations

import functools
import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from categories.filters import FlavorFilterSet, ImageFilterSet
from categories.models import Flavor, Image, InstanceCategory
from tenancy import errors, policy
from tenancy.models import Ec2Credential, Project

from .. import services
from ..choices import Status, TaskState
from ..filters import InstanceFilterSet
from ..models import Instance
from ..presentation import present_instance, shown_fault
from . import globs
from .protocol import Ec2Error, Page, Params, ec2_id, invalid, paginate, parse_id, timestamp

COMBINATION = "InvalidParameterCombination"
CATEGORY_TAG = "adminvms:category"
PROJECT_TAG = "adminvms:project"


@dataclass
class Caller:
    """Who asks: the access key's user, and the project the key acts for (``None``: a provider admin's key)."""

    request: object  # the Django request, with ``user`` set to the key's user (the FilterSets read it)
    credential: Ec2Credential
    endpoint: str
    user: object = field(init=False)

    def __post_init__(self):
        self.user = self.credential.user

    @property
    def project(self) -> Project | None:
        return self.credential.project


# --- states -------------------------------------------------------------------------------

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

# Which status (and, where it matters, task state) each EC2 state stands for; the first matching row wins.
# ERROR reads as ``terminated`` with its fault as the state reason: the instance serves
# nothing and can only be terminated, and waiters stop at once instead of timing out.
_STATES: tuple[tuple[str, frozenset[str], str | None], ...] = (
    ("pending", frozenset({Status.BUILDING}), None),
    ("pending", frozenset({Status.STOPPED}), TaskState.STARTING),
    ("stopping", frozenset({Status.ACTIVE}), TaskState.STOPPING),
    ("running", frozenset({Status.ACTIVE, Status.REBOOTING}), None),
    ("stopped", frozenset({Status.STOPPED}), None),
    ("shutting-down", frozenset({Status.DELETING}), None),
    ("terminated", frozenset({Status.DELETED, Status.ERROR}), None),
)


def ec2_state(instance: Instance) -> str:
    for name, statuses, task_state in _STATES:
        if instance.status in statuses and task_state in (None, instance.task_state):
            return name
    raise AssertionError(f"no EC2 state for {instance.status}/{instance.task_state}")


def _state_q(name: str) -> Q:
    """The instances in EC2 state ``name``: its rows of ``_STATES``, minus the rows before each."""
    if name not in STATE_CODES:
        raise invalid(f"Unknown instance-state-name '{name}'; choose from {', '.join(STATE_CODES)}.")
    matching, earlier = Q(pk__in=[]), Q(pk__in=[])
    for state, statuses, task_state in _STATES:
        row = Q(status__in=statuses) & (Q(task_state=task_state) if task_state else Q())
        if state == name:
            matching |= row & ~earlier
        earlier |= row
    return matching


def _state(instance: Instance) -> dict:
    name = ec2_state(instance)
    return {"code": STATE_CODES[name], "name": name}


# --- domain errors → EC2 codes ---------------------------------------------------------------


def _translate(exc: errors.DomainError, *, not_found: str = "InvalidInstanceID.NotFound") -> Ec2Error:
    if isinstance(exc, errors.IdempotencyMismatch):
        return Ec2Error("IdempotentParameterMismatch", exc.message)
    if isinstance(exc, errors.QuotaExceeded):
        return Ec2Error("InstanceLimitExceeded", exc.message)
    if isinstance(exc, errors.Conflict):
        return Ec2Error("IncorrectInstanceState", exc.message)
    if isinstance(exc, errors.Forbidden):
        return Ec2Error("UnauthorizedOperation", exc.message, 403)
    if isinstance(exc, errors.NotFound):
        return Ec2Error(not_found, exc.message)
    if isinstance(exc, errors.Throttled):
        return Ec2Error("RequestLimitExceeded", exc.message, 503)
    return Ec2Error("InvalidParameterValue", _field_message(exc))


_FIELD_PARAMS = {
    "image": "ImageId",
    "flavor": "InstanceType",
    "count": "MaxCount",
    "name": "Name tag",
    "category": "Category",
    "project": "Project",
    "tags": "TagSpecification",
    "client_token": "ClientToken",
}


def _field_message(exc: errors.DomainError) -> str:
    name = _FIELD_PARAMS.get(exc.field or "")
    return f"{name}: {exc.message}" if name else exc.message


def _validation(exc: ValidationError) -> Ec2Error:
    messages = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
    return invalid("; ".join(f"{m}" for values in messages.values() for m in values))


# --- scope --------------------------------------------------------------------------------


def _project_param(caller: Caller, params: Params, tags: dict[str, str] | None = None) -> Project | None:
    """The project the request acts for: the key's, or (provider admins) the ``Project`` parameter or tag."""
    named = params.get("Project")
    if tags is not None and PROJECT_TAG in tags:
        tagged = tags.pop(PROJECT_TAG)
        if named is not None and named != tagged:
            raise invalid(f"Project '{named}' and the {PROJECT_TAG} tag '{tagged}' differ.", COMBINATION)
        named = tagged
    if caller.project is not None:
        if named is not None and named != caller.project.slug:
            raise invalid(f"This access key acts for project '{caller.project.slug}' only.")
        return caller.project
    if named is None:
        return None
    project = Project.objects.filter(policy.projects_q(caller.user), slug=named).first()
    if project is None:
        raise invalid(f"Unknown project '{named}'.")
    return project


def _visible_instances(caller: Caller, params: Params):
    instances = Instance.objects.for_list().prefetch_related("launch_request").visible_to(caller.user)
    project = _project_param(caller, params)
    return instances.filter(project=project) if project is not None else instances


def _long_gone() -> Q:
    """Instances terminated longer ago than EC2 shows them (about an hour): unknown to the EC2 API."""
    window = timedelta(seconds=settings.ADMINVMS["EC2_TERMINATED_VISIBLE_SECONDS"])
    return Q(status=Status.DELETED, deleted_at__lt=timezone.now() - window)


def _instances_by_id(caller: Caller, params: Params, *, required: bool) -> list[Instance]:
    raw_ids = params.members("InstanceId")
    if required and not raw_ids:
        raise Ec2Error("MissingParameter", "The request must contain the parameter InstanceId.")
    ids = [parse_id("i", raw, "InvalidInstanceID") for raw in raw_ids]
    instances = _visible_instances(caller, params).filter(pk__in=ids).exclude(_long_gone())
    if category := params.get("Category"):
        # Named with a category, the instances must be of it: the category narrows what the ids may reach.
        instances = _category_filtered(caller, instances, [category], by_id=True)
    found = {i.pk: i for i in instances}
    if missing := [raw for raw, pk in zip(raw_ids, ids, strict=True) if pk not in found]:
        raise Ec2Error("InvalidInstanceID.NotFound", f"The instance ID '{', '.join(missing)}' does not exist")
    return [found[pk] for pk in dict.fromkeys(ids)]


# --- instances ----------------------------------------------------------------------------


def _instance_item(caller: Caller, instance: Instance, index: int = 0) -> dict:
    shown = present_instance(
        {
            "availability_zone": instance.availability_zone,
            "addresses": instance.addresses,
            "host": instance.host,
        },
        user=caller.user,
        instance=instance,
    )
    addresses = [a for values in (shown.get("addresses") or {}).values() for a in values]
    tags = {
        "Name": instance.name,
        **instance.tags,
        CATEGORY_TAG: instance.category.slug,
        PROJECT_TAG: instance.project.slug,
    }
    fault = shown_fault(caller.user, instance.fault)
    return {
        "instanceId": ec2_id("i", instance.pk),
        "imageId": ec2_id("ami", instance.image_id) if instance.image_id else None,
        "instanceState": _state(instance),
        "privateDnsName": "",
        "dnsName": "",
        "reason": "",
        "amiLaunchIndex": index,
        "productCodes": [],
        "instanceType": instance.flavor.name if instance.flavor else instance.category.slug,
        "launchTime": timestamp(instance.launched_at or instance.created_at),
        "placement": {"availabilityZone": shown.get("availability_zone", ""), "tenancy": "default"},
        "monitoring": {"state": "disabled"},
        "privateIpAddress": addresses[0] if addresses else None,
        "stateReason": {"code": "Server.InternalError", "message": fault} if fault else None,
        "architecture": "x86_64",
        "rootDeviceType": "ebs",
        "blockDeviceMapping": [],
        "virtualizationType": "hvm",
        "groupSet": [],
        "networkInterfaceSet": [],
        "tagSet": [{"key": k, "value": v} for k, v in tags.items()],
    }


def _reservations(caller: Caller, instances: list[Instance]) -> list[dict]:
    """Instances grouped by the launch that made them, in the order given."""
    groups: dict[str, list[Instance]] = {}
    for instance in instances:
        key = instance.launch_request_id or instance.pk
        groups.setdefault(ec2_id("r", key), []).append(instance)
    return [
        {
            "reservationId": reservation,
            "ownerId": members[0].project.slug,
            "groupSet": [],
            "instancesSet": [_instance_item(caller, i, n) for n, i in enumerate(members)],
        }
        for reservation, members in groups.items()
    ]


def _category_filtered(caller: Caller, queryset, values: list[str], *, by_id: bool):
    """Rule 1 through the REST API's FilterSet: no category means ``standard``, unless instances are named by id."""
    if not values:
        if by_id:
            return queryset
        values = [None]
    every_status = ",".join(Status.values)  # DELETED ones too: terminated instances stay visible a while
    queries = [{"status": every_status, **({"category": value} if value is not None else {})} for value in values]
    return _through_filterset(InstanceFilterSet, caller, queryset, queries)


def _through_filterset(filterset_class, caller: Caller, queryset, queries: list[dict]):
    """The REST API's FilterSet, one pass per query, united; what it refuses is ``InvalidParameterValue``."""
    parts = []
    for query in queries:
        filterset = filterset_class(query, queryset=queryset, request=caller.request)
        try:
            if not filterset.is_valid():
                raise invalid("; ".join(str(m) for ms in filterset.errors.values() for m in ms))
            parts.append(filterset.qs)
        except ValidationError as exc:
            raise _validation(exc) from None
    return functools.reduce(operator.or_, parts)


def _categories(params: Params, filters: dict[str, list[str]]) -> list[str]:
    """The categories asked for: the ``category`` filter's values and the ``Category`` parameter."""
    categories = filters.pop("category", [])
    if category := params.get("Category"):
        categories.append(category)
    return categories


def _instance_filter(name: str, values: list[str]) -> Q:
    if name == "instance-id":
        return Q(pk__in=[parse_id("i", v, "InvalidInstanceID") for v in values])
    if name == "instance-state-name":
        return functools.reduce(operator.or_, (_state_q(v) for v in values))
    if name == "instance-state-code":
        names = {code: state for state, code in STATE_CODES.items()}
        try:
            return functools.reduce(operator.or_, (_state_q(names[int(v)]) for v in values))
        except (KeyError, ValueError):
            raise invalid(f"Unknown instance-state-code; choose from {sorted(names)}.") from None
    if name == "instance-type":
        return Q(flavor__name__in=values)
    if name == "image-id":
        return Q(image_id__in=[parse_id("ami", v, "InvalidAMIID") for v in values])
    if name == "reservation-id":
        ids = [parse_id("r", v, "InvalidReservationID") for v in values]
        return Q(launch_request_id__in=ids) | Q(launch_request__isnull=True, pk__in=ids)
    if name in ("owner-id", "tag:" + PROJECT_TAG):
        return Q(project__slug__in=values)
    if name == "tag:" + CATEGORY_TAG:
        return Q(category__slug__in=values)
    if name == "tag-key":
        return functools.reduce(operator.or_, (Q(tags__has_key=v) for v in values))
    raise invalid(
        f"The filter '{name}' is invalid; supported: category, instance-id, instance-state-name, "
        "instance-state-code, instance-type, image-id, reservation-id, owner-id, tag:<key>, tag-key."
    )


def describe_instances(caller: Caller, params: Params) -> dict:
    by_id = bool(params.members("InstanceId"))
    if by_id and "MaxResults" in params.raw:
        raise invalid("MaxResults cannot be given with InstanceId.", COMBINATION)
    instances = _instances_by_id(caller, params, required=False) if by_id else None
    filters = params.filters()
    categories = _categories(params, filters)
    queryset = _visible_instances(caller, params)
    if instances is not None:
        queryset = queryset.filter(pk__in=[i.pk for i in instances])
    queryset = _category_filtered(caller, queryset, categories, by_id=by_id)
    queryset = queryset.exclude(_long_gone())
    for n, (name, values) in enumerate(filters.items()):
        if name.startswith("tag:") and name[4:] not in (CATEGORY_TAG, PROJECT_TAG):
            alias = f"_tag{n}"
            # Cast: a key transform's own ``in`` lookup reads its values as JSON on SQLite.
            value = Cast(KeyTextTransform(name[4:], "tags"), output_field=TextField())
            tagged = Q(**{f"{alias}__in": values})
            if name == "tag:Name":  # the Name tag as given, or the instance's own name (web-1 of "web")
                tagged |= Q(name__in=values)
            queryset = queryset.alias(**{alias: value}).filter(tagged)
        else:
            queryset = queryset.filter(_instance_filter(name, values))
    page: Page = paginate(queryset, params, what="instances")
    return {"reservationSet": _reservations(caller, page.rows), "nextToken": page.next_token}


def run_instances(caller: Caller, params: Params) -> dict:
    low = params.integer("MinCount", low=1, high=settings.ADMINVMS["MAX_LAUNCH_COUNT"])
    high = params.integer("MaxCount", low=1, high=settings.ADMINVMS["MAX_LAUNCH_COUNT"])
    if low is None or high is None:
        raise Ec2Error("MissingParameter", "The request must contain the parameters MinCount and MaxCount.")
    if low > high:
        raise invalid("MinCount may not exceed MaxCount.")
    tags = params.tags("instance")
    # The Name tag names the instances (``web-1``, ``web-2`` when several) and stays a tag as given.
    name = tags.get("Name") or "ec2"
    category = _launch_category(caller, params, tags)
    project = _project_param(caller, params, tags)
    image = _launch_image(caller, params.get("ImageId"))
    flavor = None
    if instance_type := params.get("InstanceType"):
        flavor = Flavor.objects.filter(name=instance_type).first()
        if flavor is None:
            raise invalid(f"Invalid value '{instance_type}' for InstanceType: no such flavor.")
    try:
        instances = services.instance_launch(
            user=caller.user,
            name=name,
            project=project,
            category=category,
            flavor=flavor,
            image=image,
            count=high,
            min_count=low,
            tags=tags,
            client_token=params.get("ClientToken") or "",
        )
    except errors.DomainError as exc:
        raise _translate(exc, not_found="InvalidParameterValue") from None
    [reservation] = _reservations(caller, instances)
    return reservation


def _launch_category(caller: Caller, params: Params, tags: dict[str, str]) -> InstanceCategory | None:
    named = params.get("Category")
    if CATEGORY_TAG in tags:
        tagged = tags.pop(CATEGORY_TAG)
        if named is not None and named != tagged:
            raise invalid(f"Category '{named}' and the {CATEGORY_TAG} tag '{tagged}' differ.", COMBINATION)
        named = tagged
    if named is None:
        return None
    category = InstanceCategory.objects.visible_to(caller.user).filter(slug=named).first()
    if category is None:
        raise invalid(f"Unknown category '{named}'.")
    return category


def _launch_image(caller: Caller, image_id: str | None) -> Image | None:
    if not image_id:
        return None
    pk = parse_id("ami", image_id, "InvalidAMIID")
    image = Image.objects.visible_to(caller.user).filter(pk=pk).first()
    if image is None:
        raise Ec2Error("InvalidAMIID.NotFound", f"The image id '{image_id}' does not exist")
    return image


def _act(caller: Caller, params: Params, operation: str, settled: Callable[[Instance], bool]) -> list[dict]:
    """Run ``operation`` on every instance named, all or none: one refusal rolls back the others.

    An instance that is ``settled`` already is left as it is (EC2 answers stopping a
    stopped instance with its state, not an error).
    """
    instances = _instances_by_id(caller, params, required=True)
    changes = []
    try:
        with transaction.atomic():
            for instance in instances:
                before = _state(instance)
                if not settled(instance):
                    services.instance_act(user=caller.user, instance=instance, operation=operation)
                changes.append(
                    {"instanceId": ec2_id("i", instance.pk), "currentState": _state(instance), "previousState": before}
                )
    except errors.DomainError as exc:
        raise _translate(exc) from None
    return changes


def terminate_instances(caller: Caller, params: Params) -> dict:
    gone = (Status.DELETING, Status.DELETED)
    return {"instancesSet": _act(caller, params, "terminate", lambda i: i.status in gone)}


def stop_instances(caller: Caller, params: Params) -> dict:
    if params.flag("Force") or params.flag("Hibernate"):
        raise Ec2Error("UnsupportedOperation", "Force and Hibernate are not supported; stop without them.")
    return {"instancesSet": _act(caller, params, "stop", lambda i: ec2_state(i) in ("stopping", "stopped"))}


def start_instances(caller: Caller, params: Params) -> dict:
    return {"instancesSet": _act(caller, params, "start", lambda i: ec2_state(i) in ("pending", "running"))}


def reboot_instances(caller: Caller, params: Params) -> dict:
    _act(caller, params, "reboot", lambda i: False)
    return {"return": True}


# --- the catalog ----------------------------------------------------------------------------


def _catalog_filtered(filterset_class, caller: Caller, queryset, categories: list[str]):
    """The REST API's FilterSet for ``category``, one pass per value, united."""
    queries = [{"category": value} if value else {} for value in categories or [None]]
    return _through_filterset(filterset_class, caller, queryset, queries)


def _glob_q(field_name: str, values: list[str], filter_name: str) -> Q:
    """EC2's ``*`` and ``?`` wildcards on ``field_name``, matched by the database in linear time (``globs``)."""
    if too_long := [v for v in values if len(v) > globs.MAX_LENGTH]:
        raise invalid(f"The filter '{filter_name}' takes values of at most {globs.MAX_LENGTH} characters, "
                      f"not {len(too_long[0])}.")  # fmt: skip
    return functools.reduce(operator.or_, (Q(**{f"{field_name}__ec2glob": v}) for v in values))


def describe_images(caller: Caller, params: Params) -> dict:
    images = Image.objects.visible_to(caller.user).select_related("project")
    if caller.project is not None:
        # A key acts for its project: the provider's images and that project's own, not the user's other projects'.
        images = images.filter(Q(project__isnull=True) | Q(project=caller.project))
    if ids := params.members("ImageId"):
        pks = [parse_id("ami", raw, "InvalidAMIID") for raw in ids]
        found = set(images.filter(pk__in=pks).values_list("pk", flat=True))
        if missing := [raw for raw, pk in zip(ids, pks, strict=True) if pk not in found]:
            raise Ec2Error("InvalidAMIID.NotFound", f"The image id '{', '.join(missing)}' does not exist")
        images = images.filter(pk__in=pks)
    owners = params.members("Owner")
    if unknown := set(owners) - {"self", "provider"}:
        raise invalid(f"Unknown Owner '{sorted(unknown)[0]}'; use self (your project's images) or provider.")
    if owners:
        scope = Q()
        if "self" in owners:
            scope |= Q(project__isnull=False, project__in=Project.objects.filter(policy.projects_q(caller.user)))
        if "provider" in owners:
            scope |= Q(project__isnull=True)
        images = images.filter(scope)
    filters = params.filters()
    images = _catalog_filtered(ImageFilterSet, caller, images, _categories(params, filters))
    states = filters.pop("state", None)
    if states is None and not ids:
        images = images.filter(is_active=True)
    elif states is not None:
        if unknown := set(states) - {"available", "deregistered"}:
            raise invalid(f"Unknown image state '{sorted(unknown)[0]}'; choose from available, deregistered.")
        images = images.filter(is_active__in=[s == "available" for s in states])
    for name, values in filters.items():
        if name == "name":
            images = images.filter(_glob_q("name", values, name))
        elif name == "image-id":
            images = images.filter(pk__in=[parse_id("ami", v, "InvalidAMIID") for v in values])
        elif name == "is-public":
            images = images.filter(functools.reduce(operator.or_, (Q(project__isnull=v == "true") for v in values)))
        else:
            raise invalid(f"The filter '{name}' is invalid; supported: category, name, image-id, state, is-public.")
    page = paginate(images.distinct(), params, what="images")
    return {
        "imagesSet": [
            {
                "imageId": ec2_id("ami", image.pk),
                "imageLocation": image.name,
                "imageState": "available" if image.is_active else "deregistered",
                "imageOwnerId": image.project.slug if image.project else "provider",
                "isPublic": image.project is None,
                "architecture": "x86_64",
                "imageType": "machine",
                "name": image.name,
                "creationDate": timestamp(image.created_at),
                "rootDeviceType": "ebs",
                "virtualizationType": "hvm",
                "blockDeviceMapping": [],
                "tagSet": [],
            }
            for image in page.rows
        ],
        "nextToken": page.next_token,
    }


def describe_instance_types(caller: Caller, params: Params) -> dict:
    flavors = Flavor.objects.filter(is_active=True)
    if names := params.members("InstanceType"):
        known = set(flavors.filter(name__in=names).values_list("name", flat=True))
        if missing := [n for n in names if n not in known]:
            raise invalid(f"The instance type '{', '.join(missing)}' does not exist.", "InvalidInstanceType")
        flavors = flavors.filter(name__in=names)
    filters = params.filters()
    flavors = _catalog_filtered(FlavorFilterSet, caller, flavors, _categories(params, filters))
    for name, values in filters.items():
        if name == "instance-type":
            flavors = flavors.filter(_glob_q("name", values, name))
        else:
            raise invalid(f"The filter '{name}' is invalid; supported: category, instance-type.")
    page = paginate(flavors.distinct(), params, what="instance-types", default=100)
    return {
        "instanceTypeSet": [
            {
                "instanceType": flavor.name,
                "currentGeneration": True,
                "vCpuInfo": {"defaultVCpus": flavor.vcpus},
                "memoryInfo": {"sizeInMiB": flavor.ram_mb},
                "instanceStorageSupported": flavor.disk_gb > 0,
                "instanceStorageInfo": {"totalSizeInGB": flavor.disk_gb} if flavor.disk_gb else None,
                "supportedUsageClasses": ["on-demand"],
            }
            for flavor in page.rows
        ],
        "nextToken": page.next_token,
    }


# --- the account and the region -----------------------------------------------------------


def describe_account_attributes(caller: Caller, params: Params) -> dict:
    attributes = {"supported-platforms": ["EC2"], "default-vpc": ["none"]}
    if wanted := params.members("AttributeName"):
        if unknown := set(wanted) - set(attributes):
            raise invalid(f"Unknown attribute '{sorted(unknown)[0]}'; supported: {', '.join(attributes)}.")
        attributes = {k: v for k, v in attributes.items() if k in wanted}
    return {
        "accountAttributeSet": [
            {"attributeName": name, "attributeValueSet": [{"attributeValue": v} for v in values]}
            for name, values in attributes.items()
        ]
    }


def describe_regions(caller: Caller, params: Params) -> dict:
    region = settings.ADMINVMS["EC2_REGION"]
    if (names := params.members("RegionName")) and region not in names:
        return {"regionInfo": []}
    return {
        "regionInfo": [{"regionName": region, "regionEndpoint": caller.endpoint, "optInStatus": "opt-in-not-required"}]
    }


def describe_availability_zones(caller: Caller, params: Params) -> dict:
    names = params.members("ZoneName")
    zones = [z for z in settings.ADMINVMS["EC2_AVAILABILITY_ZONES"] if not names or z in names]
    region = settings.ADMINVMS["EC2_REGION"]
    return {
        "availabilityZoneInfo": [
            {"zoneName": z, "zoneState": "available", "regionName": region, "messageSet": []} for z in zones
        ]
    }


@dataclass(frozen=True)
class Action:
    run: Callable[[Caller, Params], dict]
    # The parameters it honours (their first segment: ``Filter`` for ``Filter.1.Name``); anything else is refused.
    accepts: frozenset[str]
    # It changes something: its signed request is good for one use only (a replay is refused),
    # unless a ClientToken makes it idempotent (a replayed RunInstances then answers the same reservation).
    changes: bool = False

    def single_use(self, params: Params) -> bool:
        return self.changes and not (self.run is run_instances and params.get("ClientToken"))


_INSTANCE_IDS = frozenset({"InstanceId", "Project", "Category"})
_LAUNCH = frozenset(
    {"ImageId", "InstanceType", "MinCount", "MaxCount", "ClientToken", "TagSpecification", "Category", "Project"}
)

ACTIONS: dict[str, Action] = {
    "RunInstances": Action(run_instances, _LAUNCH, changes=True),
    "TerminateInstances": Action(terminate_instances, _INSTANCE_IDS, changes=True),
    "RebootInstances": Action(reboot_instances, _INSTANCE_IDS, changes=True),
    "StopInstances": Action(stop_instances, _INSTANCE_IDS | {"Force", "Hibernate"}, changes=True),
    "StartInstances": Action(start_instances, _INSTANCE_IDS, changes=True),
    "DescribeInstances": Action(describe_instances, _INSTANCE_IDS | {"Filter", "MaxResults", "NextToken", "Category"}),
    "DescribeImages": Action(
        describe_images, frozenset({"ImageId", "Owner", "Filter", "MaxResults", "NextToken", "Category"})
    ),
    "DescribeInstanceTypes": Action(
        describe_instance_types, frozenset({"InstanceType", "Filter", "MaxResults", "NextToken", "Category"})
    ),
    "DescribeAccountAttributes": Action(describe_account_attributes, frozenset({"AttributeName"})),
    "DescribeRegions": Action(describe_regions, frozenset({"RegionName"})),
    "DescribeAvailabilityZones": Action(describe_availability_zones, frozenset({"ZoneName"})),
}


def new_request_id() -> str:
    return str(uuid.uuid4())
