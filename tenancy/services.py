"""Writes to tenancy: projects, memberships, users. Idempotent "ensure" functions,
used by ``seed_demo`` and by operators' scripts."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from .choices import Role
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
