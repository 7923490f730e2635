"""Write the numbered notebooks from one definition (maintainers: run after changing cells or params).

Each notebook stands alone: a title, the `parameters` cell (`params_file` plus only the keys that notebook
uses, each `None` = the params file's value; 03 and 04 also `source_key` / `run_id`), a cell that validates
them into `settings`, then a markdown heading + one helper call per step. The files are written without
outputs; `etl-kit notebooks record` then adds the outputs of a deterministic local run (commit both).
"""

from __future__ import annotations

import pprint
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
NB = ROOT / "notebooks"

KERNEL = {"name": "etl-kit", "display_name": "etl-kit (Python 3.11)", "language": "python"}

#: The settings keys each notebook's `parameters` cell shows (the ones a user tunes for that notebook).
KEYS: dict[str, list[str]] = {
    "00_setup": ["target", "region", "aws_profile", "local_port"],
    "01_provision": ["name_suffix", "redshift_base_capacity", "notification_emails"],
    "02_upload_test_data": ["sample_rows", "sample_bad_rows", "sample_seed", "upload_file"],
    "03_monitor_workflow": ["wait_timeout_seconds"],
    "04_validate_redshift": ["redshift_table"],
    "05_analysis": ["redshift_table"],
    "99_teardown": ["teardown_confirm", "keep_data"],
}
#: Notebooks that look at one upload / workflow run (default: the newest upload).
RUN_PARAMETER_NOTEBOOKS = ("03_monitor_workflow", "04_validate_redshift")
#: Notebooks that import etl_kit.analysis (00 points the kernel's own tools at the target with it).
ANALYSIS_NOTEBOOKS = ("00_setup", "05_analysis")

NOTEBOOKS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "00_setup": ("Setup", "Target, identity and region, and the parameters in force. On the local target this "
                 "starts the local cloud (moto + the kit's providers + an embedded PostgreSQL).", [
        ("Target and identity", "nb.setup(settings)"),
        ("Parameters in force", "nb.params_table(settings)"),
        ("The dataset contract", "nb.contract_table(settings)"),
        ("Your own tools in this kernel\n\nboto3, awswrangler and redshift-connector pointed at the target "
         "(on local: `AWS_ENDPOINT_URL`, the local cloud's keys and `SSL_CERT_FILE`, its trust bundle, so "
         "`redshift_connector.connect(...)` with the driver's defaults verifies the workgroup's certificate).",
         "analysis.use_target(settings)"),
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
        ("Upload to input/", "up = nb.upload(sample, settings)\nup"),
        ("What the S3 event made the Lambda do", "nb.lambda_decision(up, settings)"),
        ("The workflow run the Lambda started", "nb.started_run(up, settings)"),
    ]),
    "03_monitor_workflow": ("Monitor the workflow", "Follow a run until it ends (`run_id`, else the run of "
                            "`source_key`, else the run of the newest upload): the graph with each node's state "
                            "and duration, the SNS notifications, the log tail of a failed node, and a replay of "
                            "the objects whose load failed.", [
        ("Follow the run", "run = nb.follow_run(settings, source_key, run_id)"),
        ("Nodes", "nb.node_table(run)"),
        ("Graph", "nb.graph_picture(run)"),
        ("What the run cost, by component (on local: local durations at AWS prices)",
         "# A run's cost follows its measured durations (the Lambda's billed ms, the logs' bytes): it differs in\n"
         "# every run, so nbval runs this cell without comparing its output to the recorded one.\n"
         "# NBVAL_IGNORE_OUTPUT\nnb.cost_table(run, settings)"),
        ("Notifications (SNS -> SQS)", "nb.notifications(settings)"),
        ("Logs of failed nodes", "print(nb.failed_logs(run, settings))"),
        ("Replay what failed (each object whose newest ledger attempt failed, exactly once)",
         "nb.replay_failed(settings)"),
    ]),
    "04_validate_redshift": ("Validate the load in Redshift", "Reconcile the warehouse with the job's report, "
                             "the ledger and the source file of one upload (`run_id`'s, else `source_key`, else "
                             "the newest). Raises on any failure, so a papermill run goes red.", [
        ("The upload to check", "up = nb.chosen_upload(settings, source_key, run_id)\nup"),
        ("Sample rows of the table", "nb.first_rows(settings)"),
        ("Checks", "checks = nb.validate(up, settings)\nchecks"),
        ("All passed?", "nb.assert_checks(checks)"),
    ]),
    "05_analysis": ("Analysis", "Ad-hoc analysis in the warehouse as an analyst does it: Redshift SQL run with "
                    "awswrangler on the Data API, which works on both targets and from anywhere (an aws workgroup "
                    "need not be publicly accessible). The queries are in `etl_kit.analysis.queries(settings)`; "
                    "the last cells are yours.", [
        ("Connect: awswrangler's Data API connection (`direct=True`: redshift-connector to the endpoint)",
         "con = analysis.connect(settings)"),
        ("Revenue and profit by item type", "by_item = analysis.revenue_by_item_type(con, settings)\nby_item"),
        ("Revenue by item type (chart)",
         "analysis.bar_figure(by_item, 'item_type', 'revenue', 'Revenue by item type')"),
        ("Revenue and profit by region and item type", "analysis.revenue_by_region_and_item_type(con, settings)"),
        ("Top countries", "top = analysis.top_countries(con, settings)\ntop"),
        ("Top countries (chart)", "analysis.bar_figure(top, 'country', 'revenue', 'Top countries by revenue')"),
        ("Monthly trend", "trend = analysis.monthly_trend(con, settings)\ntrend"),
        ("Monthly trend (chart)", "analysis.line_figure(trend, 'month', ['revenue', 'profit'], 'Monthly trend')"),
        ("Order to ship days", "analysis.order_to_ship_days(con, settings)"),
        ("Your own queries\n\nAny Redshift SQL, with awswrangler as on AWS (`:name` parameters are bound by the "
         "Data API, never spliced). A direct connection works too where the endpoint is reachable (always "
         "locally; on aws from inside the workgroup's VPC or when it is publicly accessible): "
         "`wr.redshift.read_sql_query(sql, con=analysis.connect(settings, direct=True))`, or "
         "`redshift_connector.connect(host=..., port=..., database=..., user=..., password=...)` with the "
         "driver's defaults (this kernel trusts the local cloud's CA: `SSL_CERT_FILE`, set by `./kit lab`, "
         "notebook 00 and `analysis.connect`).",
         "wr.data_api.redshift.read_sql_query(\n"
         "    f\"select item_type, count(*) as big_orders from {settings.redshift_table} \"\n"
         "    \"where units_sold >= :min_units group by item_type order by big_orders desc\",\n"
         "    con=con, parameters=[{\"name\": \"min_units\", \"value\": \"5000\"}])"),
    ]),
    "99_teardown": ("Teardown", "Remove what 01 made, in reverse order. Asks first unless `teardown_confirm` is "
                    "false; `keep_data` keeps the bucket contents and the warehouse.", [
        ("Teardown", "nb.teardown(settings)"),
    ]),
}


def parameters_source(name: str, defaults: dict[str, object]) -> str:
    """The `parameters` cell of notebook ``name``: params_file, its keys (None: from the file), run parameters."""
    lines = ["# Parameters. Every setting comes from params_file; a key below set to a value other than None",
             "# overrides it (papermill: -p KEY VALUE). The comment shows the value in params/local.yaml.",
             'params_file = "params/local.yaml"']
    for k in KEYS[name]:
        lines.append(f"{k} = None  # {pprint.pformat(defaults[k], width=100, sort_dicts=False)}")
    if name in RUN_PARAMETER_NOTEBOOKS:
        lines += ["# Which upload: empty = the newest object under input/ (or the object of run_id).",
                  'source_key = ""  # a key under input/ or an s3:// URI',
                  'run_id = ""  # a workflow run id of sales-data-workflow']
    return "\n".join(lines)


def main() -> None:
    defaults = yaml.safe_load((ROOT / "params" / "local.yaml").read_text())
    NB.mkdir(exist_ok=True)
    for name, (title, intro, steps) in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = dict(KERNEL)
        nb.metadata["language_info"] = {"name": "python"}
        cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\n{intro}")]
        pc = nbformat.v4.new_code_cell(parameters_source(name, defaults))
        pc.metadata["tags"] = ["parameters"]
        cells.append(pc)
        cells.append(nbformat.v4.new_markdown_cell("## Settings"))
        imports = "from etl_kit import nb" + (", analysis" if name in ANALYSIS_NOTEBOOKS else "")
        if name == "05_analysis":
            imports += "\nimport awswrangler as wr"
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
