"""Every IAM document the kit generates passes parliament with no finding and has no wildcard action."""

from __future__ import annotations

import json
from typing import Any

import pytest

from etl_kit.config import Settings
from etl_kit.provision.policies import STAR_ONLY_ACTIONS, Arns, all_documents

pytestmark = pytest.mark.unit
ACCOUNT = "123456789012"
SETTINGS = [Settings(), Settings(kms_key_id="1234abcd-12ab-34cd-56ef-1234567890ab", region="eu-west-1",
                                 name_suffix="-{account_id}-{region}"),
            Settings(network_placement="every_az")]  # job 2 on the Glue connection (the seed's placement)


def _docs() -> list[tuple[str, Settings, str, dict[str, Any]]]:
    return [(f"{i}:{name}", s, kind, doc) for i, s in enumerate(SETTINGS)
            for name, (kind, doc) in all_documents(s, ACCOUNT).items()]


def _actions(st: dict[str, Any]) -> list[str]:
    a = st.get("Action", [])
    return [a] if isinstance(a, str) else list(a)


@pytest.mark.parametrize(("name", "settings", "kind", "doc"), _docs(), ids=[d[0] for d in _docs()])
def test_parliament_has_no_finding(name: str, settings: Settings, kind: str, doc: dict[str, Any]) -> None:
    parliament = pytest.importorskip("parliament")
    linted = json.loads(json.dumps(doc))
    if kind == "trust":
        # Trust policies carry no Resource; the resource of sts:AssumeRole is the role itself.
        for st in linted["Statement"]:
            st["Resource"] = Arns(settings, ACCOUNT).role("role")
            st.pop("Principal")
    elif kind == "resource":
        for st in linted["Statement"]:
            st.pop("Principal")
    # The community auditors flag any iam:PassRole and any sts:AssumeRole (CREDENTIALS_EXPOSURE): the deployer
    # statement is PassRole by design (scoped) and a trust policy is AssumeRole by definition.
    community = kind != "trust" and not name.endswith("deployer:passrole")
    policy = parliament.analyze_policy_string(json.dumps(linted), include_community_auditors=community)
    assert [(f.issue, f.detail) for f in policy.findings] == []


@pytest.mark.parametrize(("name", "settings", "kind", "doc"), _docs(), ids=[d[0] for d in _docs()])
def test_no_wildcard_allow_and_star_only_where_required(name: str, settings: Settings, kind: str,
                                                        doc: dict[str, Any]) -> None:
    for st in doc["Statement"]:
        if st["Effect"] == "Deny":  # the bucket's non-TLS deny covers s3:* on purpose
            continue
        assert all("*" not in a for a in _actions(st)), st
        if st.get("Resource") == ["*"] or st.get("Resource") == "*":
            assert set(_actions(st)) <= STAR_ONLY_ACTIONS, st


def test_passrole_is_scoped_by_service() -> None:
    doc = all_documents(SETTINGS[0], ACCOUNT)["deployer:passrole"][1]
    st = doc["Statement"][0]
    assert st["Action"] == ["iam:PassRole"] and "iam:PassedToService" in st["Condition"]["StringEquals"]


def test_topic_policy_allows_only_rules_and_lambda_role() -> None:
    s = SETTINGS[0]
    doc = all_documents(s, ACCOUNT)["topic"][1]
    rules = doc["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert len(rules) == 4 and all(":rule/" in r for r in rules)
    assert doc["Statement"][1]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:role/{s.lambda_role}"}


def test_reproducible_zips() -> None:
    from etl_kit.provision import packaging

    assert packaging.pipeline_zip() == packaging.pipeline_zip()
    a = packaging.reproducible_zip([("b.py", b"x"), ("a.py", b"y")])
    assert a == packaging.reproducible_zip([("a.py", b"y"), ("b.py", b"x")])


def _statements(settings: Settings, role: str) -> dict[str, dict[str, Any]]:
    return {st["Sid"]: st for st in all_documents(settings, ACCOUNT)[f"role:{role}"][1]["Statement"]}


@pytest.mark.parametrize("role", ["csv_job", "load_job"])
def test_both_jobs_run_statements_as_the_loader_and_read_only_their_own(role: str) -> None:
    s = SETTINGS[0]
    sts = _statements(s, role)
    assert sts["RunStatements"]["Action"] == ["redshift-data:BatchExecuteStatement", "redshift-data:ExecuteStatement"]
    assert sts["RunStatements"]["Resource"] == [f"arn:aws:redshift-serverless:{s.region}:{ACCOUNT}:workgroup/*"]
    own = sts["ReadOwnStatements"]
    assert own["Action"] == ["redshift-data:DescribeStatement", "redshift-data:GetStatementResult"]
    assert own["Condition"] == {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}
    # the loader's secret only, never the namespace admin's
    secrets = [st for st in sts.values() if any(a.startswith("secretsmanager:") for a in _actions(st))]
    assert [(st["Action"], st["Resource"]) for st in secrets] == [
        (["secretsmanager:GetSecretValue"],
         [f"arn:aws:secretsmanager:{s.region}:{ACCOUNT}:secret:{s.redshift_loader_secret}-??????"])]


def test_job2_reads_no_data_object() -> None:
    s = SETTINGS[0]
    s3 = [(a, r) for st in _statements(s, "load_job").values() for a in _actions(st) if a.startswith("s3:")
          for r in st["Resource"]]
    # only its own scripts (Glue fetches them with the job's role); COPY reads the Parquet with the Redshift role
    assert s3 == [("s3:GetObject", f"arn:aws:s3:::{Arns(s, ACCOUNT).assets_bucket}/{s.scripts_prefix}*")]


def test_lambda_may_delete_claims_and_nothing_else() -> None:
    s = SETTINGS[0]
    deletes = [(st["Sid"], st["Resource"]) for st in _statements(s, "lambda").values()
               if "s3:DeleteObject" in _actions(st)]
    assert deletes == [("ReleaseClaim", [f"arn:aws:s3:::{Arns(s, ACCOUNT).bucket}/{s.state_prefix}claims/*"])]


def test_no_eventbridge_role_is_made_and_the_old_one_is_removed() -> None:
    from etl_kit.provision.policies import LEGACY_ROLES, ROLE_SERVICES

    docs = all_documents(SETTINGS[0], ACCOUNT)
    assert "role:events" not in docs and "trust:events" not in docs and "events" not in ROLE_SERVICES
    assert LEGACY_ROLES == {"events": "events_role"}
    passable = docs["deployer:passrole"][1]["Statement"][0]["Resource"]
    assert not any(r.endswith(f"role/{SETTINGS[0].events_role}") for r in passable)
