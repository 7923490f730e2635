"""Ad-hoc analysis of the loaded sales data, in the warehouse: each function is SQL -> DataFrame (+ a figure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from etl_kit.config import Settings
from etl_kit.warehouse import query

if TYPE_CHECKING:
    import boto3
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["revenue_by_item_type", "revenue_by_region_and_item_type",
           "revenue_by_country", "monthly_trend", "top_countries", "order_to_ship_days",
           "bar_figure", "line_figure"]


def _t(settings: Settings) -> str:
    return f'"{settings.redshift_schema}"."{settings.redshift_table}"'


def revenue_by_item_type(settings: Settings, session: boto3.Session | None = None) -> pd.DataFrame:
    """Revenue, cost, profit and margin per item type, largest revenue first."""
    return query(f"""
        select item_type, count(*) as orders, sum(units_sold) as units,
               sum(total_revenue) as revenue, sum(total_cost) as cost, sum(total_profit) as profit,
               round(100.0 * sum(total_profit) / nullif(sum(total_revenue), 0), 2) as margin_pct
        from {_t(settings)} group by item_type order by revenue desc""", settings, session)


def revenue_by_region_and_item_type(settings: Settings, session: boto3.Session | None = None) -> pd.DataFrame:
    """Revenue and profit per region and item type (rows without a region show as '(none)')."""
    return query(f"""
        select coalesce(region, '(none)') as region, item_type, count(*) as orders,
               sum(total_revenue) as revenue, sum(total_profit) as profit
        from {_t(settings)} group by 1, 2 order by 1, revenue desc""", settings, session)


def revenue_by_country(settings: Settings, session: boto3.Session | None = None, *, limit: int = 10) -> pd.DataFrame:
    """Revenue and profit per country (the seed's job keeps country, not region)."""
    return query(f"""
        select country, count(*) as orders, sum(total_revenue) as revenue, sum(total_profit) as profit
        from {_t(settings)} group by country order by revenue desc limit {int(limit)}""", settings, session)


top_countries = revenue_by_country


def monthly_trend(settings: Settings, session: boto3.Session | None = None) -> pd.DataFrame:
    """Orders, revenue and profit per order month."""
    return query(f"""
        select date_trunc('month', order_date)::date as month, count(*) as orders,
               sum(total_revenue) as revenue, sum(total_profit) as profit
        from {_t(settings)} group by 1 order by 1""", settings, session)


def order_to_ship_days(settings: Settings, session: boto3.Session | None = None) -> pd.DataFrame:
    """Distribution of days from order to shipment per item type (min, average, max)."""
    return query(f"""
        select item_type, min(ship_date - order_date) as min_days,
               round(avg((ship_date - order_date)::numeric), 1) as avg_days, max(ship_date - order_date) as max_days
        from {_t(settings)} group by item_type order by avg_days desc""", settings, session)


def bar_figure(df: pd.DataFrame, x: str, y: str, title: str) -> Figure:
    """A horizontal bar chart of ``y`` by ``x``."""
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
