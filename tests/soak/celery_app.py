"""The Celery app for workers of the soak's fault scenario: the product's app, with the sim
driver replaced by ``FaultySimDriver`` (``celery -A tests.soak.celery_app worker``)."""

from adminvms_dashboard.celery import app
from instances.drivers import registry

registry.DRIVER_CLASSES["sim"] = "tests.soak.faults.FaultySimDriver"

__all__ = ["app"]
