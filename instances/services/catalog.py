"""What the backends offer: mirroring their flavors and images into the catalog, and asking whether one answers."""

from __future__ import annotations

import logging

from django.db import transaction

from categories.models import Image, InstanceCategory, Volume
from categories.services import catalog_mirror, image_update, volume_assign, volumes_mirror

from ..drivers.base import DriverError
from ..drivers.registry import backend_refusal, get_driver
from ..models import Instance

log = logging.getLogger(__name__)


def catalog_sync(*, backend: str) -> dict[str, int]:
    """Mirror a backend's flavors, images and volumes into the catalog, and map projects to it by name."""
    driver = get_driver(backend)
    counts = catalog_mirror(
        flavors=[vars(f) for f in driver.list_flavors()],
        images=[vars(i) for i in driver.list_images()],
        projects=driver.list_projects(),
        backend=backend,
    )
    return counts | volumes_sync(backend=backend, driver=driver)


def volumes_sync(*, backend: str, driver=None) -> dict[str, int]:
    """Mirror a backend's volumes with their attachments: one listing call (and one for the attachments where
    the backend keeps them apart), and a volume serves the categories of the live instances it is attached to."""
    driver = driver or get_driver(backend)
    volumes = driver.list_volumes()
    servers = {server for volume in volumes for server in volume.attachments}
    attached = {
        backend_id: (category_id, project_id)
        for backend_id, category_id, project_id in Instance.objects.live()
        .filter(backend=backend, backend_id__in=servers)
        .values_list("backend_id", "category_id", "project_id")
    }
    return volumes_mirror(backend=backend, volumes=[vars(v) for v in volumes], attached=attached)


def backend_problem(*, backend: str) -> str:
    """Why ``backend`` cannot serve right now (not enabled, or its API does not answer), or an empty string."""
    if refusal := backend_refusal(backend):
        return refusal
    try:
        get_driver(backend).list_servers()
    except DriverError as exc:
        return str(exc)
    return ""


def volume_categories_set(*, user, volume: Volume, categories: list[InstanceCategory]) -> str:
    """Assign ``volume`` the provider's categories, and write them into its backend metadata where the backend
    keeps some (Cinder, the sim cloud; Docker fixes a volume's labels when it is made).

    Returns a note for the caller: empty when the backend agrees, else what happened there. The assignment
    here stands either way: a later sync keeps it.
    """
    attached = InstanceCategory.objects.filter(
        pk__in=Instance.objects.live()
        .filter(backend=volume.backend, backend_id__in=volume.attachments or [])
        .values("category_id")
    )
    with transaction.atomic():
        volume_assign(user=user, volume=volume, categories=categories, attached=attached)
    if volume.gone_at:
        return "The volume is gone from its backend; nothing was written there."
    return _written_back(volume.backend, "volumes", "set_volume_categories", volume.backend_id, categories)


def image_categories_set(*, user, image: Image, categories: list[InstanceCategory]) -> str:
    """Offer ``image`` for the provider's categories (replacing the earlier ones), and write them into the
    backend's image tags where it keeps some (Glance: ``adminvms:category=<slug>``), so that the next sync
    agrees. Returns a note: empty when the backend agrees, else what happened there."""
    with transaction.atomic():
        image_update(user=user, image=image, categories=categories)
    return _written_back(image.backend, "images", "set_image_categories", image.backend_id, categories)


def _written_back(backend: str, what: str, call: str, backend_id: str, categories) -> str:
    if not backend:
        return ""  # made here, on no backend
    try:
        written = getattr(get_driver(backend), call)(backend_id, sorted(c.slug for c in categories))
    except DriverError as exc:
        log.warning("%s %s: backend %s was not updated: %s", what, backend_id, backend, exc)
        return f"Saved here; backend '{backend}' could not be updated ({exc})."
    return "" if written else f"Saved here; backend '{backend}' keeps no categories on {what}."
