"""Ad-hoc analysis of the loaded sales data, as an analyst does it: Redshift SQL run with awswrangler.

The SQL is in :func:`queries` (Redshift's dialect; the local warehouse translates it as it does for the Data
API). :func:`connect` gives the connection the queries run on: awswrangler's Data API connection by default,
which works on both targets and from anywhere (an aws workgroup need not be publicly accessible), or with
``direct=True`` a redshift-connector connection to the workgroup's endpoint. :func:`use_target` points the
kernel's own AWS tools (boto3, awswrangler, redshift-connector) at the target, so a user's plain
``wr.data_api.redshift.read_sql_query(...)`` or ``redshift_connector.connect(...)`` works in the next cell.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from etl_kit.config import Settings

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["tools_environment", "use_target", "connect", "read", "queries", "revenue_by_item_type",
           "revenue_by_region_and_item_type", "revenue_by_country", "monthly_trend", "top_countries",
           "order_to_ship_days", "bar_figure", "line_figure"]


# -- the user's own tools ---------------------------------------------------------------------------
def tools_environment(settings: Settings) -> dict[str, str]:
    """The environment that points AWS SDKs and redshift-connector at the target (docs/local-cloud.md).

    On ``local``: the local cloud's endpoint and fixed keys (``AWS_ENDPOINT_URL``, ...) and ``SSL_CERT_FILE``,
    its trust bundle (the system's CAs plus the local CA), so redshift-connector's default ``sslmode=verify-full``
    verifies the workgroup endpoint as it verifies Redshift's. On ``aws``: the params' region and profile.

    Raises
    ------
    LocalCloudError
        On ``local``, when the local cloud is not running (naming ``etl-kit local up``).
    """
    if settings.target != "local":
        env = {"AWS_REGION": settings.region, "AWS_DEFAULT_REGION": settings.region}
        if settings.aws_profile:
            env["AWS_PROFILE"] = settings.aws_profile
        return env
    from etl_kit import local
    from etl_kit.clients import local_env

    env = local_env(settings)
    bundle = local.status(settings).get("providers", {}).get("redshift-serverless", {}).get("trust_bundle")
    if bundle:
        env["SSL_CERT_FILE"] = str(bundle)
    return env


#: What :func:`use_target` set in this process for a local cloud (taken back when a later call is for aws).
_SET_FOR_LOCAL: dict[str, str] = {}


def use_target(settings: Settings) -> pd.DataFrame:
    """Set :func:`tools_environment` in this process (the notebook's kernel); a table of what was set.

    The secret key is shown as ``(set)``; on ``local`` it is the local cloud's fixed test key.
    """
    import pandas as pd

    env = tools_environment(settings)
    if settings.target == "local":
        _SET_FOR_LOCAL.update(env)
    else:  # a kernel that ran on local before: take back the local endpoint and keys (unless changed since)
        for k, v in _SET_FOR_LOCAL.items():
            if os.environ.get(k) == v and k not in env:
                del os.environ[k]
        _SET_FOR_LOCAL.clear()
    os.environ.update(env)
    return pd.DataFrame([{"variable": k, "value": "(set)" if "SECRET" in k else v} for k, v in env.items()])


def connect(settings: Settings, *, direct: bool = False) -> Any:
    """A connection for :func:`read` and awswrangler: the Data API (default) or redshift-connector (``direct``).

    The Data API connection is ``wr.data_api.redshift.connect(workgroup_name=..., database=...)``; it needs no
    network path to the workgroup. ``direct=True`` is :func:`etl_kit.warehouse.connect` (the namespace's admin
    from its managed secret), for ``wr.redshift.read_sql_query``: on aws only where the workgroup's endpoint is
    reachable (publicly accessible, or from inside its VPC).
    """
    use_target(settings)  # awswrangler's Data API client takes the endpoint from AWS_ENDPOINT_URL
    if direct:
        from etl_kit.warehouse import connect as driver_connection

        return driver_connection(settings)
    import awswrangler as wr

    from etl_kit.clients import get_session

    return wr.data_api.redshift.connect(workgroup_name=settings.redshift_workgroup,
                                        database=settings.redshift_database, boto3_session=get_session(settings))


def read(sql: str, con: Any) -> pd.DataFrame:
    """Run ``sql`` on ``con`` with awswrangler: ``wr.data_api.redshift.read_sql_query`` on a Data API
    connection, ``wr.redshift.read_sql_query`` on a redshift-connector one."""
    import awswrangler as wr

    if isinstance(con, wr.data_api.redshift.RedshiftDataApi):
        return wr.data_api.redshift.read_sql_query(sql, con=con)
    return wr.redshift.read_sql_query(sql, con=con)


# -- the analysis -----------------------------------------------------------------------------------
def queries(settings: Settings, *, limit: int = 10) -> dict[str, str]:
    """The analysis as Redshift SQL, by name, on the settings' table (money as float8, rounded to cents)."""
    from etl_runtime.loadsql import quote_ident  # the loader's rule: a table name never becomes SQL

    t = f"{quote_ident(settings.redshift_schema)}.{quote_ident(settings.redshift_table)}"
    money = "round(sum({c}), 2)::float8 as {a}"
    rev, profit, cost = (money.format(c=f"total_{c}", a=c) for c in ("revenue", "profit", "cost"))
    return {
        "revenue_by_item_type": f"""select item_type, count(*) as orders, sum(units_sold) as units, {rev}, {cost},
       {profit}, round(100.0 * sum(total_profit) / nullif(sum(total_revenue), 0), 2)::float8 as margin_pct
from {t} group by item_type order by revenue desc""",
        "revenue_by_region_and_item_type": f"""select coalesce(region, '(none)') as region, item_type,
       count(*) as orders, {rev}, {profit}
from {t} group by 1, 2 order by 1, revenue desc""",
        "revenue_by_country": f"""select country, count(*) as orders, {rev}, {profit}
from {t} group by country order by revenue desc limit {int(limit)}""",
        "monthly_trend": f"""select date_trunc('month', order_date)::date as month, count(*) as orders, {rev}, {profit}
from {t} group by 1 order by 1""",
        "order_to_ship_days": f"""select item_type, min(ship_date - order_date) as min_days,
       round(avg((ship_date - order_date)::float8)::numeric, 1)::float8 as avg_days,
       max(ship_date - order_date) as max_days
from {t} group by item_type order by avg_days desc, item_type""",
    }


def revenue_by_item_type(con: Any, settings: Settings) -> pd.DataFrame:
    """Orders, units, revenue, cost, profit and margin per item type, largest revenue first."""
    return read(queries(settings)["revenue_by_item_type"], con)


def revenue_by_region_and_item_type(con: Any, settings: Settings) -> pd.DataFrame:
    """Revenue and profit per region and item type (rows without a region show as '(none)')."""
    return read(queries(settings)["revenue_by_region_and_item_type"], con)


def revenue_by_country(con: Any, settings: Settings, *, limit: int = 10) -> pd.DataFrame:
    """Orders, revenue and profit of the ``limit`` countries with the largest revenue."""
    return read(queries(settings, limit=limit)["revenue_by_country"], con)


top_countries = revenue_by_country


def monthly_trend(con: Any, settings: Settings) -> pd.DataFrame:
    """Orders, revenue and profit per order month (``month`` as a date, whichever connection read it)."""
    import pandas as pd

    df = read(queries(settings)["monthly_trend"], con)
    df["month"] = pd.to_datetime(df["month"]).dt.date
    return df


def order_to_ship_days(con: Any, settings: Settings) -> pd.DataFrame:
    """Days from order to shipment per item type: min, average, max."""
    return read(queries(settings)["order_to_ship_days"], con)


# -- charts -----------------------------------------------------------------------------------------
def bar_figure(df: pd.DataFrame, x: str, y: str, title: str) -> Figure:
    """A horizontal bar chart of ``y`` by ``x`` (the first row on top)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 0.35 * max(len(df), 4) + 1))
    ax = fig.add_subplot(111)
    ax.barh(df[x].astype(str)[::-1], df[y].astype(float)[::-1], color="#1565c0")
    ax.set_title(title)
    ax.set_xlabel(y)
    fig.tight_layout()
    return fig


def line_figure(df: pd.DataFrame, x: str, ys: list[str], title: str) -> Figure:
    """A line chart of ``ys`` over ``x``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.5))
    ax = fig.add_subplot(111)
    for y in ys:
        ax.plot(df[x], df[y].astype(float), marker="o", ms=3, label=y)
    ax.set_title(title)
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
