from django.core.management.base import BaseCommand, CommandError

from instances import services
from instances.drivers.base import DriverError
from instances.drivers.registry import enabled_backends


class Command(BaseCommand):
    help = "Mirror the backends' flavors and images into the catalog, and map projects to them by name."

    def add_arguments(self, parser):
        parser.add_argument("--backend", action="append", help="Only this backend (repeatable).")

    def handle(self, *args, backend=None, **options):
        for name in backend or enabled_backends():
            try:
                counts = services.catalog_sync(backend=name)
            except DriverError as exc:
                raise CommandError(f"{name}: {exc}") from exc
            self.stdout.write(
                f"{name}: {counts['flavors']} flavors, {counts['images']} images, {counts['volumes']} volumes "
                f"({counts['gone']} gone), {counts['projects']} projects mapped"
            )
