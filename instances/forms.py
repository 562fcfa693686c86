"""The launch and rollout forms: parsing and choices only; every rule is the service's."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from categories.models import Flavor, Image, InstanceCategory
from categories.selectors import category_default_image, images_for
from tenancy import policy
from tenancy.models import Project

from .models import NAME_MAX_LENGTH


def _lookup_value(value) -> str:
    """A submitted choice fit for a lookup: PostgreSQL raises on NUL characters instead of matching nothing."""
    return value if isinstance(value, str) and "\x00" not in value else ""


class ModelChoiceField(forms.ModelChoiceField):
    """Django's field, refusing NUL characters before the lookup (bad input, never a 500)."""

    def to_python(self, value):
        if value not in self.empty_values and not _lookup_value(value):
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(value)


class LaunchForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_LENGTH)
    project = ModelChoiceField(queryset=Project.objects.none(), to_field_name="slug")
    category = ModelChoiceField(queryset=InstanceCategory.objects.none(), to_field_name="slug")
    flavor = ModelChoiceField(
        queryset=Flavor.objects.filter(is_active=True), to_field_name="name", required=False,
        empty_label="(category default)",
    )  # fmt: skip
    image = ModelChoiceField(queryset=Image.objects.none(), required=False, empty_label="(category default)")
    count = forms.IntegerField(min_value=1, max_value=settings.ADMINVMS["MAX_LAUNCH_COUNT"], initial=1)

    def __init__(self, *args, user, categories=None, project=None, refresh_url="", **kwargs):
        super().__init__(*args, **kwargs)
        # Changing the category or the project re-renders the form (htmx) with what they offer.
        self.refresh_attrs = {
            "hx-get": refresh_url,
            "hx-trigger": "change",
            "hx-target": "#launch-form",
            "hx-swap": "outerHTML",
            "hx-include": "#launch-form",
            "hx-params": "not csrfmiddlewaretoken",
        }
        self.fields["project"].widget.attrs.update(self.refresh_attrs)
        if policy.is_provider_admin(user):
            projects = Project.objects.all()
        else:
            projects = Project.objects.filter(pk__in=policy.member_project_ids(user))
        self.fields["project"].queryset = projects
        if project is None and len(projects) == 1:
            project = projects[0]
        if project is not None:
            self.fields["project"].initial = project.slug
        launchable = [
            c.pk
            for c in InstanceCategory.objects.visible_to(user).filter(is_active=True)
            if policy.can_launch_somewhere(user, c)
        ]
        queryset = InstanceCategory.objects.filter(pk__in=launchable)
        if categories is not None:
            queryset = queryset.filter(slug__in=[c for c in categories if _lookup_value(c)])
        self.fields["category"].queryset = queryset
        category = self._chosen_category()
        self.chosen_project = self._chosen_project()
        if category is not None:
            # Show the category's defaults, and only what it allows (the service still decides).
            self.fields["flavor"].queryset = category.offered_flavors()
            self.fields["image"].queryset = images_for(user, category, self.chosen_project)
            if category.default_flavor:
                self.fields["flavor"].empty_label = f"(default: {category.default_flavor.name})"
            if default_image := category_default_image(category):
                self.fields["image"].empty_label = f"(default: {default_image.name})"
        self.chosen_category = category
        for field in self.fields.values():
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs.setdefault("class", css)

    def _chosen_project(self):
        """The project the form is for: the one submitted, else the preselected one; ``None`` when unknown."""
        slug = _lookup_value(self.data.get("project") if self.is_bound else self.fields["project"].initial)
        return self.fields["project"].queryset.filter(slug=slug).first() if slug else None

    def _chosen_category(self):
        asked = self.data.get("category") or self.initial.get("category")
        queryset = self.fields["category"].queryset
        if not asked:
            return queryset.order_by("-is_builtin", "slug").first()
        return queryset.filter(slug=slug).first() if (slug := _lookup_value(asked)) else None


class RolloutForm(forms.Form):
    """The console's start of a rollout; the service checks the image, the batch size and the pause."""

    category = ModelChoiceField(queryset=InstanceCategory.objects.filter(is_active=True).order_by("slug"),
                                to_field_name="slug")  # fmt: skip
    image = ModelChoiceField(
        queryset=Image.objects.published().filter(is_active=True).order_by("name"), required=False,
        empty_label="Newest image tagged for the category",
    )  # fmt: skip
    batch_size = forms.IntegerField(initial=1, help_text="Instances replaced at a time.")
    pause_seconds = forms.IntegerField(initial=0, help_text="Seconds to wait after a batch before the next.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs.setdefault(
                "class", "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            )
