"""The price table's arithmetic: Glue's and Redshift Serverless's minimums, Lambda's rounding, the idle cost
of each network placement, and the REPORT lines the run cost reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_kit import pricing
from etl_kit.config import Settings
from etl_kit.cost import parse_report
from etl_kit.provision.network import INTERFACE_SERVICES, endpoint_subnets

pytestmark = pytest.mark.unit

SUBNETS = [{"SubnetId": f"subnet-{az}{i}", "AvailabilityZone": f"us-east-1{az}"}
           for az in "abcdef" for i in (1, 2)]


def test_every_price_cites_an_aws_pricing_page() -> None:
    assert pricing.REGION == "us-east-1" and pricing.PRICE_DATE
    for name, p in pricing.PRICES.items():
        assert p.source.startswith("https://aws.amazon.com/") and p.source.endswith("/pricing/"), name
        assert p.usd >= 0 and p.unit, name


def test_python_shell_job_bills_one_minute_minimum_then_per_second() -> None:
    short = pricing.glue_job("job", 12.0, 0.0625)
    assert short.quantity == pytest.approx(0.0625 * 60 / 3600)
    assert short.usd == pytest.approx(0.0625 * 60 / 3600 * 0.44)
    assert "60 s minimum" in short.derivation
    long = pricing.glue_job("job", 90.2, 0.0625)  # per second, rounded up
    assert long.usd == pytest.approx(0.0625 * 91 / 3600 * 0.44)


def test_crawler_bills_ten_minutes_minimum() -> None:
    assert pricing.crawler("c", 7.5).usd == pytest.approx(2 * 600 / 3600 * 0.44)
    assert pricing.crawler("c", 900.0).usd == pytest.approx(2 * 900 / 3600 * 0.44)
    assert pricing.crawler("c", 1.0, dpus=1).usd == pytest.approx(600 / 3600 * 0.44)


def test_lambda_gb_seconds_round_up_to_the_millisecond_plus_the_request() -> None:
    gb_s, request = pricing.lambda_invocation("fn", 100.2, 256, "REPORT")
    assert gb_s.quantity == pytest.approx(0.25 * 0.101)
    assert gb_s.usd == pytest.approx(0.25 * 0.101 * 0.0000166667)
    assert request.usd == pytest.approx(0.2e-6)


def test_redshift_serverless_sixty_second_minimum_at_base_capacity() -> None:
    assert pricing.redshift_serverless("rs", 1.3, 8).usd == pytest.approx(8 * 60 / 3600 * 0.375)
    assert pricing.redshift_serverless("rs", 75.0, 16).usd == pytest.approx(16 * 75 / 3600 * 0.375)


def test_s3_requests_and_storage() -> None:
    puts, gets, stored = pricing.s3_requests(4, 1002, 2 * 1024 ** 3, "x")
    assert puts.usd == pytest.approx(4 * 0.005 / 1000)
    assert gets.usd == pytest.approx(1002 * 0.0004 / 1000)
    assert stored.usd == pytest.approx(2 * 0.023)


def test_logs_ingestion_by_the_gigabyte() -> None:
    line = pricing.logs_ingestion(3 * 1024 ** 3, "x")
    assert line.usd == pytest.approx(1.50) and "3,221,225,472 bytes" in line.derivation


def test_default_placement_has_no_endpoints_and_idles_under_forty_dollars() -> None:
    s = Settings()
    assert s.network_placement == "none" and endpoint_subnets(s, SUBNETS) == []
    lines = pricing.idle_monthly(s, 0, 0)
    assert pricing.total(lines) == pytest.approx(0.80)  # the managed admin secret and the loader's secret
    assert pricing.total(lines) < 40


def test_one_az_puts_the_endpoints_in_the_connections_subnet_only() -> None:
    s = Settings(network_placement="one_az")
    assert endpoint_subnets(s, SUBNETS) == ["subnet-a1"]
    lines = pricing.idle_monthly(s, len(INTERFACE_SERVICES), 1)
    assert pricing.total(lines) == pytest.approx(5 * 730 * 0.01 + 0.80)  # $37.30


def test_every_az_is_the_seeds_placement_one_subnet_per_az() -> None:
    s = Settings(network_placement="every_az")
    placed = endpoint_subnets(s, SUBNETS)
    assert placed == [f"subnet-{az}1" for az in "abcdef"]
    lines = pricing.idle_monthly(s, len(INTERFACE_SERVICES), len(placed))
    endpoints = next(x for x in lines if x.component == "VPC interface endpoints")
    assert endpoints.quantity == 5 * 6 * 730 and endpoints.usd == pytest.approx(219.0)
    assert "5 endpoints x 6 AZ x 730 h" in endpoints.derivation
    assert endpoint_subnets(Settings(network_placement="every_az", create_vpc_endpoints=False), SUBNETS) == []


def test_report_line_of_aws_and_of_the_local_cloud() -> None:
    aws = ("REPORT RequestId: 3f1e\tDuration: 102.25 ms\tBilled Duration: 103 ms\tMemory Size: 256 MB\t"
           "Max Memory Used: 80 MB\tInit Duration: 300.1 ms")
    assert parse_report(aws) == (103.0, 256, True)
    local = "REPORT RequestId: 9a\tDuration: 812.40 ms\tMemory Size: 256 MB"
    assert parse_report(local) == (812.4, 256, False)
    assert parse_report("END RequestId: 9a") is None


def test_the_run_summary_prints_the_recorded_cost_total(tmp_path: Path) -> None:
    from etl_kit.nb import record
    from etl_kit.runner import write_summary

    s = Settings(local_state_dir=str(tmp_path / "state"))
    record(s, "cost", {"run_id": "wr_1", "total_usd": 0.34567, "note": "us-east-1 list prices; local durations"})
    summary = write_summary(s, tmp_path, [{"notebook": "03_monitor_workflow", "status": "succeeded",
                                           "error": None, "seconds": 1.0}])
    assert summary["cost"]["total_usd"] == 0.34567
    assert "- cost of run wr_1: $0.3457 (us-east-1 list prices; local durations)" in summary["markdown"]
