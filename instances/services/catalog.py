"""What the backends offer: mirroring their flavors and images into the catalog, and asking whether one answers."""

from __future__ import annotations

from categories.services import catalog_mirror

from ..drivers.base import DriverError
from ..drivers.registry import backend_refusal, get_driver


def catalog_sync(*, backend: str) -> dict[str, int]:
    """Mirror a backend's flavors and images into the catalog, and map projects to it by name."""
    driver = get_driver(backend)
    return catalog_mirror(
        flavors=[vars(f) for f in driver.list_flavors()],
        images=[vars(i) for i in driver.list_images()],
        projects=driver.list_projects(),
    )


def backend_problem(*, backend: str) -> str:
    """Why ``backend`` cannot serve right now (not enabled, or its API does not answer), or an empty string."""
    if refusal := backend_refusal(backend):
        return refusal
    try:
        get_driver(backend).list_servers()
    except DriverError as exc:
        return str(exc)
    return ""
