from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from adminvms_dashboard.api import SLUG_PATTERN, FiltersOnListOnly
from adminvms_dashboard.schema import conflict
from categories import services
from categories.filters import CategoryFilterSet, FlavorFilterSet, ImageFilterSet, VolumeFilterSet
from categories.models import Flavor, Image, InstanceCategory, Volume
from tenancy import policy

from .serializers import (
    CategoryFlavorSerializer,
    CategorySerializer,
    FlavorSerializer,
    ImageSerializer,
    VolumeSerializer,
)


class CatalogWrites(permissions.BasePermission):
    """Catalog writes are provider-only, refused before the body is validated: a
    member's attempt must not learn anything (such as "slug already taken" for a
    hidden category). The services check the same policy again."""

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return True
        verdict = policy.can_manage_catalog(request.user)
        self.message = verdict.reason
        return bool(verdict)


CATEGORY_PARAM = OpenApiParameter(
    "category", str, description="A category slug, or `all` (provider admins). Rule 7 of the design."
)


IN_USE = conflict("The category has instances (or is built-in), so this change is refused.")


@extend_schema_view(
    update=extend_schema(responses={200: CategorySerializer, 409: IN_USE}),
    partial_update=extend_schema(responses={200: CategorySerializer, 409: IN_USE}),
    destroy=extend_schema(
        responses={
            204: None,
            409: conflict(
                "The category has instances, deleted ones included, or other history that keeps it (rollouts), "
                "or is built-in: deactivate it instead (PATCH `is_active: false`)."
            ),
        }
    ),
)
class CategoryViewSet(FiltersOnListOnly, viewsets.ModelViewSet):
    """The category catalog. Everybody reads what they may see; writes are provider-only."""

    serializer_class = CategorySerializer
    permission_classes = [permissions.IsAuthenticated, CatalogWrites]
    lookup_field = "slug"
    lookup_value_regex = SLUG_PATTERN  # what a SlugField holds; anything else is a 404, not a DB error
    filterset_class = CategoryFilterSet

    def get_queryset(self):
        return (
            InstanceCategory.objects.visible_to(self.request.user)
            .select_related("default_flavor")
            .prefetch_related(Prefetch("allowed_flavors", queryset=Flavor.objects.only("name")))
        )

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        flavors = data.pop("allowed_flavors", None)
        serializer.instance = services.category_create(user=self.request.user, data=data, allowed_flavors=flavors)

    def perform_update(self, serializer):
        """One service call: ``allowed_flavors``, when given, replaces the set (as the console's form does)."""
        data = dict(serializer.validated_data)
        flavors = data.pop("allowed_flavors", None)
        serializer.instance = services.category_update(
            user=self.request.user, category=serializer.instance, data=data, allowed_flavors=flavors
        )

    def perform_destroy(self, instance):
        services.category_delete(user=self.request.user, category=instance)

    @extend_schema(methods=["GET"], responses=FlavorSerializer(many=True), filters=False)
    @extend_schema(
        methods=["POST"], request=CategoryFlavorSerializer, responses={201: FlavorSerializer(many=True)}, filters=False
    )
    @extend_schema(
        methods=["DELETE"],
        request=None,
        responses={
            200: FlavorSerializer(many=True),
            409: conflict("The flavor is the category's default flavor."),
        },
        parameters=[OpenApiParameter("flavor", str, required=True, description="The flavor name to disallow.")],
        filters=False,
    )
    # Not paginated: a category allows a handful of flavors.
    @action(detail=True, methods=["get", "post", "delete"], url_path="flavors", pagination_class=None)
    def flavors(self, request, slug=None):
        """Allowed flavors of a category: list, allow one (POST), disallow one (DELETE)."""
        category = self.get_object()
        if request.method != "GET":
            source = request.data if request.method == "POST" or request.data else request.query_params
            serializer = CategoryFlavorSerializer(data=source)
            serializer.is_valid(raise_exception=True)
            flavor = serializer.validated_data["flavor"]
            if request.method == "POST":
                services.category_flavor_add(user=request.user, category=category, flavor=flavor)
            else:
                services.category_flavor_remove(user=request.user, category=category, flavor=flavor)
        flavors = category.allowed_flavors.all()
        code = status.HTTP_201_CREATED if request.method == "POST" else status.HTTP_200_OK
        return Response(FlavorSerializer(flavors, many=True, context={"request": request}).data, status=code)


class FlavorViewSet(FiltersOnListOnly, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Hardware sizes. ``?category=`` lists a category's allowed flavors."""

    serializer_class = FlavorSerializer
    permission_classes = [permissions.IsAuthenticated, CatalogWrites]
    filterset_class = FlavorFilterSet
    queryset = Flavor.objects.all()

    def perform_create(self, serializer):
        serializer.instance = services.flavor_create(user=self.request.user, **serializer.validated_data)

    @extend_schema(parameters=[CATEGORY_PARAM])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


class ImageViewSet(FiltersOnListOnly, viewsets.ReadOnlyModelViewSet):
    """Images, filtered by category; images of hidden categories are not listed for members."""

    serializer_class = ImageSerializer
    filterset_class = ImageFilterSet

    def get_queryset(self):
        return Image.objects.visible_to(self.request.user).prefetch_related("categories")

    @extend_schema(parameters=[CATEGORY_PARAM])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


class VolumeViewSet(FiltersOnListOnly, viewsets.ReadOnlyModelViewSet):
    """Volumes of the caller's projects, filtered by category."""

    serializer_class = VolumeSerializer
    filterset_class = VolumeFilterSet

    def get_queryset(self):
        return Volume.objects.visible_to(self.request.user).select_related("project").prefetch_related("categories")

    @extend_schema(parameters=[CATEGORY_PARAM])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)
