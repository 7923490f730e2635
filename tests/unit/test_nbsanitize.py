"""The sanitiser's rules (etl_kit/nbsanitize.py): what varies or must not be published becomes a placeholder,
what the walkthrough means stays, twice is once, and nbval reads the very same rules; the recorder's grafting."""

from __future__ import annotations

import re

import nbformat
import pytest

from etl_kit.exceptions import PipelineError
from etl_kit.nbrecord import _secret_strings, graft_outputs
from etl_kit.nbsanitize import RULES, RunValues, nbval_config, rules_for, sanitize_notebook, sanitize_text

pytestmark = pytest.mark.unit

RUN = RunValues(paths={"/tmp/etl-kit-record-ab12cd34/state": "<state-dir>", "/work/etl-kit": "<checkout>",
                       "/home/ana": "~"},
                ports=(41234, 52001), secrets=("q9Zk3_vQ9-aBcDeFgHiJkLmAa1",))
RULES_OF_RUN = rules_for(RUN)

CASES = [
    ("run wr_9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 RUNNING", "run wr_<id> RUNNING"),
    ("job run jr_0123abcd finished", "job run jr_<id> finished"),
    ("request 1b4e28ba-2fa1-11d2-883f-0016d3cca427 ok", "request <uuid> ok"),
    ("at 2026-11-27T12:01:27.123456+00:00.", "at <timestamp>."),
    ("started 2026-11-27 12:01:27+00:00", "started <timestamp>"),
    ("input/sales_1000_42_20261127T120127.csv", "input/sales_1000_42_<stamp>.csv"),
    ("http://127.0.0.1:41234/ and localhost:5432", "http://127.0.0.1:<port>/ and localhost:<port>"),
    ("local_port  41234", "local_port  <port>"),
    ("<td>52001</td>", "<td><port></td>"),
    ("/tmp/etl-kit-record-ab12cd34/state/redshift/tls/trust-bundle.pem", "<state-dir>/redshift/tls/trust-bundle.pem"),
    ("/work/etl-kit/params/local.yaml and /home/ana/.aws", "<checkout>/params/local.yaml and ~/.aws"),
    ("cwd /tmp/pytest-of-ana/pytest-3/x.ipynb", "cwd <tmp>"),
    ("arn:aws:iam::123456789012:role/glue-crawler-role", "arn:aws:iam::<account-id>:role/glue-crawler-role"),
    ("aws-glue-assets-123456789012-us-east-1", "aws-glue-assets-<account-id>-us-east-1"),
    ("key AKIAIOSFODNN7EXAMPLE", "key <access-key-id>"),
    ("token FwoGZXIvYXdzEJr//////////wEaDM+abc=", "token <session-token>"),
    ("password q9Zk3_vQ9-aBcDeFgHiJkLmAa1", "password <secret>"),
    ("ETag 3858f62230ac3c915f300c664312c63f", "ETag <etag>"),
    ("claims/422091fcd6b14c3703cdfa2417878a553f9816ae9454989bc6c4781a1ec975ce/1.json", "claims/<sha256>/1.json"),
    ("quarantine/sales_1000_42_20261127T120127.csv-9fade79944e12274.quarantine.csv",
     "quarantine/sales_1000_42_<stamp>.csv-<digest>.quarantine.csv"),
    ("<Figure at 0x7f3a2b1c9d80>", "<Figure at 0x<address>>"),
    ("upload x.csv: 100%|##########| 124k/124k [00:00<00:00, 1.23MB/s]", "upload x.csv: 100%|##########| 124k/124k "
     "[<elapsed>]"),
    ("replay failed: 0object [00:00, ?object/s]", "replay failed: 0object [<elapsed>]"),
    ("sales-data-workflow a5147088: 100%|##| 4/4", "sales-data-workflow <run>: 100%|##| 4/4"),
    ("max(2.4 s, 600 s minimum) = 1200 DPU-s", "max(<t> s, 600 s minimum) = 1200 DPU-s"),
    ("256 MB x 3838 ms (Duration", "256 MB x <t> ms (Duration"),
    ("a      b   \nc  ", "a  b\nc"),
]


@pytest.mark.parametrize(("raw", "published"), CASES, ids=[c[1][:40] for c in CASES])
def test_a_rule_replaces_what_varies_and_twice_is_once(raw: str, published: str) -> None:
    assert sanitize_text(raw, RULES_OF_RUN) == published
    assert sanitize_text(published, RULES_OF_RUN) == published
    assert sanitize_text(published, RULES) == published  # the committed outputs are a fixpoint of the fixed rules


@pytest.mark.parametrize("kept", [
    "order_date 2014-05-12, order_id 669165933, revenue 1302082627.24",
    "60 s minimum, 600 s minimum, 8 RPU", "sales-data-workflow SUCCEEDED", "python 3.11",
    "s3://sales-data-etl-project/input/tmp/x.csv", "Decimal('392472224.01')", "0.0625 DPU x 4.400000e-01",
])
def test_what_the_walkthrough_means_stays(kept: str) -> None:
    assert sanitize_text(kept, RULES_OF_RUN) == kept


def test_nbval_reads_the_same_rules() -> None:
    """The sanitize file nbval gets, read as nbval reads it, applies exactly the rules the recorder applied."""
    from nbval.plugin import get_sanitize_patterns

    pairs = get_sanitize_patterns(nbval_config(RULES_OF_RUN))
    assert pairs == [(r.pattern, r.replace) for r in RULES_OF_RUN]
    for raw, published in CASES:
        got = raw
        for regex, replace in pairs:  # as nbval's IPyNbCell.sanitize does
            got = re.sub(regex, replace, got)
        assert got == published


def _notebook() -> dict:
    nb = nbformat.v4.new_notebook()
    nb.metadata.update(kernelspec={"name": "etl-kit"}, language_info={"name": "python", "version": "3.11.7"},
                       papermill={"duration": 3.2}, widgets={"state": {}})
    params = nbformat.v4.new_code_cell('params_file = "params/local.yaml"', id="p")
    params.metadata["tags"] = ["parameters"]
    shown = nbformat.v4.new_code_cell("nb.setup(settings)", id="c", execution_count=7, outputs=[
        nbformat.v4.new_output("stream", name="stderr", text="bar: 100%|##| 1/1 [00:01<00:00, 2.1it/s]\n"),
        nbformat.v4.new_output("execute_result", execution_count=7, data={
            "text/plain": "wr_abc at 2026-11-27T12:00:00Z", "image/png": "iVBORw0KGgo=",
            "application/vnd.jupyter.widget-view+json": {"model_id": "x"}}),
        nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "y"}}),
    ])
    shown.metadata["papermill"] = {"duration": 1.0}
    shown.metadata["execution"] = {"iopub.status.busy": "2026-11-27T12:00:00Z"}
    return dict(nbformat.from_dict({**nb, "cells": [nbformat.v4.new_markdown_cell("# T", id="m"), params, shown]}))


def test_a_notebook_is_published_without_run_metadata_widgets_or_stray_counts() -> None:
    out = sanitize_notebook(_notebook())
    assert out["metadata"] == {"kernelspec": {"name": "etl-kit"}, "language_info": {"name": "python"}}
    params, shown = out["cells"][1], out["cells"][2]
    assert params["execution_count"] is None and params["metadata"] == {"tags": ["parameters"]}
    assert shown["execution_count"] == 1 and shown["metadata"] == {}
    assert [o["output_type"] for o in shown["outputs"]] == ["stream", "execute_result"]  # the widget-only one went
    result = shown["outputs"][1]
    assert result["execution_count"] == 1
    assert result["data"] == {"text/plain": "wr_<id> at <timestamp>", "image/png": "iVBORw0KGgo="}
    assert shown["outputs"][0]["text"] == "bar: 100%|##| 1/1 [<elapsed>]\n"
    assert sanitize_notebook(out) == out


def test_grafting_puts_the_executed_outputs_on_the_committed_cells() -> None:
    source = _notebook()
    for cell in source["cells"]:
        cell.pop("outputs", None) if cell["cell_type"] != "code" else cell.update(outputs=[], execution_count=None)
    executed = _notebook()
    injected = nbformat.v4.new_code_cell('params_file = "/tmp/x/params.yaml"', id="injected", execution_count=2)
    executed["cells"].insert(2, injected)
    got = graft_outputs(source, executed)
    assert [c["id"] for c in got["cells"]] == ["m", "p", "c"]  # papermill's injected cell is not committed
    assert got["cells"][2]["outputs"] == executed["cells"][3]["outputs"]
    assert got["cells"][1]["source"] == 'params_file = "params/local.yaml"'
    executed["cells"][3]["source"] = "nb.setup(other)"
    with pytest.raises(PipelineError, match="cell c of the committed notebook"):
        graft_outputs(source, executed)


def test_the_secret_values_of_a_managed_secret() -> None:
    """A Redshift managed admin secret: its password is a secret, its user name and host are not."""
    value = '{"username": "admin", "password": "q9Zk3_vQ9-aBcDeFgHiJkLmAa1", "engine": "redshift", "port": 5439}'
    assert _secret_strings(value) == ["q9Zk3_vQ9-aBcDeFgHiJkLmAa1"]
    assert _secret_strings("plain-secret-text") == ["plain-secret-text"]
