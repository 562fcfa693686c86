"""Writes to tenancy: projects, memberships, users (idempotent "ensure" functions,
used by ``seed_demo`` and by operators' scripts), and a user's API tokens."""

from __future__ import annotations

import base64
import logging
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.signals import user_logged_in
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from knox.models import AuthToken

from . import crypto, policy, sigv4
from .choices import Role
from .errors import Conflict, InvalidInput, NotFound, Throttled, require
from .models import Ec2Credential, Ec2SignatureSeen, Membership, Project

log = logging.getLogger(__name__)


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
    # A sign-in like the login page's (as knox's own login view says it): the sign-in limits reset
    # this account's failures and remember the address it signed in from (tenancy.signin).
    user_logged_in.send(sender=user.__class__, request=request, user=user)
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


# --- EC2 access keys ----------------------------------------------------------------

# A user holds at most this many live access keys (AWS allows two per IAM user).
EC2_KEYS_PER_USER = 10
# A signed request is accepted this long either side of its timestamp, and only once.
EC2_SIGNATURE_WINDOW = timedelta(minutes=5)
# The longest a query-string ("presigned") signature may live, as AWS's.
EC2_MAX_EXPIRES = 7 * 24 * 3600


def _default_project(user) -> Project | None:
    if policy.is_provider_admin(user):
        return None
    projects = list(policy.roles(user))
    if len(projects) != 1:
        raise InvalidInput(
            "Name the project the access key acts for." if projects else "You are not a member of any project.",
            field="project",
        )
    return Project.objects.get(pk=projects[0])


@transaction.atomic
def ec2_credential_create(*, user, project: Project | None = None) -> tuple[Ec2Credential, str]:
    """A new access key of ``user`` acting for ``project``: (its record, the secret, shown only this once).

    A member's key acts for one of their projects (their only one when ``project`` is omitted);
    a provider admin's key may act for none and name a project per request.
    """
    if project is None:
        project = _default_project(user)
    require(policy.can_hold_ec2_credential(user, project))
    # Lock the user's row so that two parallel requests cannot both take the last free place.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    if ec2_credential_list(user=user).count() >= EC2_KEYS_PER_USER:
        raise Conflict(f"You hold {EC2_KEYS_PER_USER} access keys; revoke one first.")
    access = "AKIA" + base64.b32encode(secrets.token_bytes(10)).decode()  # 20 characters, as AWS's
    secret = secrets.token_urlsafe(30)  # 40 characters
    credential = Ec2Credential.objects.create(
        access=access, user=user, project=project, secret_encrypted=crypto.encrypt(secret)
    )
    return credential, secret


def ec2_credential_list(*, user):
    """The caller's live access keys, newest first (never their secrets)."""
    return Ec2Credential.objects.filter(user=user, revoked_at__isnull=True).select_related("project")


@transaction.atomic
def ec2_credential_revoke(*, user, access: str) -> Ec2Credential:
    """Revoke one of the caller's own keys: its requests are refused from now on."""
    revoked = ec2_credential_list(user=user).filter(access=access).update(revoked_at=timezone.now())
    if not revoked:
        raise NotFound("No such access key.")
    return Ec2Credential.objects.get(access=access)


def ec2_credentials_reencrypt() -> int:
    """Encrypt every stored secret with the first of ``ADMINVMS_EC2_SECRET_KEYS`` (after a key rotation).

    Returns how many were rewritten; a secret no configured key opens is an error, named by its access key.
    """
    rewritten = 0
    for credential in Ec2Credential.objects.only("access", "secret_encrypted").iterator():
        try:
            token = crypto.reencrypt(credential.secret_encrypted)
        except crypto.InvalidToken:
            raise InvalidInput(
                f"No key of ADMINVMS_EC2_SECRET_KEYS opens the secret of access key {credential.access}."
            ) from None
        Ec2Credential.objects.filter(access=credential.access).update(secret_encrypted=token)
        rewritten += 1
    return rewritten


def ec2_authenticate(
    *,
    method: str,
    path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    single_use: bool = True,
    now: datetime | None = None,
) -> Ec2Credential:
    """The access key that signed this request (Signature Version 4), or ``sigv4.SignatureRefused``.

    Refused: no or malformed signature, an unknown or revoked key, a scope for another region,
    a wrong signature, a timestamp outside five minutes of now (or past a query-string
    signature's X-Amz-Expires), and, when ``single_use``, a signature already accepted once
    (a replay). Requests that change nothing are not ``single_use``: botocore signs with a
    timestamp to the second and leaves its invocation id unsigned, so a waiter's two identical
    Describe calls in one second carry the same signature. ``headers`` is keyed by lower-case name.
    """
    now = now or timezone.now()
    query = sigv4.query_pairs(raw_query)
    signed = sigv4.parse(headers=headers, query=query)
    credential = (
        Ec2Credential.objects.select_related("user", "project")
        .filter(access=signed.access_key, revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if credential is None or not policy.can_hold_ec2_credential(credential.user, credential.project):
        # Unknown, revoked, or its user no longer in its project (or no longer a provider admin, for a
        # key without a project): the key gives nothing.
        raise sigv4.auth_failure()
    region = settings.ADMINVMS["EC2_REGION"]
    if signed.region != region:
        raise sigv4.auth_failure(f"The credential is scoped to region '{signed.region}'; this endpoint is '{region}'.")
    try:
        secret = crypto.decrypt(credential.secret_encrypted)
    except crypto.InvalidToken:
        log.error("No key of ADMINVMS_EC2_SECRET_KEYS opens the secret of access key %s.", credential.access)
        raise sigv4.auth_failure() from None
    sigv4.check(signed, secret, method=method, path=path, query=query, headers=headers, body=body)

    if signed.when - now > EC2_SIGNATURE_WINDOW:
        raise sigv4.SignatureRefused("RequestExpired", "The request's timestamp is in the future.", 400)
    valid_until = signed.when + EC2_SIGNATURE_WINDOW
    if signed.in_query:
        if not 1 <= signed.expires <= EC2_MAX_EXPIRES:
            raise sigv4.incomplete(f"X-Amz-Expires must be between 1 and {EC2_MAX_EXPIRES} seconds.")
        valid_until = signed.when + timedelta(seconds=signed.expires)
    if now > valid_until:
        raise sigv4.SignatureRefused("RequestExpired", "The request has expired; sign it again.", 400)

    if single_use:
        _ec2_signature_spend(signed.signature, valid_until, now)
    Ec2Credential.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(minutes=1)), access=credential.access
    ).update(last_used_at=now)
    return credential


def _ec2_signature_spend(signature: str, valid_until: datetime, now: datetime) -> None:
    Ec2SignatureSeen.objects.filter(expires_at__lt=now).delete()
    try:
        with transaction.atomic():
            Ec2SignatureSeen.objects.create(signature=signature, expires_at=valid_until)
    except IntegrityError:
        raise sigv4.auth_failure("This signed request was received before; sign every request anew.") from None
