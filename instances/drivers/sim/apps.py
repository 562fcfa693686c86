from django.apps import AppConfig


class SimCloudConfig(AppConfig):
    name = "instances.drivers.sim"
    label = "sim"
    verbose_name = "Simulated cloud"
