"""Who may see and do what: the one policy module for every interface.

The services ask these functions before every change, and the REST API and
the web pages ask them for what to show; no interface repeats a rule. ``can(user, operation, instance)``
answers both "may this user" (policy) and "is the instance in a state for it"
(lifecycle, which the instance knows from the operation table through
``instance.lifecycle_allows(operation)``). Verdicts carry the reason and the
kind of refusal, which the services turn into 404, 403 or 409.

This module imports no model of ``categories`` or ``instances``: it reads the
attributes of the objects it is given and builds ``Q`` objects by field name, so
every app can use it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.db.models import Q

from .choices import Role


class Denial(StrEnum):
    NOT_FOUND = "not_found"  # the caller may not even know it exists: answer 404
    FORBIDDEN = "forbidden"  # the caller sees it but may not do this: 403
    CONFLICT = "conflict"  # allowed, but not in this state: 409


@dataclass(frozen=True)
class Verdict:
    """The answer of a ``can_*`` function; truthy when allowed."""

    allowed: bool
    reason: str = ""
    denial: Denial | None = None
    field: str | None = None  # the request field the refusal is about, when there is one

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = Verdict(True)


def _deny(denial: Denial, reason: str, field: str | None = None) -> Verdict:
    return Verdict(False, reason, denial, field)


# --- who is who ---------------------------------------------------------------


def is_provider_admin(user) -> bool:
    """Provider admins operate the cloud (system scope): active staff users."""
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


def roles(user) -> dict[Any, str]:
    """``{project_id: role}`` for the user, read once per user object."""
    if not (user and user.is_authenticated):
        return {}
    cached = getattr(user, "_adminvms_roles", None)
    if cached is None:
        from .models import Membership

        cached = dict(Membership.objects.filter(user=user).values_list("project_id", "role"))
        user._adminvms_roles = cached
    return cached


def role_in(user, project) -> str | None:
    project_id = getattr(project, "pk", project)
    return roles(user).get(project_id)


def projects_q(user, field: str = "pk") -> Q:
    """The projects (or rows owned by projects) a user may see."""
    if is_provider_admin(user):
        return Q()
    return Q(**{f"{field}__in": list(roles(user))})


def member_project_ids(user) -> list:
    return [pid for pid, role in roles(user).items() if role == Role.MEMBER]


# --- visibility -----------------------------------------------------------------


def category_visibility_q(user, prefix: str = "") -> Q:
    """Categories a user may see: all for provider admins; the built-in ``standard``
    and user-visible ones for anybody with a project role."""
    if is_provider_admin(user):
        return Q()
    if not roles(user):
        return Q(pk__in=[])
    return Q(**{f"{prefix}is_builtin": True}) | Q(**{f"{prefix}user_visible": True})


def category_visible(user, category) -> bool:
    return is_provider_admin(user) or (bool(roles(user)) and (category.is_builtin or category.user_visible))


def instance_visibility_q(user) -> Q:
    """Instances a user may see (rule 2): never another project's."""
    if is_provider_admin(user):
        return Q()
    return projects_q(user, "project_id") & category_visibility_q(user, "category__")


def owned_visibility_q(user) -> Q:
    """Images and volumes: the provider's (no project) for everybody, a project's own to that project alone."""
    if is_provider_admin(user):
        return Q()
    return Q(project__isnull=True) | projects_q(user, "project_id")


def can_view(user, instance) -> Verdict:
    if is_provider_admin(user):
        return ALLOW
    if role_in(user, instance.project_id) is None or not category_visible(user, instance.category):
        return _deny(Denial.NOT_FOUND, "No such instance.")
    return ALLOW


def sees_backend_errors(user) -> bool:
    """Backend errors (driver texts with ids, hosts and URLs) stay with provider admins (rule 9)."""
    return is_provider_admin(user)


def sees_restricted_view(user, instance_or_category) -> bool:
    """Members see appliance and provider instances without backend ids, hosts,
    management addresses or raw metadata."""
    category = getattr(instance_or_category, "category", instance_or_category)
    return not is_provider_admin(user) and category.is_managed


# --- operations -----------------------------------------------------------------


def can(user, operation: str, instance) -> Verdict:
    """May ``user`` run ``operation`` (a row of the operation table) on ``instance`` now?

    Members may run what the category grants them (``member_operations``), readers
    nothing, provider admins everything; and the instance must be in a state the
    operation starts from, with no other action in progress.
    """
    if not (verdict := can_view(user, instance)):
        return verdict
    if not is_provider_admin(user):
        if role_in(user, instance.project_id) != Role.MEMBER:
            return _deny(Denial.FORBIDDEN, "Readers may only look, not act.")
        if operation not in instance.category.member_operations:
            return _deny(
                Denial.FORBIDDEN,
                f"Category '{instance.category.slug}' does not allow project members to {operation}.",
            )
    if not instance.lifecycle_allows(operation):
        return _deny(Denial.CONFLICT, instance.lifecycle_refusal(operation))
    return ALLOW


def can_key(user, instance) -> tuple:
    """What ``can(user, operation, instance)`` depends on besides the operation: instances with the same
    key get the same verdicts, so a list asks once per key and not for every operation of every row."""
    who = None if is_provider_admin(user) else (role_in(user, instance.project_id), instance.category_id)
    return who, instance.lifecycle_key


_READERS_DO_NOT_LAUNCH = "Readers may only look, not launch."


def can_launch(user, *, category, project) -> Verdict:
    """May ``user`` launch an instance of ``category`` in ``project``?"""
    if is_provider_admin(user):
        return ALLOW
    role = role_in(user, project)
    if role is None:
        return _deny(Denial.NOT_FOUND, "No such project.", field="project")
    if not category_visible(user, category):
        return _deny(Denial.NOT_FOUND, "No such category.", field="category")
    if role != Role.MEMBER:
        return _deny(Denial.FORBIDDEN, _READERS_DO_NOT_LAUNCH, field="project")
    if "launch" not in category.member_operations:
        return _deny(
            Denial.FORBIDDEN, f"Category '{category.slug}' does not allow project members to launch.", field="category"
        )
    return ALLOW


def can_launch_somewhere(user, category=None) -> Verdict:
    """May ``user`` launch at all (of ``category``, when given), in some project? For buttons, forms and a
    launch that names no project; ``can_launch`` decides the actual request."""
    if is_provider_admin(user):
        return ALLOW
    if not roles(user):
        return _deny(Denial.FORBIDDEN, "You are not a member of any project.", field="project")
    if not member_project_ids(user):
        return _deny(Denial.FORBIDDEN, _READERS_DO_NOT_LAUNCH, field="project")
    if category is not None and not (category_visible(user, category) and "launch" in category.member_operations):
        return _deny(
            Denial.FORBIDDEN, f"Category '{category.slug}' does not allow project members to launch.", field="category"
        )
    return ALLOW


# --- access keys -------------------------------------------------------------------


def can_hold_ec2_credential(user, project) -> Verdict:
    """May ``user`` hold an EC2 access key acting for ``project`` (``None``: no project)?

    Anybody with a role in the project (readers too: their key only describes); provider
    admins with or without one (a key without a project names one per request).
    """
    if is_provider_admin(user):
        return ALLOW
    if project is None:
        return _deny(Denial.FORBIDDEN, "An access key acts for one of your projects; name it.", field="project")
    if role_in(user, project) is None:
        return _deny(Denial.NOT_FOUND, "No such project.", field="project")
    return ALLOW


# --- the catalog -------------------------------------------------------------------


def can_manage_catalog(user) -> Verdict:
    """Categories, flavors, images, volumes: provider admins only."""
    if is_provider_admin(user):
        return ALLOW
    return _deny(Denial.FORBIDDEN, "Only provider admins may change the catalog.")


def can_operate_fleet(user) -> Verdict:
    """Rollouts, heals by hand and the auto-heal circuit breakers are the provider's."""
    if is_provider_admin(user):
        return ALLOW
    return _deny(Denial.FORBIDDEN, "Only provider admins operate the fleet.")


def can_adopt(user) -> Verdict:
    """Taking existing servers under categories (adoption): provider admins only."""
    if is_provider_admin(user):
        return ALLOW
    return _deny(Denial.FORBIDDEN, "Only provider admins may adopt servers.")


def can_deactivate_category(user, category) -> Verdict:
    """An active category other than the built-in one may be deactivated."""
    if not (verdict := can_manage_catalog(user)):
        return verdict
    if category.is_builtin:
        return _deny(Denial.CONFLICT, "The built-in category cannot be deactivated.", field="is_active")
    if not category.is_active:
        return _deny(Denial.CONFLICT, f"Category '{category.slug}' is already inactive.", field="is_active")
    return ALLOW


def can_delete_category(user, category) -> Verdict:
    """Any category but the built-in one, as far as the policy goes; the service also
    refuses one that holds (or held) instances."""
    if not (verdict := can_manage_catalog(user)):
        return verdict
    if category.is_builtin:
        return _deny(Denial.CONFLICT, "The built-in category cannot be deleted.", field="slug")
    return ALLOW
