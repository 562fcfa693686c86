"""Reads of the catalog that more than one caller needs."""

from __future__ import annotations

from .models import Image, InstanceCategory


def category_default_image(category: InstanceCategory) -> Image | None:
    """The category's fixed default image, else the newest active image carrying its ``image_tag``."""
    if category.default_image_id:
        return category.default_image
    if not category.image_tag:
        return None
    candidates = Image.objects.filter(is_active=True, kind=category.kind).order_by("-created_at")
    return next((image for image in candidates if category.image_tag in (image.tags or [])), None)


def image_refusal(category: InstanceCategory, image: Image) -> str:
    """Why ``image`` cannot boot an instance of ``category``, or an empty string."""
    if not image.is_active:
        return f"Image '{image.name}' is not active."
    if image.kind != category.kind:
        return f"Image '{image.name}' is a {image.kind} image; category '{category.slug}' runs {category.kind}s."
    tagged = [c.pk for c in image.categories.all()]
    if tagged and category.pk not in tagged:
        return f"Image '{image.name}' is not offered for category '{category.slug}'."
    return ""
