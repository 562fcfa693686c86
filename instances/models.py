import uuid

from django.conf import settings
from django.db import models

from categories.choices import Management
from tenancy import policy

from . import operations
from .choices import ActionStatus, BreakerScope, Health, RolloutStatus, Status, TaskState
from .operations import ActionType

# Backends derive names from an instance's name: Neutron's port "adminvms-<name>-management"
# must stay within 255 characters, with room for the "-<n>" of a launch of several.
NAME_MAX_LENGTH = 200


class InstanceQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Every list and detail of every interface starts here (rule 2)."""
        return self.filter(policy.instance_visibility_q(user))

    def live(self):
        return self.exclude(status=Status.DELETED)

    def with_related(self):
        return self.select_related("category", "project", "flavor", "image")

    def for_list(self):
        """``with_related`` for pages of many rows: the related rows are read once each (a query per
        relation for the whole page), not joined to, and built again for, every row."""
        return self.prefetch_related("category", "project", "flavor", "image")

    def user_managed(self):
        """Regular instances (``standard`` and other ``user`` categories), as opposed to managed ones."""
        return self.filter(category__management=Management.USER)


class LaunchRequest(models.Model):
    """One accepted launch: the instances it made share it (EC2 calls it a reservation).

    A client token makes a launch idempotent: the same user with the same token and the same
    request gets the same instances back, never a second set.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    project = models.ForeignKey("tenancy.Project", on_delete=models.PROTECT, related_name="+")
    client_token = models.CharField(max_length=64, blank=True)
    # A digest of what was asked, to tell a retry from a different request with the same token.
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "client_token"],
                condition=~models.Q(client_token=""),
                name="launchrequest_unique_user_client_token",
            )
        ]

    def __str__(self) -> str:
        return f"launch {self.id}"


class Instance(models.Model):
    """One VM or container, always in exactly one category, owned by one project."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    category = models.ForeignKey("categories.InstanceCategory", on_delete=models.PROTECT, related_name="instances")
    project = models.ForeignKey("tenancy.Project", on_delete=models.PROTECT, related_name="instances")
    flavor = models.ForeignKey("categories.Flavor", null=True, blank=True, on_delete=models.PROTECT)
    image = models.ForeignKey("categories.Image", null=True, blank=True, on_delete=models.PROTECT)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING, db_index=True)
    task_state = models.CharField(max_length=16, choices=TaskState.choices, blank=True, default="")
    backend = models.CharField(max_length=32)
    backend_id = models.CharField(max_length=255, blank=True, db_index=True)
    host = models.CharField(max_length=255, blank=True)
    availability_zone = models.CharField(max_length=255, blank=True)
    # {"project": ["10.0.0.5"], "management": ["172.31.0.9"]}
    addresses = models.JSONField(default=dict, blank=True)
    management_endpoint = models.CharField(max_length=255, blank=True, help_text="host:port of the appliance GUI.")
    metadata = models.JSONField(default=dict, blank=True)
    # The user's own labels (key → value): shown and filtered on, never handed to the backend.
    tags = models.JSONField(default=dict, blank=True)
    launch_request = models.ForeignKey(
        LaunchRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="instances"
    )
    fault = models.TextField(blank=True)
    # Which server of the instance this is: a heal or a rollout replaces the server and counts one up,
    # so that the replacement's create (stamped with it) is idempotent apart from the old server's.
    generation = models.PositiveIntegerField(default=0)
    # A ready server of the category's spare pool (in the pool's project), until a launch takes it.
    is_spare = models.BooleanField(default=False, db_index=True)
    # The category's health check: the verdict, consecutive failed probes, since when the verdict
    # holds, the last probe and its error.
    health = models.CharField(max_length=16, choices=Health.choices, blank=True, default="")
    health_failures = models.PositiveIntegerField(default=0)
    health_since = models.DateTimeField(null=True, blank=True)
    health_checked_at = models.DateTimeField(null=True, blank=True)
    health_error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = InstanceQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "category", "status"]),
            # Lists, newest first, of one category or of all: a page of ids and the count read these
            # alone (index-only scans), never the table's rows before the page.
            models.Index(
                fields=["category", "-created_at", "id"], include=["status", "project"], name="instance_category_recent"
            ),
            models.Index(
                fields=["-created_at", "id"], include=["status", "category", "project"], name="instance_recent"
            ),
            # The fleet pass's heal candidates: few rows, found without reading the fleet.
            models.Index(fields=["health"], condition=models.Q(health="unhealthy"), name="instance_unhealthy"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @property
    def is_transitional(self) -> bool:
        return bool(self.task_state) or self.status in {Status.BUILDING, Status.REBOOTING, Status.DELETING}

    def lifecycle_allows(self, operation: str) -> bool:
        """Whether ``operation`` may start now: no action in progress and a status it starts from."""
        row = operations.get(operation)
        if self.task_state or self.status not in row.start_from:
            return False
        return not (row.needs_endpoint and not self.management_endpoint)

    @property
    def lifecycle_key(self) -> tuple:
        """What ``lifecycle_allows`` reads, whatever the operation (``policy.can_key`` builds on it)."""
        return bool(self.task_state), self.status, bool(self.management_endpoint)

    def lifecycle_refusal(self, operation: str) -> str:
        row = operations.get(operation)
        if self.task_state:
            return f"Instance '{self.name}' is busy ({self.task_state}); try again when it settles."
        if row.needs_endpoint and self.status in row.start_from:
            return f"Instance '{self.name}' has no appliance GUI endpoint."
        ready = " or ".join(sorted(row.start_from)) or "a new instance"
        return f"{row.label} is not possible while instance '{self.name}' is {self.status} (needs {ready})."


class Rollout(models.Model):
    """The replacement of a category's instances with a new image, one batch at a time."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    category = models.ForeignKey("categories.InstanceCategory", on_delete=models.PROTECT, related_name="rollouts")
    image = models.ForeignKey("categories.Image", on_delete=models.PROTECT, related_name="+")
    batch_size = models.PositiveIntegerField(default=1)
    # Seconds to wait after a batch succeeded before the next one starts.
    pause_seconds = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=RolloutStatus.choices, default=RolloutStatus.RUNNING)
    message = models.TextField(blank=True)
    # How many instances it had to replace when it started.
    total = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # When the last batch ended: the next one starts ``pause_seconds`` later.
    batch_finished_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["category"],
                condition=models.Q(status__in=["running", "paused"]),
                name="rollout_one_open_per_category",
            )
        ]

    def __str__(self) -> str:
        return f"rollout of {self.category_id} to {self.image_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED)


class HealBreaker(models.Model):
    """An open circuit breaker: auto-heal paused for a category or a backend until an admin resumes it."""

    scope = models.CharField(max_length=16, choices=BreakerScope.choices)
    # The category's slug or the backend's name.
    key = models.CharField(max_length=64)
    unhealthy = models.PositiveIntegerField()
    total = models.PositiveIntegerField()
    reason = models.TextField()
    opened_at = models.DateTimeField(auto_now_add=True)
    resumed_at = models.DateTimeField(null=True, blank=True)
    resumed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "key"], condition=models.Q(resumed_at__isnull=True), name="healbreaker_one_open"
            )
        ]

    def __str__(self) -> str:
        return f"breaker {self.scope} {self.key}"

    @property
    def is_open(self) -> bool:
        return self.resumed_at is None


class InstanceAction(models.Model):
    """A request to act on an instance; its id is the Celery task id."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    instance = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="actions")
    action = models.CharField(max_length=16, choices=ActionType.choices)
    status = models.CharField(max_length=16, choices=ActionStatus.choices, default=ActionStatus.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    params = models.JSONField(default=dict, blank=True)
    # Set once the backend call was made, so a redelivered task polls instead of calling again.
    backend_called = models.BooleanField(default=False)
    # The rollout that asked for it (a ``replace``), if any.
    rollout = models.ForeignKey(Rollout, null=True, blank=True, on_delete=models.PROTECT, related_name="actions")
    attempts = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        # Expiry, and the fleet pass's recent builds (the build budget, recent heals).
        indexes = [models.Index(fields=["status", "deadline"]), models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.instance_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in (ActionStatus.PENDING, ActionStatus.RUNNING)


class InstanceEvent(models.Model):
    """One step of an action: the audit trail. Never deleted."""

    class Result(models.TextChoices):
        INFO = "info"
        SUCCESS = "success"
        ERROR = "error"

    instance = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="events")
    # Empty for what reconcile found on its own.
    action = models.ForeignKey(InstanceAction, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    event = models.CharField(max_length=64)
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.INFO)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        # The overview's recent events and the breaker's window read events by time.
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.event}: {self.result}"


class FleetCounts(models.Model):
    """The console overview's counts of live instances (per category, status, backend and health
    verdict) as the worker last took them: the overview of a large fleet reads this one row instead of
    counting every instance on each visit (``selectors.overview``)."""

    taken_at = models.DateTimeField()
    counts = models.JSONField()

    def __str__(self) -> str:
        return f"fleet counts at {self.taken_at:%Y-%m-%d %H:%M:%S}"


class ReconcileRun(models.Model):
    """What one reconcile pass found: the drift report."""

    backend = models.CharField(max_length=32)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    checked = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    vanished = models.JSONField(default=list, blank=True)
    orphans = models.JSONField(default=list, blank=True)
    expired_actions = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"reconcile {self.backend} at {self.started_at:%Y-%m-%d %H:%M:%S}"


class GuiTicket(models.Model):
    """The handover of a signed-in dashboard user to one appliance's GUI origin.

    Issued on the dashboard (the user and instance checked by policy), redeemed once on
    the GUI host within seconds; then the GUI host's own cookie names it, so that
    every proxied request can check that the dashboard session it came from is still
    signed in. The nonce travels signed; the row makes it single use.
    """

    nonce = models.CharField(primary_key=True, max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="+")
    # The dashboard session that asked for it: signing out there ends the GUI session too.
    session_key = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField()
    redeemed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"GUI ticket of {self.user_id} for {self.instance_id}"


class GuiRequestSlot(models.Model):
    """One proxied GUI request in flight: the per-user cap counts these, in every web process.

    A slot outlives a crashed process only until ``expires_at`` (the request's deadline
    and a margin); the cap counts unexpired slots.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"])]

    def __str__(self) -> str:
        return f"GUI request of {self.user_id} until {self.expires_at:%H:%M:%S}"
