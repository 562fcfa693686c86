"""Backend name → driver, configured from settings (``ADMINVMS_BACKENDS``).

Drivers are made once per process and reused (one SDK connection per worker).
A driver module is imported only when its backend is used, so a deployment
without OpenStack never imports ``openstack``.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from .base import ComputeDriver

DRIVER_CLASSES = {
    "sim": "instances.drivers.sim.driver.SimDriver",
    "docker": "instances.drivers.docker.DockerDriver",
    "openstack": "instances.drivers.openstack.OpenStackDriver",
}

_drivers: dict[str, ComputeDriver] = {}
_lock = threading.Lock()


class UnknownBackend(LookupError):
    pass


def enabled_backends() -> list[str]:
    return list(settings.ADMINVMS["BACKENDS"])


def default_backend() -> str:
    return settings.ADMINVMS["DEFAULT_BACKEND"]


def backend_refusal(name: str) -> str:
    """Why backend ``name`` cannot be used here, or an empty string."""
    if name not in DRIVER_CLASSES:
        return f"Unknown backend '{name}'; known: {', '.join(DRIVER_CLASSES)}."
    if name not in enabled_backends():
        return f"Backend '{name}' is not enabled here (ADMINVMS_BACKENDS={','.join(enabled_backends())})."
    return ""


def is_simulated(name: str) -> bool:
    """Whether backend ``name`` is a simulated cloud (labelled so in every interface); unknown names are not."""
    path = DRIVER_CLASSES.get(name)
    return bool(path) and import_string(path).simulated


def get_driver(name: str) -> ComputeDriver:
    if refusal := backend_refusal(name):
        raise UnknownBackend(refusal)
    with _lock:
        if name not in _drivers:
            _drivers[name] = import_string(DRIVER_CLASSES[name])()
        return _drivers[name]


def reset() -> None:
    """Forget the drivers made so far (tests that change settings)."""
    with _lock:
        _drivers.clear()
