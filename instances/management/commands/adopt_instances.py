import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from instances import services
from instances.drivers.base import DriverError
from instances.drivers.registry import enabled_backends
from tenancy.errors import DomainError


class Command(BaseCommand):
    help = (
        "Adopt servers and containers adminvms did not create into categories, by rules: a dry run that prints "
        "what each would become, or --apply."
    )

    def add_arguments(self, parser):
        parser.add_argument("--backend", action="append", help="Only this backend (repeatable); default: all enabled.")
        parser.add_argument(
            "--rules",
            help="A built-in rule set (vpn) or a JSON file of rules; default: the rules saved in the console.",
        )
        parser.add_argument("--apply", action="store_true", help="Adopt what the dry run shows as 'adopt'.")

    def handle(self, *args, backend=None, rules=None, apply=False, **options):
        try:
            chosen = self._rules(rules)
            for name in backend or enabled_backends():
                run = services.adoption_apply if apply else services.adoption_plan
                try:
                    plan = run(backend=name, rules=chosen)
                except DriverError as exc:
                    raise CommandError(f"{name}: {exc}") from exc
                self._table(name, plan)
        except DomainError as exc:
            raise CommandError(exc.message) from exc

    def _rules(self, given: str | None):
        if given is None:
            return services.rules_saved()
        if Path(given).is_file():
            try:
                return services.rules_from(json.loads(Path(given).read_text()))
            except (ValueError, UnicodeDecodeError) as exc:
                raise CommandError(f"{given}: not a JSON list of rules ({exc}).") from exc
        return services.rules_named(given)

    def _table(self, backend: str, plan) -> None:
        rows = [("server", "backend id", "project", "category", "rule", "verdict", "why")]
        for c in plan:
            rows.append((
                c.server.name, c.server.backend_id[:12], c.project.slug if c.project else "-",
                c.category.slug if c.category else "-", c.rule or "-", c.verdict, c.why,
            ))  # fmt: skip
        widths = [max(len(str(row[i])) for row in rows) for i in range(6)]
        for row in rows:
            self.stdout.write("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[6])
        counts = {}
        for c in plan:
            counts[c.verdict] = counts.get(c.verdict, 0) + 1
        summary = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())) or "no foreign servers"
        self.stdout.write(f"{backend}: {summary}")
