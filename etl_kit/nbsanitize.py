"""The one set of rules that makes recorded notebook outputs reproducible and safe to publish.

``etl-kit notebooks record`` writes the notebooks back with their outputs passed through :func:`sanitize_notebook`;
the notebooks tier runs nbval with a sanitize file written from the same rules (:func:`nbval_config`), which nbval
applies to both the committed and the fresh outputs; ``tests/unit`` checks that the committed outputs are a
fixpoint of these rules and hold no secret, local path or account id.

Each rule replaces what varies between runs (ids, times, ports, temporary paths) or must not be published (keys,
passwords, account ids) by a stable placeholder. A rule applied to its own output changes nothing, so sanitising
twice gives the same bytes. Besides the fixed :data:`RULES`, a run's own values (its state dir, ports, the
secrets the local cloud handed out) become literal rules through :class:`RunValues`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Rule", "RULES", "RunValues", "ACCOUNT_PLACEHOLDER", "TEXT_MIMETYPES", "rules_for", "sanitize_text",
           "sanitize_notebook", "nbval_config"]

#: What an account id reads as in published outputs (moto's 123456789012, or a real one).
ACCOUNT_PLACEHOLDER = "<account-id>"

#: The output formats that are text, and so sanitised (images and widget models are not text).
TEXT_MIMETYPES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")

#: Mimetypes dropped from outputs: widget models have random ids and need the live kernel anyway.
DROPPED_MIMETYPES = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json")


@dataclass(frozen=True)
class Rule:
    """One regex replacement (Python ``re`` syntax, one line: nbval reads its sanitize file line by line)."""

    name: str
    pattern: str
    replace: str


_HEX = "[0-9a-f]"
#: The fixed rules, applied in order (the more specific first: an ARN's account before a bare account id).
RULES: tuple[Rule, ...] = (
    # secrets that have a recognisable shape (a run's own secrets come as literals, see RunValues)
    Rule("access-key-id", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", "<access-key-id>"),
    Rule("session-token", r"\b(?:FQoGZXIvYXdz|FwoGZXIvYXdz|IQoJb3JpZ2luX2Vj)[A-Za-z0-9+/=]+", "<session-token>"),
    Rule("secret-version", r"\bterraform-\d{26}\b", "<version-id>"),
    # local paths: the temporary directories a run lives in
    Rule("tmp-path", r"(?<![\w./-])(?:/private)?/tmp/[^\s'\"<>,;:|)\]}]+", "<tmp>"),
    # identifiers a run makes
    Rule("uuid", rf"\b{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}\b", "<uuid>"),
    Rule("workflow-run-id", r"\bwr_[0-9A-Za-z]+", "wr_<id>"),
    Rule("job-run-id", r"\bjr_[0-9A-Za-z]+", "jr_<id>"),
    Rule("sha256", rf"\b{_HEX}{{64}}\b", "<sha256>"),
    Rule("etag", rf"\b{_HEX}{{32}}(?:-\d+)?\b", "<etag>"),
    # the digest a source id ends in (etl_runtime.keys.source_id: of the source key, whose stamp varies)
    Rule("source-id-digest", rf"-{_HEX}{{16}}\b", "-<digest>"),
    # a progress bar labelled with a run's short id ("sales-data-workflow a5147088: 100%|...")
    Rule("short-run-id", rf"\b{_HEX}{{8}}(?=: +\d+%\|)", "<run>"),
    Rule("memory-address", r"\b0x[0-9a-fA-F]{6,}\b", "0x<address>"),
    # accounts: an ARN's account part, then any other account id (twelve digits standing alone)
    Rule("arn-account", r"(arn:aws[\w-]*:[\w-]*:[\w-]*:)\d{12}(?=:)", rf"\g<1>{ACCOUNT_PLACEHOLDER}"),
    Rule("account-id", r"(?<![\d.])\d{12}(?![\d.])", ACCOUNT_PLACEHOLDER),
    # times: ISO timestamps (pandas and isoformat), compact stamps in object keys, clock times
    Rule("timestamp", r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
         "<timestamp>"),
    Rule("compact-stamp", r"(?<=_)\d{8}T\d{6}(?=\D)", "<stamp>"),
    Rule("tqdm-timing", r"\[\d{1,2}:\d{2}(?::\d{2})?[<,][^\]]*\]", "[<elapsed>]"),
    # measured durations: a decimal number of seconds, whole milliseconds (constants such as "600 s minimum"
    # are whole seconds and stay)
    Rule("seconds", r"(?<![\w.])\d+\.\d+ s\b", "<t> s"),
    Rule("milliseconds", r"(?<![\w.])\d+ ms\b", "<t> ms"),
    # ports of loopback addresses (the local cloud, its PostgreSQL, the warehouse front)
    Rule("loopback-port", r"\b(127\.0\.0\.1|localhost|0\.0\.0\.0):\d{2,5}\b", r"\g<1>:<port>"),
    # layout: a placeholder is not as wide as what it replaced, so a text table's padding (and tqdm's, which
    # blanks the longer line before it) depends on the run; two spaces stand for any run of them (the HTML
    # rendering of a table is what a reader sees), and no line ends in blanks
    Rule("padding", r" {3,}", "  "),
    Rule("trailing-blanks", r"(?m)[ \t]+$", ""),
)


@dataclass(frozen=True)
class RunValues:
    """What one run makes that must not be published literally: its paths, ports and secrets.

    Each becomes a literal rule (applied before :data:`RULES`). ``paths`` map a directory to its placeholder,
    longest first (the state dir inside the checkout reads as the state dir).
    """

    paths: dict[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()
    secrets: tuple[str, ...] = ()


def rules_for(values: RunValues | None = None) -> tuple[Rule, ...]:
    """The literal rules of ``values`` (paths, secrets, ports), then the fixed :data:`RULES`."""
    values = values or RunValues()
    literal: list[Rule] = []
    for path, placeholder in sorted(values.paths.items(), key=lambda kv: -len(kv[0])):
        if path and path != "/":
            # only where a path starts ("/tmp" of "s3://bucket/tmp/x" stays)
            literal.append(Rule(f"path {placeholder}", r"(?<![\w./-])" + re.escape(path.rstrip("/")), placeholder))
    for secret in sorted(set(values.secrets), key=len, reverse=True):
        if len(secret) >= 6:  # a short value would replace ordinary words ("testing" is moto's fake key)
            literal.append(Rule("secret", re.escape(secret), "<secret>"))
    for port in sorted(set(values.ports)):
        literal.append(Rule(f"port {port}", rf"(?<![\w.:<-]){port}(?![\w.>-])", "<port>"))
    return (*literal, *RULES)


def sanitize_text(text: str, rules: tuple[Rule, ...] = RULES) -> str:
    """``text`` with every rule applied in order."""
    for rule in rules:
        text = re.sub(rule.pattern, rule.replace, text)
    return text


def _sanitize_value(value: Any, rules: tuple[Rule, ...]) -> Any:
    """A text output's value (a string or the list of lines nbformat may hold) sanitised; JSON as a whole."""
    if isinstance(value, str):
        return sanitize_text(value, rules)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sanitize_text("".join(value), rules)
    return value


def _sanitize_output(output: dict[str, Any], rules: tuple[Rule, ...]) -> dict[str, Any]:
    out = copy.deepcopy(output)
    if "text" in out:
        out["text"] = _sanitize_value(out["text"], rules)
    if "traceback" in out:
        out["traceback"] = [sanitize_text(line, rules) for line in out["traceback"]]
    if "evalue" in out:
        out["evalue"] = sanitize_text(out["evalue"], rules)
    data = out.get("data")
    if isinstance(data, dict):
        for mime in DROPPED_MIMETYPES:
            data.pop(mime, None)
        for mime in TEXT_MIMETYPES:
            if mime in data:
                data[mime] = _sanitize_value(data[mime], rules)
    # an output's metadata is display hints (image sizes); transient display ids are per kernel
    out.pop("transient", None)
    return out


#: Cell metadata kept (tags drive papermill and nbval; the rest is per run: papermill's timings, execution).
KEPT_CELL_METADATA = ("tags", "jupyter", "editable", "deletable", "collapsed", "scrolled")
#: Notebook metadata kept: what a reader's Jupyter needs to pick the kernel and highlight the code.
KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info")


def sanitize_notebook(nb: dict[str, Any], rules: tuple[Rule, ...] = RULES) -> dict[str, Any]:
    """A copy of notebook ``nb`` (nbformat 4, as a dict) ready to publish: outputs sanitised, widget models
    dropped, execution counts 1, 2, ... in cell order, per-run metadata (papermill, timings, widgets) stripped."""
    out = copy.deepcopy(nb)
    out["metadata"] = {k: v for k, v in out.get("metadata", {}).items() if k in KEPT_NOTEBOOK_METADATA}
    info = out["metadata"].get("language_info")
    if isinstance(info, dict):  # the patch level is the recording machine's, not the notebook's
        out["metadata"]["language_info"] = {k: v for k, v in info.items() if k != "version"}
    count = 0
    for cell in out.get("cells", []):
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k in KEPT_CELL_METADATA}
        if cell.get("cell_type") != "code":
            continue
        ran = cell.get("execution_count") is not None or bool(cell.get("outputs"))
        count += 1 if ran else 0
        cell["execution_count"] = count if ran else None
        outputs = [_sanitize_output(o, rules) for o in cell.get("outputs", [])]
        for o in outputs:
            if o.get("output_type") == "execute_result":
                o["execution_count"] = cell["execution_count"]
        cell["outputs"] = [o for o in outputs if o.get("output_type") != "display_data" or o.get("data")]
    return out


def nbval_config(rules: tuple[Rule, ...] = RULES) -> str:
    """The rules as nbval's ``--nbval-sanitize-with`` file (a ``regex:`` line then a ``replace:`` line each)."""
    blocks = []
    for i, rule in enumerate(rules):
        if "\n" in rule.pattern or "\n" in rule.replace:
            raise ValueError(f"sanitize rule {rule.name!r} spans lines; nbval reads one line each")
        # nbval hands ``replace`` to re.sub as is: group references work, and so does a literal placeholder
        blocks.append(f"[{i:02d} {rule.name}]\nregex: {rule.pattern}\nreplace: {rule.replace}\n")
    return "\n".join(blocks)


def write_nbval_config(path: Path, values: RunValues | None = None) -> Path:
    """Write :func:`nbval_config` of the rules for ``values`` to ``path``; returns it."""
    path.write_text(nbval_config(rules_for(values)), encoding="utf-8")
    return path
