"""HTML views: the console's instance pages, the project portal, the appliance page.

Thin callers: lists start from ``Instance.objects.visible_to(user)`` (the
console's with the API's FilterSet), rows and buttons come from ``presentation``
(which asks the policy), and every change goes through ``instances.services``.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST

from adminvms_dashboard.paging import Paginator
from categories.models import Image, InstanceCategory, Volume
from tenancy import policy
from tenancy.decorators import provider_admin_required
from tenancy.errors import DomainError, NotFound
from tenancy.models import Project

from . import gui_origin, operations, presentation, selectors, services
from .choices import Status
from .drivers.base import DriverError
from .drivers.registry import enabled_backends
from .filters import InstanceFilterSet
from .forms import LaunchForm, RolloutForm
from .models import HealBreaker, Instance, Rollout


def _next_url(request, fallback: str) -> str:
    """The ``next`` the form names, if it stays on this site; else ``fallback``."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def _get_visible(request, instance_id) -> Instance:
    try:
        return selectors.instance_get_visible(user=request.user, instance_id=instance_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


def _current_project(request) -> Project | None:
    slug = request.session.get("project")
    if slug and (project := Project.objects.filter(policy.projects_q(request.user)).filter(slug=slug).first()):
        return project
    return None


# --- shared row endpoints ------------------------------------------------------------


def _row_response(request, instance: Instance, error: str = "") -> HttpResponse:
    """One row for htmx, with the columns of whoever asks; it tells the page (its timeline)
    that the instance may have changed."""
    user = request.user
    actions = selectors.open_actions([instance])
    context = {
        "row": presentation.instance_row(user, instance, actions.get(instance.pk), error),
        "columns": presentation.columns_for(user),
    }
    response = render(request, "instances/_row.html", context)
    response["HX-Trigger"] = "instance-changed"
    return response


@login_required
def instance_row(request, instance_id):
    """One row, for htmx polling of transitional instances."""
    return _row_response(request, _get_visible(request, instance_id))


@login_required
@require_POST
def instance_action(request, instance_id, op):
    """A row action of the operation table; answers the refreshed row to htmx, else redirects back."""
    instance = _get_visible(request, instance_id)
    row = operations.OPERATIONS.get(op)
    if row is None or not row.row_action:
        raise Http404("No such operation.")
    error = ""
    try:
        services.instance_act(user=request.user, instance=instance, operation=op, params=request.POST)
    except DomainError as exc:
        error = exc.message
    instance = _get_visible(request, instance_id)
    if request.htmx:
        return _row_response(request, instance, error)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"{row.label} of '{instance.name}' requested.")
    return redirect(_next_url(request, presentation.detail_url(request.user, instance)))


@login_required
def instance_timeline(request, instance_id):
    """The event timeline of an instance (a fragment; polled while it changes)."""
    instance = _get_visible(request, instance_id)
    return render(request, "instances/_timeline.html", _timeline_context(request, instance))


def _timeline_context(request, instance: Instance) -> dict:
    events = instance.events.select_related("action__requested_by").order_by("-created_at", "-id")[:50]
    return {
        "instance": instance,
        "events": presentation.timeline(request.user, events, instance),
        "poll": instance.is_transitional,
    }


def _health_history(request, instance: Instance) -> list[dict]:
    """The health verdicts of ``instance``, a server gone, and the heals that followed, newest first."""
    events = (
        instance.events.filter(Q(event__in=presentation.HEALTH_EVENTS) | Q(action__action="heal"))
        .select_related("action__requested_by")
        .order_by("-created_at", "-id")[:50]
    )
    return presentation.timeline(request.user, events, instance)


# --- launch ---------------------------------------------------------------------------------


@login_required
def launch(request):
    """The launch form, with the chosen category's defaults and the images it may boot; htmx re-renders
    it when the category or the project changes."""
    if not (verdict := policy.can_launch_somewhere(request.user)):
        raise PermissionDenied(verdict.reason)
    categories = request.GET.getlist("categories") or None
    launch_url = reverse("launch") + (f"?{urlencode({'categories': categories}, doseq=True)}" if categories else "")
    form_kwargs = {
        "user": request.user,
        "categories": categories,
        "project": _current_project(request),
        "refresh_url": launch_url,
    }
    if request.method == "POST":
        form = LaunchForm(request.POST, **form_kwargs)
        if form.is_valid():
            data = dict(form.cleaned_data)
            try:
                created = services.instance_launch(user=request.user, **data)
            except DomainError as exc:
                for field, msgs in (exc.errors or {None: [exc.message]}).items():
                    form.add_error(field if field in form.fields else None, msgs[0])
            else:
                names = ", ".join(i.name for i in created)
                messages.success(request, f"Launching {names}.")
                if len(created) == 1:
                    return redirect(presentation.detail_url(request.user, created[0]))
                return redirect("console-instances" if policy.is_provider_admin(request.user) else "portal")
    else:
        initial = {"category": request.GET.get("category")} if request.GET.get("category") else {}
        form = LaunchForm(initial=initial, **form_kwargs)
        if request.htmx and request.GET.get("category"):
            form = LaunchForm(request.GET, **form_kwargs)
            # A category or project the user may not launch in is not there (never a fallback's offer).
            if form.chosen_category is None or (request.GET.get("project") and form.chosen_project is None):
                raise Http404("No such category or project.")
            form.errors.clear()  # re-rendered for the new category, not submitted
    template = "instances/_launch_form.html" if request.htmx else "instances/launch.html"
    return render(request, template, {"form": form, "launch_url": launch_url})


# --- console --------------------------------------------------------------------------------


@provider_admin_required
def console_overview(request):
    counts, snapshot = services.overview_counts()
    context = {
        "overview": {**selectors.overview(request.user), **counts},
        "counted_at": snapshot.taken_at if snapshot else None,
        "health": counts["health"],
        "health_verdicts": presentation.HEALTH_SUMMARY,
    }
    return render(request, "console/overview.html", context)


@provider_admin_required
def console_adoption(request):
    """Adopt servers adminvms did not create: preview what the rules make of each (GET), then adopt the
    ones ticked (POST). The service decides; this page shows its plan and its outcome."""
    backends = enabled_backends()
    data = request.POST if request.method == "POST" else request.GET
    backend = data.get("backend") or backends[0]
    rules_choice = data.get("rules", "")
    context = {"backends": backends, "backend": backend, "rule_sets": sorted(services.BUILTIN_RULE_SETS),
               "rules_choice": rules_choice, "plan": None, "applied": False}  # fmt: skip
    try:
        if backend not in backends:
            raise NotFound(f"No enabled backend '{backend}'.")
        rules = services.rules_named(rules_choice) if rules_choice else services.rules_saved()
        if request.method == "POST":
            chosen = set(request.POST.getlist("server"))
            context["plan"] = services.adoption_apply(user=request.user, backend=backend, rules=rules, only=chosen)
            context["applied"] = True
            adopted = sum(c.verdict == "adopted" for c in context["plan"])
            messages.success(request, f"Adopted {adopted} server(s) from {backend}.")
        elif "backend" in request.GET:
            context["plan"] = services.adoption_plan(backend=backend, rules=rules)
    except DriverError as exc:
        messages.error(request, f"{backend}: {exc}")
    except DomainError as exc:
        messages.error(request, exc.message)
    return render(request, "console/adoption.html", context)


@provider_admin_required
@require_POST
def console_volume_categories(request, volume_id):
    """The console's volume list sets the categories the provider assigns a volume."""
    volume = Volume.objects.filter(pk=volume_id).first()
    if volume is None:
        raise Http404("No such volume.")
    return _categories_set(request, volume, services.volume_categories_set, "volume", "console-volumes")


@provider_admin_required
@require_POST
def console_image_categories(request, image_id):
    """The console's image list sets the categories an image is offered for."""
    image = Image.objects.filter(pk=image_id).first()
    if image is None:
        raise Http404("No such image.")
    return _categories_set(request, image, services.image_categories_set, "image", "console-images")


def _categories_set(request, item, assign, kind: str, back: str):
    chosen = list(InstanceCategory.objects.filter(slug__in=request.POST.getlist("categories")))
    try:
        note = assign(user=request.user, categories=chosen, **{kind: item})
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        names = ", ".join(sorted(c.slug for c in chosen)) or "none"
        messages.success(request, f"The {kind} {item.name} is assigned {names}. {note}".strip())
    return redirect(reverse(back))


@provider_admin_required
def console_instances(request):
    params = request.GET.copy()
    params.setdefault("category", "all")
    filterset = InstanceFilterSet(params, queryset=Instance.objects.for_list(), request=request)
    try:
        queryset = filterset.qs if filterset.is_valid() else Instance.objects.none()
        size = min(max(int(request.GET.get("page_size") or 25), 1), 200)
        page = Paginator(queryset, size).get_page(request.GET.get("page"))
    except (ValidationError, ValueError) as exc:
        messages.error(request, "; ".join(getattr(exc, "messages", [str(exc)])))
        page = Paginator(Instance.objects.none(), 25).get_page(1)
    context = {
        "page": page,
        "rows": presentation.instance_rows(request.user, page.object_list),
        "filters": params,
        "categories": InstanceCategory.objects.all(),
        "projects": Project.objects.all(),
        "statuses": Status.values,
        # The backends this deployment runs (a DISTINCT over the instances would read every row).
        "backends": enabled_backends(),
        "columns": presentation.columns_for(request.user),
        "query": _query_without(request, "page"),
        "sort_query": _query_without(request, "ordering", "page"),
    }
    return render(request, "console/instances.html", context)


def _query_without(request, *names) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


@provider_admin_required
def console_instance(request, instance_id):
    instance = _get_visible(request, instance_id)
    return render(request, "instances/detail.html", _detail_context(request, instance))


def _detail_context(request, instance) -> dict:
    actions = selectors.open_actions([instance])
    fields = presentation.instance_detail(request.user, instance)
    checked = instance.category.health_check_port is not None or bool(instance.health)
    return {
        "row": presentation.instance_row(request.user, instance, actions.get(instance.pk)),
        "instance": instance,
        "fields": fields,
        "created_by": presentation.shown_account(request.user, instance.created_by) if instance.created_by_id else "",
        "columns": presentation.columns_for(request.user),
        # The health card: the verdict and, where the viewer reads more than healthy or degraded, its history.
        "health_checked": checked,
        "health": presentation.health_badge(request.user, instance),
        "health_history": _health_history(request, instance) if checked and not fields["restricted"] else [],
        "maintenance": presentation.maintenance(instance),
        **_timeline_context(request, instance),
    }


# --- the fleet: rollouts and auto-heal breakers ------------------------------------------------


@provider_admin_required
def console_rollouts(request):
    """Rollouts: start one (the service picks the newest tagged image when none is chosen), and the list,
    whose running rows refresh themselves."""
    form = RolloutForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            rollout = services.rollout_start(user=request.user, **form.cleaned_data)
        except DomainError as exc:
            for field, msgs in (exc.errors or {None: [exc.message]}).items():
                form.add_error(field if field in form.fields else None, msgs[0])
        else:
            messages.success(
                request,
                f"Rollout of {rollout.category.slug} to {rollout.image.name} started ({rollout.total} to replace).",
            )
            return redirect("console-rollouts")
    rollouts = Rollout.objects.select_related("category", "image", "created_by").order_by("-created_at")
    page = Paginator(rollouts, 25).get_page(request.GET.get("page"))
    progress = services.rollouts_progress(page.object_list)
    rows = [presentation.rollout_row(r, progress[r.pk]) for r in page.object_list]
    breakers = HealBreaker.objects.select_related("resumed_by").order_by("-opened_at")[:10]
    return render(request, "console/rollouts.html", {"form": form, "page": page, "rows": rows, "breakers": breakers})


def _rollout_row_response(request, rollout_id, error: str = "") -> HttpResponse:
    rollout = get_object_or_404(Rollout.objects.select_related("category", "image", "created_by"), pk=rollout_id)
    row = presentation.rollout_row(rollout, services.rollout_progress(rollout), error)
    return render(request, "console/_rollout_row.html", {"row": row})


@provider_admin_required
def console_rollout_row(request, rollout_id):
    """One rollout's row, for htmx polling while it runs."""
    return _rollout_row_response(request, rollout_id)


@provider_admin_required
@require_POST
def console_rollout_verb(request, rollout_id, verb):
    """Pause, resume or abort a rollout; answers the refreshed row to htmx, else redirects back."""
    rollout = get_object_or_404(Rollout, pk=rollout_id)
    error = ""
    try:
        rollout = services.rollout_set(user=request.user, rollout=rollout, verb=verb)
    except DomainError as exc:
        error = exc.message
    if request.htmx:
        return _rollout_row_response(request, rollout_id, error)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"The rollout of {rollout.category.slug} is {rollout.status} now.")
    return redirect("console-rollouts")


@provider_admin_required
@require_POST
def console_breaker_resume(request, breaker_id):
    """The banner's "Resume auto-heal": the breaker closes, auto-heal resumes where it opened."""
    breaker = get_object_or_404(HealBreaker, pk=breaker_id)
    try:
        services.breaker_resume(user=request.user, breaker=breaker)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Auto-heal resumed for {breaker.scope} '{breaker.key}'.")
    return redirect(_next_url(request, reverse("console")))


# --- portal ---------------------------------------------------------------------------------


@login_required
def portal(request):
    """The member's standard (and other user-managed) instances, in the current project or all of theirs."""
    project = _current_project(request)
    queryset = Instance.objects.for_list().visible_to(request.user).live().user_managed()
    if project is not None:
        queryset = queryset.filter(project=project)
    page = Paginator(queryset, 25).get_page(request.GET.get("page"))
    return render(
        request,
        "portal/instances.html",
        {
            "page": page,
            "rows": presentation.instance_rows(request.user, page.object_list),
            "project": project,
            "columns": presentation.columns_for(request.user),
            "can_launch": bool(policy.can_launch_somewhere(request.user)),
        },
    )


@login_required
def portal_appliances(request):
    """The appliance categories the member may see, each with a page of its instances (``?<slug>-page=``)."""
    project = _current_project(request)
    categories = InstanceCategory.objects.visible_to(request.user).managed().filter(is_active=True).order_by("name")
    instances = Instance.objects.for_list().visible_to(request.user).live().order_by("-created_at", "pk")
    if project is not None:
        instances = instances.filter(project=project)
    sections = []
    for category in categories:
        param = f"{category.slug}-page"
        page = Paginator(instances.filter(category=category), 25).get_page(request.GET.get(param))
        sections.append(
            {
                "category": category,
                "can_launch": bool(policy.can_launch_somewhere(request.user, category)),
                "rows": presentation.instance_rows(request.user, page.object_list),
                "page": page,
                "page_param": param,
                "query": _query_without(request, param),
            }
        )
    context = {
        "sections": sections,
        "project": project,
        "columns": presentation.columns_for(request.user),
    }
    return render(request, "portal/appliances.html", context)


@login_required
def portal_instance(request, instance_id):
    instance = _get_visible(request, instance_id)
    if policy.sees_restricted_view(request.user, instance):
        return redirect("portal-appliance", instance_id=instance.pk)
    return render(request, "instances/detail.html", _detail_context(request, instance))


@login_required
def appliance_detail(request, instance_id):
    """The restricted appliance page: status, the allowed operations, the GUI link; never an address."""
    instance = _get_visible(request, instance_id)
    context = _detail_context(request, instance)
    context["gui"] = policy.can(request.user, "appliance_gui", instance)
    context["has_gui"] = bool(instance.category.gui_port)
    return render(request, "portal/appliance.html", context)


@login_required
def appliance_gui(request, instance_id):
    """The "Open appliance GUI" button: a ticket to the appliance's own origin, where its GUI runs (rule 9).

    The GUI never runs on this origin. A POST with this origin's CSRF token, so that
    no other site can push a viewer into an appliance's GUI session; a GET (an old
    link) lands on the appliance page and its button.
    """
    if request.method != "POST":
        return redirect("portal-appliance", instance_id=instance_id)
    instance = _get_visible(request, instance_id)
    try:
        token = services.gui_ticket_issue(user=request.user, instance=instance, session_key=request.session.session_key)
    except DomainError as exc:
        return _gui_error(request, instance, exc.message, exc.status)
    origin = gui_origin.gui_origin(request, instance.pk)
    return redirect(f"{origin}/__adminvms__/ticket?{urlencode({'t': token})}")


def _gui_error(request, instance, message: str, status: int):
    return render(request, "portal/gui_error.html", {"instance": instance, "message": message}, status=status)


@login_required
@require_POST
def switch_project(request):
    slug = request.POST.get("project", "")
    if not slug:
        request.session.pop("project", None)
    elif Project.objects.filter(policy.projects_q(request.user)).filter(slug=slug).exists():
        request.session["project"] = slug
    else:
        raise Http404("No such project.")
    return redirect(_next_url(request, reverse("home")))


@login_required
def home(request):
    return redirect("console" if policy.is_provider_admin(request.user) else "portal")


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")
