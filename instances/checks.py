"""System checks of the backends' configuration, where a default is not safe for production."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from .drivers.registry import enabled_backends

LOCK_SCOPE = (
    "The openstack backend locks managed servers from the service project (ADMINVMS_OS_LOCK_CLOUD is unset), "
    "so members of that project can lift the locks."
)
LOCK_SCOPE_HINT = (
    "Set ADMINVMS_OS_LOCK_CLOUD to a cloud of the same account with the admin role in a project other than the "
    "service project (README: Production): Nova records locks made from the service project as the owner's."
)


def _lock_scope(level: type[checks.CheckMessage], check_id: str) -> list[checks.CheckMessage]:
    if "openstack" not in enabled_backends() or settings.ADMINVMS["OPENSTACK"]["LOCK_CLOUD"]:
        return []
    return [level(LOCK_SCOPE, hint=LOCK_SCOPE_HINT, id=check_id)]


@checks.register(checks.Tags.security, deploy=True)
def check_lock_scope_deploy(app_configs=None, **kwargs):
    """``check --deploy`` fails while the openstack backend locks from the service project."""
    return _lock_scope(checks.Error, "adminvms.E010")


@checks.register(checks.Tags.security)
def check_lock_scope(app_configs=None, **kwargs):
    """Every other command (``migrate`` in ``make run``, ``runserver``) warns of the same."""
    return _lock_scope(checks.Warning, "adminvms.W010")
