from django.db.models import BooleanField, ExpressionWrapper, Q
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from adminvms_dashboard.api import SlugRelatedField
from adminvms_dashboard.schema import conflict
from categories.api.serializers import ImageSerializer, VolumeSerializer
from categories.api.views import CatalogWrites
from categories.models import Image, InstanceCategory, Volume
from instances import selectors, services
from instances.filters import InstanceFilterSet
from instances.models import HealBreaker, Instance, Rollout
from tenancy import policy
from tenancy.errors import NotFound

from .serializers import (
    ActionAcceptedSerializer,
    ActionRequestSerializer,
    EventSerializer,
    HealBreakerSerializer,
    InstanceSerializer,
    LaunchAcceptedSerializer,
    LaunchSerializer,
    RolloutRequestSerializer,
    RolloutSerializer,
)


def _accepted(request, instance: Instance, record) -> Response:
    instance.refresh_from_db()
    body = {
        "action_id": str(record.pk),
        "action": record.action,
        "instance": InstanceSerializer(instance, context={"request": request}).data,
    }
    return Response(body, status=status.HTTP_202_ACCEPTED)


BUSY = conflict("Another action is in progress, or the instance is not in a state for this one.")


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                "category", str, description="A category slug, or `all` (provider admins); default `standard`."
            ),
            OpenApiParameter(
                "status", str, description="One or more statuses, comma-separated; default: all but DELETED."
            ),
            OpenApiParameter("project", str, description="A project slug."),
        ]
    )
)
class InstanceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Administrative and regular instances. Without ``category`` nothing changes for existing users."""

    serializer_class = InstanceSerializer
    filterset_class = InstanceFilterSet

    def get_queryset(self):
        return Instance.objects.for_list().visible_to(self.request.user)

    def get_object(self):
        return selectors.instance_get_visible(user=self.request.user, instance_id=self.kwargs["pk"])

    @extend_schema(
        request=LaunchSerializer,
        responses={202: LaunchAcceptedSerializer, 409: conflict("The project's quota for the category is used up.")},
    )
    def create(self, request, *args, **kwargs):
        """Launch; answers 202 with the BUILDING instance. With ``count`` > 1 the body is the
        first instance and ``instances`` lists them all."""
        launch = LaunchSerializer(data=request.data, context={"request": request})
        launch.is_valid(raise_exception=True)
        instances = services.instance_launch(user=request.user, **launch.validated_data)
        data = InstanceSerializer(instances, many=True, context={"request": request}).data
        body = dict(data[0])
        if len(data) > 1:
            body["instances"] = data
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={202: ActionAcceptedSerializer, 409: BUSY})
    def destroy(self, request, *args, **kwargs):
        """Terminate; answers 202. The row stays as DELETED history."""
        instance = self.get_object()
        record = services.instance_act(user=request.user, instance=instance, operation="terminate")
        return _accepted(request, instance, record)

    @extend_schema(request=ActionRequestSerializer, responses={202: ActionAcceptedSerializer, 409: BUSY})
    @action(detail=True, methods=["post"], url_path="action")
    def run_action(self, request, pk=None):
        """Reboot, stop, start or heal (the row actions of the operation table but terminate, which is
        DELETE; heal, a new server for the instance, is the provider's); 202, or 409 while another action runs."""
        instance = self.get_object()
        body = ActionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        params = dict(body.validated_data)
        record = services.instance_act(
            user=request.user, instance=instance, operation=params.pop("action"), params=params
        )
        return _accepted(request, instance, record)

    @extend_schema(responses=EventSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        """The instance's action history, oldest first."""
        instance = self.get_object()
        events = instance.events.select_related("action__requested_by").order_by("created_at", "id")
        page = self.paginate_queryset(events)
        context = {"request": request, "instance": instance}
        return self.get_paginated_response(EventSerializer(page, many=True, context=context).data)


class CategoriesRequestSerializer(serializers.Serializer):
    categories = SlugRelatedField(
        slug_field="slug",
        queryset=InstanceCategory.objects.all(),
        many=True,
        error_messages={"does_not_exist": "Unknown category '{value}'."},
        help_text="Every category the provider assigns (an empty list clears them).",
    )


class VolumeAssignedSerializer(VolumeSerializer):
    backend_note = serializers.CharField(help_text="Empty when the backend agrees; else what happened there.")

    class Meta(VolumeSerializer.Meta):
        fields = [*VolumeSerializer.Meta.fields, "backend_note"]


class ImageAssignedSerializer(ImageSerializer):
    backend_note = serializers.CharField(help_text="Empty when the backend agrees; else what happened there.")

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "backend_note"]


class _CategoriesView(APIView):
    """PUT the categories the provider assigns a catalog item (provider admins); they are written to the
    backend too where it keeps them (Glance's image tags, Cinder's volume metadata)."""

    model = None
    serializer_class = None
    assign = None
    # Refused before the item is looked up or the body validated: a member learns nothing, not even
    # which slugs name hidden categories (403 for every body alike).
    permission_classes = [permissions.IsAuthenticated, CatalogWrites]

    def put(self, request, pk):
        item = self.model.objects.visible_to(request.user).filter(pk=pk).first()
        if item is None:
            raise NotFound(f"No such {self.model._meta.verbose_name}.")
        body = CategoriesRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = type(self).assign(user=request.user, item=item, categories=body.validated_data["categories"])
        data = self.serializer_class(item, context={"request": request}).data
        return Response({**data, "backend_note": note})


@extend_schema_view(put=extend_schema(request=CategoriesRequestSerializer, responses={200: VolumeAssignedSerializer}))
class VolumeCategoriesView(_CategoriesView):
    """The categories the provider assigns a volume: it serves them and those of the instances it is attached
    to; they are written into the volume's backend metadata where the backend keeps some (Cinder)."""

    model, serializer_class = Volume, VolumeSerializer

    @staticmethod
    def assign(*, user, item, categories):
        return services.volume_categories_set(user=user, volume=item, categories=categories)


@extend_schema_view(put=extend_schema(request=CategoriesRequestSerializer, responses={200: ImageAssignedSerializer}))
class ImageCategoriesView(_CategoriesView):
    """The categories the provider offers an image for; written into its Glance tags
    (``adminvms:category=<slug>``) so that the next sync agrees. A project's own image serves none."""

    model, serializer_class = Image, ImageSerializer

    @staticmethod
    def assign(*, user, item, categories):
        return services.image_categories_set(user=user, image=item, categories=categories)


# --- the fleet: rollouts and auto-heal breakers ------------------------------------------------


class FleetOperators(permissions.BasePermission):
    """The fleet is the provider's: everybody else is refused (403) before anything is read or
    validated, as catalog writes are. The services check the same policy again."""

    def has_permission(self, request, view):
        verdict = policy.can_operate_fleet(request.user)
        self.message = verdict.reason
        return bool(verdict)


PROVIDER_ONLY = OpenApiResponse(
    response={"$ref": "#/components/schemas/Error"}, description="Only provider admins operate the fleet."
)
ROLLOUT_CONFLICT = conflict("The category has a rollout under way, or the rollout is not in a state for this verb.")
_ROLLOUT_VERB = extend_schema(
    request=None, responses={200: RolloutSerializer, 403: PROVIDER_ONLY, 409: ROLLOUT_CONFLICT}
)


@extend_schema_view(
    list=extend_schema(responses={200: RolloutSerializer(many=True), 403: PROVIDER_ONLY}),
    retrieve=extend_schema(responses={200: RolloutSerializer, 403: PROVIDER_ONLY}),
)
class RolloutViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Rolling replacements of a category's instances with a new image, batch by batch, newest first
    (provider admins). The worker's fleet pass starts each batch; here they start, pause, resume or abort."""

    serializer_class = RolloutSerializer
    permission_classes = [permissions.IsAuthenticated, FleetOperators]
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    def get_queryset(self):
        return Rollout.objects.select_related("category", "image", "created_by").order_by("-created_at")

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        # Every row's progress in one query.
        context = {**self.get_serializer_context(), "progress": services.rollouts_progress(page)}
        return self.get_paginated_response(RolloutSerializer(page, many=True, context=context).data)

    @extend_schema(
        request=RolloutRequestSerializer, responses={201: RolloutSerializer, 403: PROVIDER_ONLY, 409: ROLLOUT_CONFLICT}
    )
    def create(self, request, *args, **kwargs):
        """Start a rollout: ``category``, optional ``image`` (without it, the newest image tagged with the
        category's image tag), ``batch_size``, ``pause_seconds``; 201, or 409 while one is under way."""
        body = RolloutRequestSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        rollout = services.rollout_start(user=request.user, **body.validated_data)
        return Response(self._shown(rollout), status=status.HTTP_201_CREATED)

    def _verb(self, verb: str) -> Response:
        rollout = services.rollout_set(user=self.request.user, rollout=self.get_object(), verb=verb)
        return Response(self._shown(rollout))

    def _shown(self, rollout: Rollout) -> dict:
        rollout = self.get_queryset().get(pk=rollout.pk)
        return self.get_serializer(rollout).data

    @_ROLLOUT_VERB
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """Pause a running rollout: replacements under way finish, no new batch starts."""
        return self._verb("pause")

    @_ROLLOUT_VERB
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Resume a paused rollout."""
        return self._verb("resume")

    @_ROLLOUT_VERB
    @action(detail=True, methods=["post"])
    def abort(self, request, pk=None):
        """Abort a running or paused rollout: replacements under way finish, the other instances stay on
        their image."""
        return self._verb("abort")


@extend_schema_view(
    list=extend_schema(responses={200: HealBreakerSerializer(many=True), 403: PROVIDER_ONLY}),
    resume=extend_schema(
        request=None,
        responses={200: HealBreakerSerializer, 403: PROVIDER_ONLY, 409: conflict("The breaker was resumed already.")},
    ),
)
class HealBreakerViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The auto-heal circuit breakers (provider admins): open ones first, then the most recent. While a
    breaker is open nothing of its category or backend is healed automatically; an admin resumes it."""

    serializer_class = HealBreakerSerializer
    permission_classes = [permissions.IsAuthenticated, FleetOperators]

    def get_queryset(self):
        is_open = ExpressionWrapper(Q(resumed_at__isnull=True), output_field=BooleanField())
        return (
            HealBreaker.objects.select_related("resumed_by")
            .annotate(open_first=is_open)
            .order_by("-open_first", "-opened_at", "-pk")
        )

    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Resume auto-heal where the breaker opened; it counts afresh from now."""
        breaker = services.breaker_resume(user=request.user, breaker=self.get_object())
        return Response(self.get_serializer(breaker).data)
