"""EventBridge's input transformer as the local cloud renders notifications: any error text survives whole."""

from __future__ import annotations

import pytest

from etl_localcloud.motohooks.event_input import target_input as _transform

pytestmark = pytest.mark.unit

TEMPLATE = '"Glue job <name> run <run> finished in state <state> at <time>. Message: <error>"'
PATHS = {"name": "$.detail.jobName", "state": "$.detail.state", "time": "$.time", "run": "$.detail.jobRunId",
         "error": "$.detail.message"}


@pytest.mark.parametrize("error", ['He said "no"', "C:\\temp\\x", "a\\\"b", "line one\nline two\ttab",
                                   "ünïcødé ✓ 日本 \u2028", "<error> <b>", "{\"json\": [1]}", "\\u0041"])
def test_input_transformer_keeps_any_error_text(error: str) -> None:
    """EventBridge inserts a string variable into a string template unescaped: the message is the text."""
    event = {"time": "2026-01-01T00:00:00Z", "detail": {"jobName": "j2", "state": "FAILED", "jobRunId": "jr_1",
                                                        "message": error}}
    out = _transform({"InputTransformer": {"InputPathsMap": PATHS, "InputTemplate": TEMPLATE}}, event)
    assert out == f"Glue job j2 run jr_1 finished in state FAILED at 2026-01-01T00:00:00Z. Message: {error}"


def test_input_transformer_json_template_quotes_strings_and_keeps_objects() -> None:
    event = {"time": "t", "detail": {"state": "FAILED", "n": 3, "obj": {"a": "b"}}}
    template = '{"state": <s>, "text": "is <s> with <o>", "n": <n>, "obj": <o>, "gone": "<nope>"}'
    out = _transform({"InputTransformer": {"InputPathsMap": {"s": "$.detail.state", "n": "$.detail.n",
                                                             "o": "$.detail.obj", "nope": "$.detail.nope"},
                                           "InputTemplate": template}}, event)
    assert out == {"state": "FAILED", "text": "is FAILED with {a:b}", "n": 3, "obj": {"a": "b"}, "gone": "<nope>"}
