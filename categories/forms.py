"""Console forms: parsing and widgets only. The rules live in the model's
``clean()`` and in ``categories.services``, the same ones the API reaches."""

from __future__ import annotations

import json

from django import forms

from .choices import Operation
from .labels import model_labels
from .models import Flavor, InstanceCategory

CATEGORY_FORM_FIELDS = [
    "slug", "name", "description", "is_active", "kind", "management", "user_visible", "user_operations",
    "network_placement", "default_flavor", "allowed_flavors", "min_vcpus", "min_ram_mb", "min_disk_gb",
    "default_image", "image_tag", "backend", "availability_zone", "anti_affinity", "gui_port", "gui_path",
    "max_instances", "spare_pool_size", "health_check_port", "health_check_path", "health_check_threshold",
    "health_check_grace",
    "auto_heal", "extra_metadata",
]  # fmt: skip


# The category form's sections, in order: (title, fields, what the section is for). Every field of
# CATEGORY_FORM_FIELDS stands in exactly one (a test ties them).
CATEGORY_SECTIONS = (
    ("Identity and access", ("slug", "name", "description", "is_active", "user_visible", "kind", "management",
                             "user_operations"), ""),
    ("Hardware", ("default_flavor", "allowed_flavors", "min_vcpus", "min_ram_mb", "min_disk_gb"),
     "Every launch's flavor is one of the allowed flavors (none ticked: any) and meets the minimums."),
    ("Image", ("default_image", "image_tag"),
     "A managed category boots only the images offered for it: linked to it, or carrying its image tag."),
    ("Placement", ("backend", "availability_zone", "anti_affinity", "network_placement"), ""),
    ("Appliance GUI", ("gui_port", "gui_path"),
     "For appliances with a web GUI of their own, opened through the dashboard; leave the port empty otherwise."),
    ("Quota and spare pool", ("max_instances", "spare_pool_size"),
     "Spare pools serve provider-managed and appliance categories on the management network."),
    ("Health and healing", ("health_check_port", "health_check_path", "health_check_threshold",
                            "health_check_grace", "auto_heal"),
     "Probed on the management network; leave the port empty for no health check."),
    ("Extra metadata", ("extra_metadata",), ""),
)  # fmt: skip


class MetadataField(forms.JSONField):
    """JSON whose error says where it went wrong, not only that it did."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            try:
                json.loads(value)
            except json.JSONDecodeError as exc:
                raise forms.ValidationError(
                    f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).", code="invalid"
                ) from None
        return super().to_python(value)


class CategoryForm(forms.ModelForm):
    user_operations = forms.MultipleChoiceField(
        choices=Operation.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    allowed_flavors = forms.ModelMultipleChoiceField(
        queryset=Flavor.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    extra_metadata = MetadataField(required=False, initial=dict, widget=forms.Textarea(attrs={"rows": 3}))

    class Meta:
        model = InstanceCategory
        fields = CATEGORY_FORM_FIELDS
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        model_labels(self.fields)
        if self.instance.pk:
            self.initial["allowed_flavors"] = list(self.instance.allowed_flavors.all())
            # The field encodes its value as JSON when it renders: the dict itself, never a string of it,
            # which rendered as "{}" with the quotes and failed its own validation on Save (issue 28).
            self.initial["extra_metadata"] = self.instance.extra_metadata
            if self.instance.is_builtin:
                self.fields["slug"].disabled = True

    def sections(self) -> list[dict]:
        """The form's fields by section, as the template shows them."""
        return [
            {"title": title, "fields": [self[name] for name in names], "note": note}
            for title, names, note in CATEGORY_SECTIONS
        ]

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
