"""Reads of the catalog that more than one caller needs."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from .models import Image, InstanceCategory


def category_default_image(category: InstanceCategory) -> Image | None:
    """The category's fixed default image; else the newest active provider image offered for it:
    linked to the category (the cloud's ``adminvms:category=<slug>`` tag, or the console), or
    carrying its ``image_tag``. A project's private image is never a default."""
    if category.default_image_id:
        return category.default_image
    candidates = Image.objects.published().filter(is_active=True, kind=category.kind).order_by("-created_at", "-pk")
    linked = candidates.filter(categories=category).first()
    if not category.image_tag:
        return linked
    # SQLite (the embedded default) has no JSON containment lookup: the tags are compared here.
    tagged = next((image for image in candidates if category.image_tag in (image.tags or [])), None)
    return max((i for i in (linked, tagged) if i is not None), key=lambda i: (i.created_at, str(i.pk)), default=None)


def image_refusal(category: InstanceCategory, image: Image, project=None) -> str:
    """Why ``image`` cannot boot an instance of ``category`` in ``project``, or an empty string."""
    if not image.is_active:
        return f"Image '{image.name}' is not active."
    if image.project_id is not None:
        # A project's private image: its own user-category instances only, as the cloud would allow it.
        if category.is_managed:
            return f"Image '{image.name}' is a project's own image; '{category.slug}' instances boot the provider's."
        if project is None or image.project_id != project.pk:
            return f"Image '{image.name}' belongs to another project."
    if image.kind != category.kind:
        return f"Image '{image.name}' is a {image.kind} image; category '{category.slug}' runs {category.kind}s."
    if not image_offered(category, image):
        if category.is_managed:
            return (
                f"Image '{image.name}' is not offered for category '{category.slug}': its instances boot only "
                "the images the provider offers for it."
            )
        return f"Image '{image.name}' is not offered for category '{category.slug}'."
    return ""


def image_offered(category: InstanceCategory, image: Image) -> bool:
    """Whether ``image`` is offered for ``category``: linked to it, carrying its ``image_tag``, or its default
    image. An image linked to no category is generic: it boots ``user`` categories only, never what the
    provider runs for a tenant (rule 9: a stock image with well-known credentials on the management network)."""
    linked = [c.pk for c in image.categories.all()]
    if category.pk in linked or image.pk == category.default_image_id:
        return True
    if category.image_tag and category.image_tag in (image.tags or []):
        return True
    return not linked and not category.is_managed


def images_offered(category: InstanceCategory, queryset: QuerySet[Image]) -> QuerySet[Image]:
    """The images of ``queryset`` that can boot ``category`` now (``?category=`` of the image lists and EC2's
    ``DescribeImages``): active, of its kind, and offered for it as ``image_offered`` says."""
    offered = Q(categories=category)
    if category.default_image_id:
        offered |= Q(pk=category.default_image_id)
    if category.image_tag:
        # SQLite (the embedded default) has no JSON containment lookup: the tags are compared here.
        kind = Image.objects.filter(kind=category.kind)
        offered |= Q(pk__in=[pk for pk, tags in kind.values_list("pk", "tags") if category.image_tag in (tags or [])])
    if not category.is_managed:
        offered |= Q(categories__isnull=True)
    else:
        queryset = queryset.filter(project__isnull=True)
    return queryset.filter(offered, kind=category.kind, is_active=True).distinct()


def images_for(user, category: InstanceCategory, project=None) -> QuerySet[Image]:
    """The images ``user`` sees that may boot ``category`` in ``project``: what a launch form offers.

    ``image_refusal`` decides; the query only leaves out what it would refuse anyway (inactive,
    the other kind, other projects' own images), so the candidates stay few."""
    candidates = (
        Image.objects.visible_to(user)
        .filter(Q(project__isnull=True) | Q(project=project), is_active=True, kind=category.kind)
        .prefetch_related("categories")
    )
    accepted = [image.pk for image in candidates if not image_refusal(category, image, project)]
    return Image.objects.filter(pk__in=accepted)
