import uuid

from django.conf import settings
from django.db import models

from .choices import Role


class Project(models.Model):
    """A tenant. Maps to a Keystone project when the backend is OpenStack."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    keystone_id = models.CharField(max_length=64, blank=True, help_text="Keystone project id, if any.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    """A user's role in a project. Provider admins need none: they are ``is_staff``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="membership_unique_user_project")]
        ordering = ["project__slug", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class Ec2Credential(models.Model):
    """An EC2 access key of a user, acting for one project (as Keystone's EC2 credentials do).

    SigV4 needs the secret on the server side, so it is stored encrypted (Fernet, with the
    keys of ``ADMINVMS_EC2_SECRET_KEYS``), never in plain text. A revoked key stays as a row
    with ``revoked_at``, so that its requests are refused and the history remains.
    """

    access = models.CharField(primary_key=True, max_length=32)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ec2_credentials")
    # The project its requests act for; empty for a provider admin's key (which names one per request).
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    secret_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.access} of {self.user}"


class Ec2SignatureSeen(models.Model):
    """A SigV4 signature already accepted: the same signed request again is a replay.

    Kept while its timestamp is inside the accepted window, then swept.
    """

    signature = models.CharField(primary_key=True, max_length=64)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.signature
