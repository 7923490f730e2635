"""The client factory only resolves the local cloud's endpoint: it reads the address the cloud wrote
(never starts it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from etl_kit.clients import account_id, client
from etl_kit.config import Settings, load_settings
from etl_kit.exceptions import LocalCloudError
from etl_localcloud.identity import ACCOUNT_ID, ADMIN, CloudAddress, Credentials
from etl_localcloud.spec import STATE_FILE, free_port

pytestmark = pytest.mark.unit


def _settings(state: Path) -> Settings:
    return load_settings(None, local_state_dir=str(state), local_port=free_port())


def _write_address(settings: Settings, endpoint: str, pid: int, credentials: Credentials = ADMIN) -> None:
    address = CloudAddress(endpoint=endpoint, region=settings.region, account_id=ACCOUNT_ID,
                           credentials=credentials, pid=pid, state_dir=str(settings.state_dir))
    (settings.state_dir / STATE_FILE).write_text(json.dumps(address.to_json()))


def test_a_cloud_that_is_not_running_is_named_with_the_fix_and_not_started(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(LocalCloudError, match=r"not running .*`etl-kit local up` \(or run notebook 00_setup\)"):
        client("s3", settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing was started: no pid file, no log


def test_an_address_left_by_a_dead_daemon_is_not_used(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_address(settings, settings.local_endpoint, dead.pid)
    with pytest.raises(LocalCloudError, match="not running"):
        account_id(settings)


def test_the_written_address_and_credentials_are_what_clients_use(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _write_address(settings, settings.local_endpoint, os.getpid(), Credentials("AKIDFROMTHEFILE", "secret"))
    s3 = client("s3", settings)
    assert s3.meta.endpoint_url == settings.local_endpoint
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    assert url.startswith(f"{settings.local_endpoint}/b/k?") and "AWSAccessKeyId=AKIDFROMTHEFILE&" in url
    assert account_id(settings) == ACCOUNT_ID == "123456789012"
    assert settings.bucket_name() == settings.bucket_name(account_id(settings))


def test_a_cloud_of_the_state_dir_on_another_port_is_named(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _write_address(settings, "http://127.0.0.1:1", os.getpid())
    with pytest.raises(LocalCloudError, match=r"serves at http://127\.0\.0\.1:1, not at .*set local_port"):
        client("sqs", settings)
