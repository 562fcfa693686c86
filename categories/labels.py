"""A category's fields read the same in the console's form and the API's schema: the model's words."""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from django.utils.text import capfirst

from .models import InstanceCategory


def model_labels(fields) -> None:
    """Give form or serializer fields declared by hand the model's label and help, as Django and DRF give the
    fields they make from the model (``fields``: name → field, changed in place)."""
    for name, field in fields.items():
        try:
            model_field = InstanceCategory._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        field.label = capfirst(model_field.verbose_name)
        field.help_text = field.help_text or model_field.help_text
