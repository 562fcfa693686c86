"""HTML views of tenancy: the portal's "Access keys" page, where a signed-in user manages their EC2
access keys and reads how to reach the EC2-compatible API at ``/ec2/``.

Thin callers of ``tenancy.services``: the services decide who may hold which key; these
views show the services' refusals as form errors and messages.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from . import policy, services
from .errors import DomainError
from .forms import AccessKeyForm
from .models import Project


def _initial_project(request) -> Project | None:
    """The current project of the navbar's switcher (the session's ``project``), else the user's only one."""
    projects = Project.objects.filter(policy.projects_q(request.user))
    slug = request.session.get("project")
    if slug and (project := projects.filter(slug=slug).first()):
        return project
    if not policy.is_provider_admin(request.user) and len(policy.roles(request.user)) == 1:
        return projects.first()
    return None


def _page(request, form: AccessKeyForm, issued=None):
    context = {
        "form": form,
        "keys": services.ec2_credential_list(user=request.user),
        "issued": issued,
        "endpoint": request.build_absolute_uri(reverse("ec2")),
        "region": settings.ADMINVMS["EC2_REGION"],
        "keys_per_user": services.EC2_KEYS_PER_USER,
    }
    return render(request, "portal/access_keys.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def access_keys(request):
    """The user's access keys. A POST creates one: the answer shows its secret, this once and never again
    (nothing of it is kept in the session or in messages, and the answer is not cached)."""
    if request.method == "GET":
        return _page(request, AccessKeyForm(user=request.user, initial={"project": _initial_project(request)}))

    form = AccessKeyForm(request.POST, user=request.user)
    issued = None
    if form.is_valid():
        try:
            credential, secret = services.ec2_credential_create(user=request.user, **form.cleaned_data)
        except DomainError as exc:
            for field, msgs in (exc.errors or {None: [exc.message]}).items():
                form.add_error(field if field in form.fields else None, msgs[0])
        else:
            issued = {"credential": credential, "secret": secret}
            form = AccessKeyForm(user=request.user, initial={"project": credential.project})
    response = _page(request, form, issued)
    add_never_cache_headers(response)  # Cache-Control: …, no-store, …
    return response


@login_required
@require_POST
def access_key_revoke(request, access):
    """Revoke one of the user's own keys; another's, or an unknown one, is "No such access key."."""
    try:
        services.ec2_credential_revoke(user=request.user, access=access)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Access key {access} revoked: requests signed with it are refused from now on.")
    return redirect("portal-keys")
