from django.db import migrations

from categories.choices import STANDARD_DEFAULTS, STANDARD_SLUG


def create_standard(apps, schema_editor):
    InstanceCategory = apps.get_model("categories", "InstanceCategory")
    InstanceCategory.objects.get_or_create(slug=STANDARD_SLUG, defaults=STANDARD_DEFAULTS)


class Migration(migrations.Migration):
    dependencies = [("categories", "0001_initial")]

    operations = [migrations.RunPython(create_standard, migrations.RunPython.noop)]
