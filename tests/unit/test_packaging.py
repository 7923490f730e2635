"""pyproject.toml is the source of truth; environment.yml (conda route) must list the same packages."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_environment_yml_lists_exactly_the_pyproject_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    want = set(project["dependencies"]) | set(extras["dev"]) | set(extras["bench"]) | set(extras["local"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    got = {p for p in pip_section if not p.startswith("-e")}
    assert got == want, f"missing in environment.yml: {want - got}; extra: {got - want}"
    assert "python=3.11" in env["dependencies"]


def test_console_script_and_markers_are_declared() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["scripts"]["etl-kit"] == "etl_kit.cli:main"
    markers = {m.split(":")[0] for m in data["tool"]["pytest"]["ini_options"]["markers"]}
    assert markers == {"unit", "local", "notebooks", "aws", "slow"}
    env = dict(e.split("=", 1) for e in data["tool"]["pytest"]["ini_options"]["env"])
    assert env["AWS_ACCESS_KEY_ID"] == "testing"


def test_params_files_have_the_same_keys_as_the_settings_model() -> None:
    from etl_kit.config import Settings

    for name in ("local.yaml", "aws.yaml"):
        keys = set(yaml.safe_load((ROOT / "params" / name).read_text()))
        assert keys == set(Settings.model_fields), f"params/{name} differs from Settings"


# --- the runtime package shipped to AWS (etl_kit.provision.packaging) ---


def _names(data: bytes) -> list[str]:
    import io
    import zipfile

    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_the_lambda_ships_the_whole_runtime_package_the_glue_jobs_import() -> None:
    from etl_kit.provision import lambda_, packaging

    assert packaging.lambda_zip() == packaging.pipeline_zip() == packaging.lambda_zip()  # one reproducible artefact
    names = _names(packaging.lambda_zip())
    assert all(n.startswith("etl_runtime/") for n in names), names
    module, function = lambda_.HANDLER.rsplit(".", 1)
    assert (lambda_.HANDLER, function) == ("etl_runtime.lambda_handler.handler", "handler")
    assert module.replace(".", "/") + ".py" in names
    for script in packaging.glue_scripts():
        assert f"etl_runtime/entrypoints/{script}" in names
    assert {"etl_runtime/__init__.py", "etl_runtime/errors.py", "etl_runtime/values.py"} <= set(names)


def test_the_handler_provisioning_names_imports_from_the_zip_alone(tmp_path: Path) -> None:
    import io
    import subprocess
    import sys
    import zipfile

    from etl_kit.provision import lambda_, packaging

    code = tmp_path / "code"
    zipfile.ZipFile(io.BytesIO(packaging.lambda_zip())).extractall(code)
    module, function = lambda_.HANDLER.rsplit(".", 1)
    # What the Lambda runtime does: the code directory first on sys.path, then import the handler's module.
    probe = (f"import sys, importlib; sys.path.insert(0, {str(code)!r}); m = importlib.import_module({module!r}); "
             f"assert callable(getattr(m, {function!r})); print(m.__file__)")
    out = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True, cwd=code)
    assert Path(out.stdout.strip()).resolve() == (code / "etl_runtime" / "lambda_handler.py").resolve()


def _runtime_copy(tmp_path: Path) -> Path:
    import shutil

    from etl_kit.provision import packaging

    root = tmp_path / "etl_runtime"
    shutil.copytree(packaging.PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_runtime_package_without_an_entry_point_is_refused_naming_it(tmp_path: Path) -> None:
    from etl_kit.exceptions import ConfigError
    from etl_kit.provision import packaging

    root = _runtime_copy(tmp_path)
    assert packaging.pipeline_zip(root) == packaging.pipeline_zip()  # a faithful copy zips to the same bytes
    (root / "entrypoints" / packaging.LOAD_SCRIPT).unlink()
    for build in (packaging.pipeline_zip, packaging.lambda_zip, packaging.glue_scripts):
        with pytest.raises(ConfigError) as exc:
            build(root)
        msg = str(exc.value)
        assert f"entrypoints/{packaging.LOAD_SCRIPT} is missing" in msg and str(root) in msg
        assert "pip install" in msg


def test_a_lambda_module_without_its_handler_function_is_refused(tmp_path: Path) -> None:
    from etl_kit.exceptions import ConfigError
    from etl_kit.provision import packaging

    root = _runtime_copy(tmp_path)
    source = (root / "lambda_handler.py").read_text()
    (root / "lambda_handler.py").write_text(source.replace("def handler(", "def renamed_handler("))
    with pytest.raises(ConfigError, match=r"lambda_handler\.py defines no function handler\(\)"):
        packaging.lambda_zip(root)
