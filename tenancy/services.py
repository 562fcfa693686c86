"""Writes to tenancy: projects, memberships, users (idempotent "ensure" functions,
used by ``seed_demo`` and by operators' scripts), and a user's API tokens."""

from __future__ import annotations

from django.contrib.auth import authenticate, get_user_model
from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from .choices import Role
from .errors import InvalidInput, NotFound, Throttled
from .models import Membership, Project


@transaction.atomic
def project_ensure(*, slug: str, name: str = "", keystone_id: str = "") -> tuple[Project, bool]:
    """The project with ``slug``, created if missing; an existing one is left as it is."""
    return Project.objects.get_or_create(slug=slug, defaults={"name": name or slug, "keystone_id": keystone_id})


@transaction.atomic
def user_ensure(*, username: str, password: str | None, provider_admin: bool = False, reset_password: bool = False):
    """The user, created if missing with ``password`` (None: unusable). Returns (user, created).

    An existing user's password changes only with ``reset_password`` and when it differs.
    """
    User = get_user_model()
    user, created = User.objects.get_or_create(username=username, defaults={"is_staff": provider_admin})
    changed = False
    if created or (reset_password and password and not user.check_password(password)):
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        changed = True
    if user.is_staff != provider_admin:
        user.is_staff = provider_admin
        changed = True
    if changed:
        user.save()
    return user, created


@transaction.atomic
def membership_ensure(*, user, project: Project, role: str = Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.update_or_create(user=user, project=project, defaults={"role": role})
    return membership


# --- API tokens -------------------------------------------------------------------


def token_issue(*, request, username: str, password: str) -> tuple[AuthToken, str]:
    """Check the credentials and issue an API token: (its record, the token, shown only this once).

    Tokens expire (``REST_KNOX["TOKEN_TTL"]``) and only their digest is stored. Failed
    attempts count per user and per address (django-axes); a locked-out caller is refused
    with 429 whether or not the password is right.
    """
    user = authenticate(request=request, username=username, password=password)
    if getattr(request, "axes_locked_out", False):
        raise Throttled("Too many failed sign-ins; try again later.")
    if user is None or not user.is_active:
        raise InvalidInput("Unable to sign in with these credentials.", field="non_field_errors")
    return AuthToken.objects.create(user=user)


def token_list(*, user):
    """The caller's own tokens that have not expired, newest first (never their secrets)."""
    return AuthToken.objects.filter(user=user, expiry__gt=timezone.now()).order_by("-created")


@transaction.atomic
def token_revoke(*, user, token_key: str) -> None:
    """Revoke one of the caller's own tokens, named by its key (the token's first characters)."""
    deleted, _ = AuthToken.objects.filter(user=user, token_key=token_key).delete()
    if not deleted:
        raise NotFound("No such token.")
