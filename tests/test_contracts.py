"""The import contract that lets the catalog read the operation table forbids every other module of
instances by name (import-linter has no "all but"): a module added to instances must join that list."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import instances
import instances.drivers

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {"instances.operations", "instances.choices", "instances.drivers", "instances.drivers.base"}


def test_the_catalog_contract_names_every_module_of_instances_but_the_vocabulary():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    [contract] = [c for c in contracts if c.get("source_modules") == ["categories"]]
    modules = {f"instances.{m.name}" for m in pkgutil.iter_modules(instances.__path__)}
    modules |= {f"instances.drivers.{m.name}" for m in pkgutil.iter_modules(instances.drivers.__path__)}
    assert modules - ALLOWED == set(contract["forbidden_modules"])
    assert "ignore_imports" not in contract
