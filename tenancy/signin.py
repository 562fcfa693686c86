"""Sign-in limits: django-axes counts the failures, these rules decide who is refused.

- **Per address, and per user name from that address** (axes' own lockout parameters): past
  ``AXES_FAILURE_LIMIT`` failures within the cool-off the caller is refused (429).
- **A success resets only the account that succeeded.** Axes' own reset deletes every record that
  matches the request's lockout parameters, the address's included: one user's success from an
  address wiped the failures of every other user name tried from it, so an attacker alternated a
  guess at ``admin`` with her own correct sign-in and was never refused.
- **Per user name from every address**: past ``LOGIN_USER_FAILURE_LIMIT`` failures for one user name
  within the cool-off, from however many addresses, that user name is refused from every address
  where it has not signed in successfully within ``LOGIN_KNOWN_ADDRESS_DAYS``. A password guessed
  from a botnet is limited; whoever fails for the provider's admin from elsewhere locks the admin
  out of nowhere the admin signs in from.
"""

from __future__ import annotations

from datetime import timedelta

from axes.attempts import get_cool_off_threshold
from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db.models import Sum
from django.dispatch import receiver
from django.utils import timezone

from adminvms_dashboard.client import client_address


def user_name_locked(request, username: str) -> bool:
    """Whether ``username`` is refused from this request's address: too many failures for it from
    every address within the cool-off, and no successful sign-in of it from here lately."""
    failures = (
        AccessAttempt.objects.filter(username=username, attempt_time__gte=get_cool_off_threshold(request)).aggregate(
            n=Sum("failures_since_start")
        )["n"]
        or 0
    )
    if failures < settings.ADMINVMS["LOGIN_USER_FAILURE_LIMIT"]:
        return False
    since = timezone.now() - timedelta(days=settings.ADMINVMS["LOGIN_KNOWN_ADDRESS_DAYS"])
    known = AccessLog.objects.filter(username=username, ip_address=client_address(request), attempt_time__gte=since)
    return not known.exists()


class SignInLimitBackend(AxesStandaloneBackend):
    """Axes' check (per address, per user name from the address), then the user name's across addresses.

    First in ``AUTHENTICATION_BACKENDS``: a refused attempt never reaches the password check, and
    counts as one more failure."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        super().authenticate(request, username=username, password=password, **kwargs)
        if username and user_name_locked(request, username):
            request.axes_locked_out = True
            raise AxesBackendPermissionDenied("Too many failed sign-ins for this user name.")


@receiver(user_logged_in, dispatch_uid="adminvms-sign-in-reset")
def reset_the_account_that_succeeded(sender, request, user, **kwargs):
    """A success clears that account's failures, and nobody else's (``AXES_RESET_ON_SUCCESS`` is off)."""
    AccessAttempt.objects.filter(username=user.get_username()).delete()
