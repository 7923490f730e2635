"""How a crawl's findings become Data Catalog tables: grouping objects into tables, and the writes.

Grouping (a simplified form of Glue's heuristics, per S3 target):

* Every object under the include path that the classifiers recognise (CSV, Parquet) and that no
  exclusion glob matches is a candidate; zero-byte objects and names starting with ``_`` or ``.``
  (``_SUCCESS``, ``.crc``) are skipped, as Glue does.
* When all candidates share one format and one set of column names and sit at the same folder
  depth, they form **one table** named after the include path's last segment
  (``s3://b/input/`` -> ``input``) located at the include path; sub-folders become partitions
  (``key=value`` folder names give the key, otherwise ``partition_0``, ``partition_1``...).
* Otherwise each top-level sub-folder becomes its own table (named after the folder), and the
  objects directly under the include path form the include path's table.
* Within a table, column types of several objects are unified (bigint + double -> double, any
  conflict -> string); objects with a different column set are left out and logged.

Table names are lower-cased with every character other than ``a-z0-9_`` replaced by ``_``, and
prefixed with the crawler's ``TablePrefix``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from etl_localcloud.core.errors import client_error_code
from etl_localcloud.glue.schema import CsvSchema, ParquetSchema, csv_storage, parquet_storage

__all__ = ["Found", "TablePlan", "group_tables", "glob_to_regex", "table_name", "CatalogWriter", "merge_type"]

# The fields of a GetTable answer that UpdateTable's TableInput takes back.
_TABLE_INPUT_KEYS = ("Name", "Description", "Owner", "Retention", "StorageDescriptor", "PartitionKeys", "TableType",
                     "Parameters")


@dataclass
class Found:
    """One classified object."""

    bucket: str
    key: str
    folders: list[str]  # folders between the include path and the object
    size: int
    schema: CsvSchema | ParquetSchema


@dataclass
class TablePlan:
    """A table the crawl wants in the catalog."""

    name: str
    location: str
    objects: list[Found]
    partition_keys: list[str] = field(default_factory=list)
    skipped: list[Found] = field(default_factory=list)


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """A Glue exclusion glob (``*`` within a folder, ``**`` across folders, ``{a,b}``, ``?``) as a regex."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{":
            j = pattern.find("}", i)
            if j > i:
                out.append("(" + "|".join(re.escape(p) for p in pattern[i + 1:j].split(",")) + ")")
                i = j + 1
                continue
            out.append(re.escape(c))
        elif c == "[":
            j = pattern.find("]", i)
            if j > i:
                out.append(pattern[i:j + 1])
                i = j + 1
                continue
            out.append(re.escape(c))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def table_name(raw: str, prefix: str = "") -> str:
    """Glue's table naming: lower case, ``[a-z0-9_]`` only, with the crawler's prefix."""
    return prefix + (re.sub(r"[^a-z0-9_]", "_", raw.lower()) or "table")


def _signature(f: Found) -> tuple[Any, ...]:
    kind = "csv" if isinstance(f.schema, CsvSchema) else "parquet"
    names = tuple(n for n, _ in f.schema.columns)
    extra = f.schema.delimiter if isinstance(f.schema, CsvSchema) else ""
    return (kind, names, extra)


def group_tables(found: list[Found], root_name: str, root_location: str, prefix: str = "") -> list[TablePlan]:
    """Group the classified objects of one S3 target into tables (see the module docstring)."""
    if not found:
        return []
    sigs = {_signature(f) for f in found}
    depths = {len(f.folders) for f in found}
    if len(sigs) == 1 and len(depths) == 1:
        depth = depths.pop()
        keys = []
        for level in range(depth):
            parts = [f.folders[level] for f in found]
            k = {p.split("=", 1)[0] for p in parts if "=" in p}
            keys.append(k.pop() if len(k) == 1 and all("=" in p for p in parts) else f"partition_{level}")
        return [TablePlan(table_name(root_name, prefix), root_location, found, keys)]
    groups: dict[str, list[Found]] = {}
    for f in found:
        groups.setdefault(f.folders[0] if f.folders else "", []).append(f)
    plans = []
    for folder, items in groups.items():
        if not folder:
            name, loc = root_name, root_location
        else:
            name, loc = folder, root_location.rstrip("/") + "/" + folder + "/"
        common = Counter(_signature(f) for f in items).most_common(1)[0][0]
        keep = [f for f in items if _signature(f) == common]
        plans.append(TablePlan(table_name(name.split("=", 1)[-1] if "=" in name else name, prefix), loc, keep,
                               skipped=[f for f in items if _signature(f) != common]))
    return plans


def merge_type(a: str, b: str) -> str:
    """The type of a column seen as ``a`` in one object and ``b`` in another."""
    if a == b:
        return a
    if {a, b} == {"bigint", "double"}:
        return "double"
    return "string"


class CatalogWriter:
    """Applies table plans to moto's catalog, honouring the crawler's SchemaChangePolicy."""

    def __init__(self, glue: Any, crawler: dict[str, Any], log: list[str]) -> None:
        self.glue = glue
        self.crawler = crawler
        self.db = crawler.get("DatabaseName") or "default"
        policy = crawler.get("SchemaChangePolicy") or {}
        self.update_behavior = policy.get("UpdateBehavior") or "UPDATE_IN_DATABASE"
        self.delete_behavior = policy.get("DeleteBehavior") or "DEPRECATE_IN_DATABASE"
        self.log = log
        self.counts = Counter[str]()

    def table_input(self, plan: TablePlan) -> dict[str, Any]:
        """The ``TableInput`` a Glue crawler writes for ``plan``."""
        first = plan.objects[0].schema
        cols = list(first.columns)
        for f in plan.objects[1:]:
            cols = [(n, merge_type(t, t2)) for (n, t), (_, t2) in zip(cols, f.schema.columns, strict=True)]
        storage = csv_storage(first) if isinstance(first, CsvSchema) else parquet_storage(first)
        size = sum(f.size for f in plan.objects)
        records = sum(f.schema.record_count for f in plan.objects)
        params = dict(storage["Parameters"])
        params.update({
            "recordCount": str(records), "objectCount": str(len(plan.objects)), "sizeKey": str(size),
            "averageRecordSize": str(size // records if records else 0),
            "UPDATED_BY_CRAWLER": self.crawler["Name"],
            "CrawlerSchemaDeserializerVersion": "1.0", "CrawlerSchemaSerializerVersion": "1.0",
        })
        return {
            "Name": plan.name,
            "Owner": "owner",
            "Retention": 0,
            "TableType": "EXTERNAL_TABLE",
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in plan.partition_keys],
            "Parameters": params,
            "StorageDescriptor": {
                "Columns": [{"Name": n, "Type": t} for n, t in cols],
                "Location": plan.location,
                "InputFormat": storage["InputFormat"],
                "OutputFormat": storage["OutputFormat"],
                "Compressed": params.get("compressionType", "none") != "none",
                "NumberOfBuckets": -1,
                "SerdeInfo": storage["SerdeInfo"],
                "BucketColumns": [],
                "SortColumns": [],
                "Parameters": dict(params),
                "StoredAsSubDirectories": False,
            },
        }

    def _existing(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.glue.get_table(DatabaseName=self.db, Name=name)["Table"])
        except Exception as exc:
            if client_error_code(exc) == "EntityNotFoundException":
                return None
            raise

    def apply(self, plan: TablePlan) -> None:
        """Create or update the table of ``plan`` and its partitions."""
        new = self.table_input(plan)
        old = self._existing(plan.name)
        if old is None:
            self.glue.create_table(DatabaseName=self.db, TableInput=new)
            self.counts["tablesCreated"] += 1
            self.log.append(f"INFO : Created table {plan.name} in database {self.db}")
        else:
            old_sd = old.get("StorageDescriptor") or {}
            changed = (old_sd.get("Columns") != new["StorageDescriptor"]["Columns"]
                       or old_sd.get("SerdeInfo") != new["StorageDescriptor"]["SerdeInfo"]
                       or old_sd.get("Location") != new["StorageDescriptor"]["Location"]
                       or (old.get("PartitionKeys") or []) != new["PartitionKeys"])
            deprecated = "DEPRECATED_BY_CRAWLER" in (old.get("Parameters") or {})
            if self.update_behavior == "LOG":
                if changed:
                    self.log.append(f"WARN : The schema of table {plan.name} changed; the table was not "
                                    "updated because the crawler's UpdateBehavior is LOG")
            else:
                stats = ("recordCount", "objectCount", "sizeKey")
                old_params = old.get("Parameters") or {}
                if changed or deprecated or any(old_params.get(k) != new["Parameters"][k] for k in stats):
                    # Only real changes make a new table version, as on Glue.
                    self.glue.update_table(DatabaseName=self.db, TableInput=new)
                if changed or deprecated:
                    self.counts["tablesUpdated"] += 1
                    self.log.append(f"INFO : Updated table {plan.name} in database {self.db}")
        if plan.partition_keys:
            self._partitions(plan, new)
        for f in plan.skipped:
            self.log.append(f"WARN : s3://{f.bucket}/{f.key} has a schema different from table {plan.name}; "
                            "not added")

    def merge(self, plan: TablePlan, old: dict[str, Any], columns: list[dict[str, Any]]) -> None:
        """Add ``plan``'s objects to the existing table ``old`` (an event-mode crawl).

        ``columns`` are the table's own followed by the new ones; with ``UpdateBehavior`` LOG they are
        only logged. The objects' partitions are added and their counts join the table's statistics.
        """
        params = dict(old.get("Parameters") or {})
        sd = dict(old.get("StorageDescriptor") or {})
        added = [c["Name"] for c in columns[len(sd.get("Columns") or []):]]
        if added and self.update_behavior == "LOG":
            self.log.append(f"WARN : Table {plan.name} lacks column(s) {', '.join(added)}; the table was not "
                            "updated because the crawler's UpdateBehavior is LOG")
            added, columns = [], list(sd.get("Columns") or [])
        for key, more in (("recordCount", sum(f.schema.record_count for f in plan.objects)),
                          ("objectCount", len(plan.objects)), ("sizeKey", sum(f.size for f in plan.objects))):
            params[key] = str(int(params.get(key, "0") or 0) + more)
        params["UPDATED_BY_CRAWLER"] = self.crawler["Name"]
        sd.update(Columns=columns, Parameters=dict(sd.get("Parameters") or {}, **params))
        table = {k: v for k, v in old.items() if k in _TABLE_INPUT_KEYS}
        table.update(Parameters=params, StorageDescriptor=sd)
        self.glue.update_table(DatabaseName=self.db, TableInput=table)
        if added:
            self.counts["tablesUpdated"] += 1
            self.log.append(f"INFO : Updated table {plan.name} in database {self.db}: added column(s) "
                            f"{', '.join(added)}")
        if plan.partition_keys:
            self._partitions(plan, table)

    def _partitions(self, plan: TablePlan, table: dict[str, Any]) -> None:
        existing: set[tuple[str, ...]] = set()
        paginator = self.glue.get_paginator("get_partitions")
        for pg in paginator.paginate(DatabaseName=self.db, TableName=plan.name):
            existing.update(tuple(p["Values"]) for p in pg.get("Partitions", []))
        wanted: dict[tuple[str, ...], str] = {}
        for f in plan.objects:
            values = tuple(p.split("=", 1)[-1] for p in f.folders)
            wanted[values] = plan.location.rstrip("/") + "/" + "/".join(f.folders) + "/"
        new = []
        for values, loc in sorted(wanted.items()):
            if values in existing:
                continue
            sd = dict(table["StorageDescriptor"], Location=loc)
            new.append({"Values": list(values), "StorageDescriptor": sd, "Parameters": dict(table["Parameters"])})
        for i in range(0, len(new), 100):
            self.glue.batch_create_partition(DatabaseName=self.db, TableName=plan.name,
                                             PartitionInputList=new[i:i + 100])
        self.counts["partitionsCreated"] += len(new)

    def vanished(self, kept: set[str], locations: list[str]) -> None:
        """Apply the DeleteBehavior to this crawler's tables under ``locations`` that the crawl no longer saw."""
        paginator = self.glue.get_paginator("get_tables")
        for pg in paginator.paginate(DatabaseName=self.db):
            for t in pg.get("TableList", []):
                params = t.get("Parameters") or {}
                loc = (t.get("StorageDescriptor") or {}).get("Location", "")
                if t["Name"] in kept or params.get("UPDATED_BY_CRAWLER") != self.crawler["Name"]:
                    continue
                if not any(loc.rstrip("/").startswith(root.rstrip("/")) for root in locations):
                    continue
                if self.delete_behavior == "DELETE_FROM_DATABASE":
                    self.glue.delete_table(DatabaseName=self.db, Name=t["Name"])
                    self.counts["tablesDeleted"] += 1
                    self.log.append(f"INFO : Deleted table {t['Name']}: its data is gone")
                elif self.delete_behavior == "DEPRECATE_IN_DATABASE":
                    if "DEPRECATED_BY_CRAWLER" in params:
                        continue
                    table_input = {k: v for k, v in t.items() if k in _TABLE_INPUT_KEYS}
                    table_input["Parameters"] = dict(params, DEPRECATED_BY_CRAWLER=self.crawler["Name"])
                    self.glue.update_table(DatabaseName=self.db, TableInput=table_input)
                    self.log.append(f"INFO : Marked table {t['Name']} as deprecated: its data is gone")
                else:
                    self.log.append(f"WARN : Table {t['Name']} has no data any more (DeleteBehavior LOG)")
