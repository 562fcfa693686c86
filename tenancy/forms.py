"""Forms of the tenancy pages."""

from __future__ import annotations

from django import forms

from . import policy
from .models import Project


class AccessKeyForm(forms.Form):
    """The project a new access key acts for, among the user's own (any, for a provider admin)."""

    project = forms.ModelChoiceField(
        queryset=Project.objects.none(),
        to_field_name="slug",
        required=False,
        error_messages={"invalid_choice": "No such project."},
        help_text="Its requests act for this project, with your role in it (a reader's key only describes).",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["project"]
        field.queryset = Project.objects.filter(policy.projects_q(user)).order_by("name")
        field.widget.attrs["class"] = "form-select"
        if policy.is_provider_admin(user):
            field.empty_label = "None: name the project in each request"
            field.label_from_instance = lambda project: f"{project.name} ({project.slug})"
        else:
            field.empty_label = "Choose a project…"
            field.label_from_instance = lambda project: f"{project.name} ({policy.role_in(user, project)})"
