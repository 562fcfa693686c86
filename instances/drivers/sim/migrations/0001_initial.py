# SimServer moved here from the instances app; its table stays where it is.
import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("instances", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="SimServer",
                    fields=[
                        (
                            "id",
                            models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False),
                        ),
                        ("instance_uuid", models.UUIDField(db_index=True)),
                        ("name", models.CharField(max_length=255)),
                        ("kind", models.CharField(max_length=16)),
                        ("project_ref", models.CharField(max_length=64)),
                        ("category_ref", models.CharField(max_length=64)),
                        ("image_ref", models.CharField(blank=True, max_length=255)),
                        ("flavor", models.JSONField(blank=True, default=dict)),
                        ("host", models.CharField(blank=True, max_length=64)),
                        ("server_group", models.CharField(blank=True, max_length=255)),
                        ("status", models.CharField(default="BUILD", max_length=16)),
                        ("pending", models.CharField(blank=True, max_length=16)),
                        ("ready_at", models.DateTimeField(blank=True, null=True)),
                        ("fault", models.TextField(blank=True)),
                        ("addresses", models.JSONField(blank=True, default=dict)),
                        ("management_endpoint", models.CharField(blank=True, max_length=255)),
                        ("locked", models.BooleanField(default=False)),
                        ("lock_reason", models.CharField(blank=True, max_length=255)),
                        ("metadata", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={"db_table": "instances_simserver", "ordering": ["created_at"]},
                ),
            ],
            database_operations=[],
        ),
    ]
