# SimServer now belongs to the sim app (instances.drivers.sim); the table stays.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("instances", "0001_initial"), ("sim", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="SimServer")]),
    ]
