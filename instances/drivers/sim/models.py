import uuid

from django.db import models


class SimServer(models.Model):
    """A server of the simulated cloud (the ``sim`` driver's own state, not ours).

    It lives in the database so that the web process and every worker see the
    same cloud. Transitions complete lazily: a row holds its ``pending`` target
    state and when it is reached (``ready_at``).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Empty for a server adminvms did not make (one to adopt), until adoption stamps it.
    instance_uuid = models.UUIDField(null=True, blank=True, db_index=True)
    # The instance's server number (a replacement is one more).
    generation = models.PositiveIntegerField(default=0)
    # The cloud's running number of servers made: a new server's addresses and host come from it,
    # read as the highest in the index (counting the servers would read them all).
    seq = models.PositiveBigIntegerField(default=0, db_index=True)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16)
    project_ref = models.CharField(max_length=64)
    category_ref = models.CharField(max_length=64)
    image_ref = models.CharField(max_length=255, blank=True)
    flavor = models.JSONField(default=dict, blank=True)
    host = models.CharField(max_length=64, blank=True)
    # Indexed: anti-affinity reads the group's servers, never the whole cloud's.
    server_group = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=16, default="BUILD")
    pending = models.CharField(max_length=16, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    fault = models.TextField(blank=True)
    addresses = models.JSONField(default=dict, blank=True)
    management_endpoint = models.CharField(max_length=255, blank=True)
    locked = models.BooleanField(default=False)
    lock_reason = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Whether the appliance's process answers health probes: an image named ``fail-health`` never
    # does, and a test (or an operator's demo) kills the process by clearing it.
    answers_probes = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The table it had when it lived in the instances app: moving the model moved no data.
        db_table = "instances_simserver"
        # Deliberately no unique constraint on instance_uuid: a real cloud would
        # accept a second create too, and the driver must not make one.
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"sim server {self.pk} ({self.status})"


class SimVolume(models.Model):
    """A volume of the simulated cloud, attached to sim servers by their ids."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    size_gb = models.PositiveIntegerField(default=1)
    project_ref = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    attached_to = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"sim volume {self.name}"
