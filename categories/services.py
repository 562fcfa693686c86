"""Writes to the catalog: categories, their allowed flavors, flavors, images and volumes.

Each function that acts for a user is keyword-only, takes the acting user,
checks the policy and raises ``tenancy.errors`` on refusal; each is one
transaction, so a refused request changes nothing. ``catalog_mirror`` and
``category_standard`` act for the system (a backend's catalog, the built-in
category). Callers: the REST API, the console, management commands, the
instances app's catalog sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from tenancy import policy
from tenancy.errors import Conflict, InvalidInput, require
from tenancy.models import Project

from .choices import STANDARD_DEFAULTS, STANDARD_SLUG, Kind
from .models import Flavor, Image, InstanceCategory, Volume

# Fields a category's create/update may set (never is_builtin, never timestamps).
CATEGORY_FIELDS = frozenset(
    {
        "slug", "name", "description", "is_active", "kind", "management", "user_visible",
        "user_operations", "network_placement", "default_flavor", "min_vcpus", "min_ram_mb",
        "min_disk_gb", "default_image", "image_tag", "backend", "availability_zone", "anti_affinity",
        "gui_port", "gui_path", "max_instances", "spare_pool_size", "health_check_port",
        "health_check_path", "health_check_threshold", "health_check_grace", "auto_heal", "extra_metadata",
    }
)  # fmt: skip


def _save(obj, *, unique_field: str = "slug") -> None:
    """``full_clean`` then save (in a savepoint), turning model validation and unique races into InvalidInput."""
    try:
        obj.full_clean()
        with transaction.atomic():
            obj.save()
    except ValidationError as exc:
        raise InvalidInput.from_validation_error(exc) from exc
    except IntegrityError as exc:
        value = getattr(obj, unique_field)
        raise InvalidInput(f"'{value}' is already taken.", field=unique_field) from exc


def category_standard() -> InstanceCategory:
    """The built-in ``standard`` category. A data migration creates it; this
    puts it back if a database was emptied behind the migrations' back."""
    category, _ = InstanceCategory.objects.get_or_create(slug=STANDARD_SLUG, defaults=STANDARD_DEFAULTS)
    return category


def _live_instances(category: InstanceCategory):
    # Soft-deleted instances keep their category for the history; they are not "live".
    return category.instances.exclude(status="DELETED")


def _check_fields(data: dict[str, Any]) -> None:
    if unknown := set(data) - CATEGORY_FIELDS:
        raise InvalidInput(f"Unknown field(s): {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])


def _set_allowed_flavors(category: InstanceCategory, flavors: Iterable[Flavor] | None) -> None:
    """Replace the allowed flavors with ``flavors`` (``None``: keep them). Each must meet the
    category's minimums; the default flavor is always among them."""
    if flavors is not None:
        flavors = list(flavors)
        for flavor in flavors:
            if problem := category.flavor_shortfall(flavor):
                raise InvalidInput(problem, field="allowed_flavors")
        category.allowed_flavors.set(flavors)
    if category.default_flavor_id:
        category.allowed_flavors.add(category.default_flavor_id)


@transaction.atomic
def category_create(*, user, data: dict[str, Any], allowed_flavors: Iterable[Flavor] | None = None) -> InstanceCategory:
    """Create a category with its allowed flavors; the default flavor is always among them."""
    require(policy.can_manage_catalog(user))
    _check_fields(data)
    category = InstanceCategory(**data)
    _save(category)
    _set_allowed_flavors(category, allowed_flavors)
    return category


@transaction.atomic
def category_update(
    *, user, category: InstanceCategory, data: dict[str, Any], allowed_flavors: Iterable[Flavor] | None = None
) -> InstanceCategory:
    """Change a category's fields and, when ``allowed_flavors`` is given, replace its allowed flavors.

    One transaction: a refusal of any part changes nothing. Kind and slug are
    fixed once instances exist; the default flavor stays allowed.
    """
    require(policy.can_manage_catalog(user))
    category = InstanceCategory.objects.select_for_update().get(pk=category.pk)
    _check_fields(data)
    has_instances = category.instances.exists()
    for field in ("slug", "kind"):
        if field in data and data[field] != getattr(category, field) and has_instances:
            raise Conflict(f"Category '{category.slug}' has instances; its {field} cannot change.", field=field)
    if category.is_builtin and data.get("is_active") is False:
        require(policy.can_deactivate_category(user, category))
    for field, value in data.items():
        setattr(category, field, value)
    _save(category)
    _set_allowed_flavors(category, allowed_flavors)
    return category


@transaction.atomic
def category_deactivate(*, user, category: InstanceCategory) -> InstanceCategory:
    """An inactive category launches nothing; its instances keep running."""
    require(policy.can_deactivate_category(user, category))
    return category_update(user=user, category=category, data={"is_active": False})


@transaction.atomic
def category_delete(*, user, category: InstanceCategory) -> None:
    """Delete a category that has never held an instance.

    With live instances the answer is 409. With only deleted ones it is 409 too:
    their history (events are never deleted) still names the category, so the
    operator deactivates it instead.
    """
    category = InstanceCategory.objects.select_for_update().get(pk=category.pk)
    require(policy.can_delete_category(user, category))
    if live := _live_instances(category).count():
        raise Conflict(f"Category '{category.slug}' has {live} live instance(s).", field="slug")
    if category.instances.exists():
        raise Conflict(
            f"Category '{category.slug}' has deleted instances in its history; deactivate it instead.",
            field="slug",
        )
    try:
        with transaction.atomic():
            category.delete()
    except ProtectedError as exc:
        # Other history keeps it too (a rollout, whatever later keeps a category): it stays, inactive.
        kept = sorted({str(obj._meta.verbose_name_plural) for obj in exc.protected_objects})
        raise Conflict(
            f"Category '{category.slug}' is kept by its history ({', '.join(kept)}); deactivate it instead.",
            field="slug",
        ) from None


@transaction.atomic
def category_flavor_add(*, user, category: InstanceCategory, flavor: Flavor) -> None:
    """Allow one more flavor for a category; it must meet the category's minimums."""
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
def flavor_create(*, user, name: str, vcpus: int, ram_mb: int, disk_gb: int, backend_id: str = "") -> Flavor:
    require(policy.can_manage_catalog(user))
    flavor = Flavor(name=name, vcpus=vcpus, ram_mb=ram_mb, disk_gb=disk_gb, backend_id=backend_id)
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
    tags: Iterable[str] = (),
    min_ram_mb: int = 0,
    min_disk_gb: int = 0,
) -> Image:
    require(policy.can_manage_catalog(user))
    image = Image(
        name=name, kind=kind, backend_id=backend_id, tags=list(tags), min_ram_mb=min_ram_mb, min_disk_gb=min_disk_gb
    )
    _save(image, unique_field="name")
    image.categories.set(list(categories))
    return image


@transaction.atomic
def image_update(
    *, user, image: Image, tags: Iterable[str] | None = None, categories: Iterable[InstanceCategory] | None = None
) -> Image:
    """Replace an image's free tags and/or the categories it is offered for (``None``: keep).

    A project's private image is offered for no category.
    """
    require(policy.can_manage_catalog(user))
    if categories is not None and list(categories) and image.project_id:
        raise InvalidInput(f"Image '{image.name}' is a project's own; it serves no category.", field="categories")
    if tags is not None and list(tags) != image.tags:
        image.tags = list(tags)
        _save(image, unique_field="name")
    if categories is not None:
        image.categories.set(list(categories))
    return image


@transaction.atomic
def volume_ensure(
    *, user, name: str, size_gb: int, project: Project | None = None, categories: Iterable[InstanceCategory] = ()
) -> tuple[Volume, bool]:
    """The volume named ``name``, created with these attributes if missing; an existing one is left as it is."""
    require(policy.can_manage_catalog(user))
    volume = Volume.objects.filter(name=name).first()
    if volume is not None:
        return volume, False
    volume = Volume(name=name, size_gb=size_gb, project=project)
    _save(volume, unique_field="name")
    # The provider's assignment, as the console and the API make it: what the volume serves, and what the
    # console's Volumes page shows as assigned (a Save of that page keeps it).
    volume_assign(user=user, volume=volume, categories=categories)
    return volume, True


CATEGORY_TAG_PREFIX = "adminvms:category="


@transaction.atomic
def catalog_mirror(
    *, flavors: list[dict], images: list[dict], projects: dict[str, str], backend: str = ""
) -> dict[str, int]:
    """Upsert what a backend offers: projects mapped by name, flavors, and images by backend id.

    A provider image (``provider`` true: public, or owned by the provider's projects) tagged
    ``adminvms:category=<slug>`` is offered for that category. A project's private image
    (``owner`` names its backend project) is mirrored for that project alone: it never
    carries a category and its tags decide nothing; one whose project is not mapped here is
    skipped. Images match by backend id only, never by name: a same-named image never takes
    over a row. Nothing is deleted: instances may still refer to it.
    """
    counts = {"flavors": 0, "images": 0, "private_images": 0, "projects": 0}
    for project in Project.objects.filter(keystone_id=""):
        if project_id := projects.get(project.slug):
            project.keystone_id = project_id
            project.save(update_fields=["keystone_id"])
            counts["projects"] += 1
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
    owners = {p.keystone_id: p for p in Project.objects.exclude(keystone_id="")}
    for info in images:
        owner = None if info.get("provider", True) else owners.get(info.get("owner", ""))
        if owner is None and not info.get("provider", True):
            continue  # a private image of a project that has no place here
        image = Image.objects.filter(backend_id=info["backend_id"]).first() or Image(backend_id=info["backend_id"])
        image.name, image.kind, image.project, image.backend = info["name"], info["kind"], owner, backend
        image.min_ram_mb, image.min_disk_gb = info["min_ram_mb"], info["min_disk_gb"]
        if owner is None:
            slugs = [t.removeprefix(CATEGORY_TAG_PREFIX) for t in info["tags"] if t.startswith(CATEGORY_TAG_PREFIX)]
            image.tags = [t for t in info["tags"] if not t.startswith(CATEGORY_TAG_PREFIX)]
            image.save()
            if tagged := [categories[slug] for slug in slugs if slug in categories]:
                image.categories.set(tagged)
            counts["images"] += 1
        else:
            image.tags = []
            image.save()
            image.categories.clear()
            counts["private_images"] += 1
    return counts


# The backend metadata (Cinder) or label (Docker) naming the category a provider's volume serves.
VOLUME_CATEGORY_KEYS = ("adminvms:category", "adminvms.category")


def volume_category_slugs(metadata: dict[str, str]) -> set[str]:
    """The category slugs a volume's backend metadata (or label) names, comma-separated."""
    found = set()
    for key in VOLUME_CATEGORY_KEYS:
        found |= {slug.strip() for slug in (metadata.get(key) or "").split(",") if slug.strip()}
    return found


@transaction.atomic
def volumes_mirror(*, backend: str, volumes: list[dict], attached: dict[str, tuple[int, Any]]) -> dict[str, int]:
    """Upsert a backend's volumes by backend id, in bulk (the same few queries whatever their number).

    ``attached`` maps a server's backend id to the (category id, project id) of the live instance on it.
    A volume serves the categories the provider assigned it and those of the instances it is attached
    to. A provider's volume seen for the first time takes its assignment from its backend metadata
    (``adminvms:category``); from then on the assignment here rules, and changing it writes the
    metadata. A tenant writes her own volume's metadata, so it decides nothing (DESIGN.md rule 9). A
    tenant's volume belongs to her project (one with no place here is skipped); a provider's to the
    project of the instance it is attached to, else to nobody (the provider's). Volumes the backend no
    longer lists are marked gone, never deleted.
    """
    projects: dict[str, Project] = {}
    by_pk = {}
    for project in Project.objects.all():
        by_pk[project.pk] = project
        projects[project.slug] = project
        if project.keystone_id:
            projects[project.keystone_id] = project
    slugs = dict(InstanceCategory.objects.values_list("slug", "pk"))
    existing = {v.backend_id: v for v in Volume.objects.filter(backend=backend).prefetch_related("assigned_categories")}
    rows, wanted, seeded, seen = [], {}, {}, set()
    for info in volumes:
        if info["provider_owned"]:
            project = None
        elif (project := projects.get(info["backend_project"])) is None:
            continue  # a volume of a tenant project that has no place here
        links = [attached[s] for s in info["attachments"] if s in attached]
        if project is None and links:
            project = by_pk.get(links[0][1])
        volume = existing.get(info["backend_id"]) or Volume(backend=backend, backend_id=info["backend_id"])
        volume.name = info["name"][:255] or info["backend_id"]
        volume.size_gb, volume.status, volume.metadata = info["size_gb"], info["status"], info["metadata"]
        volume.attachments, volume.project, volume.gone_at = list(info["attachments"]), project, None
        volume.provider_owned = info["provider_owned"]
        if info["backend_id"] in existing:
            assigned = {c.pk for c in volume.assigned_categories.all()}
        else:
            metadata = volume_category_slugs(info["metadata"]) if info["provider_owned"] else set()
            assigned = seeded[info["backend_id"]] = {slugs[slug] for slug in metadata if slug in slugs}
        rows.append(volume)
        wanted[info["backend_id"]] = assigned | {category for category, _ in links}
        seen.add(info["backend_id"])
    fields = ["name", "size_gb", "status", "metadata", "attachments", "project", "gone_at", "provider_owned"]
    Volume.objects.bulk_update([v for v in rows if v.backend_id in existing], fields)
    Volume.objects.bulk_create([v for v in rows if v.backend_id not in existing])
    ids = {v.backend_id: v.pk for v in rows}
    through = Volume.categories.through
    through.objects.filter(volume_id__in=ids.values()).delete()
    through.objects.bulk_create(
        [through(volume_id=ids[b], instancecategory_id=c) for b, categories in wanted.items() for c in categories]
    )
    assigned_through = Volume.assigned_categories.through
    assigned_through.objects.bulk_create(
        [assigned_through(volume_id=ids[b], instancecategory_id=c) for b, cats in seeded.items() for c in cats]
    )
    gone = (
        Volume.objects.filter(backend=backend, gone_at__isnull=True)
        .exclude(backend_id__in=seen)
        .update(gone_at=timezone.now(), status="gone")
    )
    return {"volumes": len(rows), "gone": gone}


@transaction.atomic
def volume_assign(
    *, user, volume: Volume, categories: Iterable[InstanceCategory], attached: Iterable[InstanceCategory] = ()
) -> Volume:
    """The categories the provider assigns ``volume`` (replacing the earlier ones); it serves them and those of
    the instances it is attached to (``attached``). A tenant's own volume serves no managed category."""
    require(policy.can_manage_catalog(user))
    categories = list(categories)
    if not volume.provider_owned and (managed := [c.slug for c in categories if c.is_managed]):
        raise InvalidInput(
            f"Volume '{volume.name}' is a tenant's own; it serves no managed category ({', '.join(managed)}).",
            field="categories",
        )
    volume.assigned_categories.set(categories)
    volume.categories.set({*categories, *attached})
    return volume
