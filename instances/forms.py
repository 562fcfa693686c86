"""The launch form: parsing and choices only; every rule is the service's."""

from __future__ import annotations

from django import forms
from django.conf import settings

from categories.models import Flavor, Image, InstanceCategory
from categories.selectors import category_default_image
from tenancy import policy
from tenancy.models import Project

from .models import NAME_MAX_LENGTH


class LaunchForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_LENGTH)
    project = forms.ModelChoiceField(queryset=Project.objects.none(), to_field_name="slug")
    category = forms.ModelChoiceField(queryset=InstanceCategory.objects.none(), to_field_name="slug")
    flavor = forms.ModelChoiceField(
        queryset=Flavor.objects.filter(is_active=True), to_field_name="name", required=False,
        empty_label="(category default)",
    )  # fmt: skip
    image = forms.ModelChoiceField(queryset=Image.objects.none(), required=False, empty_label="(category default)")
    count = forms.IntegerField(min_value=1, max_value=settings.ADMINVMS["MAX_LAUNCH_COUNT"], initial=1)

    def __init__(self, *args, user, categories=None, project=None, **kwargs):
        super().__init__(*args, **kwargs)
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
            queryset = queryset.filter(slug__in=categories)
        self.fields["category"].queryset = queryset
        self.fields["image"].queryset = Image.objects.visible_to(user).filter(is_active=True)
        category = self._chosen_category()
        if category is not None:
            # Show the category's defaults, and only what it allows.
            self.fields["flavor"].queryset = category.offered_flavors()
            self.fields["image"].queryset = self.fields["image"].queryset.filter(kind=category.kind)
            if category.default_flavor:
                self.fields["flavor"].empty_label = f"(default: {category.default_flavor.name})"
            if default_image := category_default_image(category):
                self.fields["image"].empty_label = f"(default: {default_image.name})"
        self.chosen_category = category
        for field in self.fields.values():
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs.setdefault("class", css)

    def _chosen_category(self):
        slug = self.data.get("category") or self.initial.get("category")
        queryset = self.fields["category"].queryset
        return queryset.filter(slug=slug).first() if slug else queryset.order_by("-is_builtin", "slug").first()
