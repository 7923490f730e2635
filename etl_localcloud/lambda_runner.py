"""Runs one Lambda invocation in its own process: the Lambda runtime's contract, minimal.

The Lambda provider starts it with the Python of the function's runtime (3.12 for python3.12) as
``python .../etl_localcloud/lambda_runner.py CODE_DIR HANDLER EVENT_JSON RESULT_JSON DEADLINE`` with the
function's environment: it imports ``HANDLER`` (``module.function``) from the unpacked code, calls it
with the event and a context object, and writes ``{"ok": true, "result": ...}`` or the error (type,
message, stack trace) to ``RESULT_JSON``. What the handler prints is the invocation's log.
Stdlib only and Python 3.9+: it runs on the runtime's own Python, before the function's code is on the path,
and takes its own folder off the path (the function sees its code and the runtime's packages only).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any

__all__ = ["LambdaContext", "main"]


class LambdaContext:
    """The context object a handler receives (the attributes and method Lambda's Python runtime gives)."""

    function_version = "$LATEST"

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.invoked_function_arn = os.environ.get("ETL_KIT_FUNCTION_ARN", "")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = os.environ.get("ETL_KIT_REQUEST_ID", "")
        self.log_group_name = "/aws/lambda/" + self.function_name
        self.log_stream_name = os.environ.get("ETL_KIT_LOG_STREAM", "")

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the function's timeout."""
        return max(0, int((self._deadline - time.time()) * 1000))


def invoke(handler_spec: str, event: Any, context: LambdaContext) -> dict[str, Any]:
    """Call the handler; its result, or its error as Lambda reports it (the traceback also goes to the log)."""
    try:
        module_name, fn_name = handler_spec.rsplit(".", 1)
        fn = getattr(importlib.import_module(module_name.replace("/", ".")), fn_name)
        return {"ok": True, "result": fn(event, context)}
    except Exception as exc:
        traceback.print_exc()
        return {"ok": False, "errorMessage": str(exc), "errorType": type(exc).__name__,
                "stackTrace": traceback.format_exc().splitlines()}


def main(argv: list[str]) -> int:
    """Run one invocation; see the module's docstring for the arguments."""
    code_dir, handler_spec, event_path, result_path, deadline = argv[:5]
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    sys.path.insert(0, code_dir)
    os.chdir(code_dir)
    with open(event_path) as fh:
        event = json.load(fh)
    out = invoke(handler_spec, event, LambdaContext(float(deadline)))
    with open(result_path, "w") as fh:
        json.dump(out, fh, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
