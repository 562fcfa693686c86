"""HTML views: the console's instance pages, the project portal, the appliance page.

Thin callers: lists start from ``Instance.objects.visible_to(user)`` and the
shared FilterSet, buttons come from the policy's ``can_*`` answers, and every
change goes through ``instances.services``.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from categories.choices import Management
from categories.models import InstanceCategory
from tenancy import policy
from tenancy.decorators import provider_admin_required
from tenancy.errors import DomainError, NotFound
from tenancy.models import Project

from . import proxy, selectors, services
from .choices import Status
from .filters import InstanceFilterSet
from .forms import LaunchForm
from .models import Instance

ACTION_LABELS = {
    "reboot": ("Reboot", "bi-arrow-clockwise", False),
    "stop": ("Stop", "bi-stop-circle", True),
    "start": ("Start", "bi-play-circle", False),
    "terminate": ("Terminate", "bi-trash", True),
}
POLL_SECONDS = 2


def detail_url(user, instance: Instance) -> str:
    if policy.is_provider_admin(user):
        return reverse("console-instance", args=[instance.pk])
    if instance.category.management == Management.USER:
        return reverse("portal-instance", args=[instance.pk])
    return reverse("portal-appliance", args=[instance.pk])


def _get_visible(request, instance_id) -> Instance:
    try:
        return services.instance_get_visible(user=request.user, instance_id=instance_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


def _row(request, instance: Instance, action=None, error: str = "") -> dict:
    """What one table row shows: the operations the policy allows now, progress, polling."""
    user = request.user
    ops = [
        {"op": op, "label": label, "icon": icon, "confirm": confirm}
        for op, (label, icon, confirm) in ACTION_LABELS.items()
        if policy.can(user, op, instance)
    ]
    return {
        "instance": instance,
        "ops": ops,
        "progress": selectors.launch_progress(instance, action),
        "poll": instance.is_transitional,
        "url": detail_url(user, instance),
        "error": error,
    }


def _rows(request, instances) -> list[dict]:
    actions = selectors.open_actions(instances)
    return [_row(request, i, actions.get(i.pk)) for i in instances]


def _current_project(request) -> Project | None:
    slug = request.session.get("project")
    if slug and (project := Project.objects.filter(policy.projects_q(request.user)).filter(slug=slug).first()):
        return project
    return None


# --- shared row endpoints ------------------------------------------------------------


@login_required
def instance_row(request, instance_id):
    """One row, for htmx polling of transitional instances."""
    instance = _get_visible(request, instance_id)
    columns = request.GET.get("columns", "portal")
    actions = selectors.open_actions([instance])
    context = {"row": _row(request, instance, actions.get(instance.pk)), "columns": columns}
    return _row_response(request, context)


def _row_response(request, context) -> HttpResponse:
    """A row for htmx; it tells the page (its timeline) that the instance may have changed."""
    response = render(request, "instances/_row.html", context)
    response["HX-Trigger"] = "instance-changed"
    return response


@login_required
@require_POST
def instance_action(request, instance_id, op):
    """Reboot, stop, start or terminate; answers the refreshed row to htmx, else redirects back."""
    instance = _get_visible(request, instance_id)
    if op not in ACTION_LABELS:
        raise Http404("No such operation.")
    error = ""
    try:
        if op == "terminate":
            services.instance_terminate(user=request.user, instance=instance)
        elif op == "reboot":
            services.instance_reboot(user=request.user, instance=instance, hard=request.POST.get("hard") == "1")
        else:
            services.ACTIONS[op](user=request.user, instance=instance)
    except DomainError as exc:
        error = exc.message
    instance = _get_visible(request, instance_id)
    if request.htmx:
        actions = selectors.open_actions([instance])
        columns = request.POST.get("columns", "portal")
        context = {"row": _row(request, instance, actions.get(instance.pk), error), "columns": columns}
        return _row_response(request, context)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"{ACTION_LABELS[op][0]} of '{instance.name}' requested.")
    return redirect(request.POST.get("next") or detail_url(request.user, instance))


@login_required
def instance_timeline(request, instance_id):
    """The event timeline of an instance (a fragment; polled while it changes)."""
    instance = _get_visible(request, instance_id)
    return render(request, "instances/_timeline.html", _timeline_context(instance))


def _timeline_context(instance: Instance) -> dict:
    events = instance.events.select_related("action__requested_by").order_by("-created_at", "-id")[:50]
    return {"instance": instance, "events": events, "poll": instance.is_transitional}


# --- launch ---------------------------------------------------------------------------------


@login_required
def launch(request):
    """The launch form, with the chosen category's defaults; htmx re-renders it when the category changes."""
    if not (verdict := policy.can_launch_somewhere(request.user)):
        raise PermissionDenied(verdict.reason)
    categories = request.GET.getlist("categories") or None
    form_kwargs = {"user": request.user, "categories": categories, "project": _current_project(request)}
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
                    return redirect(detail_url(request.user, created[0]))
                return redirect("console-instances" if policy.is_provider_admin(request.user) else "portal")
    else:
        initial = {"category": request.GET.get("category")} if request.GET.get("category") else {}
        form = LaunchForm(initial=initial, **form_kwargs)
        if request.htmx and request.GET.get("category"):
            form = LaunchForm(request.GET, **form_kwargs)
            form.errors.clear()  # re-rendered for the new category, not submitted
    template = "instances/_launch_form.html" if request.htmx else "instances/launch.html"
    return render(request, template, {"form": form, "categories_param": categories})


# --- console --------------------------------------------------------------------------------


@provider_admin_required
def console_overview(request):
    return render(request, "console/overview.html", {"overview": selectors.overview(request.user)})


@provider_admin_required
def console_instances(request):
    params = request.GET.copy()
    params.setdefault("category", "all")
    filterset = InstanceFilterSet(params, queryset=Instance.objects.with_related(), request=request)
    try:
        queryset = filterset.qs if filterset.is_valid() else Instance.objects.none()
        page = Paginator(queryset, min(int(request.GET.get("page_size") or 25), 200)).get_page(request.GET.get("page"))
    except (ValidationError, ValueError) as exc:
        messages.error(request, "; ".join(getattr(exc, "messages", [str(exc)])))
        page = Paginator(Instance.objects.none(), 25).get_page(1)
    context = {
        "page": page,
        "rows": _rows(request, page.object_list),
        "filters": params,
        "categories": InstanceCategory.objects.all(),
        "projects": Project.objects.all(),
        "statuses": Status.values,
        "backends": sorted(set(Instance.objects.values_list("backend", flat=True).distinct())),
        "columns": "console",
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
    return render(request, "instances/detail.html", _detail_context(request, instance, "console"))


def _detail_context(request, instance, columns) -> dict:
    actions = selectors.open_actions([instance])
    return {
        "row": _row(request, instance, actions.get(instance.pk)),
        "instance": instance,
        "fields": selectors.instance_detail(request.user, instance),
        "columns": columns,
        **_timeline_context(instance),
    }


# --- portal ---------------------------------------------------------------------------------


@login_required
def portal(request):
    """The member's standard (and other user-managed) instances, in the current project or all of theirs."""
    project = _current_project(request)
    queryset = Instance.objects.with_related().visible_to(request.user).live()
    queryset = queryset.filter(category__management=Management.USER)
    if project is not None:
        queryset = queryset.filter(project=project)
    page = Paginator(queryset, 25).get_page(request.GET.get("page"))
    return render(
        request,
        "portal/instances.html",
        {
            "page": page,
            "rows": _rows(request, page.object_list),
            "project": project,
            "columns": "portal",
            "can_launch": bool(policy.can_launch_somewhere(request.user)),
        },
    )


@login_required
def portal_appliances(request):
    """The appliance categories the member may see, each with its instances."""
    project = _current_project(request)
    categories = (
        InstanceCategory.objects.visible_to(request.user)
        .exclude(management=Management.USER)
        .filter(is_active=True)
        .order_by("name")
    )
    instances = Instance.objects.with_related().visible_to(request.user).live().filter(category__in=categories)
    if project is not None:
        instances = instances.filter(project=project)
    rows = _rows(request, list(instances))
    sections = [
        {
            "category": category,
            "can_launch": bool(policy.can_launch_somewhere(request.user, category)),
            "rows": [r for r in rows if r["instance"].category_id == category.pk],
        }
        for category in categories
    ]
    context = {
        "sections": sections,
        "project": project,
        "columns": "portal",
    }
    return render(request, "portal/appliances.html", context)


@login_required
def portal_instance(request, instance_id):
    instance = _get_visible(request, instance_id)
    if instance.category.management != Management.USER and not policy.is_provider_admin(request.user):
        return redirect("portal-appliance", instance_id=instance.pk)
    return render(request, "instances/detail.html", _detail_context(request, instance, "portal"))


@login_required
def appliance_detail(request, instance_id):
    """The restricted appliance page: status, the allowed operations, the GUI link; never an address."""
    instance = _get_visible(request, instance_id)
    context = _detail_context(request, instance, "portal")
    context["gui_allowed"] = bool(policy.can_appliance_gui(request.user, instance))
    context["has_gui"] = bool(instance.category.gui_port and instance.management_endpoint)
    return render(request, "portal/appliance.html", context)


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@csrf_exempt  # the appliance's own forms carry no dashboard token; same-origin is checked below instead
@login_required
def appliance_gui(request, instance_id, path=""):
    """The appliance's own web GUI, through the dashboard (DESIGN.md §5)."""
    instance = _get_visible(request, instance_id)
    verdict = policy.can_appliance_gui(request.user, instance)
    if not verdict:
        status = {policy.Denial.NOT_FOUND: 404, policy.Denial.FORBIDDEN: 403}.get(verdict.denial, 409)
        return _gui_error(request, instance, verdict.reason, status)
    if request.method not in SAFE_METHODS and not _same_origin(request):
        return _gui_error(request, instance, "Cross-site requests to the appliance GUI are refused.", 403)
    if instance.backend == "sim":
        # The simulated cloud runs nothing: it shows what the proxy would, labelled as simulated.
        return render(request, "portal/gui_simulated.html", {"instance": instance, "path": path})
    prefix = reverse("portal-appliance-gui", args=[instance.pk])
    try:
        endpoint = proxy.parse_endpoint(instance.management_endpoint)
        upstream = proxy.upstream_path(path, instance.category.gui_path or "/")
        status, headers, body, release = proxy.forward(request, endpoint=endpoint, path=upstream, prefix=prefix)
    except proxy.ProxyRefused as exc:
        return _gui_error(request, instance, str(exc), exc.status)
    response = StreamingHttpResponse(body, status=status)
    for name, value in headers:
        response[name] = value
    response._resource_closers.append(release)
    return response


def _same_origin(request) -> bool:
    origin = request.headers.get("Origin") or request.headers.get("Referer") or ""
    return origin.startswith(f"{request.scheme}://{request.get_host()}/") or origin == (
        f"{request.scheme}://{request.get_host()}"
    )


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
    return redirect(request.POST.get("next") or "home")


@login_required
def home(request):
    return redirect("console" if policy.is_provider_admin(request.user) else "portal")


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")
