"""The pinned runtimes' environments (etl_localcloud/runtime_envs.py): lookup, build once, reuse, overlays."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from etl_localcloud.runtime_envs import (
    CACHE_VAR,
    SEARCH_PATH_VAR,
    Environment,
    ModuleError,
    RuntimeTable,
    cache_root,
    ensure_environment,
    environment_dir,
    find_interpreter,
)
from etl_localcloud.runtimes import GLUE_PYTHONSHELL_39, LAMBDA_RUNTIMES, PINNED, RuntimePins
from tests.conftest import require_interpreter

pytestmark = pytest.mark.unit


def test_every_pin_is_exact_and_cites_its_source() -> None:
    assert {p.python for p in PINNED} == {"3.9", "3.12"}
    for pins in PINNED:
        assert pins.source.startswith("https://docs.aws.amazon.com/")
        for req in pins.packages:
            name, sep, version = req.partition("==")
            assert sep and name and version[0].isdigit(), req
    assert GLUE_PYTHONSHELL_39.version_of("pyarrow") == "7.0.0"
    assert LAMBDA_RUNTIMES["python3.12"].version_of("boto3") == LAMBDA_RUNTIMES["python3.12"].version_of("botocore")


def test_the_lookup_sees_nothing_on_an_empty_path_and_pyenv_root(tmp_path: Path) -> None:
    env = {SEARCH_PATH_VAR: str(tmp_path), "PYENV_ROOT": str(tmp_path)}
    assert find_interpreter("3.9", env) is None
    table = RuntimeTable(environ=env)
    resolved = table.for_glue("3.9")
    assert (resolved.fallback or "").startswith(f"python3.9 was not found on {SEARCH_PATH_VAR}")
    assert resolved.banner().startswith("[etl-kit local cloud] WARNING: runtime glue-pythonshell-3.9-analytics is "
                                        "NOT emulated for this run")
    assert table.health()["runtimes"]["glue-pythonshell-3.9-analytics"]["pinned"] is False


def test_an_unpinned_runtime_says_which_are_pinned() -> None:
    resolved = RuntimeTable(environ={}).for_lambda("python3.8")
    assert resolved.fallback == "no pinned runtime for python3.8 (etl_localcloud/runtimes.py pins python3.12)"


def test_the_cache_dir_follows_its_variable_then_xdg(tmp_path: Path) -> None:
    assert cache_root({CACHE_VAR: str(tmp_path / "c")}) == tmp_path / "c"
    assert cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "etl-kit" / "runtimes"


def test_an_unpinned_module_the_environment_lacks_is_refused_by_name(tmp_path: Path) -> None:
    env = Environment(root=tmp_path / "env", python_version="3.9.18", packages={"boto3": "1.22.5"})
    assert env.overlay("boto3", print) is None  # already installed: nothing to add (pip: already satisfied)
    with pytest.raises(ModuleError, match=r"^--additional-python-modules: appdirs has no pinned version"):
        env.overlay("boto3, appdirs", print)


def test_an_environment_is_built_once_atomically_and_a_killed_builds_leftovers_go(tmp_path: Path) -> None:
    interp = require_interpreter("3.9")
    pins = RuntimePins(name="tiny", python="3.9", packages=("appdirs==1.4.4",), source="https://docs.aws.amazon.com/")
    said: list[str] = []
    results: list[tuple[Environment, bool]] = []
    final = environment_dir(pins, interp, tmp_path)
    leftover = tmp_path / f".build-{final.name}-killed"  # what a build killed halfway leaves behind
    leftover.mkdir()

    def build() -> None:
        results.append(ensure_environment(pins, interp, tmp_path, said.append))

    threads = [threading.Thread(target=build) for _ in range(2)]  # two builders race: one builds, one waits
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(built for _, built in results) == [False, True]
    assert results[0][0].root == results[1][0].root == final
    env = results[0][0]
    assert env.python_version == interp.version and env.packages["appdirs"] == "1.4.4"
    assert sum(line.startswith("building ") for line in said) == 1
    assert not leftover.exists() and [p.name for p in tmp_path.iterdir() if p.is_dir()] == [final.name]
    again, built = ensure_environment(pins, interp, tmp_path, said.append)
    assert (again.root, built) == (final, False)
