import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from tenancy import policy

from .choices import STANDARD_SLUG, AntiAffinity, Kind, Management, NetworkPlacement, Operation


class Flavor(models.Model):
    """A hardware size, mirrored from the backend or created here."""

    name = models.CharField(max_length=255, unique=True)
    vcpus = models.PositiveIntegerField()
    ram_mb = models.PositiveIntegerField()
    disk_gb = models.PositiveIntegerField()
    backend_id = models.CharField(max_length=255, blank=True, help_text="The flavor's id at the backend.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["vcpus", "ram_mb", "name"]

    def __str__(self) -> str:
        return self.name


class CategoryQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(policy.category_visibility_q(user))

    def managed(self):
        """Provider-managed and appliance categories (their instances are locked and shown restricted)."""
        return self.exclude(management=Management.USER)


class InstanceCategory(models.Model):
    """A named class of instances with defaults, requirements and rules, handled like a flavor."""

    # Each field's label and help are the words a person reads, in the console's form and in the API's
    # schema alike (the serializer takes them from here).
    slug = models.SlugField(max_length=64, unique=True, help_text="The category's name in URLs and in the API.")
    name = models.CharField(max_length=255, help_text="What people read.")
    description = models.TextField(blank=True)
    is_active = models.BooleanField(
        "Active", default=True, help_text="An inactive category launches nothing; its instances keep running."
    )
    is_builtin = models.BooleanField("Built-in", default=False, editable=False)
    kind = models.CharField(
        max_length=16, choices=Kind.choices, default=Kind.VM, help_text="Virtual machines or containers."
    )
    management = models.CharField(
        max_length=16, choices=Management.choices, default=Management.USER,
        help_text="Who runs the instances: the provider, the provider for the members (appliance), or the members.",
    )  # fmt: skip
    user_visible = models.BooleanField(
        "Visible to members", default=True, help_text="Whether project members see these instances at all."
    )
    user_operations = models.JSONField(
        "Member operations", default=list, blank=True,
        help_text="What project members may do with these instances (none for a provider-managed category).",
    )  # fmt: skip
    network_placement = models.CharField(
        max_length=16, choices=NetworkPlacement.choices, default=NetworkPlacement.PROJECT,
        help_text="Which networks the instances join: the project's, the provider's management network, or both "
        "(user categories: the project's only).",
    )  # fmt: skip
    # Hardware
    default_flavor = models.ForeignKey(
        Flavor, null=True, blank=True, on_delete=models.SET_NULL, related_name="default_for",
        help_text="The flavor of a launch that names none.",
    )  # fmt: skip
    allowed_flavors = models.ManyToManyField(
        Flavor, blank=True, related_name="categories", help_text="The flavors a launch may name; none: any."
    )
    min_vcpus = models.PositiveIntegerField(
        "Minimum vCPUs", default=0, help_text="Every launch's flavor has at least these."
    )
    min_ram_mb = models.PositiveIntegerField(
        "Minimum RAM (MB)", default=0, help_text="Every launch's flavor has at least this much memory."
    )
    min_disk_gb = models.PositiveIntegerField(
        "Minimum disk (GB)", default=0, help_text="Every launch's flavor has at least this much disk."
    )
    # Image: a fixed default, or the newest image tagged with image_tag.
    default_image = models.ForeignKey(
        "categories.Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="default_for",
        help_text="The image of a launch that names none; empty: the newest image offered for the category.",
    )  # fmt: skip
    image_tag = models.CharField(
        max_length=64, blank=True, help_text="Images carrying this tag are offered for the category."
    )
    # Placement
    backend = models.CharField(
        max_length=32, blank=True, help_text="Where the instances run; empty: the default backend."
    )
    availability_zone = models.CharField(max_length=255, blank=True, help_text="Empty: the backend's default.")
    anti_affinity = models.CharField(
        "Anti-affinity", max_length=32, choices=AntiAffinity.choices, default="", blank=True,
        help_text="One server group per project: its instances land on different hosts.",
    )  # fmt: skip
    # Appliance GUI
    gui_port = models.PositiveIntegerField(
        "GUI port", null=True, blank=True, help_text="The appliance's own web GUI on its management address."
    )
    gui_path = models.CharField("GUI path", max_length=255, default="/", blank=True, help_text="Where the GUI opens.")
    # Quota, pool and health
    max_instances = models.PositiveIntegerField(
        "Instances per project", null=True, blank=True, help_text="Per project; empty: no limit."
    )
    spare_pool_size = models.PositiveIntegerField(
        "Spare pool size", default=0, help_text="Ready servers kept for fast launches; 0: none."
    )
    health_check_port = models.PositiveIntegerField(
        "Health-check port", null=True, blank=True, help_text="Probed over HTTP on the management address; empty: none."
    )
    health_check_path = models.CharField("Health-check path", max_length=255, blank=True)
    health_check_threshold = models.PositiveIntegerField(
        "Health-check threshold", default=3, help_text="Consecutive failed probes after which an instance is unhealthy."
    )
    health_check_grace = models.PositiveIntegerField(
        "Health-check grace (s)", default=60,
        help_text="Seconds after a server boots before a failed probe counts (the appliance starts).",
    )  # fmt: skip
    auto_heal = models.BooleanField("Auto-heal", default=False, help_text="Replace an unhealthy instance on its own.")
    extra_metadata = models.JSONField(
        default=dict, blank=True, help_text='Stamped on every instance, e.g. {"service": "storage"}.'
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CategoryQuerySet.as_manager()

    class Meta:
        ordering = ["-is_builtin", "slug"]
        verbose_name_plural = "instance categories"

    def __str__(self) -> str:
        return self.slug

    @property
    def is_managed(self) -> bool:
        """Provider-managed or appliance: locked at the backend, restricted view for members."""
        return self.management != Management.USER

    def clean(self) -> None:
        errors: dict[str, str] = {}
        allowed = set(Operation.values)
        if not isinstance(self.user_operations, list) or not all(isinstance(op, str) for op in self.user_operations):
            errors["user_operations"] = "Must be a list of operation names."
        elif unknown := sorted(set(self.user_operations) - allowed):
            errors["user_operations"] = (
                f"Unknown operation(s): {', '.join(unknown)}; choose from {', '.join(Operation.values)}."
            )
        if not isinstance(self.extra_metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.extra_metadata.items()
        ):
            errors["extra_metadata"] = "Must be an object whose keys and values are strings."
        if self.management == Management.PROVIDER and self.user_operations:
            errors["user_operations"] = "A provider-managed category grants project members no operation."
        if problem := self.placement_refusal():
            errors["network_placement"] = problem
        if self.gui_port is not None and not 1 <= self.gui_port <= 65535:
            errors["gui_port"] = "Must be a TCP port between 1 and 65535."
        if self.health_check_port is not None and not 1 <= self.health_check_port <= 65535:
            errors["health_check_port"] = "Must be a TCP port between 1 and 65535."
        if self.health_check_path and not self.health_check_path.startswith("/"):
            errors["health_check_path"] = "Must start with '/'."
        elif self.health_check_path and not all(ch.isprintable() and not ch.isspace() for ch in self.health_check_path):
            errors["health_check_path"] = "Must not hold spaces or control characters."
        if self.health_check_path and self.health_check_port is None:
            errors["health_check_port"] = "A health check needs its port."
        elif self.health_check_port is not None and self.network_placement == NetworkPlacement.PROJECT:
            errors["health_check_port"] = (
                "The worker probes the management network: the category's network placement must be "
                "'management' or 'both'."
            )
        if (self.health_check_grace or 0) > 3600:
            errors["health_check_grace"] = "At most 3600 seconds."
        if not 1 <= (self.health_check_threshold or 0) <= 100:
            errors["health_check_threshold"] = "Must be between 1 and 100 failed probes."
        if self.spare_pool_size:
            # A spare waits in the provider's pool project on the management network: a user instance
            # lives in its tenant's own project, where no spare can move, and a category placed on
            # project networks alone would gain a management port.
            if self.management == Management.USER:
                errors["spare_pool_size"] = "Spare pools serve provider-managed and appliance categories only."
            elif self.network_placement == NetworkPlacement.PROJECT:
                errors["spare_pool_size"] = (
                    "A spare waits on the management network: the category's network placement must be "
                    "'management' or 'both'."
                )
            elif self.spare_pool_size > 100:
                errors["spare_pool_size"] = "At most 100 spares per category."
        if self.gui_path and not self.gui_path.startswith("/"):
            errors["gui_path"] = "Must start with '/'."
        elif any(part in {".", ".."} for part in self.gui_path.split("/")) or "\\" in self.gui_path:
            errors["gui_path"] = "Must not hold '.' or '..' segments or backslashes."
        if self.default_flavor_id and self.default_flavor:
            problem = self.flavor_shortfall(self.default_flavor)
            if problem:
                errors["default_flavor"] = problem
        if self.default_image_id and self.default_image and self.default_image.kind != self.kind:
            errors["default_image"] = f"Image '{self.default_image}' is a {self.default_image.kind} image."
        elif self.default_image_id and self.default_image and self.default_image.project_id:
            errors["default_image"] = (
                f"Image '{self.default_image}' is a project's own; a category needs the provider's."
            )
        if self.is_builtin and self.slug != STANDARD_SLUG:
            errors["slug"] = "The built-in category keeps its slug."
        if errors:
            raise ValidationError(errors)

    def placement_refusal(self) -> str:
        """Why this category's instances may not be placed as it says, or an empty string. A user instance
        lives in its tenant's own project, where the tenant controls the server: a port on the provider's
        management network there would be the tenant's way in."""
        if self.management == Management.USER and self.network_placement != NetworkPlacement.PROJECT:
            return (
                "A user category's instances join their project's network only: the management network is "
                "for provider-managed and appliance categories."
            )
        return ""

    @property
    def member_operations(self) -> list[str]:
        """The operations project members may invoke: none for a provider-managed category, whatever is stored."""
        if self.management == Management.PROVIDER:
            return []
        return list(self.user_operations or [])

    @property
    def allows_any_flavor(self) -> bool:
        """A category that names no allowed flavor allows every active flavor that meets its minimums."""
        return not self.allowed_flavors.all()  # reads the prefetched set when there is one

    def offered_flavors(self):
        """The flavors a launch of this category may name: its allowed flavors, or every active one."""
        return Flavor.objects.filter(is_active=True) if self.allows_any_flavor else self.allowed_flavors.all()

    def flavor_refusal(self, flavor: Flavor) -> str:
        """Why ``flavor`` cannot run an instance of this category, or an empty string."""
        if not flavor.is_active:
            return f"Flavor '{flavor.name}' is not active."
        if not self.allows_any_flavor and flavor not in self.allowed_flavors.all():
            return f"Flavor '{flavor.name}' is not allowed for category '{self.slug}'."
        return self.flavor_shortfall(flavor)

    def flavor_shortfall(self, flavor: Flavor) -> str:
        """Why ``flavor`` does not meet this category's minimums, or an empty string."""
        short = []
        if flavor.vcpus < self.min_vcpus:
            short.append(f"{flavor.vcpus} vCPUs < {self.min_vcpus}")
        if flavor.ram_mb < self.min_ram_mb:
            short.append(f"{flavor.ram_mb} MB RAM < {self.min_ram_mb}")
        if flavor.disk_gb < self.min_disk_gb:
            short.append(f"{flavor.disk_gb} GB disk < {self.min_disk_gb}")
        if not short:
            return ""
        return f"Flavor '{flavor.name}' is below the minimums of category '{self.slug}': {', '.join(short)}."


class TaggedQuerySet(models.QuerySet):
    """Images and volumes: tagged with categories, filtered by what a user may see."""

    def visible_to(self, user):
        if policy.is_provider_admin(user):
            return self
        hidden = InstanceCategory.objects.exclude(policy.category_visibility_q(user))
        # Untagged items are generic; items tagged only with hidden categories are not shown;
        # a project's own items are shown to that project alone.
        return self.filter(
            Q(categories__isnull=True) | ~Q(categories__in=hidden), policy.owned_visibility_q(user)
        ).distinct()

    def published(self):
        """The provider's own items (a project's private ones excluded)."""
        return self.filter(project__isnull=True)


class VolumeQuerySet(TaggedQuerySet):
    def visible_to(self, user):
        """A volume shows to its owner alone: a project's own to that project, the provider's to the
        project of the instance it is attached to while it is. Detached, the provider's volume is the
        provider's again, never everybody's for want of an owner."""
        visible = super().visible_to(user)
        return visible if policy.is_provider_admin(user) else visible.filter(project__isnull=False)


class Image(models.Model):
    """A boot image (VM) or an image reference (container), mirrored from the backend."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.VM)
    backend = models.CharField(max_length=32, blank=True, help_text="The backend it is mirrored from; empty: none.")
    backend_id = models.CharField(max_length=255, blank=True, help_text="Glance image id, or a Docker image reference.")
    # Empty: the provider's image. Set: a project's private image (mirrored from the cloud), which
    # that project alone sees and may boot for its own user-category instances; it never carries a
    # category and never boots a managed instance (DESIGN.md rule 9).
    project = models.ForeignKey(
        "tenancy.Project", null=True, blank=True, on_delete=models.PROTECT, related_name="images"
    )
    categories = models.ManyToManyField(InstanceCategory, blank=True, related_name="images")
    tags = models.JSONField(default=list, blank=True, help_text="Free tags; a category's image_tag picks by them.")
    min_ram_mb = models.PositiveIntegerField(default=0)
    min_disk_gb = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TaggedQuerySet.as_manager()

    class Meta:
        ordering = ["name", "-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def reference(self) -> str:
        """What the backend knows the image by: its backend id, else its name."""
        return self.backend_id or self.name


class Volume(models.Model):
    """A block volume, mirrored from the backend, optionally owned by a project."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    size_gb = models.PositiveIntegerField()
    project = models.ForeignKey(
        "tenancy.Project", null=True, blank=True, on_delete=models.PROTECT, related_name="volumes"
    )
    backend = models.CharField(max_length=32, blank=True, help_text="The backend it is mirrored from; empty: none.")
    backend_id = models.CharField(max_length=255, blank=True)
    # What the volume serves: a provider's volume by its backend metadata (adminvms:category), any volume by
    # the instances it is attached to, and what the provider sets here (``assigned_categories``).
    categories = models.ManyToManyField(InstanceCategory, blank=True, related_name="volumes")
    assigned_categories = models.ManyToManyField(InstanceCategory, blank=True, related_name="+")
    # The provider's own volume (its service project, its engine), or a tenant's (whose metadata decides nothing).
    provider_owned = models.BooleanField(default=True)
    status = models.CharField(max_length=32, blank=True, help_text="The backend's word (available, in-use…), or gone.")
    metadata = models.JSONField(default=dict, blank=True)
    # The backend ids of the servers it is attached to.
    attachments = models.JSONField(default=list, blank=True)
    gone_at = models.DateTimeField(null=True, blank=True, help_text="When the backend stopped listing it.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = VolumeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["backend", "backend_id"])]

    def __str__(self) -> str:
        return self.name


class AdoptionRule(models.Model):
    """How a server or container adminvms did not create is recognised as an instance of a category.

    Every criterion given must hold (a glob for the name and the image); the rule of highest
    priority wins, and two rules of equal priority for different categories leave the server
    alone as ambiguous. ``manage.py adopt_instances`` and the console's Adoption page apply them.
    """

    name = models.SlugField(max_length=64, unique=True)
    category = models.ForeignKey(InstanceCategory, on_delete=models.CASCADE, related_name="adoption_rules")
    priority = models.IntegerField(default=0, help_text="The highest matching priority wins.")
    backend = models.CharField(max_length=32, blank=True, help_text="Only servers of this backend; empty: any.")
    metadata_key = models.CharField(
        max_length=255, blank=True, help_text="A metadata key (OpenStack) or label (Docker) the server carries."
    )
    metadata_value = models.CharField(max_length=255, blank=True, help_text="Its value; empty: any value.")
    name_pattern = models.CharField(max_length=255, blank=True, help_text="A glob on the name, e.g. *-vpn.")
    image = models.CharField(max_length=255, blank=True, help_text="A glob on the image's name, or its backend id.")
    flavor = models.CharField(max_length=255, blank=True, help_text="The flavor's name.")
    project = models.ForeignKey(
        "tenancy.Project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="The project of the adopted instance; a server of another project does not match.",
    )
    project_key = models.CharField(
        max_length=255, blank=True, help_text="A metadata key or label naming the project (slug or Keystone id)."
    )
    tenant_servers = models.BooleanField(
        default=False,
        help_text="May take servers that live in a tenant's own project (they stay there) into a managed category.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["-priority", "name"]

    def __str__(self) -> str:
        return f"{self.name} → {self.category_id}"

    def clean(self) -> None:
        if not any([self.metadata_key, self.name_pattern, self.image, self.flavor, self.project_id]):
            raise ValidationError("A rule needs at least one criterion: metadata, name, image, flavor or project.")
        if self.metadata_value and not self.metadata_key:
            raise ValidationError({"metadata_value": "A metadata value needs its key."})
        if self.category_id and (problem := tenant_servers_refusal(self)):
            raise ValidationError({"tenant_servers": problem})


def tenant_servers_refusal(rule) -> str:
    """Why an adoption rule (a saved ``AdoptionRule``, or one from a file or a built-in set) may not take
    tenants' servers, or an empty string: into a managed category only servers of a named flavor or
    image, never whatever a tenant runs under a name she chose (rule 9)."""
    if rule.tenant_servers and rule.category.is_managed and not (rule.flavor or rule.image):
        return "A rule that takes tenants' servers into a managed category needs a flavor or image criterion."
    return ""
