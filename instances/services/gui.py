"""Opening an appliance's GUI on its own origin: the ticket, the GUI host's cookie, the per-user cap.

The flow (as Nova's and Proxmox's consoles hand a session to a console host):

1. on the dashboard, ``gui_ticket_issue`` checks the policy and returns a signed
   ticket (``django.core.signing``, its own salt) naming the user, the instance and
   a random nonce, valid ``GUI_TICKET_SECONDS``; the nonce's row makes it single use;
2. on the GUI host, ``gui_ticket_redeem`` marks the row used (one conditional
   UPDATE: a replay, even a concurrent one, finds it used) and returns the signed
   value of the GUI host's own cookie, valid ``GUI_SESSION_SECONDS``;
3. every proxied request calls ``gui_access``: the cookie's signature and age, the
   ticket it names, the dashboard session that asked for it (still signed in as the
   same user) and the policy again, since rights and states change.

``gui_slot_acquire``/``gui_slot_release`` cap the proxied requests one user has in
flight, counted in the database so that the cap holds across web processes and hosts.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.core import signing
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from tenancy import policy
from tenancy.errors import Forbidden, NotFound, require

from ..models import GuiRequestSlot, GuiTicket, Instance

TICKET_SALT = "adminvms.gui.ticket"
COOKIE_SALT = "adminvms.gui.session"
# A crashed process's slot stops counting this long after its request's deadline.
SLOT_MARGIN = 5.0


class GuiSessionMissing(Forbidden):
    """No valid GUI session for this host: the way in is "Open appliance GUI" on the dashboard."""

    code = "gui_session"


def _conf(name: str):
    return settings.ADMINVMS[name]


def gui_ticket_issue(*, user, instance: Instance, session_key: str | None) -> str:
    """A signed, single-use ticket that opens ``instance``'s GUI for ``user`` on its GUI host.

    ``session_key`` is the dashboard session asking: the GUI session ends with it.
    """
    require(policy.can(user, "appliance_gui", instance))
    now = timezone.now()
    nonce = secrets.token_urlsafe(24)
    with transaction.atomic():
        # Tickets whose GUI session has ended too are of no use to anybody.
        stale = now - timedelta(seconds=_conf("GUI_TICKET_SECONDS") + _conf("GUI_SESSION_SECONDS"))
        GuiTicket.objects.filter(created_at__lt=stale).delete()
        GuiTicket.objects.create(
            nonce=nonce,
            user=user,
            instance=instance,
            session_key=session_key or "",
            expires_at=now + timedelta(seconds=_conf("GUI_TICKET_SECONDS")),
        )
    return signing.dumps({"n": nonce, "u": user.pk, "i": str(instance.pk)}, salt=TICKET_SALT)


def gui_ticket_redeem(*, token: str, instance_id) -> tuple[GuiTicket, str]:
    """Use a ticket on the GUI host of ``instance_id``; return it and the GUI host cookie's value.

    Expired, forged, replayed, for another instance, or for a user who lost the
    right since: all refused with the same message, nothing learnt from which.
    """
    refused = GuiSessionMissing("This link to the appliance GUI is not valid; open the GUI again from the dashboard.")
    try:
        payload = signing.loads(token, salt=TICKET_SALT, max_age=_conf("GUI_TICKET_SECONDS"))
        nonce, user_id, ticket_instance = payload["n"], payload["u"], payload["i"]
    except (signing.BadSignature, KeyError, TypeError) as exc:
        raise refused from exc
    if str(instance_id) != ticket_instance:
        raise refused
    now = timezone.now()
    used = GuiTicket.objects.filter(
        nonce=nonce, user_id=user_id, instance_id=instance_id, redeemed_at__isnull=True, expires_at__gt=now
    ).update(redeemed_at=now)
    if used != 1:
        raise refused
    ticket = GuiTicket.objects.select_related("user", "instance").get(pk=nonce)
    _check(ticket)
    cookie = signing.dumps(
        {"n": nonce, "u": user_id, "i": ticket_instance, "h": ticket.user.get_session_auth_hash()}, salt=COOKIE_SALT
    )
    return ticket, cookie


def gui_access(*, cookie: str | None, instance_id) -> GuiTicket:
    """The ticket behind a GUI host's cookie, if its user may still use this instance's GUI now.

    Raises ``GuiSessionMissing`` without a valid session, or the policy's refusal
    (404, 403, 409) when the user lost the right or the instance its state.
    """
    missing = GuiSessionMissing("Open the appliance GUI from the dashboard to sign in here.")
    if not cookie:
        raise missing
    try:
        payload = signing.loads(cookie, salt=COOKIE_SALT, max_age=_conf("GUI_SESSION_SECONDS"))
        nonce, user_id, cookie_instance, auth_hash = payload["n"], payload["u"], payload["i"], payload["h"]
    except (signing.BadSignature, KeyError, TypeError) as exc:
        raise missing from exc
    if str(instance_id) != cookie_instance:
        raise missing
    ticket = (
        GuiTicket.objects.select_related("user", "instance__category", "instance__project")
        .filter(nonce=nonce, user_id=user_id, instance_id=instance_id, redeemed_at__isnull=False)
        .first()
    )
    # A changed password ends every session, this one too (as Django's own sessions do).
    if ticket is None or not constant_time_compare(auth_hash, ticket.user.get_session_auth_hash()):
        raise missing
    _check(ticket)
    return ticket


def _dashboard_session_alive(ticket: GuiTicket) -> bool:
    """The dashboard session that asked for the ticket is still signed in as its user."""
    if not ticket.session_key:
        return False
    data = import_module(settings.SESSION_ENGINE).SessionStore(ticket.session_key).load()
    return data.get(SESSION_KEY) == str(ticket.user_id) and constant_time_compare(
        data.get(HASH_SESSION_KEY, ""), ticket.user.get_session_auth_hash()
    )


def _check(ticket: GuiTicket) -> None:
    """Still signed in on the dashboard, and still allowed: asked again on every request."""
    if not _dashboard_session_alive(ticket):
        raise GuiSessionMissing("You signed out of the dashboard; sign in and open the appliance GUI again.")
    if not ticket.user.is_active:
        raise NotFound("No such instance.")
    require(policy.can(ticket.user, "appliance_gui", ticket.instance))


def gui_slot_acquire(*, user) -> int | None:
    """Take one of ``user``'s ``GUI_MAX_CONCURRENT`` request slots; ``None`` when all are taken.

    Insert first, then count: two racing requests may both see the other and both be
    refused, but never both admitted beyond the cap.
    """
    now = timezone.now()
    GuiRequestSlot.objects.filter(user=user, expires_at__lte=now).delete()
    slot = GuiRequestSlot.objects.create(
        user=user, expires_at=now + timedelta(seconds=_conf("GUI_DEADLINE") + SLOT_MARGIN)
    )
    if GuiRequestSlot.objects.filter(user=user, expires_at__gt=now).count() > _conf("GUI_MAX_CONCURRENT"):
        slot.delete()
        return None
    return slot.pk


def gui_slot_release(*, slot_id: int) -> None:
    GuiRequestSlot.objects.filter(pk=slot_id).delete()
