"""Writes to the catalog: categories, their allowed flavors, flavors and images.

Every function is keyword-only, takes the acting user, checks the policy and
raises ``tenancy.errors`` on refusal. Callers: the REST API, the console,
management commands.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tenancy import policy
from tenancy.errors import Conflict, InvalidInput, require
from tenancy.models import Project

from .choices import STANDARD_SLUG, Kind
from .models import Flavor, Image, InstanceCategory

# Fields a category's create/update may set (never is_builtin, never timestamps).
CATEGORY_FIELDS = frozenset(
    {
        "slug", "name", "description", "is_active", "kind", "management", "user_visible",
        "user_operations", "network_placement", "default_flavor", "min_vcpus", "min_ram_mb",
        "min_disk_gb", "default_image", "image_tag", "backend", "availability_zone", "anti_affinity",
        "gui_port", "gui_path", "max_instances", "spare_pool_size", "health_check_port",
        "health_check_path", "auto_heal", "extra_metadata",
    }
)  # fmt: skip


def _save(obj, *, unique_field: str = "slug") -> None:
    """``full_clean`` then save, turning model validation and unique races into InvalidInput."""
    try:
        obj.full_clean()
        obj.save()
    except ValidationError as exc:
        raise InvalidInput.from_validation_error(exc) from exc
    except IntegrityError as exc:
        value = getattr(obj, unique_field)
        raise InvalidInput(f"'{value}' is already taken.", field=unique_field) from exc


STANDARD_DEFAULTS = {
    "name": "Standard",
    "description": "Regular user instances, as before categories existed.",
    "is_builtin": True,
    "kind": Kind.VM,
    "management": "user",
    "user_visible": True,
    "user_operations": ["launch", "reboot", "stop", "start", "terminate"],
    "network_placement": "project",
}


def category_standard() -> InstanceCategory:
    """The built-in ``standard`` category. A data migration creates it; this
    puts it back if a database was emptied behind the migrations' back."""
    category, _ = InstanceCategory.objects.get_or_create(slug=STANDARD_SLUG, defaults=STANDARD_DEFAULTS)
    return category


def _live_instances(category: InstanceCategory):
    # Soft-deleted instances keep their category for the history; they are not "live".
    return category.instances.exclude(status="DELETED")


@transaction.atomic
def category_create(*, user, data: dict[str, Any], allowed_flavors: Iterable[Flavor] = ()) -> InstanceCategory:
    """Create a category. The default flavor is always among its allowed flavors."""
    require(policy.can_manage_catalog(user))
    unknown = set(data) - CATEGORY_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    category = InstanceCategory(**data)
    with transaction.atomic():
        _save(category)
    flavors = list(allowed_flavors)
    if category.default_flavor and category.default_flavor not in flavors:
        flavors.append(category.default_flavor)
    category.allowed_flavors.set(flavors)
    return category


@transaction.atomic
def category_update(*, user, category: InstanceCategory, data: dict[str, Any]) -> InstanceCategory:
    """Change a category's fields. Kind and slug are fixed once instances exist."""
    require(policy.can_manage_catalog(user))
    category = InstanceCategory.objects.select_for_update().get(pk=category.pk)
    unknown = set(data) - CATEGORY_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    has_instances = category.instances.exists()
    for field in ("slug", "kind"):
        if field in data and data[field] != getattr(category, field) and has_instances:
            raise Conflict(f"Category '{category.slug}' has instances; its {field} cannot change.", field=field)
    if category.is_builtin and data.get("is_active") is False:
        raise Conflict("The built-in category cannot be deactivated.", field="is_active")
    for field, value in data.items():
        setattr(category, field, value)
    with transaction.atomic():
        _save(category)
    if category.default_flavor_id:
        category.allowed_flavors.add(category.default_flavor_id)
    return category


@transaction.atomic
def category_deactivate(*, user, category: InstanceCategory) -> InstanceCategory:
    """An inactive category launches nothing; its instances keep running."""
    return category_update(user=user, category=category, data={"is_active": False})


@transaction.atomic
def category_delete(*, user, category: InstanceCategory) -> None:
    """Delete a category that has never held an instance.

    With live instances the answer is 409. With only deleted ones it is 409 too:
    their history (events are never deleted) still names the category, so the
    operator deactivates it instead.
    """
    require(policy.can_manage_catalog(user))
    category = InstanceCategory.objects.select_for_update().get(pk=category.pk)
    if category.is_builtin:
        raise Conflict("The built-in category cannot be deleted.", field="slug")
    if live := _live_instances(category).count():
        raise Conflict(f"Category '{category.slug}' has {live} live instance(s).", field="slug")
    if category.instances.exists():
        raise Conflict(
            f"Category '{category.slug}' has deleted instances in its history; deactivate it instead.",
            field="slug",
        )
    category.delete()


@transaction.atomic
def category_flavor_add(*, user, category: InstanceCategory, flavor: Flavor) -> None:
    """Allow a flavor for a category; it must meet the category's minimums."""
    require(policy.can_manage_catalog(user))
    if problem := category.flavor_shortfall(flavor):
        raise InvalidInput(problem, field="flavor")
    category.allowed_flavors.add(flavor)


@transaction.atomic
def category_flavor_remove(*, user, category: InstanceCategory, flavor: Flavor) -> None:
    """Disallow a flavor; the default flavor stays allowed while it is the default."""
    require(policy.can_manage_catalog(user))
    if category.default_flavor_id == flavor.pk:
        raise Conflict(f"'{flavor}' is the default flavor of '{category.slug}'.", field="flavor")
    category.allowed_flavors.remove(flavor)


@transaction.atomic
def category_flavors_set(*, user, category: InstanceCategory, flavors: Iterable[Flavor]) -> None:
    """Replace the allowed flavors; each must meet the minimums, and the default flavor stays allowed."""
    require(policy.can_manage_catalog(user))
    flavors = list(flavors)
    for flavor in flavors:
        if problem := category.flavor_shortfall(flavor):
            raise InvalidInput(problem, field="allowed_flavors")
    if category.default_flavor and category.default_flavor not in flavors:
        flavors.append(category.default_flavor)
    category.allowed_flavors.set(flavors)


@transaction.atomic
def flavor_create(*, user, name: str, vcpus: int, ram_mb: int, disk_gb: int, backend_id: str = "") -> Flavor:
    require(policy.can_manage_catalog(user))
    flavor = Flavor(name=name, vcpus=vcpus, ram_mb=ram_mb, disk_gb=disk_gb, backend_id=backend_id)
    with transaction.atomic():
        _save(flavor, unique_field="name")
    return flavor


@transaction.atomic
def image_create(
    *,
    user,
    name: str,
    kind: str = Kind.VM,
    backend_id: str = "",
    categories: Iterable[InstanceCategory] = (),
    min_ram_mb: int = 0,
    min_disk_gb: int = 0,
) -> Image:
    require(policy.can_manage_catalog(user))
    image = Image(name=name, kind=kind, backend_id=backend_id, min_ram_mb=min_ram_mb, min_disk_gb=min_disk_gb)
    _save(image, unique_field="name")
    image.categories.set(list(categories))
    return image


CATEGORY_TAG_PREFIX = "adminvms:category="


@transaction.atomic
def catalog_mirror(*, flavors: list[dict], images: list[dict], projects: dict[str, str]) -> dict[str, int]:
    """Upsert what a backend offers: flavors and images by backend id, then by name.

    An image tagged ``adminvms:category=<slug>`` is offered for that category.
    Projects without a backend id get the one of the backend project with their
    slug as name. Nothing is deleted: instances may still refer to it.
    """
    counts = {"flavors": 0, "images": 0, "projects": 0}
    for spec in flavors:
        flavor = (
            Flavor.objects.filter(backend_id=spec["backend_id"]).first()
            or Flavor.objects.filter(name=spec["name"]).first()
            or Flavor(name=spec["name"])
        )
        for field in ("backend_id", "vcpus", "ram_mb", "disk_gb"):
            setattr(flavor, field, spec[field])
        flavor.save()
        counts["flavors"] += 1
    categories = {c.slug: c for c in InstanceCategory.objects.all()}
    for info in images:
        image = (
            Image.objects.filter(backend_id=info["backend_id"]).first()
            or Image.objects.filter(name=info["name"], kind=info["kind"]).first()
            or Image(name=info["name"], kind=info["kind"])
        )
        image.backend_id, image.min_ram_mb, image.min_disk_gb = (
            info["backend_id"],
            info["min_ram_mb"],
            info["min_disk_gb"],
        )
        slugs = [t.removeprefix(CATEGORY_TAG_PREFIX) for t in info["tags"] if t.startswith(CATEGORY_TAG_PREFIX)]
        image.tags = [t for t in info["tags"] if not t.startswith(CATEGORY_TAG_PREFIX)]
        image.save()
        if tagged := [categories[slug] for slug in slugs if slug in categories]:
            image.categories.set(tagged)
        counts["images"] += 1
    for project in Project.objects.filter(keystone_id=""):
        if project_id := projects.get(project.slug):
            project.keystone_id = project_id
            project.save(update_fields=["keystone_id"])
            counts["projects"] += 1
    return counts
