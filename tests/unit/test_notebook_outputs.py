"""The committed notebooks carry the outputs of a recorded local run (`etl-kit notebooks record`): every one a
reader opens shows the walkthrough, and what it shows holds no secret, local path or account id and is exactly
what the sanitiser's rules leave (a fixpoint: recording again changes only what the rules do not cover)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from etl_kit.nbsanitize import ACCOUNT_PLACEHOLDER, TEXT_MIMETYPES, sanitize_notebook

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
RECORDED = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if not p.stem.startswith("99"))


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _code(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _texts(nb: dict[str, Any]) -> list[str]:
    """Every text an output holds (streams, text mimetypes, errors), and the notebook's metadata."""
    found = [json.dumps(nb.get("metadata", {}))]
    for cell in _code(nb):
        found.append(json.dumps(cell.get("metadata", {})))
        for out in cell.get("outputs", []):
            found.append("".join(out.get("text", "")))
            found += ["".join(v) if isinstance(v, list) else json.dumps(v) if not isinstance(v, str) else v
                      for k, v in out.get("data", {}).items() if k in TEXT_MIMETYPES]
            found += [out.get("evalue", ""), *out.get("traceback", [])]
    return found


def test_the_recorded_notebooks_are_00_to_05() -> None:
    assert [p.stem[:2] for p in RECORDED] == ["00", "01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_every_recorded_notebook_shows_its_walkthrough(path: Path) -> None:
    """Every code cell ran (counts 1, 2, ... in order), none failed, and each helper cell after the settings
    shows something (a table, a figure, a progress bar or a printed line)."""
    nb = _load(path)
    code = _code(nb)
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), "record the notebooks"
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    silent = ["".join(c["source"]) for c in code[2:] if not c["outputs"]]
    assert silent in ([], ["con = analysis.connect(settings)"]), silent  # an assignment shows nothing
    assert sum(len(c["outputs"]) for c in code) >= len(code) - 3


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_recorded_outputs_are_a_fixpoint_of_the_sanitiser(path: Path) -> None:
    nb = _load(path)
    assert sanitize_notebook(nb) == nb, "outputs the sanitiser would change: record with `etl-kit notebooks record`"
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"  # as the recorder writes
    assert set(nb["metadata"]) <= {"kernelspec", "language_info"}  # no papermill timings, no widget state
    assert "application/vnd.jupyter.widget" not in text and '"papermill": {' not in text


#: Shapes that must never be published, each with why.
FORBIDDEN = {
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    "a session token": re.compile(r"(?:FQoGZXIvYXdz|FwoGZXIvYXdz|IQoJb3JpZ2luX2Vj)|aws_session_token['\"]?\s*[:=]"),
    "an account id": re.compile(r"(?<![\d.])\d{12}(?![\d.])"),
    "a local path": re.compile(r"(?<![\w.])(?:/tmp/|/private/var/|/var/folders/|/home/|/Users/|/root/|[A-Z]:\\\\)"),
    "a password value": re.compile(r"(?i)password['\"]?\s*[:=]\s*['\"]?(?!<secret>|\(set\)|['\"]?\s*$)[^\s'\",}]+"),
    # the local cloud's generated secrets: token_urlsafe (the managed admin password ends in "Aa1")
    "a generated password": re.compile(r"(?<![\w-])[A-Za-z0-9_-]{24}Aa1(?![\w-])"),
}


def _secret_like(text: str) -> list[str]:
    """Tokens of 24+ URL-safe characters mixing upper case, lower case and digits (what secrets.token_urlsafe
    makes), outside placeholders."""
    words = re.findall(r"(?<![\w-])[A-Za-z0-9_-]{24,}(?![\w-])", text)
    return [w for w in words if re.search("[A-Z]", w) and re.search("[a-z]", w) and re.search("[0-9]", w)]


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_recorded_outputs_hold_no_secret_path_or_account(path: Path) -> None:
    texts = _texts(_load(path))
    local = {str(ROOT), str(Path.home())} - {"/"}
    for text in texts:
        for what, pattern in FORBIDDEN.items():
            assert not pattern.search(text), f"{path.name}: {what}: {pattern.search(text)}"
        assert not [p for p in local if p in text], f"{path.name}: the checkout or home path"
        assert not _secret_like(text), f"{path.name}: secret-like tokens {_secret_like(text)}"
    joined = "\n".join(texts)
    if "arn:aws" in joined:  # ARNs name the placeholder account
        assert re.findall(r"arn:aws[\w-]*:[\w-]*:[\w-]*:([^:]*):", joined) and all(
            a in ("", ACCOUNT_PLACEHOLDER, "aws") for a in re.findall(r"arn:aws[\w-]*:[\w-]*:[\w-]*:([^:]*):", joined))


def test_the_teardown_is_committed_without_outputs() -> None:
    """99 is never recorded (running it removes what 01 made)."""
    nb = _load(ROOT / "notebooks" / "99_teardown.ipynb")
    assert all(not c["outputs"] and c["execution_count"] is None for c in _code(nb))


def test_the_forbidden_shapes_are_caught() -> None:
    """The checks above find what they look for (so a clean result means something)."""
    leaks = ["AKIAABCDEFGHIJKLMNOP", "FwoGZXIvYXdzEabc", "arn:aws:iam::123456789012:role/x", "/tmp/pytest-1/x",
             "/home/someone/etl-kit", '{"password": "hunter2hunter2"}', "x3Y_vQ9-aBcDeFgHiJkLmNoPAa1"]
    for leak in leaks:
        assert any(p.search(leak) for p in FORBIDDEN.values()), leak
    assert _secret_like("pw Zk3_9aQw-Lm2Nx8Rt5Vb7Yc1Pq4s end") and not _secret_like("start-workflow-function-role")
