"""The kit's one price table and the billing arithmetic (minimums, rounding) it is applied with.

Prices are us-east-1 on-demand list prices in USD, each with the AWS pricing page it comes from, as of
:data:`PRICE_DATE`. They were written down without fetching the pages (this kit is built with no network
beyond the package index), and AWS changes them: check the cited page before relying on a figure.
:func:`idle_monthly` prices what provisioning leaves running; :mod:`etl_kit.cost` prices one run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from etl_kit.config import Settings

__all__ = ["Price", "PRICES", "REGION", "PRICE_DATE", "HOURS_PER_MONTH", "CRAWLER_DPUS", "CostLine", "price",
           "glue_job", "crawler", "lambda_invocation", "redshift_serverless", "s3_requests", "requests",
           "logs_ingestion", "idle_monthly", "total"]

REGION = "us-east-1"
PRICE_DATE = "2025-06-01"
HOURS_PER_MONTH = 730  # AWS's own convention for monthly estimates (8,760 h / 12)
# Glue does not report a crawler's DPUs; its pricing page's crawler example is 2 DPUs, used here.
CRAWLER_DPUS = 2.0

_GLUE = "https://aws.amazon.com/glue/pricing/"
_LAMBDA = "https://aws.amazon.com/lambda/pricing/"
_REDSHIFT = "https://aws.amazon.com/redshift/pricing/"
_S3 = "https://aws.amazon.com/s3/pricing/"
_PRIVATELINK = "https://aws.amazon.com/privatelink/pricing/"


@dataclass(frozen=True)
class Price:
    """One line of the price table: ``usd`` per ``unit``, read on :data:`PRICE_DATE` from ``source``."""

    usd: float
    unit: str
    source: str
    billing: str = ""


PRICES: dict[str, Price] = {
    "vpc_endpoint_hour": Price(0.01, "interface endpoint per AZ-hour", _PRIVATELINK),
    "vpc_endpoint_gb": Price(0.01, "GB processed by an interface endpoint (first PB)", _PRIVATELINK),
    "vpc_gateway_endpoint": Price(0.0, "S3 gateway endpoint", _PRIVATELINK, "no charge"),
    "glue_pythonshell_dpu_hour": Price(0.44, "DPU-hour, Python shell (0.0625 DPU)", _GLUE,
                                       "per second, 1-minute minimum"),
    "glue_crawler_dpu_hour": Price(0.44, "DPU-hour, crawler", _GLUE, "per second, 10-minute minimum per crawl"),
    "lambda_gb_second": Price(0.0000166667, "GB-second (x86)", _LAMBDA, "billed duration rounded up to 1 ms"),
    "lambda_request": Price(0.20 / 1e6, "request", _LAMBDA),
    "redshift_rpu_hour": Price(0.375, "RPU-hour, Redshift Serverless", _REDSHIFT,
                               "per second, 60-second minimum, at the workgroup's base capacity"),
    "redshift_storage_gb_month": Price(0.024, "GB-month, Redshift managed storage", _REDSHIFT),
    "s3_put_request": Price(0.005 / 1000, "PUT/COPY/POST/LIST request, S3 Standard", _S3),
    "s3_get_request": Price(0.0004 / 1000, "GET/SELECT request, S3 Standard", _S3),
    "s3_gb_month": Price(0.023, "GB-month, S3 Standard (first 50 TB)", _S3),
    "sqs_request": Price(0.40 / 1e6, "request, SQS standard queue", "https://aws.amazon.com/sqs/pricing/"),
    "sns_publish": Price(0.50 / 1e6, "publish, SNS standard topic (SQS deliveries free)",
                         "https://aws.amazon.com/sns/pricing/"),
    "secret_month": Price(0.40, "secret-month, Secrets Manager", "https://aws.amazon.com/secrets-manager/pricing/"),
    "logs_ingested_gb": Price(0.50, "GB ingested, CloudWatch Logs standard", "https://aws.amazon.com/cloudwatch/pricing/"),
}


def price(name: str) -> float:
    """The USD price of one unit of ``name`` (a key of :data:`PRICES`)."""
    return PRICES[name].usd


@dataclass(frozen=True)
class CostLine:
    """One priced component: ``quantity`` ``unit`` at ``unit_usd`` each = ``usd``; ``derivation`` says how."""

    component: str
    quantity: float
    unit: str
    unit_usd: float
    usd: float
    derivation: str


def _line(component: str, quantity: float, price_name: str, derivation: str) -> CostLine:
    p = PRICES[price_name]
    return CostLine(component, quantity, p.unit, p.usd, quantity * p.usd, derivation)


def glue_job(component: str, execution_s: float, dpu: float) -> CostLine:
    """A Python shell job run: ``dpu`` x max(``execution_s``, 60 s), per second, at the DPU-hour price."""
    billed = max(60.0, math.ceil(execution_s))
    return _line(component, dpu * billed / 3600, "glue_pythonshell_dpu_hour",
                 f"{dpu} DPU x max({execution_s:.1f} s, 60 s minimum) = {dpu * billed:.2f} DPU-s")


def crawler(component: str, duration_s: float, dpus: float = CRAWLER_DPUS) -> CostLine:
    """One crawl: ``dpus`` x max(``duration_s``, 600 s), per second, at the crawler DPU-hour price."""
    billed = max(600.0, math.ceil(duration_s))
    return _line(component, dpus * billed / 3600, "glue_crawler_dpu_hour",
                 f"{dpus} DPU (assumed) x max({duration_s:.1f} s, 600 s minimum) = {dpus * billed:.0f} DPU-s")


def lambda_invocation(component: str, billed_ms: float, memory_mb: int, source: str) -> list[CostLine]:
    """One invocation: memory (GB) x billed duration (rounded up to the ms) in GB-s, plus the request."""
    ms = math.ceil(billed_ms)
    gb_s = memory_mb / 1024 * ms / 1000
    return [_line(component, gb_s, "lambda_gb_second", f"{memory_mb} MB x {ms} ms ({source})"),
            _line(f"{component} request", 1, "lambda_request", "one invocation")]


def redshift_serverless(component: str, statement_s: float, base_rpu: int) -> CostLine:
    """The load's compute: ``base_rpu`` x max(statement seconds, 60 s), per second, at the RPU-hour price.

    An estimate: Redshift Serverless bills the workgroup's RPU-seconds while any query runs, so concurrent
    work shares the same seconds and idle time between statements is not counted here.
    """
    billed = max(60.0, math.ceil(statement_s))
    return _line(component, base_rpu * billed / 3600, "redshift_rpu_hour",
                 f"{base_rpu} RPU (base capacity) x max({statement_s:.2f} s of Data API statements, 60 s minimum)")


def s3_requests(puts: int, gets: int, stored_bytes: int, what: str) -> list[CostLine]:
    """S3 request charges and one month of Standard storage for ``stored_bytes``."""
    gb = stored_bytes / 1024 ** 3
    return [_line("S3 PUT/LIST requests", puts, "s3_put_request", what),
            _line("S3 GET requests", gets, "s3_get_request", what),
            _line("S3 storage (one month)", gb, "s3_gb_month",
                  f"{stored_bytes:,} bytes: the source and the objects the run wrote")]


def requests(component: str, count: int, price_name: str, derivation: str) -> CostLine:
    """``count`` requests at ``price_name`` (SQS, SNS)."""
    return _line(component, count, price_name, derivation)


def logs_ingestion(size_bytes: int, sources: str) -> CostLine:
    """CloudWatch Logs ingestion of ``size_bytes`` (each event's UTF-8 message plus 26 bytes)."""
    return _line("CloudWatch Logs ingestion", size_bytes / 1024 ** 3, "logs_ingested_gb",
                 f"{size_bytes:,} bytes (message + 26 B per event) from {sources}")


def idle_monthly(settings: Settings, interface_endpoints: int, subnets: int) -> list[CostLine]:
    """What the provisioned resources cost per month with no file arriving.

    ``interface_endpoints`` in ``subnets`` subnets (one AZ each) bill every hour; the two secrets (the
    admin password's and the loader user's) bill per month; Redshift Serverless compute, Glue, Lambda, SQS,
    SNS and EventBridge bill only per use (storage of the data itself is left out: it grows with what you
    load).
    """
    az_hours = interface_endpoints * subnets * HOURS_PER_MONTH
    return [
        _line("VPC interface endpoints", az_hours, "vpc_endpoint_hour",
              f"{interface_endpoints} endpoints x {subnets} AZ x {HOURS_PER_MONTH} h "
              f"(network_placement {settings.network_placement!r})"),
        _line("S3 gateway endpoint", 1 if interface_endpoints else 0, "vpc_gateway_endpoint", "free"),
        _line("Secrets Manager secrets", 2, "secret_month",
              "the workgroup's managed admin password and the loader user's password (the jobs' sign-in)"),
        _line("Redshift Serverless compute", 0, "redshift_rpu_hour",
              f"0 RPU-h idle (billed only while queries run; base capacity {settings.redshift_base_capacity} RPU)"),
    ]


def total(lines: list[CostLine]) -> float:
    """The sum of ``lines`` in USD."""
    return sum(x.usd for x in lines)
