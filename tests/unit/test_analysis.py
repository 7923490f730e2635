"""The analysis' SQL, the environment it gives the user's tools on aws, and its charts (no warehouse needed)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from etl_kit import analysis
from etl_kit.config import load_settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """use_target() sets variables in os.environ itself (that is its job): none may reach the next test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_every_query_reads_the_settings_table_by_its_quoted_name() -> None:
    settings = load_settings(ROOT / "params" / "local.yaml", redshift_table="Sales_2024")
    sql = analysis.queries(settings)
    assert set(sql) == {"revenue_by_item_type", "revenue_by_region_and_item_type", "revenue_by_country",
                        "monthly_trend", "order_to_ship_days"}
    for name, text in sql.items():
        assert f'from "{settings.redshift_schema}"."sales_2024" ' in text, name  # folded, as Redshift does
    assert "limit 3" in analysis.queries(settings, limit=3)["revenue_by_country"]
    assert "limit 10" in sql["revenue_by_country"]


def test_a_table_name_never_becomes_sql() -> None:
    settings = load_settings(ROOT / "params" / "local.yaml")
    settings = settings.model_copy(update={"redshift_table": 'x"; drop table y; --'})
    with pytest.raises(ValueError, match="unsafe SQL identifier"):
        analysis.queries(settings)


def test_the_queries_translate_for_the_local_warehouse_as_one_statement_each() -> None:
    """What the local Data API and endpoint do with them: one plain SELECT each (no COPY, no no-op)."""
    from etl_localcloud.redshift.sqltranslate import split_statements, translate

    for name, text in analysis.queries(load_settings(ROOT / "params" / "local.yaml")).items():
        assert len(split_statements(text)) == 1, name
        [one] = translate(text)
        assert one.copy is None and one.sql and one.sql.lstrip().lower().startswith("select"), name


def test_on_aws_the_tools_get_the_params_region_and_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(ROOT / "params" / "aws.yaml", aws_profile="analyst", region="eu-west-1")
    for k in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(k, raising=False)
    table = analysis.use_target(settings)
    assert dict(zip(table["variable"], table["value"], strict=True)) == {
        "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_PROFILE": "analyst"}
    assert os.environ["AWS_PROFILE"] == "analyst" and os.environ["AWS_REGION"] == "eu-west-1"
    assert "AWS_ENDPOINT_URL" not in analysis.tools_environment(settings)  # AWS's own endpoints


def test_on_aws_a_kernel_that_ran_on_local_forgets_the_local_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """What use_target set for a local cloud earlier in the process is taken back; a value changed since stays."""
    local_values = {"AWS_ENDPOINT_URL": "http://127.0.0.1:4599", "AWS_ACCESS_KEY_ID": "testing",
                    "SSL_CERT_FILE": "/tmp/state/redshift/tls/trust-bundle.pem"}
    for k, v in local_values.items():
        monkeypatch.setenv(k, v)
        monkeypatch.setitem(analysis._SET_FOR_LOCAL, k, v)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUSERSOWNKEY")  # the user's own key, set after: kept
    analysis.use_target(load_settings(ROOT / "params" / "aws.yaml"))
    assert "AWS_ENDPOINT_URL" not in os.environ and "SSL_CERT_FILE" not in os.environ
    assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIAUSERSOWNKEY"
    assert analysis._SET_FOR_LOCAL == {}


def test_charts_draw_one_bar_per_row_and_one_line_per_series() -> None:
    df = pd.DataFrame({"item_type": ["Cosmetics", "Fruits", "Meat"], "revenue": [30.5, 20.0, 10.25],
                       "profit": [3.0, 2.0, 1.0]})
    bars = analysis.bar_figure(df, "item_type", "revenue", "Revenue").axes[0]
    assert [t.get_text() for t in bars.get_yticklabels()] == ["Meat", "Fruits", "Cosmetics"]  # first row on top
    assert sorted(p.get_width() for p in bars.patches) == [10.25, 20.0, 30.5]
    lines = analysis.line_figure(df, "item_type", ["revenue", "profit"], "Trend").axes[0]
    assert [ln.get_label() for ln in lines.get_lines()] == ["revenue", "profit"]
