"""The replay event is what the Lambda reads as a replay of exactly that object."""

from __future__ import annotations

import pytest

from etl_kit.config import load_settings
from etl_kit.exceptions import PipelineError
from etl_kit.pipeline import lambda_handler as lh
from etl_kit.replay import parse_target, replay_event

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("force", [False, True])
def test_replay_event_parses_as_the_object_and_its_kind(force: bool) -> None:
    s = load_settings(None)
    head = {"ContentLength": 42, "ETag": '"abc"', "VersionId": "v1"}
    event = replay_event(s, "bkt", "input/a b+c.csv", head, force=force)
    [ref] = lh.parse_event(event)
    assert (ref["bucket"], ref["key"], ref["etag"], ref["size"], ref["version_id"]) == (
        "bkt", "input/a b+c.csv", "abc", 42, "v1")
    assert lh.delivery_kind(ref) == ("force" if force else "replay")
    assert lh.should_process(ref) == (True, "")
    # an ordinary S3 event is not a replay
    event["detail-type"] = "Object Created"
    assert lh.delivery_kind(lh.parse_event(event)[0]) == "event"


def test_parse_target() -> None:
    s = load_settings(None)
    assert parse_target("s3://b/input/x.csv", s) == ("b", "input/x.csv")
    assert parse_target("input/x.csv", s) == (s.bucket_name(), "input/x.csv")
    with pytest.raises(PipelineError, match="s3://<bucket>/<key>"):
        parse_target("s3://b", s)
