"""Console forms: parsing and widgets only. The rules live in the model's
``clean()`` and in ``categories.services``, the same ones the API reaches."""

from __future__ import annotations

from django import forms

from .choices import Operation
from .models import Flavor, InstanceCategory

CATEGORY_FORM_FIELDS = [
    "slug", "name", "description", "is_active", "kind", "management", "user_visible", "user_operations",
    "network_placement", "default_flavor", "allowed_flavors", "min_vcpus", "min_ram_mb", "min_disk_gb",
    "default_image", "image_tag", "backend", "availability_zone", "anti_affinity", "gui_port", "gui_path",
    "max_instances", "spare_pool_size", "health_check_port", "health_check_path", "health_check_threshold",
    "health_check_grace",
    "auto_heal", "extra_metadata",
]  # fmt: skip


class CategoryForm(forms.ModelForm):
    user_operations = forms.MultipleChoiceField(
        choices=Operation.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    allowed_flavors = forms.ModelMultipleChoiceField(
        queryset=Flavor.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    extra_metadata = forms.JSONField(
        required=False, initial=dict, widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Stamped on every instance, e.g. {"service": "storage"}.',
    )  # fmt: skip

    class Meta:
        model = InstanceCategory
        fields = CATEGORY_FORM_FIELDS
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["allowed_flavors"] = list(self.instance.allowed_flavors.all())
            # The field encodes its value as JSON when it renders: the dict itself, never a string of it,
            # which rendered as "{}" with the quotes and failed its own validation on Save (issue 28).
            self.initial["extra_metadata"] = self.instance.extra_metadata
            if self.instance.is_builtin:
                self.fields["slug"].disabled = True

    def clean_extra_metadata(self):
        return self.cleaned_data.get("extra_metadata") or {}

    def data_for_service(self) -> tuple[dict, list]:
        data = {k: v for k, v in self.cleaned_data.items() if k != "allowed_flavors"}
        if self.instance.pk and self.instance.is_builtin:
            data.pop("slug", None)
        return data, list(self.cleaned_data.get("allowed_flavors") or [])


class FlavorForm(forms.Form):
    name = forms.CharField(max_length=255)
    vcpus = forms.IntegerField(min_value=1)
    ram_mb = forms.IntegerField(min_value=64, label="RAM (MB)")
    disk_gb = forms.IntegerField(min_value=0, label="Disk (GB)")
