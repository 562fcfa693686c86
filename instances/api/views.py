from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from adminvms_dashboard.api import SlugRelatedField
from adminvms_dashboard.schema import conflict
from categories.api.serializers import ImageSerializer, VolumeSerializer
from categories.models import Image, InstanceCategory, Volume
from instances import selectors, services
from instances.filters import InstanceFilterSet
from instances.models import Instance
from tenancy.errors import NotFound

from .serializers import (
    ActionAcceptedSerializer,
    ActionRequestSerializer,
    EventSerializer,
    InstanceSerializer,
    LaunchAcceptedSerializer,
    LaunchSerializer,
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
        return Instance.objects.with_related().visible_to(self.request.user)

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
        """Reboot, stop or start (the verbs of the operation table but terminate, which is DELETE);
        202, or 409 while another action runs."""
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
        return self.get_paginated_response(EventSerializer(page, many=True, context={"request": request}).data)


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
