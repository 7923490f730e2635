"""The local cloud's snapshot and S3 blob store, on moto in-process (each phase in its own interpreter).

The blob store patches moto's classes for the whole process, so the phases run in subprocesses: one
writes state and a snapshot, the next restores it from disk as a restarted daemon would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PRELUDE = """
import hashlib, json, os, sys
from pathlib import Path
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
import boto3
from moto import mock_aws
from etl_localcloud.persistence import Persister
root = Path(sys.argv[1])
out = {}
"""

WRITE = """
with mock_aws():
    persister = Persister(root, stream_gets=False)  # moto's in-process mock wants bytes bodies
    persister.restore()
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bkt-versions")
    s3.put_bucket_versioning(Bucket="bkt-versions", VersioningConfiguration={"Status": "Enabled"})
    out["v1"] = s3.put_object(Bucket="bkt-versions", Key="k", Body=b"one", Metadata={"who": "me"})["VersionId"]
    out["v2"] = s3.put_object(Bucket="bkt-versions", Key="k", Body=b"two")["VersionId"]
    part = os.urandom(5 * 1024 * 1024 + 10)
    bodies = {1: part, 2: part[:100]}
    up = s3.create_multipart_upload(Bucket="bkt-versions", Key="multi", ChecksumAlgorithm="CRC32")
    etags = [s3.upload_part(Bucket="bkt-versions", Key="multi", UploadId=up["UploadId"], PartNumber=n,
                            Body=bodies[n], ChecksumAlgorithm="CRC32")["ETag"] for n in (1, 2)]
    done = s3.complete_multipart_upload(Bucket="bkt-versions", Key="multi", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e}
                                                                   for n, e in zip((1, 2), etags)]})
    out["multi_etag"] = done["ETag"]
    body = s3.get_object(Bucket="bkt-versions", Key="multi")["Body"].read()
    out["multi_ok"] = body == bodies[1] + bodies[2]
    out["multi_md5"] = hashlib.md5(body).hexdigest()
    ranged = s3.get_object(Bucket="bkt-versions", Key="multi", Range="bytes=10-19")
    out["range_ok"] = ranged["Body"].read() == body[10:20] and ranged["ContentRange"].endswith(f"/{len(body)}")
    s3.create_bucket(Bucket="bkt-plain")
    s3.put_object(Bucket="bkt-plain", Key="src", Body=b"source")
    s3.copy_object(Bucket="bkt-plain", Key="copy", CopySource={"Bucket": "bkt-plain", "Key": "src"})
    s3.put_object(Bucket="bkt-plain", Key="src", Body=b"changed")
    out["copy_independent"] = s3.get_object(Bucket="bkt-plain", Key="copy")["Body"].read() == b"source"
    s3.put_object(Bucket="bkt-plain", Key="gone", Body=b"bye")
    s3.delete_object(Bucket="bkt-plain", Key="gone")
    sqs = boto3.client("sqs")
    q = sqs.create_queue(QueueName="q1")["QueueUrl"]
    sqs.send_message(QueueUrl=q, MessageBody="waiting")
    persister.snapshot()
    persister.snapshot()  # the second one collects what the first still named
    out["blobs"] = len(list((root / "s3-blobs").iterdir()))
print(json.dumps(out))
"""

READ = """
with mock_aws():
    report = Persister(root, stream_gets=False).restore()
    out["restored"] = report["restored"]
    s3 = boto3.client("s3")
    v1 = s3.get_object(Bucket="bkt-versions", Key="k", VersionId=sys.argv[2])
    out["v1"] = [v1["Body"].read().decode(), v1["Metadata"]]
    out["latest"] = s3.get_object(Bucket="bkt-versions", Key="k")["Body"].read().decode()
    out["versions"] = len(s3.list_object_versions(Bucket="bkt-versions", Prefix="k")["Versions"])
    multi = s3.get_object(Bucket="bkt-versions", Key="multi")
    out["multi"] = [multi["ETag"], hashlib.md5(multi["Body"].read()).hexdigest()]
    out["plain"] = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="bkt-plain")["Contents"])
    out["copy"] = s3.get_object(Bucket="bkt-plain", Key="copy")["Body"].read().decode()
    sqs = boto3.client("sqs")
    q = sqs.get_queue_url(QueueName="q1")["QueueUrl"]
    out["messages"] = [m["Body"] for m in sqs.receive_message(QueueUrl=q).get("Messages", [])]
print(json.dumps(out))
"""


def _run(script: str, *args: str) -> dict:  # type: ignore[type-arg]
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(PRELUDE) + textwrap.dedent(script), *args],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def test_s3_bodies_versions_multipart_and_queues_survive_a_restart(tmp_path: Path) -> None:
    written = _run(WRITE, str(tmp_path))
    assert written["multi_ok"] and written["range_ok"] and written["copy_independent"]
    assert written["multi_etag"].strip('"').endswith("-2")
    # k's two versions, multi, copy and src: the deleted key's and the overwritten src's bodies are gone
    assert written["blobs"] == 5

    got = _run(READ, str(tmp_path), written["v1"])
    assert got["restored"] is True
    assert got["v1"] == ["one", {"who": "me"}]
    assert got["latest"] == "two" and got["versions"] == 2
    assert got["multi"] == [written["multi_etag"], written["multi_md5"]]
    assert got["plain"] == ["copy", "src"] and got["copy"] == "source"
    assert got["messages"] == ["waiting"]
    assert (tmp_path / "snapshot.pickle").stat().st_mode & 0o077 == 0


def test_a_snapshot_is_replaced_atomically(tmp_path: Path) -> None:
    from etl_localcloud.persistence import write_atomically

    target = tmp_path / "snapshot.pickle"
    write_atomically(target, b"first")
    write_atomically(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot.pickle"]  # no temporary left behind


@pytest.mark.parametrize(("method", "path", "target", "expected"), [
    ("GET", "/bucket/key", "", (False, False)),
    ("HEAD", "/bucket/key", "", (False, False)),
    ("PUT", "/bucket/key", "", (True, True)),  # an S3 write is answered once durable
    ("DELETE", "/bucket/key", "", (True, True)),
    ("POST", "/2015-03-31/functions", "", (True, True)),  # CreateFunction
    ("POST", "/2015-03-31/functions/f/invocations", "", (False, False)),
    ("POST", "/", "AmazonSQS.SendMessage", (True, True)),
    ("POST", "/", "AmazonSQS.DeleteMessage", (True, True)),
    ("POST", "/", "AmazonSQS.ReceiveMessage", (False, False)),
    ("POST", "/", "AWSGlue.CreateTable", (True, False)),  # control plane: debounced
    ("POST", "/", "AWSGlue.GetTables", (False, False)),
    ("POST", "/", "RedshiftData.ExecuteStatement", (False, False)),
    ("POST", "/", "", (True, False)),  # query protocol (IAM, SNS): the action is in the body
    ("GET", "/_etl_kit/health", "", (False, False)),
])
def test_which_requests_change_state_and_which_wait_for_the_disk(method: str, path: str, target: str,
                                                                 expected: tuple[bool, bool]) -> None:
    from etl_localcloud.persistence import PersistingApp

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path}
    if target:
        environ["HTTP_X_AMZ_TARGET"] = target
    assert PersistingApp._classify(environ) == expected
