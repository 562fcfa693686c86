from django.core.management.base import BaseCommand

from instances import services


class Command(BaseCommand):
    help = "Compare the database with the compute backends once, and print the drift report."

    def add_arguments(self, parser):
        parser.add_argument("--backend", action="append", help="Only this backend (repeatable).")

    def handle(self, *args, backend=None, **options):
        for run in services.instances_reconcile(backends=backend):
            if run.error:
                self.stderr.write(f"{run.backend}: could not list servers: {run.error}")
                continue
            self.stdout.write(
                f"{run.backend}: checked {run.checked}, updated {run.updated}, "
                f"vanished {len(run.vanished)}, orphans {len(run.orphans)}, abandoned actions {run.expired_actions}"
            )
            for orphan in run.orphans:
                self.stdout.write(f"  orphan {orphan['backend_id']} (instance {orphan['instance_id'] or '?'})")
