from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "instances"
    verbose_name = "Instances"

    def ready(self) -> None:
        # Register the tasks in every process (web too), so the service layer can
        # enqueue them by name without importing the module that calls it; and the
        # system checks: the dashboard's cookies never reach the appliance GUI hosts, and the
        # openstack backend's locks are made where the service project's members cannot lift them.
        from . import checks, gui_origin, tasks  # noqa: F401
