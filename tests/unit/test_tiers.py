"""The suite's layout rules: tiers (folder, marker, local-cloud fixtures agree) and one fixture family."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import ROOT, tier_problems

pytestmark = pytest.mark.unit


@dataclass
class FakeItem:
    """What tier_problems reads of a collected item."""

    rel: str
    marks: list[str]
    fixturenames: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return ROOT / "tests" / self.rel.split("::")[0]

    @property
    def nodeid(self) -> str:
        return f"tests/{self.rel}"

    def iter_markers(self) -> Any:
        return iter(SimpleNamespace(name=name) for name in self.marks)  # a marker: only its name is read


def test_a_test_whose_folder_names_its_one_tier_marker_passes() -> None:
    items = [FakeItem("unit/test_a.py::t", ["unit", "parametrize"]), FakeItem("local/test_b.py::t", ["local", "slow"],
                                                                              ["cloud", "boto"]),
             FakeItem("notebooks/test_c.py::t", ["notebooks"], ["cloud"]), FakeItem("aws/test_d.py::t", ["aws"])]
    assert tier_problems(items) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(("item", "says"), [
    (FakeItem("local/test_x.py::t", ["unit"]), "under tests/local/ but marked ['unit']"),
    (FakeItem("unit/test_x.py::t", []), "under tests/unit/ but marked with no tier"),
    (FakeItem("unit/test_x.py::t", ["unit", "local"]), "but marked ['local', 'unit']"),
    (FakeItem("unit/test_x.py::t", ["unit"], ["boto", "cloud"]), "a unit test that starts a local cloud (cloud)"),
    (FakeItem("unit/test_x.py::t", ["unit"], ["module_cloud"]), "starts a local cloud (module_cloud)"),
    (FakeItem("test_top.py::t", ["unit"]), "tests live in a tier folder"),
], ids=["local-marked-unit", "unmarked", "two-tiers", "unit-with-cloud", "unit-with-module-cloud", "no-folder"])
def test_a_test_in_the_wrong_tier_is_named_with_the_fix(item: FakeItem, says: str) -> None:
    [problem] = tier_problems([item])  # type: ignore[list-item]
    assert problem.startswith(item.nodeid) and says in problem


# -- one fixture family: a fixture name means one thing ----------------------------------------------------------
def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "fixture"


def fixture_files() -> dict[str, set[str]]:
    """Each fixture name defined under tests/ and the files (relative to tests/) that define it."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and any(_is_fixture(d) for d in node.decorator_list):
                out.setdefault(node.name, set()).add(path.relative_to(ROOT / "tests").as_posix())
    return out


def test_each_fixture_name_is_defined_once() -> None:
    """A fixture name shadowed in another file means something else there: the reader cannot tell which."""
    defined = fixture_files()
    assert {"cloud", "boto", "pipeline", "s3", "module_cloud", "module_boto"} <= set(defined)  # the scan works
    shadowed = {name: files for name, files in defined.items() if len(files) > 1}
    assert shadowed == {}, (
        "a fixture name is defined in more than one file: give each meaning its own name "
        f"(tests/local/conftest.py lists the local family; tests/unit/conftest.py the unit tier's): {shadowed}")
