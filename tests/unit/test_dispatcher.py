"""The dispatcher's error answers: AWS's JSON shapes, never a Python traceback (unit: no server)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from etl_localcloud.dispatcher import Dispatcher, Provider, RestRoute, ServiceError

pytestmark = pytest.mark.unit


def _moto(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"moto"]


def _broken(body: dict[str, Any]) -> dict[str, Any]:
    raise KeyError("secret_internal_detail")


def _app() -> Dispatcher:
    import re

    data = Provider(name="redshift-data", target_prefix="RedshiftData")
    data.operations = {"DescribeStatement": _broken,
                       "CancelStatement": lambda b: (_ for _ in ()).throw(ServiceError("ValidationException", "no"))}
    rest = Provider(name="lambda", target_prefix="")

    def boom(m: Any, body: bytes, q: dict[str, str], h: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        raise ZeroDivisionError("secret_internal_detail")

    rest.rest_routes = [RestRoute("POST", re.compile(r"/boom"), boom)]
    return Dispatcher(_moto, [data, rest])


def _call(app: Dispatcher, path: str, body: bytes, target: str = "") -> tuple[str, dict[str, str], dict[str, Any]]:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body), "HTTP_X_AMZ_TARGET": target}
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.update(status=status, headers=dict(headers))

    out = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], json.loads(out)


def test_an_unexpected_provider_error_is_a_500_internal_failure_without_internals(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="etl_localcloud"):
        status, headers, body = _call(_app(), "/", json.dumps({"Id": "x"}).encode(), "RedshiftData.DescribeStatement")
    assert status.startswith("500") and headers["x-amzn-ErrorType"] == "InternalFailure"
    assert body["__type"] == "InternalFailure" and "secret_internal_detail" not in json.dumps(body)
    assert "KeyError" not in json.dumps(body) and "Traceback" not in json.dumps(body)
    assert "secret_internal_detail" in caplog.text and "Traceback" in caplog.text  # the daemon log has it


def test_a_rest_provider_error_is_a_500_service_exception_without_internals(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="etl_localcloud"):
        status, headers, body = _call(_app(), "/boom", b"{}")
    assert status.startswith("500") and headers["x-amzn-ErrorType"] == "ServiceException"
    assert "secret_internal_detail" not in json.dumps(body) and "ZeroDivisionError" not in json.dumps(body)
    assert "secret_internal_detail" in caplog.text


@pytest.mark.parametrize(("raw", "target", "code"), [
    (b"{oops", "RedshiftData.DescribeStatement", "SerializationException"),
    (b'"a string"', "RedshiftData.DescribeStatement", "SerializationException"),
    (b"{}", "RedshiftData.DescribeStatement", "ValidationException"),
    (b'{"Id": 5}', "RedshiftData.DescribeStatement", "SerializationException"),
    (b"{}", "RedshiftData.Frobnicate", "UnknownOperationException"),
    (b'{"Id": "x"}', "RedshiftData.CancelStatement", "ValidationException"),
])
def test_malformed_requests_are_400s_in_aws_shape(raw: bytes, target: str, code: str) -> None:
    status, headers, body = _call(_app(), "/", raw, target)
    assert status.startswith("400") and headers["x-amzn-ErrorType"] == code
    assert body["__type"] == code and isinstance(body["message"], str) and body["message"]


def test_validation_message_names_the_member_as_aws_does() -> None:
    _, _, body = _call(_app(), "/", b"{}", "RedshiftData.DescribeStatement")
    assert body["message"] == ("1 validation error detected: Value null at 'id' failed to satisfy constraint: "
                               "Member must not be null")


def test_an_error_class_named_after_its_aws_code_is_answered_with_that_code() -> None:
    from etl_localcloud.glue.exceptions import ConcurrentRunsExceededException, EntityNotFoundException

    def missing(body: dict[str, Any]) -> dict[str, Any]:
        raise EntityNotFoundException(f"Job with name: {body['JobName']} not found")

    def busy(body: dict[str, Any]) -> dict[str, Any]:
        raise ConcurrentRunsExceededException("Concurrent runs exceeded for j: 1 of 1 running")

    glue = Provider(name="glue-test", target_prefix="GlueTest")
    glue.operations = {"GetJob": missing, "StartJobRun": busy}
    app = Dispatcher(_moto, [glue])
    status, headers, body = _call(app, "/", json.dumps({"JobName": "nightly"}).encode(), "GlueTest.GetJob")
    assert status.startswith("400") and headers["x-amzn-ErrorType"] == "EntityNotFoundException"
    assert body == {"__type": "EntityNotFoundException", "message": "Job with name: nightly not found",
                    "Message": "Job with name: nightly not found"}
    _, headers, body = _call(app, "/", b"{}", "GlueTest.StartJobRun")
    assert headers["x-amzn-ErrorType"] == "ConcurrentRunsExceededException"
    assert body["message"] == "Concurrent runs exceeded for j: 1 of 1 running"


def test_moto_refusals_pass_through_as_the_same_aws_error() -> None:
    from botocore.exceptions import ClientError

    from etl_localcloud.core.errors import client_error_code, from_client_error

    refusal = ClientError({"Error": {"Code": "AlreadyExistsException", "Message": "Trigger t already exists."},
                           "ResponseMetadata": {"HTTPStatusCode": 409}}, "CreateTrigger")
    err = from_client_error(refusal)
    assert isinstance(err, ServiceError)
    assert (err.code, err.message, err.status) == ("AlreadyExistsException", "Trigger t already exists.", 409)
    assert client_error_code(refusal) == "AlreadyExistsException"
    other = ValueError("not from AWS")
    assert from_client_error(other) is other and client_error_code(other) == ""
