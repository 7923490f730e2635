"""The contract's range and cross-column rules: parsed as data, evaluated per row, quarantine or warn."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from etl_kit.config import DEFAULT_CONTRACT, SEED_CONTRACT, DatasetContract
from etl_runtime.contract import compile_contract, parse_check_expression
from tests.unit.test_pipeline_transform import HEADER, lines, row, run

pytestmark = pytest.mark.unit

RULES: dict[str, Any] = {
    **SEED_CONTRACT,
    "columns": [dict(c, min=0) if c["name"] in ("units_sold", "unit_price") else c for c in SEED_CONTRACT["columns"]],
    "checks": [
        {"name": "revenue_is_units_times_price", "expr": "total_revenue = units_sold * unit_price",
         "tolerance": 0.01, "action": "quarantine"},
        {"name": "profit_is_revenue_minus_cost", "expr": "total_profit = total_revenue - total_cost",
         "tolerance": 0.01, "action": "warn"},
    ],
}


def test_rules_quarantine_or_warn_and_every_other_row_is_written(engine: str) -> None:
    data = lines(
        HEADER,
        row(1),  # 10 x 1.10 = 11.00, 11.00 - 5.00 = 6.00
        row(2, units="-3", revenue="-3.30", profit="-8.30"),  # negative units: quarantined by the range
        row(3, revenue="11.01", profit="6.01"),  # a cent off: within tolerance
        row(4, revenue="11.02", profit="6.02"),  # two cents off: quarantined by the rule
        row(5, profit="7.00"),  # profit off: a warning, written
        row(6, price="-1.10", revenue="-11.00", profit="-16.00"),  # negative price
        row(7, units="x"),  # a type error wins over the rules
    )
    r = run(data, engine, RULES)
    assert r.rejects() == [(3, "units_sold_min", "units_sold"), (5, "revenue_is_units_times_price", "total_revenue"),
                           (7, "unit_price_min", "unit_price"), (8, "not_an_integer", "units_sold")]
    assert [x["order_id"] for x in r.rows] == [1, 3, 5]
    assert r.report["warnings_by_rule"] == {"profit_is_revenue_minus_cost": 1}
    q = {x["source_line"]: x for x in r.quarantine}
    assert q["5"]["value"] == "total_revenue = units_sold * unit_price within 0.01 is false: 11.02 vs 11"
    assert r.report["rejects_by_reason"]["revenue_is_units_times_price"] == 1


def test_rule_rows_with_a_null_operand_are_not_checked(engine: str) -> None:
    contract = copy.deepcopy(RULES)
    for c in contract["columns"]:
        if c["name"] == "total_cost":
            c["required"] = False
    r = run(lines(HEADER, row(1, cost="", profit="99.00"), row(2)), engine, contract)
    assert [x["order_id"] for x in r.rows] == [1, 2] and r.report["warnings_by_rule"] == {}


def test_money_rules_hold_at_large_amounts(engine: str) -> None:
    units, price = "9999", "99999999.99"
    revenue = str(Decimal(units) * Decimal(price))
    r = run(lines(HEADER, row(1, units=units, price=price, revenue=revenue, cost="0.00", profit=revenue),
                  row(2, units=units, price=price, revenue=str(Decimal(revenue) + Decimal("0.02")), cost="0.00",
                      profit=str(Decimal(revenue) + Decimal("0.02")))), engine, RULES)
    assert [x["order_id"] for x in r.rows] == [1]
    assert [q[1] for q in r.rejects()] == ["revenue_is_units_times_price"]


def test_default_rules_pass_consistent_real_looking_data(engine: str) -> None:
    # rows shaped like the public Sales Records sample (its first rows), consistent to the cent
    sample = [("Tuvalu", "Baby Food", "9925", "255.28", "159.42"), ("Grenada", "Cereal", "2804", "205.70", "117.11"),
              ("Russia", "Office Supplies", "1779", "651.21", "524.96"), ("Sao Tome and Principe", "Fruits", "8102",
                                                                           "9.33", "6.92")]
    body = [HEADER]
    for i, (country, item, units, price, unit_cost) in enumerate(sample):
        rev = Decimal(units) * Decimal(price)
        cost = Decimal(units) * Decimal(unit_cost)
        body.append(row(i + 1, country=country, item=item, units=units, price=price, revenue=str(rev), cost=str(cost),
                        profit=str(rev - cost)))
    r = run(lines(*body), engine, DatasetContract.model_validate(DEFAULT_CONTRACT).model_dump(mode="json"))
    assert r.report["rows_quarantined"] == 0 and r.report["warnings_by_rule"] == {} and len(r.rows) == 4


@pytest.mark.parametrize("expr", ["__import__('os').system('id') = 1", "units_sold = 1; drop table x",
                                  "units_sold.real = 1", "units_sold / 2 = 1", "units_sold = units_sold = 1",
                                  "units_sold", "Units_Sold = 1", "units_sold = 1e308", "lambda: 1 = 1", ""])
def test_expressions_are_parsed_never_evaluated(expr: str) -> None:
    with pytest.raises(ValueError):
        parse_check_expression(expr)
    with pytest.raises(ValueError):
        compile_contract({**SEED_CONTRACT, "checks": [{"name": "x", "expr": expr}]})


def test_rules_are_validated_against_the_contract() -> None:
    for check, msg in (({"name": "r", "expr": "country = 1"}, "not a numeric contract column"),
                       ({"name": "r", "expr": "nope = 1"}, "not a numeric contract column"),
                       ({"name": "Bad Name", "expr": "units_sold = 1"}, "snake_case"),
                       ({"name": "r", "expr": "units_sold = 1", "action": "drop"}, "action"),
                       ({"name": "r", "expr": "units_sold = 1", "tolerance": -1}, "tolerance")):
        with pytest.raises(ValueError, match=msg):
            compile_contract({**SEED_CONTRACT, "checks": [check]})
    with pytest.raises(ValueError, match="duplicate"):
        compile_contract({**SEED_CONTRACT, "checks": [{"name": "r", "expr": "units_sold >= 0"}] * 2})
    with pytest.raises(ValueError, match="numeric"):
        compile_contract({**SEED_CONTRACT, "primary_key": [], "columns": [dict(SEED_CONTRACT["columns"][0], min=0)]})
    # the params model refuses the same, naming the check
    with pytest.raises(ValueError, match="units_sold / 2"):
        DatasetContract.model_validate({**DEFAULT_CONTRACT, "checks": [{"name": "r", "expr": "units_sold / 2 = 1"}]})
