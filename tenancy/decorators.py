"""View decorators that ask the policy module."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from . import policy


def provider_admin_required(view):
    """Anonymous users go to the login page; members get 403 (they know the console exists)."""

    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not policy.is_provider_admin(request.user):
            raise PermissionDenied("The provider console is for provider admins.")
        return view(request, *args, **kwargs)

    return wrapped
