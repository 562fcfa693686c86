from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "instances"
    verbose_name = "Instances"

    def ready(self) -> None:
        # Register the tasks in every process (web too), so the service layer can
        # enqueue them by name without importing the module that calls it; and the
        # system check that the dashboard's cookies never reach the appliance GUI hosts.
        from . import gui_origin, tasks  # noqa: F401
