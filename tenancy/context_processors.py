"""Template context every page needs: the user's projects, the current one, admin or not."""

from django.conf import settings

from . import policy
from .models import Project


def tenancy(request):
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return {}
    projects = list(Project.objects.filter(policy.projects_q(user))) if not policy.is_provider_admin(user) else []
    current = request.session.get("project")
    return {
        "is_provider_admin": policy.is_provider_admin(user),
        "user_projects": projects,
        "current_project": next((p for p in projects if p.slug == current), None),
        "project_roles": policy.roles(user),
        "backends": settings.ADMINVMS["BACKENDS"],
    }
