"""Adoption: servers and containers adminvms did not create, matched to categories by the
provider's rules and taken over, so that from then on code checks the category, never metadata.

``adoption_plan`` is the dry run: every foreign server of a backend with the category and
project the rules give it, or why none. ``adoption_apply`` stamps each adoptable one at the
backend as a create would have (and locks managed ones) and writes its row with what the
backend reported, one server at a time: a server gone since the preview is reported, not
half-adopted, and a second run finds nothing new.

Trust (DESIGN.md rule 9): names and metadata of a server in a tenant's own project are the
tenant's to write, so they never make it a provider-managed instance on their own. A rule
takes such servers into a managed category only with ``tenant_servers`` and a criterion the
tenant cannot forge (a flavor or an image id).
"""

from __future__ import annotations

import fnmatch
import uuid
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q

from categories.models import AdoptionRule, Flavor, Image, InstanceCategory, tenant_servers_refusal
from tenancy import policy
from tenancy.errors import InvalidInput, require
from tenancy.models import Project

from ..choices import Status
from ..drivers.base import AdoptSpec, DriverError, ForeignServer, ServerNotFound, ServerStatus, stamp_metadata
from ..drivers.registry import get_driver
from ..models import Instance
from .records import event_record

# The rule sets that ship with adminvms, by name (``adopt_instances --rules vpn``).
BUILTIN_RULES: dict[str, list[dict]] = {
    # VPN servers started by an older special-purpose code path, in the provider's own project
    # (or on its Docker engine), serving the project their metadata or labels name.
    "vpn": [
        {"name": "vpn-legacy-metadata", "category": "vpn", "priority": 20, "backend": "openstack",
         "metadata_key": "adminvms-legacy", "metadata_value": "vpn", "project_key": "adminvms-project"},
        {"name": "vpn-name-suffix", "category": "vpn", "priority": 10, "backend": "openstack",
         "name_pattern": "*-vpn", "project_key": "adminvms-project"},
        {"name": "vpn-container", "category": "vpn", "priority": 10, "backend": "docker",
         "name_pattern": "*-vpn", "image": "*vpn*", "project_key": "adminvms.project"},
        {"name": "vpn-sim", "category": "vpn", "priority": 10, "backend": "sim",
         "name_pattern": "*-vpn", "project_key": "adminvms-project"},
    ],
}  # fmt: skip

_RULE_FIELDS = {"name", "category", "priority", "backend", "metadata_key", "metadata_value", "name_pattern", "image",
                "flavor", "project", "project_key", "tenant_servers"}  # fmt: skip
_ADOPTABLE = {ServerStatus.ACTIVE: Status.ACTIVE, ServerStatus.STOPPED: Status.STOPPED,
              ServerStatus.ERROR: Status.ERROR}  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """One rule, from the database (``AdoptionRule``), a built-in set or a file."""

    name: str
    category: InstanceCategory
    priority: int = 0
    backend: str = ""
    metadata_key: str = ""
    metadata_value: str = ""
    name_pattern: str = ""
    image: str = ""
    flavor: str = ""
    project: Project | None = None
    project_key: str = ""
    tenant_servers: bool = False


def rules_saved() -> list[Rule]:
    """The active rules saved in the catalog (the console's and the default of ``adopt_instances``).

    Each passes the same check as a file's: a row saved past the admin's form (an older version, a
    shell, a fixture) that fails it is refused, naming the rule, rather than applied."""
    rules = [
        Rule(**{f: getattr(r, f) for f in _RULE_FIELDS})
        for r in AdoptionRule.objects.filter(is_active=True).select_related("category", "project")
    ]
    for rule in rules:
        if problem := _rule_problem(rule):
            raise InvalidInput(f"Saved rule {rule.name}: {problem}", field="rules")
    return rules


def rules_from(entries: list[dict]) -> list[Rule]:
    """Rules from plain data (a built-in set, a JSON file): each names its category and project by slug.

    Every problem is an ``InvalidInput`` naming the rule and the field.
    """
    if not isinstance(entries, list) or not entries:
        raise InvalidInput("Rules are a non-empty list of objects.", field="rules")
    rules = []
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise InvalidInput(f"Rule {n} is not an object.", field="rules")
        label = f"Rule {n} ({entry.get('name', 'unnamed')})"
        if unknown := set(entry) - _RULE_FIELDS:
            raise InvalidInput(f"{label}: unknown field(s) {', '.join(sorted(unknown))}.", field="rules")
        data = dict(entry)
        data.setdefault("name", f"rule-{n}")
        category = InstanceCategory.objects.filter(slug=data.get("category")).first()
        if category is None:
            raise InvalidInput(f"{label}: no category '{data.get('category')}'.", field="rules")
        data["category"] = category
        if data.get("project") is not None:
            project = Project.objects.filter(slug=data["project"]).first()
            if project is None:
                raise InvalidInput(f"{label}: no project '{data['project']}'.", field="rules")
            data["project"] = project
        try:
            rule = Rule(**data)
            if not isinstance(rule.priority, int) or not isinstance(rule.tenant_servers, bool):
                raise TypeError
        except TypeError:
            raise InvalidInput(
                f"{label}: priority is a number and tenant_servers true or false.", field="rules"
            ) from None
        if problem := _rule_problem(rule):
            raise InvalidInput(f"{label}: {problem}", field="rules")
        rules.append(rule)
    return rules


def _rule_problem(rule: Rule) -> str:
    for name in ("backend", "metadata_key", "metadata_value", "name_pattern", "image", "flavor", "project_key"):
        if not isinstance(getattr(rule, name), str):
            return f"{name} is a string."
    if not any([rule.metadata_key, rule.name_pattern, rule.image, rule.flavor, rule.project]):
        return "a rule needs at least one criterion: metadata_key, name_pattern, image, flavor or project."
    return tenant_servers_refusal(rule)


def rules_named(name: str) -> list[Rule]:
    """A built-in rule set by name."""
    if name not in BUILTIN_RULES:
        raise InvalidInput(f"No built-in rule set '{name}'; there are: {', '.join(BUILTIN_RULES)}.", field="rules")
    return rules_from(BUILTIN_RULES[name])


@dataclass
class Candidate:
    """A foreign server and what the rules make of it."""

    backend: str
    server: ForeignServer
    verdict: str = "unmatched"  # adopt, ambiguous, unmatched, no-project, busy; after apply: adopted, gone, failed
    category: InstanceCategory | None = None
    rule: str = ""
    project: Project | None = None
    reasons: list[str] = field(default_factory=list)
    instance: Instance | None = None

    @property
    def adoptable(self) -> bool:
        return self.verdict == "adopt"

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)


def _project_of(server: ForeignServer, rule: Rule, projects: dict[str, Project]) -> tuple[Project | None, str]:
    """The project an adopted server serves: a tenant's own server stays its project's; else the project its
    metadata names under the rule's ``project_key``; else the rule's project."""
    if not server.provider_owned:
        found = projects.get(server.backend_project)
        return found, "" if found else f"lives in backend project {server.backend_project}, which maps to none here"
    if rule.project_key:
        value = server.metadata.get(rule.project_key, "")
        if value:
            found = projects.get(value)
            return found, "" if found else f"its {rule.project_key} names no project here ('{value}')"
    return rule.project, "" if rule.project else "names no project (no project_key value, no project in the rule)"


def _match(rule: Rule, server: ForeignServer, backend: str, projects: dict[str, Project]):
    """(project, "") when ``rule`` takes ``server``; (None, why not) otherwise."""
    if rule.backend and rule.backend != backend:
        return None, f"is for backend {rule.backend}"
    if rule.metadata_key:
        if rule.metadata_key not in server.metadata:
            return None, f"needs metadata {rule.metadata_key}"
        if rule.metadata_value and server.metadata[rule.metadata_key] != rule.metadata_value:
            return None, f"needs {rule.metadata_key}={rule.metadata_value}"
    if rule.name_pattern and not fnmatch.fnmatchcase(server.name, rule.name_pattern):
        return None, f"needs a name like {rule.name_pattern}"
    # A tenant names her own images as she likes: her server's image matches by its id alone.
    named_alike = server.provider_owned and fnmatch.fnmatchcase(server.image_name, rule.image)
    if rule.image and rule.image != server.image_id and not named_alike:
        return None, f"needs image {rule.image}"
    if rule.flavor and rule.flavor != server.flavor:
        return None, f"needs flavor {rule.flavor}"
    if rule.category.kind != server.kind:
        return None, f"its category runs {rule.category.kind}s, this is a {server.kind}"
    if not server.provider_owned and rule.category.is_managed and not rule.tenant_servers:
        return None, "takes no server of a tenant's own project into a managed category"
    project, why = _project_of(server, rule, projects)
    if project is None:
        return None, why
    if rule.project is not None and project != rule.project:
        return None, f"is for project {rule.project.slug}, the server serves {project.slug}"
    return project, ""


def _projects() -> dict[str, Project]:
    """Projects by every name a backend may use: Keystone id and slug."""
    found = {}
    for project in Project.objects.all():
        found[project.slug] = project
        if project.keystone_id:
            found[project.keystone_id] = project
    return found


def adoption_plan(*, backend: str, rules: list[Rule]) -> list[Candidate]:
    """The dry run: each server of ``backend`` that has no row here, with its category, rule and project, or why
    it has none. One listing call to the backend."""
    servers = get_driver(backend).list_foreign()
    known = set(
        Instance.objects.filter(backend=backend, backend_id__in=[s.backend_id for s in servers]).values_list(
            "backend_id", flat=True
        )
    )
    projects = _projects()
    ordered = sorted(rules, key=lambda r: (-r.priority, r.name))
    plan = []
    for server in sorted(servers, key=lambda s: (s.name, s.backend_id)):
        if server.backend_id in known:
            continue  # adopted before (Docker cannot carry our stamp, so its row is how we know)
        candidate = Candidate(backend=backend, server=server)
        matches = []
        for rule in ordered:
            project, why = _match(rule, server, backend, projects)
            if project is None:
                candidate.reasons.append(f"{rule.name} {why}")
            else:
                matches.append((rule, project))
        if matches:
            top = [m for m in matches if m[0].priority == matches[0][0].priority]
            if len({(rule.category.pk, project.pk) for rule, project in top}) > 1:
                candidate.verdict = "ambiguous"
                candidate.reasons = [
                    f"rules {', '.join(r.name for r, _ in top)} of priority {top[0][0].priority} disagree; left alone"
                ]
            else:
                (rule, project), candidate.reasons = top[0], []
                candidate.verdict, candidate.rule, candidate.category, candidate.project = (
                    "adopt",
                    rule.name,
                    rule.category,
                    project,
                )
                if server.status not in _ADOPTABLE:
                    candidate.verdict = "busy"
                    candidate.reasons = [f"is {server.status}; adopt it once it settles"]
                elif not server.provider_owned:
                    candidate.reasons = [f"lives in project {project.slug}'s own backend project and stays there"]
        elif not rules:
            candidate.reasons = ["no rules"]
        plan.append(candidate)
    return plan


def adoption_apply(*, user=None, backend: str, rules: list[Rule], only: set[str] | None = None) -> list[Candidate]:
    """Adopt what the plan says (``only``: these backend ids of it). A provider admin's act (``user``; ``None`` is
    the operator at the command line). Returns the plan with each adopted, gone or failed candidate marked."""
    if user is not None:
        require(policy.can_adopt(user))
    plan = adoption_plan(backend=backend, rules=rules)
    driver = get_driver(backend)
    # Asked for by id (the console's preview) but no longer there to adopt: gone, or adopted meanwhile.
    for backend_id in sorted((only or set()) - {c.server.backend_id for c in plan}):
        server = ForeignServer(backend_id=backend_id, name=backend_id, kind="", status=ServerStatus.DELETING)
        plan.append(Candidate(backend=backend, server=server, verdict="gone",
                              reasons=["no longer on the backend to adopt (gone, or adopted meanwhile)"]))  # fmt: skip
    for candidate in plan:
        if not candidate.adoptable or (only is not None and candidate.server.backend_id not in only):
            continue
        try:
            candidate.instance = _adopt(driver, candidate, user)
            candidate.verdict = "adopted"
        except ServerNotFound:
            candidate.verdict, candidate.reasons = "gone", ["vanished from the backend before it was stamped"]
        except DriverError as exc:
            candidate.verdict, candidate.reasons = "failed", [str(exc)]
    return plan


@transaction.atomic
def _adopt(driver, candidate: Candidate, user) -> Instance:
    """The row and the stamp together: a stamp the backend refuses leaves no row."""
    server, category, project = candidate.server, candidate.category, candidate.project
    instance_id = uuid.uuid4()
    # The backend is asked first, inside the transaction: a refused stamp rolls the row back with it.
    info = driver.adopt(
        server.backend_id,
        AdoptSpec(
            instance_id=str(instance_id),
            name=server.name,
            category=category.slug,
            project=project.slug,
            managed=category.is_managed,
        ),
    )
    flavor = (
        Flavor.objects.filter(Q(backend_id=server.flavor) | Q(name=server.flavor)).first() if server.flavor else None
    )
    image = Image.objects.filter(backend_id=server.image_id).first() if server.image_id else None
    instance = Instance.objects.create(
        id=instance_id,
        name=server.name[:255] or server.backend_id,
        category=category,
        project=project,
        flavor=flavor,
        image=image,
        status=_ADOPTABLE.get(info.status, Status.ERROR),
        backend=candidate.backend,
        backend_id=server.backend_id,
        host=info.host or server.host,
        availability_zone=server.availability_zone,
        addresses=info.addresses,
        management_endpoint=info.management_endpoint,
        fault=info.fault,
        metadata={**server.metadata, **stamp_metadata(instance_id, category.slug, project.slug)},
        created_by=user if getattr(user, "is_authenticated", False) else None,
        launched_at=server.created_at,
    )
    if server.created_at:  # the backend's creation time, not the adoption's
        Instance.objects.filter(pk=instance.pk).update(created_at=server.created_at)
        instance.created_at = server.created_at
    where = "in the provider's project" if server.provider_owned else f"in project {project.slug}'s own, where it stays"
    event_record(
        instance.pk,
        None,
        "adopted",
        message=f"adopted from {candidate.backend} server {server.backend_id} "
        f"({where}) by rule {candidate.rule}{'; locked' if category.is_managed and info.locked else ''}",
    )
    return instance
