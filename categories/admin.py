"""The provider's adoption rules are kept in Django's admin (``/admin/``); the console's Adoption page applies them."""

from django.contrib import admin

from .models import AdoptionRule


@admin.register(AdoptionRule)
class AdoptionRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "priority", "backend", "metadata_key", "metadata_value", "name_pattern",
                    "image", "flavor", "project", "project_key", "tenant_servers", "is_active"]  # fmt: skip
    list_filter = ["category", "backend", "is_active"]
