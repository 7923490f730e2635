"""EventBridge's input transformation of a rule target: ``Input``, ``InputPath``, ``InputTransformer``.

No moto internals: moto does not deliver to the targets the kit delivers (:mod:`.events`), so the kit
applies the target's transformation itself, as EventBridge does.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["target_input"]


def target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """Apply a target's Input / InputPath / InputTransformer, as EventBridge does."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        # Only the simple "$.a.b" form EventBridge documents.
        node: Any = event
        for part in target["InputPath"].lstrip("$").strip(".").split("."):
            if part:
                node = node.get(part) if isinstance(node, dict) else None
        return node
    if "InputTransformer" in target:
        it = target["InputTransformer"]
        return _input_transformer(it.get("InputTemplate") or "", it.get("InputPathsMap") or {}, event)
    return event


def _variables(paths: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
    from jsonpath_ng.ext import parse

    out: dict[str, Any] = {}
    for name, path in paths.items():
        matches = parse(path).find(event)
        if matches:  # a path the event lacks creates no variable: its placeholder stays as written
            out[name] = matches[0].value
    out["aws.events.event.json"] = event
    out["aws.events.event"] = {k: v for k, v in event.items() if k != "detail"}
    if "ingestion-time" in event:
        out["aws.events.event.ingestion-time"] = event["ingestion-time"]
    return out


def _render(value: Any, in_string: bool) -> str:
    """A variable's text. In a JSON value position strings get quotes (EventBridge adds them); inside a
    string literal the value goes in as it is (EventBridge does not escape it), objects and arrays without
    their inner quotes ("EventBridge removes any internal quotes to ensure a valid string")."""
    if isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return text.replace('"', "") if in_string else text
    if isinstance(value, str):
        return value if in_string else json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def _substitute(template: str, variables: dict[str, Any], *, json_template: bool) -> str:
    out: list[str] = []
    in_string = False
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c == "<":
            j = template.find(">", i + 1)
            if j > 0 and template[i + 1:j] in variables:
                out.append(_render(variables[template[i + 1:j]], in_string or not json_template))
                i = j + 1
                continue
        elif json_template and in_string and c == "\\" and i + 1 < n:
            out.append(template[i:i + 2])
            i += 2
            continue
        elif json_template and c == '"':
            in_string = not in_string
        out.append(c)
        i += 1
    return "".join(out)


def _input_transformer(template: str, paths: dict[str, str], event: dict[str, Any]) -> Any:
    """EventBridge's input transformer (Amazon EventBridge User Guide, "Amazon EventBridge input transformation").

    A template that is one JSON string (``"Job <name> failed: <error>"``) gives the text between its
    quotes with each variable's value as it is, whatever characters the value holds (AWS inserts values
    unescaped, so its output is that text in quotes). Another template gives the JSON it forms, or its
    text when a value inserted unescaped into a string breaks the JSON, as it would on AWS.
    """
    variables = _variables(paths, event)
    body = template.strip()
    if len(body) >= 2 and body[0] == body[-1] == '"':
        try:
            literal = json.loads(body)
        except ValueError:
            literal = None
        if isinstance(literal, str):
            return _substitute(literal, variables, json_template=False)
    text = _substitute(template, variables, json_template=True)
    try:
        return json.loads(text)
    except ValueError:
        return text

