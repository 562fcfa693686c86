"""Demo data with fixed names (DESIGN.md §7). Running it twice changes nothing."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from categories import services as catalog
from categories.models import Flavor, Image, InstanceCategory
from instances import services
from instances.drivers.registry import enabled_backends
from tenancy import services as tenancy
from tenancy.choices import Role

USERS = [
    # username, provider admin, project, role
    ("admin", True, None, None),
    ("alice", False, "acme", Role.MEMBER),
    ("rita", False, "acme", Role.READER),
    ("bob", False, "globex", Role.MEMBER),
    ("gina", False, "globex", Role.READER),
]
PROJECTS = {"acme": "ACME Corp", "globex": "Globex Corporation"}
FLAVORS = [("m1.tiny", 1, 512, 1), ("m1.small", 1, 2048, 20), ("m1.large", 4, 8192, 80)]
# name, kind, categories, tags
IMAGES = [
    ("debian-12", "vm", ["standard"], []),
    ("fail-boot", "vm", ["standard"], []),
    ("lb-amphora", "vm", ["lb"], ["amphora"]),
    ("vsa-appliance", "vm", ["vsa"], ["vsa"]),
    ("cache-redis", "container", ["cache"], []),
]
# With a Docker engine: the test images built by scripts/ensure-docker.sh (busybox, offline).
DOCKER_IMAGES = {"cache-redis": "adminvms/busybox:test", "vsa-appliance": "adminvms/appliance-gui:test"}
DOCKER_CATEGORIES = {
    "cache": {"backend": "docker"},
    "vsa": {"backend": "docker", "kind": "container", "min_ram_mb": 0},
}
CATEGORIES = [
    {
        "slug": "lb",
        "name": "Load balancer",
        "description": "Provider-managed load-balancer VMs, dual-homed, one per host.",
        "kind": "vm",
        "management": "provider",
        "user_visible": True,
        "user_operations": [],
        "network_placement": "both",
        "anti_affinity": "anti-affinity",
        "min_vcpus": 1,
        "min_ram_mb": 1024,
        "flavors": ["m1.small", "m1.large"],
        "default_flavor": "m1.small",
        "image_tag": "amphora",
    },
    {
        "slug": "vsa",
        "name": "Virtual storage array",
        "description": "Storage appliances; users reach them only through the appliance GUI.",
        "kind": "vm",
        "management": "appliance",
        "user_visible": True,
        "user_operations": ["launch", "reboot", "terminate", "appliance_gui"],
        "network_placement": "both",
        "gui_port": 8080,
        "gui_path": "/",
        # The appliance's GUI answers: a probe of it is the health check; three misses, and it is healed.
        "health_check_port": 8080,
        "health_check_path": "/",
        "auto_heal": True,
        "min_ram_mb": 2048,
        "max_instances": 3,
        "flavors": ["m1.small", "m1.large"],
        "default_flavor": "m1.small",
        "image_tag": "vsa",
    },
    {
        "slug": "cache",
        "name": "Cache",
        "description": "Provider-managed cache containers on the management network, hidden from members.",
        "kind": "container",
        "management": "provider",
        "user_visible": False,
        "user_operations": [],
        "network_placement": "management",
        "flavors": ["m1.tiny", "m1.small"],
        "default_flavor": "m1.tiny",
        "image": "cache-redis",
    },
]


class Command(BaseCommand):
    help = "Create the demo users, projects, categories, flavors and images (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--quiet", action="store_true", help="Print nothing but the new credentials.")

    @transaction.atomic
    def handle(self, *args, quiet=False, **options):
        fixed = settings.ADMINVMS["DEMO_PASSWORD"]
        projects = {slug: tenancy.project_ensure(slug=slug, name=name)[0] for slug, name in PROJECTS.items()}
        new_credentials = []
        admin = None
        for username, is_admin, project, role in USERS:
            password = fixed or secrets.token_urlsafe(9)
            user, created = tenancy.user_ensure(
                username=username, password=password, provider_admin=is_admin, reset_password=bool(fixed)
            )
            if created and not fixed:
                new_credentials.append((username, password))
            if project:
                tenancy.membership_ensure(user=user, project=projects[project], role=role)
            if is_admin:
                admin = user
        on_docker = self._docker_answers() if not InstanceCategory.objects.filter(slug="vsa").exists() else False
        self._catalog(admin, projects, on_docker=on_docker)
        if "openstack" in enabled_backends():
            # The demo's projects are the Keystone projects of the same names; flavors and images come from the cloud.
            counts = services.catalog_sync(backend="openstack")
            if not quiet:
                self.stdout.write(f"Mapped to OpenStack: {counts}")
        if new_credentials:
            self.stdout.write("Demo users (shown once; set ADMINVMS_DEMO_PASSWORD to choose one):")
            for username, password in new_credentials:
                self.stdout.write(f"  {username:<6} {password}")
        elif not quiet:
            self.stdout.write("Demo data is in place" + (" (password from ADMINVMS_DEMO_PASSWORD)." if fixed else "."))

    def _docker_answers(self) -> bool:
        """With an engine that answers, the demo's cache and vsa run as containers on it."""
        if "docker" not in enabled_backends():
            return False
        if problem := services.backend_problem(backend="docker"):
            self.stdout.write(
                f"Notice: the Docker engine does not answer ({problem}); cache and vsa run on the simulated cloud."
            )
            return False
        self.stdout.write("Docker answers: the demo's cache and vsa categories run as containers on it.")
        return True

    @staticmethod
    def _vm_on_openstack(spec) -> bool:
        """With OpenStack too, VM categories (vsa) stay VMs on Nova; only containers go to Docker."""
        return spec["kind"] == "vm" and "openstack" in enabled_backends()

    def _catalog(self, admin, projects, *, on_docker: bool = False) -> None:
        flavors = {}
        for name, vcpus, ram, disk in FLAVORS:
            flavors[name] = Flavor.objects.filter(name=name).first() or catalog.flavor_create(
                user=admin, name=name, vcpus=vcpus, ram_mb=ram, disk_gb=disk
            )
        catalog.category_standard()
        categories = {c.slug: c for c in InstanceCategory.objects.all()}
        images = {}
        on_openstack = "openstack" in enabled_backends()
        for name, kind, _slugs, tags in IMAGES:
            if kind == "vm" and on_openstack:
                continue  # the demo's VM categories boot Glance's images, mirrored and linked by their tags
            moved = (
                on_docker
                and name in DOCKER_IMAGES
                and not (name == "vsa-appliance" and "openstack" in enabled_backends())
            )
            backend_id = DOCKER_IMAGES[name] if moved else name
            if moved:
                kind = "container"
            images[name] = Image.objects.filter(name=name).first() or catalog.image_create(
                user=admin, name=name, kind=kind, backend_id=backend_id, tags=tags
            )
        standard = categories["standard"]
        if standard.default_flavor is None:
            data = {"default_flavor": flavors["m1.small"]}
            if "debian-12" in images:
                data["default_image"] = images["debian-12"]
            catalog.category_update(user=admin, category=standard, data=data, allowed_flavors=flavors.values())
        for spec in CATEGORIES:
            if spec["slug"] in categories:
                continue
            data = {k: v for k, v in spec.items() if k not in {"flavors", "default_flavor", "image"}}
            if on_docker and spec["slug"] in DOCKER_CATEGORIES and not self._vm_on_openstack(spec):
                data.update(DOCKER_CATEGORIES[spec["slug"]])
            data["default_flavor"] = flavors[spec["default_flavor"]]
            if "image" in spec:
                data["default_image"] = images[spec["image"]]
            categories[spec["slug"]] = catalog.category_create(
                user=admin, data=data, allowed_flavors=[flavors[f] for f in spec["flavors"]]
            )
        for name, _kind, slugs, tags in IMAGES:
            if name not in images:
                continue
            catalog.image_update(
                user=admin, image=images[name], tags=tags or None, categories=[categories[s] for s in slugs]
            )
        for project in ("acme", "globex"):
            catalog.volume_ensure(
                user=admin,
                name=f"{project}-vsa-data",
                size_gb=100,
                project=projects[project],
                categories=[categories["vsa"]],
            )
