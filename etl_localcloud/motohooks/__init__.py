"""All coupling to moto's internals lives in this package, and nowhere else; one module per service.

moto is pinned exactly (:data:`~.contract.MOTO_VERSION`, pyproject.toml). Each module says in its
docstring which of moto's internals it touches and checks them in its ``contract()``;
:func:`check_contract` runs them all at the daemon's start, and ``tests/local/test_moto_contract.py``
fails loudly when a moto upgrade moves one of them.

- :mod:`.server`: moto's WSGI app, its backends as a whole (reset, snapshot, restore)
- :mod:`.events`: rule targets moto does not deliver, AWS-service events on the default bus
  (:mod:`.event_input`: EventBridge's Input / InputPath / InputTransformer, no moto internals)
- :mod:`.lambda_`: deployed functions, the SQS event source mapping guard
- :mod:`.sqs`, :mod:`.sns`: in-process delivery
- :mod:`.glue`: connections moto cannot delete
- :mod:`.probe`: how the contract checks look at a sample backend
- :mod:`.s3`: the bucket notification fix; :mod:`.s3_blobs`, :mod:`.s3_multipart`, :mod:`.s3_blobfiles`:
  object bodies as files

The names below are the package's interface; callers may also import the modules.
"""

from __future__ import annotations

from etl_localcloud.motohooks.contract import MOTO_VERSION, check_contract
from etl_localcloud.motohooks.events import install_event_target_hook, put_event
from etl_localcloud.motohooks.glue import glue_connection_input, glue_delete_connection
from etl_localcloud.motohooks.lambda_ import install_event_source_mapping_guard, lambda_function
from etl_localcloud.motohooks.s3 import install_s3_notification_fix
from etl_localcloud.motohooks.s3_blobfiles import LAZY_BODY_BYTES, LazyBody, take_dead_blobs, write_blob
from etl_localcloud.motohooks.s3_blobs import (
    _rebuild_key_store,  # noqa: F401  (snapshots written before the split name it here)
    collecting_blobs,
    install_s3_blob_store,
    reducers,
    restoring,
)
from etl_localcloud.motohooks.server import backends_state, make_moto_app, reset, restore_backends
from etl_localcloud.motohooks.sns import sns_publish
from etl_localcloud.motohooks.sqs import sqs_send

__all__ = [
    "MOTO_VERSION",
    "check_contract",
    "make_moto_app",
    "reset",
    "backends_state",
    "restore_backends",
    "install_event_target_hook",
    "put_event",
    "install_event_source_mapping_guard",
    "lambda_function",
    "sqs_send",
    "sns_publish",
    "install_s3_notification_fix",
    "glue_delete_connection",
    "glue_connection_input",
    "install_s3_blob_store",
    "reducers",
    "take_dead_blobs",
    "write_blob",
    "restoring",
    "collecting_blobs",
    "LazyBody",
    "LAZY_BODY_BYTES",
]
