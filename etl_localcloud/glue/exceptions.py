"""The Glue provider's errors, one class per AWS Glue error code (the class name is the code)."""

from __future__ import annotations

from etl_localcloud.core.errors import AwsError

__all__ = ["EntityNotFoundException", "InvalidInputException", "ConcurrentRunsExceededException",
           "CrawlerRunningException", "CrawlerNotRunningException", "CrawlerStoppingException",
           "IllegalWorkflowStateException"]


class EntityNotFoundException(AwsError):
    """An unknown job, crawler, workflow, database, connection or run."""


class InvalidInputException(AwsError):
    """A request Glue refuses for its content (a bad path, a missing member, a run that cannot stop)."""


class ConcurrentRunsExceededException(AwsError):
    """A job or workflow already runs as many times as its ``MaxConcurrentRuns`` allows."""


class CrawlerRunningException(AwsError):
    """``StartCrawler`` on a crawler that is crawling."""


class CrawlerNotRunningException(AwsError):
    """``StopCrawler`` on a crawler that is not crawling."""


class CrawlerStoppingException(AwsError):
    """``StopCrawler`` on a crawler that is already stopping."""


class IllegalWorkflowStateException(AwsError):
    """``StopWorkflowRun`` on a run that is not running."""
