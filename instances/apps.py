from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "instances"
    verbose_name = "Instances"

    def ready(self) -> None:
        # Register the tasks in every process (web too), so the service layer can
        # enqueue them by name without importing the module that calls it.
        from . import tasks  # noqa: F401
