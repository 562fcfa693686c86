from rest_framework import serializers

from adminvms_dashboard.api import SlugRelatedField
from categories.choices import Operation
from categories.labels import model_labels
from categories.models import Flavor, Image, InstanceCategory, Volume
from tenancy import policy

# What project members see of a category: no placement or backend internals.
CATEGORY_MEMBER_FIELDS = (
    "slug", "name", "description", "is_active", "is_builtin", "kind", "management", "user_visible",
    "user_operations", "network_placement", "default_flavor", "allowed_flavors", "min_vcpus",
    "min_ram_mb", "min_disk_gb", "default_image", "max_instances",
)  # fmt: skip


class AdminFieldsMixin:
    """Drops the fields listed in ``Meta.admin_only`` (or keeps only ``Meta.member_fields``) for non-admins."""

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or policy.is_provider_admin(request.user):
            return data
        keep = getattr(self.Meta, "member_fields", None)
        drop = getattr(self.Meta, "admin_only", ())
        return {k: v for k, v in data.items() if (keep is None or k in keep) and k not in drop}


class FlavorSerializer(AdminFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = Flavor
        fields = ["id", "name", "vcpus", "ram_mb", "disk_gb", "backend_id", "is_active", "created_at"]
        read_only_fields = ["is_active", "created_at"]
        admin_only = ("backend_id",)


class CategorySerializer(AdminFieldsMixin, serializers.ModelSerializer):
    user_operations = serializers.ListField(
        child=serializers.ChoiceField(choices=Operation.choices), required=False, allow_empty=True
    )
    extra_metadata = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    default_flavor = SlugRelatedField(slug_field="name", queryset=Flavor.objects.all(), required=False, allow_null=True)
    default_image = serializers.PrimaryKeyRelatedField(
        queryset=Image.objects.published(), required=False, allow_null=True
    )
    allowed_flavors = SlugRelatedField(slug_field="name", queryset=Flavor.objects.all(), many=True, required=False)

    class Meta:
        model = InstanceCategory
        fields = [
            "slug", "name", "description", "is_active", "is_builtin", "kind", "management", "user_visible",
            "user_operations", "network_placement", "default_flavor", "allowed_flavors", "min_vcpus",
            "min_ram_mb", "min_disk_gb", "default_image", "image_tag", "backend", "availability_zone",
            "anti_affinity", "gui_port", "gui_path", "max_instances", "spare_pool_size", "health_check_port",
            "health_check_path", "health_check_threshold", "health_check_grace", "auto_heal", "extra_metadata",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["is_builtin", "created_at", "updated_at"]
        member_fields = CATEGORY_MEMBER_FIELDS

    def get_fields(self):
        """The model's labels and help for the fields declared here too: the schema's words are the form's."""
        fields = super().get_fields()
        model_labels(fields)
        return fields


class CategoryFlavorSerializer(serializers.Serializer):
    flavor = SlugRelatedField(slug_field="name", queryset=Flavor.objects.all())


class ImageSerializer(AdminFieldsMixin, serializers.ModelSerializer):
    categories = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    project = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, help_text="The project whose own image it is; null: the provider's."
    )

    class Meta:
        model = Image
        fields = [
            "id", "name", "kind", "project", "categories", "tags", "min_ram_mb", "min_disk_gb", "backend_id",
            "is_active", "created_at",
        ]  # fmt: skip
        admin_only = ("backend_id", "tags")


class VolumeSerializer(AdminFieldsMixin, serializers.ModelSerializer):
    categories = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Volume
        fields = ["id", "name", "size_gb", "project", "categories", "status", "backend", "backend_id", "attachments",
                  "created_at"]  # fmt: skip
        admin_only = ("backend_id", "attachments")
