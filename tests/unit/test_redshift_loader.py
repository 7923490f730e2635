"""The loader user's pure parts: its password, the md5 form CREATE USER carries, its grants and their check."""

from __future__ import annotations

import hashlib
import re

import pytest

from etl_kit.provision.redshift_loader import LoaderGrants, new_password, password_hash

pytestmark = pytest.mark.unit


def test_passwords_are_random_and_acceptable_to_redshift() -> None:
    seen = {new_password() for _ in range(50)}
    assert len(seen) == 50
    for pw in seen:
        # Redshift: 8-64 characters, an upper- and a lower-case letter and a digit; nothing to quote
        assert re.fullmatch(r"[A-Za-z0-9]{8,64}", pw)
        assert re.search(r"[A-Z]", pw) and re.search(r"[a-z]", pw) and re.search(r"\d", pw)


def test_password_hash_is_redshifts_md5_form() -> None:
    assert password_hash("etl_loader", "Secret12") == "md5" + hashlib.md5(b"Secret12etl_loader").hexdigest()


GRANTS = LoaderGrants("etl_loader", "dev", "sales", ("sales_data_table", "etl_load_ledger"))


def test_grants_are_exactly_what_a_load_needs() -> None:
    assert GRANTS.grants() == [
        'GRANT USAGE, CREATE ON SCHEMA "sales" TO "etl_loader"',
        'GRANT SELECT, INSERT, DELETE ON TABLE "sales"."sales_data_table", "sales"."etl_load_ledger" TO "etl_loader"',
        'GRANT TEMP ON DATABASE "dev" TO "etl_loader"',
    ]
    assert all(not re.search(r"\b(ALL|UPDATE|TRUNCATE|ALTER|DROP|REFERENCES)\b", g) for g in GRANTS.grants())
    assert GRANTS.revocations()[-1] == 'REVOKE ALL ON DATABASE "dev" FROM "etl_loader"'


def test_the_grant_check_binds_every_name() -> None:
    q = GRANTS.check_query()
    assert q.sql.count("has_") == len(GRANTS.wanted()) == 9
    for name in ("etl_loader", "dev", "sales", "sales.sales_data_table"):
        assert name not in q.sql and name in dict(q.params).values()


@pytest.mark.parametrize("bad", ["etl-loader", 'x"; DROP USER admin; --', "Loader"])
def test_unsafe_names_are_refused(bad: str) -> None:
    from pydantic import ValidationError

    from etl_kit.config import Settings

    with pytest.raises(ValidationError):
        Settings(redshift_loader_user=bad)
    with pytest.raises(ValueError, match="unsafe SQL identifier"):
        LoaderGrants(bad if bad != "Loader" else "a b", "dev", "public", ("t",)).grants()
