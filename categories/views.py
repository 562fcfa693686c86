"""Console pages of the catalog: categories, flavors, images, volumes.

Writes go through ``categories.services`` (the same functions the API calls);
their errors come back as form errors naming the field.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tenancy import policy
from tenancy.decorators import provider_admin_required
from tenancy.errors import DomainError

from . import services
from .filters import ImageFilterSet, VolumeFilterSet
from .forms import CategoryForm, FlavorForm
from .models import Flavor, Image, InstanceCategory, Volume


def _errors_to_form(form, exc: DomainError) -> None:
    for field, msgs in (exc.errors or {None: [exc.message]}).items():
        form.add_error(field if field in form.fields else None, msgs[0])


@provider_admin_required
def category_list(request):
    categories = InstanceCategory.objects.select_related("default_flavor").prefetch_related("allowed_flavors")
    rows = [
        {
            "category": c,
            "can_deactivate": bool(policy.can_deactivate_category(request.user, c)),
            "can_delete": bool(policy.can_delete_category(request.user, c)),
        }
        for c in categories
    ]
    return render(request, "console/categories.html", {"rows": rows})


@provider_admin_required
def category_edit(request, slug=None):
    category = get_object_or_404(InstanceCategory, slug=slug) if slug else None
    form = CategoryForm(request.POST or None, instance=category)
    if request.method == "POST" and form.is_valid():
        data, flavors = form.data_for_service()
        try:
            if category is None:
                category = services.category_create(user=request.user, data=data, allowed_flavors=flavors)
                messages.success(request, f"Category '{category.slug}' created.")
            else:
                category = services.category_update(
                    user=request.user, category=category, data=data, allowed_flavors=flavors
                )
                messages.success(request, f"Category '{category.slug}' saved.")
            return redirect("console-categories")
        except DomainError as exc:
            _errors_to_form(form, exc)
    return render(request, "console/category_form.html", {"form": form, "category": category})


def _category_action(service, done: str):
    """A POST-only console button that calls one category service and reports with a message."""

    @provider_admin_required
    @require_POST
    def view(request, slug):
        category = get_object_or_404(InstanceCategory, slug=slug)
        try:
            service(user=request.user, category=category)
            messages.success(request, done.format(slug=slug))
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("console-categories")

    return view


category_deactivate = _category_action(
    services.category_deactivate, "Category '{slug}' is inactive: it launches nothing, its instances keep running."
)
category_delete = _category_action(services.category_delete, "Category '{slug}' deleted.")


@provider_admin_required
def flavor_list(request):
    form = FlavorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            flavor = services.flavor_create(user=request.user, **form.cleaned_data)
            messages.success(request, f"Flavor '{flavor.name}' created.")
            return redirect("console-flavors")
        except DomainError as exc:
            _errors_to_form(form, exc)
    flavors = Flavor.objects.prefetch_related("categories")
    return render(request, "console/flavors.html", {"flavors": flavors, "form": form})


def _filtered(request, filterset_class, queryset):
    # Always bound (an empty query string too): an unbound FilterSet is never valid, and the page would be empty.
    filterset = filterset_class(request.GET, queryset=queryset, request=request)
    try:
        objects = filterset.qs if filterset.is_valid() else queryset.none()
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        objects = queryset.none()
    return Paginator(objects, 50).get_page(request.GET.get("page"))


@provider_admin_required
def image_list(request):
    page = _filtered(request, ImageFilterSet, Image.objects.select_related("project").prefetch_related("categories"))
    return render(request, "console/images.html", {"page": page, "categories": InstanceCategory.objects.all()})


@provider_admin_required
def volume_list(request):
    volumes = Volume.objects.select_related("project").prefetch_related("categories", "assigned_categories")
    page = _filtered(request, VolumeFilterSet, volumes)
    return render(request, "console/volumes.html", {"page": page, "categories": InstanceCategory.objects.all()})
