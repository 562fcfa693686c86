from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.functional import cached_property, empty
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from adminvms_dashboard.api import SlugRelatedField
from categories.models import Flavor, Image, InstanceCategory
from instances import operations, services
from instances.choices import Health
from instances.drivers.registry import is_simulated
from instances.models import NAME_MAX_LENGTH, HealBreaker, Instance, InstanceEvent, Rollout
from instances.presentation import (
    ADMIN_ONLY_FIELDS,
    RESTRICTED_FIELDS,
    present_instance,
    shown_event_message,
    shown_event_name,
    shown_requester,
)
from instances.selectors import allowed_operations
from tenancy import policy
from tenancy.models import Project


@extend_schema_field(
    {
        "type": "string",
        "enum": [*Health.values, "degraded", "", None],
        "nullable": True,
        "description": (
            "The health check's verdict: `healthy`, `failing` (failed probes, fewer than the category's "
            "threshold) or `unhealthy`; empty when not probed. In the restricted view (`restricted`) it is "
            "`healthy` or `degraded` (failing or unhealthy), `null` when not probed."
        ),
    }
)
class HealthField(serializers.CharField):
    """The verdict as the model holds it; ``present_instance`` turns it into what the caller reads."""


# How DRF writes a date and time (ISO 8601 in the current time zone, "Z" for UTC), and the fields it writes so.
_DATETIME = serializers.DateTimeField()
_DATETIMES = frozenset(f.name for f in Instance._meta.concrete_fields if isinstance(f, models.DateTimeField))


class InstanceSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    flavor = serializers.SlugRelatedField(slug_field="name", read_only=True)
    image_name = serializers.CharField(source="image.name", read_only=True, default=None)
    simulated = serializers.SerializerMethodField()
    allowed_operations = serializers.SerializerMethodField()
    restricted = serializers.BooleanField(read_only=True, default=False)
    health = HealthField(read_only=True)
    health_error = serializers.CharField(
        read_only=True, help_text="The last probe's error; for callers other than provider admins a plain sentence."
    )
    is_spare = serializers.BooleanField(
        read_only=True, help_text="A ready server of the category's spare pool, until a launch takes it."
    )

    class Meta:
        model = Instance
        fields = [
            "id", "name", "category", "project", "flavor", "image", "image_name", "status", "task_state",
            "backend", "simulated", "backend_id", "host", "availability_zone", "addresses",
            "management_endpoint", "metadata", "tags", "fault", "health", "health_failures", "health_since",
            "health_checked_at", "health_error", "generation", "is_spare", "allowed_operations", "restricted",
            "created_at", "updated_at", "launched_at", "deleted_at",
        ]  # fmt: skip
        read_only_fields = fields
        # For the schema: present_instance() drops these for callers other than provider admins,
        # and these in the restricted view.
        admin_only = ADMIN_ONLY_FIELDS
        restricted_fields = RESTRICTED_FIELDS

    def get_simulated(self, instance) -> bool:
        return is_simulated(instance.backend)

    def get_allowed_operations(self, instance) -> list[str]:
        # One memo for the rows of a list (the child serializer serves them all): the policy is asked once
        # per kind of row, not for every operation of every row.
        return allowed_operations(self._user, instance, self.__dict__.setdefault("_memo", {}))

    def to_representation(self, instance):
        data = self._fields_of(instance)
        return present_instance(data, user=self._user, instance=instance)

    @cached_property
    def _user(self):
        """The caller, once for every row: the user itself rather than the lazy object Django's sessions
        wrap it in, which every attribute read of the policy would go through."""
        user = self.context["request"].user
        wrapped = getattr(user, "_wrapped", user)
        return user if wrapped is empty else wrapped

    def _fields_of(self, instance) -> dict:
        """What DRF's ``to_representation`` makes of ``instance``, without its generic field machinery, which
        a list of 100 rows pays for 3,000 times (tests/test_api.py compares both on every kind of row): the
        fields that are not the model's own value, then each other field as the model holds it (dates and
        times written as DRF writes them)."""
        flavor, image = instance.flavor, instance.image
        computed = {
            "id": str(instance.id),
            "category": instance.category.slug,
            "project": instance.project.slug,
            "flavor": flavor.name if flavor is not None else None,
            "image": image.pk if image is not None else None,
            "image_name": image.name if image is not None else None,
            "simulated": is_simulated(instance.backend),
            "allowed_operations": self.get_allowed_operations(instance),
            "restricted": False,
        }
        data = {}
        for name in self.Meta.fields:
            if name in computed:
                data[name] = computed[name]
            elif (value := getattr(instance, name)) is not None and name in _DATETIMES:
                data[name] = _DATETIME.to_representation(value)
            else:
                data[name] = value
        return data


# For the schema only: InstanceViewSet.create() builds this body from InstanceSerializer.
class LaunchAcceptedSerializer(InstanceSerializer):
    """The launch answer: the first instance launched and, when ``count`` > 1, every one in ``instances``."""

    # Not read-only, so that the schema does not call it required: it is there only when count > 1.
    instances = InstanceSerializer(many=True, required=False, help_text="Every instance launched, when count > 1.")

    class Meta(InstanceSerializer.Meta):
        fields = [*InstanceSerializer.Meta.fields, "instances"]


@extend_schema_field({"type": "string", "description": "An image id, or the name of an image."})
class ImageRefField(serializers.Field):
    """An image by id, or by name when the name is unique among the images the caller sees."""

    def to_representation(self, value):
        return str(value.pk)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not data.strip() or "\x00" in data:
            raise serializers.ValidationError("Give an image id or name.")
        images = Image.objects.visible_to(self.context["request"].user)
        try:
            return images.get(pk=uuid.UUID(data))
        except (ValueError, Image.DoesNotExist):
            pass
        matches = list(images.filter(name=data)[:2])
        if not matches:
            raise serializers.ValidationError(f"Unknown image '{data}'.")
        if len(matches) > 1:
            raise serializers.ValidationError(f"Several images are named '{data}'; give its id.")
        return matches[0]


@extend_schema_field(OpenApiTypes.STR)
class VisibleSlugField(SlugRelatedField):
    """A slug among the objects the caller may see; unknown and invisible read the same."""

    def __init__(self, visible, **kwargs):
        self.visible = visible
        kwargs.setdefault("error_messages", {"does_not_exist": "Unknown {slug_name} '{value}'."})
        super().__init__(**kwargs)

    def get_queryset(self):
        return self.visible(self.context["request"].user)


class LaunchSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=NAME_MAX_LENGTH)
    category = VisibleSlugField(
        lambda user: InstanceCategory.objects.visible_to(user),
        slug_field="slug",
        required=False,
        allow_null=True,
    )
    flavor = SlugRelatedField(
        slug_field="name", queryset=Flavor.objects.all(), required=False, allow_null=True,
        error_messages={"does_not_exist": "Unknown flavor '{value}'."},
    )  # fmt: skip
    image = ImageRefField(required=False, allow_null=True)
    project = VisibleSlugField(
        lambda user: Project.objects.filter(policy.projects_q(user)),
        slug_field="slug",
        required=False,
        allow_null=True,
    )
    count = serializers.IntegerField(min_value=1, max_value=settings.ADMINVMS["MAX_LAUNCH_COUNT"], default=1)
    tags = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        help_text="Your own labels, key to value (EC2's tags): shown and filtered on, never given to the backend.",
    )


# POST .../action/ runs the verbs a caller may ask for on an instance (the row actions of the operation
# table) but terminate (that is DELETE .../{id}/); a rollout's ``replace`` is the fleet's alone.
CALLER_VERBS = tuple(op for op in operations.VERBS if op.row_action and not op.deletes)
ACTION_VERBS = [op.name for op in CALLER_VERBS]
# Each flag a verb declares (reboot's ``hard``) is a boolean of the request body.
ACTION_FLAGS = sorted({flag for op in CALLER_VERBS for flag in op.params})


class ActionRequestSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=ACTION_VERBS)

    def get_fields(self):
        fields = super().get_fields()
        for flag in ACTION_FLAGS:
            users = ", ".join(op.name for op in CALLER_VERBS if flag in op.params)
            fields[flag] = serializers.BooleanField(default=False, help_text=f"For {users}.")
        return fields


class ActionAcceptedSerializer(serializers.Serializer):
    action_id = serializers.UUIDField()
    action = serializers.CharField()
    instance = InstanceSerializer()


class EventSerializer(serializers.ModelSerializer):
    action = serializers.CharField(source="action.action", default=None)
    action_id = serializers.UUIDField(source="action.id", default=None)
    action_status = serializers.CharField(source="action.status", default=None)
    requested_by = serializers.CharField(
        source="action.requested_by.username", default=None,
        help_text="Who asked for the action; for callers other than provider admins the provider's accounts "
        "read \"the provider\".",
    )  # fmt: skip

    class Meta:
        model = InstanceEvent
        fields = [
            "id",
            "action",
            "action_id",
            "action_status",
            "requested_by",
            "event",
            "result",
            "message",
            "created_at",
        ]

    def to_representation(self, event):
        data = super().to_representation(event)
        user = self.context["request"].user
        data["event"] = shown_event_name(user, event, self.context.get("instance") or event.instance)
        data["message"] = shown_event_message(user, event)
        if not policy.is_provider_admin(user):  # the provider's accounts read "the provider"
            data["requested_by"] = shown_requester(user, event) or None
        return data


# --- the fleet: rollouts and auto-heal breakers (provider admins) --------------------------


class RolloutProgressSerializer(serializers.Serializer):
    succeeded = serializers.IntegerField(help_text="Replacements that succeeded.")
    failed = serializers.IntegerField(help_text="Replacements that failed (the rollout stops at the first).")
    running = serializers.IntegerField(help_text="Replacements under way.")


class RolloutSerializer(serializers.ModelSerializer):
    """A rolling replacement of a category's ACTIVE instances with a new image, one batch at a time."""

    # A string and not an enum in the schema: its enum would take the name ``StatusEnum`` from the instances'.
    status = serializers.CharField(
        read_only=True,
        help_text="`running` or `paused` while under way; then `succeeded`, `failed` or `aborted`.",
    )
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    image_name = serializers.CharField(source="image.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Rollout
        fields = [
            "id", "category", "image", "image_name", "batch_size", "pause_seconds", "status", "message", "total",
            "progress", "created_by", "created_at", "batch_finished_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields
        extra_kwargs = {"total": {"help_text": "How many instances it had to replace when it started."}}

    @extend_schema_field(RolloutProgressSerializer)
    def get_progress(self, rollout) -> dict:
        progress = self.context.get("progress") or {}
        return progress[rollout.pk] if rollout.pk in progress else services.rollout_progress(rollout)


class RolloutRequestSerializer(serializers.Serializer):
    category = SlugRelatedField(
        slug_field="slug", queryset=InstanceCategory.objects.all(),
        error_messages={"does_not_exist": "Unknown category '{value}'."},
    )  # fmt: skip
    image = ImageRefField(
        required=False,
        allow_null=True,
        help_text="The image to roll out (an id, or a unique name); without it, the newest image tagged with "
        "the category's image tag.",
    )
    batch_size = serializers.IntegerField(default=1, help_text="How many instances are replaced at a time.")
    pause_seconds = serializers.IntegerField(
        default=0, help_text="Seconds to wait after a batch succeeded before the next one starts."
    )


class HealBreakerSerializer(serializers.ModelSerializer):
    """An auto-heal circuit breaker: while open, nothing of its category or backend is healed automatically."""

    resumed_by = serializers.CharField(source="resumed_by.username", read_only=True, default=None)
    is_open = serializers.BooleanField(read_only=True)

    class Meta:
        model = HealBreaker
        fields = [
            "id", "scope", "key", "unhealthy", "total", "reason", "is_open", "opened_at", "resumed_at", "resumed_by",
        ]  # fmt: skip
        read_only_fields = fields
        extra_kwargs = {"key": {"help_text": "The category's slug or the backend's name."}}
