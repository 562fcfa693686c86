"""The one API router: every resource of /api/v1/."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from categories.api.views import CategoryViewSet, FlavorViewSet, ImageViewSet, VolumeViewSet
from instances.api.views import (
    HealBreakerViewSet,
    ImageCategoriesView,
    InstanceViewSet,
    RolloutViewSet,
    VolumeCategoriesView,
)
from tenancy.api.views import Ec2CredentialViewSet, MeView, ProjectViewSet, TokenView, TokenViewSet

router = DefaultRouter()
router.register("categories", CategoryViewSet, basename="category")
router.register("flavors", FlavorViewSet, basename="flavor")
router.register("images", ImageViewSet, basename="image")
router.register("volumes", VolumeViewSet, basename="volume")
router.register("instances", InstanceViewSet, basename="instance")
router.register("rollouts", RolloutViewSet, basename="rollout")
router.register("heal-breakers", HealBreakerViewSet, basename="heal-breaker")
router.register("projects", ProjectViewSet, basename="project")
router.register("auth/tokens", TokenViewSet, basename="token")
router.register("ec2-credentials", Ec2CredentialViewSet, basename="ec2-credential")

urlpatterns = [
    path("me/", MeView.as_view(), name="me"),
    path("volumes/<uuid:pk>/categories/", VolumeCategoriesView.as_view(), name="volume-categories"),
    path("images/<uuid:pk>/categories/", ImageCategoriesView.as_view(), name="image-categories"),
    path("auth/token/", TokenView.as_view(), name="auth-token"),
    *router.urls,
]
