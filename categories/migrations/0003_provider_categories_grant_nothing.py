# A provider-managed category grants project members no operation (DESIGN.md rule 9). Grants
# stored before that rule was enforced are removed, so that every category passes clean().
from django.db import migrations


def clear_provider_grants(apps, schema_editor):
    InstanceCategory = apps.get_model("categories", "InstanceCategory")
    for category in InstanceCategory.objects.filter(management="provider"):
        if category.user_operations:
            category.user_operations = []
            category.save(update_fields=["user_operations"])


class Migration(migrations.Migration):
    dependencies = [("categories", "0002_builtin_standard")]

    operations = [migrations.RunPython(clear_provider_grants, migrations.RunPython.noop)]
