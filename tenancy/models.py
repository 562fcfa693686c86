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
