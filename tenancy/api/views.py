from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from adminvms_dashboard.api import SLUG_PATTERN
from tenancy import policy
from tenancy.models import Membership, Project

from .serializers import MeSerializer, ProjectSerializer


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    """Projects the caller belongs to (every project, for provider admins)."""

    serializer_class = ProjectSerializer
    lookup_field = "slug"
    lookup_value_regex = SLUG_PATTERN  # what a SlugField holds; anything else is a 404, not a DB error
    filterset_fields = ["slug"]

    def get_queryset(self):
        return Project.objects.filter(policy.projects_q(self.request.user))


class MeView(APIView):
    """Who the caller is: provider admin or not, and their project roles."""

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        memberships = Membership.objects.filter(user=request.user).select_related("project")
        return Response(
            {
                "username": request.user.get_username(),
                "is_provider_admin": policy.is_provider_admin(request.user),
                "memberships": [{"project": m.project.slug, "role": m.role} for m in memberships],
            }
        )
