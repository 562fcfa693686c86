from django.db import migrations

ALL_OPERATIONS = ["launch", "reboot", "stop", "start", "terminate"]


def create_standard(apps, schema_editor):
    InstanceCategory = apps.get_model("categories", "InstanceCategory")
    InstanceCategory.objects.get_or_create(
        slug="standard",
        defaults={
            "name": "Standard",
            "description": "Regular user instances, as before categories existed.",
            "is_builtin": True,
            "kind": "vm",
            "management": "user",
            "user_visible": True,
            "user_operations": ALL_OPERATIONS,
            "network_placement": "project",
        },
    )


class Migration(migrations.Migration):
    dependencies = [("categories", "0001_initial")]

    operations = [migrations.RunPython(create_standard, migrations.RunPython.noop)]
