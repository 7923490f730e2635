"""Write the numbered notebooks from one definition (maintainers: run after changing cells or params).

Each notebook: a title, the `parameters` cell (every key of params/*.yaml, defaults from params/local.yaml),
a cell that validates them into `settings`, then a markdown heading + one helper call per step.
Outputs are never committed: the files are written clean.
"""

from __future__ import annotations

import pprint
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
NB = ROOT / "notebooks"

NOTEBOOKS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "00_setup": ("Setup", "Target, identity and region, and the parameters in force. On the local target this "
                 "starts the local cloud (moto + the kit's providers + an embedded PostgreSQL).", [
        ("Target and identity", "nb.setup(settings)"),
        ("Parameters in force", "nb.params_table(settings)"),
        ("The dataset contract", "nb.contract_table(settings)"),
    ]),
    "01_provision": ("Provision", "The seed's set-up steps with boto3, idempotent: first the plan, then the apply "
                     "(a second run changes nothing), the inventory and a picture drawn from the live resources.", [
        ("Plan: create / update / no change", "nb.plan(settings)"),
        ("Apply", "nb.provision(settings)"),
        ("Inventory", "nb.inventory(settings)"),
        ("Architecture (from the live resources)", "nb.architecture(settings)"),
    ]),
    "02_upload_test_data": ("Upload test data", "Generate sales data of `sample_rows` rows (with `sample_bad_rows` "
                            "broken rows) or take `upload_file`, upload it to `input/`, and see what the S3 event "
                            "started.", [
        ("Make the sample", "sample = nb.make_sample(settings)\nsample"),
        ("Upload to input/", "nb.upload(sample, settings)"),
        ("What the S3 event made the Lambda do", "nb.lambda_decision(settings)"),
        ("The workflow run the Lambda started", "nb.started_run(settings)"),
    ]),
    "03_monitor_workflow": ("Monitor the workflow", "Follow the run until it ends: the graph with each node's state "
                            "and duration, the SNS notifications, the log tail of a failed node, and a replay of "
                            "the objects whose load failed.", [
        ("Follow the run", "run = nb.follow_run(settings)"),
        ("Nodes", "nb.node_table(run)"),
        ("Graph", "nb.graph_picture(run)"),
        ("Notifications (SNS -> SQS)", "nb.notifications(settings)"),
        ("Logs of failed nodes", "print(nb.failed_logs(run, settings))"),
        ("Replay what failed (each object whose newest ledger attempt failed, exactly once)",
         "nb.replay_failed(settings)"),
    ]),
    "04_validate_redshift": ("Validate the load in Redshift", "Reconcile the warehouse with the job's report, "
                             "the ledger and the source file. Raises on any failure, so a papermill run goes red.", [
        ("Checks", "checks = nb.validate(settings)\nchecks"),
        ("All passed?", "nb.assert_checks(checks)"),
    ]),
    "05_analysis": ("Analysis", "Ad-hoc analysis in the warehouse. Every query goes through one helper that returns "
                    "a DataFrame (the Data API on both targets; `via='direct'` uses a driver connection).", [
        ("Revenue and profit by item type", "by_item = analysis.revenue_by_item_type(settings)\nby_item"),
        ("Revenue by item type (chart)",
         "analysis.bar_figure(by_item, 'item_type', 'revenue', 'Revenue by item type')"),
        ("Revenue and profit by region and item type", "analysis.revenue_by_region_and_item_type(settings)"),
        ("Top countries", "top = analysis.top_countries(settings)\ntop"),
        ("Top countries (chart)", "analysis.bar_figure(top, 'country', 'revenue', 'Top countries by revenue')"),
        ("Monthly trend", "trend = analysis.monthly_trend(settings)\ntrend"),
        ("Monthly trend (chart)", "analysis.line_figure(trend, 'month', ['revenue', 'profit'], 'Monthly trend')"),
        ("Order to ship days", "analysis.order_to_ship_days(settings)"),
        ("Your own SQL (direct connection)", "nb.sql(f'select count(*) as orders, sum(total_revenue) as revenue "
         "from {settings.redshift_table}', settings, via='direct')"),
    ]),
    "99_teardown": ("Teardown", "Remove what 01 made, in reverse order. Asks first unless `teardown_confirm` is "
                    "false; `keep_data` keeps the bucket contents and the warehouse.", [
        ("Teardown", "nb.teardown(settings)"),
    ]),
}


def main() -> None:
    params = yaml.safe_load((ROOT / "params" / "local.yaml").read_text())
    lines = ["# Parameters (papermill injects values from params/*.yaml after this cell; the names equal its keys)"]
    for k, v in params.items():
        lines.append(f"{k} = {pprint.pformat(v, width=110, sort_dicts=False)}")
    param_src = "\n".join(lines)
    NB.mkdir(exist_ok=True)
    for name, (title, intro, steps) in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\n{intro}")]
        pc = nbformat.v4.new_code_cell(param_src)
        pc.metadata["tags"] = ["parameters"]
        cells.append(pc)
        cells.append(nbformat.v4.new_markdown_cell("## Settings"))
        imports = "from etl_kit import nb" + (", analysis" if name == "05_analysis" else "")
        cells.append(nbformat.v4.new_code_cell(f"{imports}\n\nsettings = nb.settings_from(globals())"))
        for heading, code in steps:
            cells.append(nbformat.v4.new_markdown_cell(f"## {heading}"))
            cells.append(nbformat.v4.new_code_cell(code))
        for i, c in enumerate(cells):
            c["id"] = f"{name}-{i:02d}"
        nb.cells = cells
        nbformat.write(nb, NB / f"{name}.ipynb")
        print("wrote", NB / f"{name}.ipynb")


if __name__ == "__main__":
    main()
