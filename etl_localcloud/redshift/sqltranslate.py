"""Redshift SQL -> PostgreSQL, statement by statement.

A small token-level translator: it never rewrites the inside of string literals,
quoted identifiers, dollar-quoted bodies or comments. It handles what a pipeline
sends (DDL with distribution/sort clauses, Redshift types and functions, ``COPY``
from S3, ``MERGE ... REMOVE DUPLICATES``); anything it does not know is passed to
PostgreSQL unchanged, so PostgreSQL's own error text reaches the caller.

String literals follow Redshift: a backslash escapes the next character inside
``'...'`` (``'it\\'s'``; Redshift's QUOTE_LITERAL doubles backslashes). PostgreSQL
runs with ``standard_conforming_strings = on``, so every literal holding a backslash
is handed over as an ``E'...'`` escape string: the tokenizer and the server agree on
where each literal ends, whatever it holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from etl_localcloud.redshift import dialect

__all__ = [
    "CopyCommand",
    "RefusedError",
    "Token",
    "TranslationError",
    "Translated",
    "placeholders",
    "parse_copy",
    "split_statements",
    "tokenize",
    "translate",
]


class TranslationError(Exception):
    """Redshift SQL the local cloud does not support (the message names the construct)."""


class RefusedError(TranslationError):
    """SQL Redshift itself refuses: the message is Redshift's (after ``ERROR:``), ``sqlstate`` its code."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@dataclass(frozen=True)
class Token:
    """One lexical token: ``kind`` is word, number, string, ident (quoted), param, op, space or comment."""

    kind: str
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


_WORD = re.compile(r"[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_SPACE = re.compile(r"\s+")


def tokenize(sql: str) -> list[Token]:
    """Split SQL into tokens; raises :class:`TranslationError` on an unterminated quote or comment."""
    out: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            m = _SPACE.match(sql, i)
            assert m
            out.append(Token("space", m.group()))
            i = m.end()
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(Token("comment", sql[i:j]))
            i = j
        elif c == "/" and sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            if depth:
                raise TranslationError("unterminated /* comment")
            out.append(Token("comment", sql[i:j]))
            i = j
        elif c in "'\"" or (c in "eE" and sql.startswith("'", i + 1)):
            start = i
            if c in "eE":
                i += 1
            q = sql[i]
            backslash = q == "'"  # Redshift: a backslash escapes in every string literal
            j = i + 1
            while True:
                if j >= n:
                    what = "identifier" if q == '"' else "string"
                    raise TranslationError(f"unterminated quoted {what}")
                if backslash and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == q:
                    if j + 1 < n and sql[j + 1] == q:
                        j += 2
                        continue
                    break
                j += 1
            out.append(Token("string" if q == "'" else "ident", sql[start:j + 1]))
            i = j + 1
        elif c == "$" and (m := _DOLLAR.match(sql, i)) is not None:
            tag = m.group()
            j = sql.find(tag, m.end())
            if j < 0:
                raise TranslationError(f"unterminated dollar-quoted string {tag}")
            out.append(Token("string", sql[i:j + len(tag)]))
            i = j + len(tag)
        elif c == ":" and i + 1 < n and sql[i + 1] == ":":
            out.append(Token("op", "::"))
            i += 2
        elif c == ":" and (m := _WORD.match(sql, i + 1)) is not None:
            out.append(Token("param", sql[i:m.end()]))
            i = m.end()
        elif c.isdigit() or (c == "." and i + 1 < n and sql[i + 1].isdigit()):
            m = _NUMBER.match(sql, i)
            assert m
            out.append(Token("number", m.group()))
            i = m.end()
        elif (m := _WORD.match(sql, i)) is not None:
            out.append(Token("word", m.group()))
            i = m.end()
        else:
            out.append(Token("op", c))
            i += 1
    return out


def _text(tokens: list[Token]) -> str:
    return "".join(t.text for t in tokens).strip()


def split_statements(sql: str) -> list[str]:
    """Split on top-level ``;`` (not inside quotes, dollar quotes or comments); empty statements dropped."""
    parts: list[list[Token]] = [[]]
    for t in tokenize(sql):
        if t.kind == "op" and t.text == ";":
            parts.append([])
        else:
            parts[-1].append(t)
    return [_text(p) for p in parts if any(t.kind not in ("space", "comment") for t in p)]


_PARAM_NAME = re.compile(r"[0-9A-Za-z_]+")


def placeholders(sql: str) -> tuple[str, list[str]]:
    """Turn the Data API's ``:name`` placeholders into psycopg's ``%(name)s``; return (query, names used).

    Only ``:name`` tokens outside string literals, quoted identifiers, dollar quotes and
    comments are placeholders (``'a:b'``, ``x::int`` and ``/* :c */`` stay text). Every
    other ``%`` is doubled, as psycopg reads ``%`` in the whole query text. The values
    are then bound server-side by the driver: they never become SQL.
    """
    out: list[str] = []
    names: list[str] = []
    for t in tokenize(sql):
        if t.kind == "param":
            name = t.text[1:]
            if name not in names:
                names.append(name)
            out.append(f"%({name})s")
        else:
            out.append(t.text.replace("%", "%%"))
    return "".join(out), names


def _escape_strings(tokens: list[Token]) -> list[Token]:
    """Plain ``'...'`` literals holding a backslash become ``E'...'`` (Redshift reads backslash escapes)."""
    return [Token("string", "E" + t.text) if t.kind == "string" and t.text[0] == "'" and "\\" in t.text else t
            for t in tokens]


# --------------------------------------------------------------------------- COPY
@dataclass
class CopyCommand:
    """A parsed Redshift ``COPY table [(cols)] FROM 's3://...' options``."""

    table: str
    columns: list[str]
    source: str
    fmt: str = "TEXT"  # TEXT (delimited, Redshift's default), CSV, PARQUET
    options: dict[str, str | None] = field(default_factory=dict)


_COPY_FLAGS = {"GZIP", "BZIP2", "ZSTD", "LZOP", "MANIFEST", "EMPTYASNULL", "BLANKSASNULL", "TRIMBLANKS",
               "TRUNCATECOLUMNS", "FILLRECORD", "REMOVEQUOTES", "ESCAPE", "EXPLICIT_IDS", "ACCEPTANYDATE",
               "ROUNDEC", "IGNOREBLANKLINES", "ENCRYPTED", "NOLOAD", "SERIALIZETOJSON", "ACCEPTINVCHARS"}
_COPY_VALUED = {"IAM_ROLE", "CREDENTIALS", "WITH_CREDENTIALS", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "SESSION_TOKEN",
                "DELIMITER", "IGNOREHEADER", "DATEFORMAT", "TIMEFORMAT", "NULL", "QUOTE", "REGION", "MAXERROR",
                "COMPUPDATE", "STATUPDATE", "ENCODING", "FIXEDWIDTH", "JSON", "MASTER_SYMMETRIC_KEY", "COMPROWS"}
_FORMATS = {"PARQUET", "CSV", "ORC", "JSON", "AVRO", "FIXEDWIDTH", "SHAPEFILE", "TEXT"}


def _unquote(tok: Token) -> str:
    if tok.kind == "string":
        body = tok.text[1:-1] if tok.text[0] == "'" else tok.text[2:-1]
        # '' and \' are a quote, \\ a backslash; other escapes keep their text (COPY reads '\t', '\N' itself)
        return re.sub(r"''|\\\\|\\'", lambda m: "\\" if m.group() == "\\\\" else "'", body)
    if tok.kind == "ident":
        return tok.text[1:-1].replace('""', '"')
    return tok.text


def parse_copy(stmt: str) -> CopyCommand:
    """Parse a Redshift ``COPY ... FROM 's3://...'`` statement (options in any order)."""
    return _CopyParser(stmt).parse()


class _CopyParser:
    """A cursor over a COPY statement's significant tokens: target, source, then one option at a time."""

    def __init__(self, stmt: str) -> None:
        self.toks = [t for t in tokenize(stmt) if t.kind not in ("space", "comment")]
        self.pos = 1  # after COPY

    def _upper(self) -> str:
        return self.toks[self.pos].upper if self.pos < len(self.toks) else ""

    def _text(self) -> str:
        return self.toks[self.pos].text if self.pos < len(self.toks) else ""

    def parse(self) -> CopyCommand:
        table = self._table()
        columns = self._columns()
        cmd = CopyCommand(table=table, columns=columns, source=self._source())
        if self._upper() == "WITH":
            self.pos += 1
        while self.pos < len(self.toks):
            self._option(cmd)
        return cmd

    def _table(self) -> str:
        parts: list[str] = []
        toks = self.toks
        while self.pos < len(toks) and (toks[self.pos].kind in ("word", "ident") or toks[self.pos].text == "."):
            if toks[self.pos].upper == "FROM":
                break
            parts.append(toks[self.pos].text)
            self.pos += 1
        if not parts:
            raise TranslationError("COPY: missing table name")
        return "".join(parts)

    def _columns(self) -> list[str]:
        columns: list[str] = []
        if self._text() == "(":
            self.pos += 1
            while self.pos < len(self.toks) and self.toks[self.pos].text != ")":
                if self.toks[self.pos].text != ",":
                    columns.append(self.toks[self.pos].text)
                self.pos += 1
            self.pos += 1
        return columns

    def _source(self) -> str:
        if self._upper() != "FROM":
            raise TranslationError("COPY: expected FROM 's3://...'")
        self.pos += 1
        if self.pos >= len(self.toks) or self.toks[self.pos].kind != "string":
            raise TranslationError("COPY: FROM needs a quoted 's3://bucket/key' (COPY FROM STDIN is not supported)")
        source = _unquote(self.toks[self.pos])
        if not source.startswith("s3://"):
            raise TranslationError(f"COPY: only FROM 's3://...' sources are supported locally, not '{source}'")
        self.pos += 1
        return source

    def _value(self) -> str | None:
        """The value after an option (``AS`` optional), or None when the next token is not one."""
        if self._upper() == "AS":
            self.pos += 1
        if self.pos < len(self.toks):
            tok = self.toks[self.pos]
            if tok.kind in ("string", "number") or (tok.kind == "word" and tok.upper not in _COPY_FLAGS | _COPY_VALUED):
                self.pos += 1
                return _unquote(tok)
        return None

    def _format(self) -> str:
        """``FORMAT [AS] <format>``: the format's name."""
        if self._upper() == "AS":
            self.pos += 1
        if self._upper() not in _FORMATS:
            raise TranslationError("COPY: FORMAT needs one of " + ", ".join(sorted(_FORMATS)))
        self.pos += 1
        return self.toks[self.pos - 1].upper

    def _option(self, cmd: CopyCommand) -> None:
        t = self.toks[self.pos]
        word = t.upper
        if not word:
            raise TranslationError(f"COPY: unexpected '{t.text}'")
        self.pos += 1
        if word == "FORMAT":
            word = self._format()
        if word in _FORMATS:
            cmd.fmt = word
            if word in ("JSON", "AVRO"):
                self._value()  # the JSON/AVRO argument ('auto', a jsonpaths file) is not used locally
        elif word == "IAM_ROLE":
            if self._upper() == "DEFAULT":
                cmd.options[word] = "default"
                self.pos += 1
            else:
                cmd.options[word] = self._value()
        elif word in ("NULL", "ACCEPTINVCHARS"):
            val = self._value()
            if val is None and word == "NULL":
                raise TranslationError("COPY: NULL AS needs a quoted string")
            cmd.options[word] = val if val is not None else "?"
        elif word in ("COMPUPDATE", "STATUPDATE"):
            setting = "ON"  # the bare keyword means ON
            if self._upper() in ("ON", "OFF", "TRUE", "FALSE", "PRESET"):
                setting = {"TRUE": "ON", "FALSE": "OFF"}.get(self._upper(), self._upper())
                self.pos += 1
            cmd.options[word] = setting
        elif word in _COPY_FLAGS:
            cmd.options[word] = None
        elif word in _COPY_VALUED:
            val = self._value()
            if val is None:
                raise TranslationError(f"COPY: option {word} needs a value")
            cmd.options[word] = val
        else:
            raise TranslationError(f"COPY: option {word} is not supported by the local cloud")


# --------------------------------------------------------------------------- translation
@dataclass
class Translated:
    """One statement after translation: SQL for PostgreSQL, a COPY to run, or nothing (a no-op)."""

    original: str
    sql: str | None = None
    copy: CopyCommand | None = None
    note: str = ""


_SIG = ("space", "comment")


def _sig(tokens: list[Token]) -> list[int]:
    return [i for i, t in enumerate(tokens) if t.kind not in _SIG]


def _match_paren(tokens: list[Token], i: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``i``."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].text == "(" and tokens[j].kind == "op":
            depth += 1
        elif tokens[j].text == ")" and tokens[j].kind == "op":
            depth -= 1
            if depth == 0:
                return j
    raise TranslationError("unbalanced parentheses")


_MAX_TYPES = {"VARCHAR": "varchar(65535)", "NVARCHAR": "varchar(65535)", "CHAR": "char(4096)",
              "NCHAR": "char(4096)", "BPCHAR": "char(4096)", "CHARACTER": "char(4096)", "VARBYTE": "bytea",
              "VARBINARY": "bytea", "BINARY": "bytea"}
_SIMPLE_TYPES = {"SUPER": "jsonb", "NVARCHAR": "varchar", "VARBYTE": "bytea", "VARBINARY": "bytea",
                 "NCHAR": "char", "BINARY_VARYING": "bytea"}
_FUNCS = {"NVL": "coalesce", "LEN": "length"}
_NOOP_ALTER = {"DISTSTYLE", "DISTKEY", "SORTKEY", "ENCODE", "COMPOUND", "INTERLEAVED"}


def translate(stmt: str) -> list[Translated]:
    """Translate one Redshift statement into the PostgreSQL statements that do the same.

    Returns a list because ``MERGE ... REMOVE DUPLICATES`` becomes DELETE + INSERT;
    a COPY from S3 comes back parsed (``copy``), a maintenance no-op as ``sql=None``.
    What Redshift refuses raises :class:`RefusedError` with Redshift's message (:mod:`.dialect`);
    the hand-written steps below handle Redshift's DDL, types, literals and GETDATE/SYSDATE/NVL/LEN,
    then sqlglot rewrites the functions PostgreSQL lacks (:func:`.dialect.transpile`).
    """
    tokens = _escape_strings(tokenize(stmt))
    sig = _sig(tokens)
    if not sig:
        return []
    first = tokens[sig[0]].upper
    second = tokens[sig[1]].upper if len(sig) > 1 else ""
    if first == "COPY":
        return [Translated(stmt, copy=parse_copy(stmt))]
    if first == "UNLOAD":
        raise TranslationError("UNLOAD is not supported by the local cloud (read the table with SELECT instead)")
    if first == "VACUUM":
        return [Translated(stmt, note="VACUUM is a no-op locally")]
    if first == "ANALYZE" and second == "COMPRESSION":
        raise TranslationError("ANALYZE COMPRESSION is not supported by the local cloud")
    if first == "ALTER" and second == "TABLE":
        words = {tokens[i].upper for i in sig}
        if "ALTER" in [tokens[i].upper for i in sig[2:]] and words & _NOOP_ALTER:
            return [Translated(stmt, note="ALTER TABLE ... DISTSTYLE/DISTKEY/SORTKEY/ENCODE is a no-op locally")]
    if first == "MERGE" and any(tokens[i].upper == "REMOVE" for i in sig) and tokens[sig[-1]].upper == "DUPLICATES":
        return _merge_remove_duplicates(tokens, sig, stmt)
    written = [tokens[i] for i in sig]
    refused = dialect.refusal(stmt, written)
    if refused is not None:
        raise RefusedError(refused.message, refused.sqlstate)
    is_ddl = first in ("CREATE", "ALTER")
    if first == "CREATE" and "TABLE" in [tokens[i].upper for i in sig[:5]]:
        tokens = _drop_informational_constraints(tokens)
    out = dialect.transpile(_rewrite(tokens, is_ddl), written)
    return [Translated(stmt, sql=out)]


def _drop_informational_constraints(tokens: list[Token]) -> list[Token]:
    """Remove PRIMARY KEY, UNIQUE and FOREIGN KEY / REFERENCES from a CREATE TABLE's column list.

    Redshift accepts these constraints but does not enforce them (the planner only uses them as
    hints), so a load that writes a duplicate key succeeds there. Enforcing them locally would make
    the local cloud reject what Redshift accepts and would maintain a unique index on every load.
    """
    n = len(tokens)
    keep = [True] * n
    depth = 0
    prev: int | None = None  # index of the previous significant token

    def nsig(j: int) -> int:
        while j < n and tokens[j].kind in _SIG:
            j += 1
        return j

    def drop(a: int, b: int) -> None:
        for k in range(a, b + 1):
            keep[k] = False

    i = 0
    while i < n:
        t = tokens[i]
        if t.kind in _SIG:
            i += 1
            continue
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        u = t.upper
        if depth == 1 and t.kind == "word" and u in ("PRIMARY", "UNIQUE", "FOREIGN", "REFERENCES", "CONSTRAINT"):
            j = nsig(i + 1)
            if u == "PRIMARY" and not (j < n and tokens[j].upper == "KEY"):
                prev, i = i, i + 1
                continue
            table_level = prev is not None and tokens[prev].text == ","
            start = prev if table_level and prev is not None else i
            # the constraint runs to the next comma or closing parenthesis of the column list
            k, d = i, 0
            while k < n:
                x = tokens[k]
                if x.text == "(":
                    d += 1
                elif x.text == ")":
                    if d == 0:
                        break
                    d -= 1
                elif x.text == "," and d == 0:
                    break
                k += 1
            if table_level:
                drop(start, k - 1)
            else:
                # a column constraint: drop just this constraint's words (and any parenthesised list)
                end = j if u in ("PRIMARY", "FOREIGN") else i
                if u == "CONSTRAINT":
                    end = nsig(j + 1)  # CONSTRAINT name <constraint>: handled on the next round
                    drop(i, j)
                    i = end
                    continue
                if u == "REFERENCES":
                    end = nsig(i + 1)  # table name
                    nx = nsig(end + 1)
                    if nx < n and tokens[nx].text == "(":
                        end = _match_paren(tokens, nx)
                drop(i, end)
                i = end + 1
                continue
            i = k
            continue
        prev = i
        i += 1
    return [t for t, k in zip(tokens, keep) if k]  # noqa: B905


def _rewrite(tokens: list[Token], is_ddl: bool) -> str:
    """The PostgreSQL text of one statement: Redshift's table and column attributes dropped, IDENTITY,
    types and functions rewritten, everything else as written."""
    return _Rewriter(tokens, is_ddl).run()


class _Rewriter:
    """One pass over a statement's tokens; each step recognises one Redshift construct at the cursor.

    A step returns True when it consumed tokens (and wrote their replacement, if any); the cursor
    ``i`` then points past them. ``prev`` is the last significant token written, ``depth`` the
    parenthesis depth (the column list of CREATE TABLE is depth 1).
    """

    def __init__(self, tokens: list[Token], is_ddl: bool) -> None:
        self.tokens = tokens
        self.n = len(tokens)
        self.is_ddl = is_ddl
        words = [tokens[i].upper for i in _sig(tokens)[:5]]
        self.create_table = bool(words) and words[0] == "CREATE" and "TABLE" in words
        self.out: list[str] = []
        self.depth = 0
        self.prev: Token | None = None
        self.i = 0
        self.steps = (self._table_attribute, self._column_attribute, self._identity, self._max_type,
                      self._character_varying_max, self._simple_type, self._getdate, self._sysdate, self._function)

    def run(self) -> str:
        while self.i < self.n:
            t = self.tokens[self.i]
            if t.kind == "op" and t.text == "(":
                self.depth += 1
            elif t.kind == "op" and t.text == ")":
                self.depth -= 1
            if t.upper and not (self.prev is not None and self.prev.text == "."):
                j = self._next_sig(self.i + 1)
                nxt = self.tokens[j] if j < self.n else None
                if any(step(t.upper, j, nxt) for step in self.steps):
                    continue
            self.out.append(t.text)
            if t.kind not in _SIG:
                self.prev = t
            self.i += 1
        return "".join(self.out).strip()

    # -- cursor --------------------------------------------------------------------------
    def _next_sig(self, j: int) -> int:
        while j < self.n and self.tokens[j].kind in _SIG:
            j += 1
        return j

    def _text_at(self, j: int) -> str:
        return self.tokens[j].text if j < self.n else ""

    def _upper_at(self, j: int) -> str:
        return self.tokens[j].upper if j < self.n else ""

    def _skip_to(self, j: int) -> bool:
        """Drop the tokens before ``j``."""
        self.i = j
        return True

    def _write(self, text: str, last: int) -> bool:
        """Write ``text`` in place of the tokens up to ``last`` (inclusive)."""
        self.out.append(text)
        self.i = last + 1
        self.prev = self.tokens[last]
        return True

    # -- steps ---------------------------------------------------------------------------
    def _table_attribute(self, u: str, j: int, nxt: Token | None) -> bool:
        """DISTSTYLE, DISTKEY, [COMPOUND|INTERLEAVED] SORTKEY, BACKUP, ENCODE AUTO after the column list."""
        if not self.create_table or self.depth != 0 or nxt is None:
            return False
        if u == "DISTSTYLE" and nxt.kind == "word":
            return self._skip_to(j + 1)
        if u in ("COMPOUND", "INTERLEAVED") and nxt.upper == "SORTKEY":
            return self._skip_to(j)
        if u in ("DISTKEY", "SORTKEY") and nxt.text == "(":
            return self._skip_to(_match_paren(self.tokens, j) + 1)
        if (u == "SORTKEY" and nxt.upper in ("AUTO", "NONE")) or (u == "BACKUP" and nxt.upper in ("YES", "NO")) \
                or (u == "ENCODE" and nxt.upper == "AUTO"):
            return self._skip_to(j + 1)
        return False

    def _column_attribute(self, u: str, j: int, nxt: Token | None) -> bool:
        """ENCODE <codec>, DISTKEY and SORTKEY after a column's name in the column list."""
        if not self.create_table or self.depth != 1 or self.prev is None or self.prev.text in (",", "("):
            return False
        if u == "ENCODE" and nxt is not None and nxt.kind == "word":
            return self._skip_to(j + 1)
        if u in ("DISTKEY", "SORTKEY"):
            return self._skip_to(self.i + 1)
        return False

    def _identity(self, u: str, j: int, nxt: Token | None) -> bool:
        """``IDENTITY(seed, step)``: PostgreSQL's identity column (after ``AS`` in ``GENERATED ... AS``)."""
        if not (self.is_ddl and u == "IDENTITY" and nxt is not None and nxt.text == "(" and self.prev is not None):
            return False
        close = _match_paren(self.tokens, j)
        args = [a.strip() for a in "".join(x.text for x in self.tokens[j + 1:close]).split(",")]
        if len(args) != 2:
            return False
        lead = "IDENTITY" if self.prev.upper == "AS" else "GENERATED ALWAYS AS IDENTITY"
        # Redshift's seed may be 0 or negative (IDENTITY(0, 1) is common); PostgreSQL's sequence then needs
        # a MINVALUE at or below it (its default minimum is 1).
        low = f" MINVALUE {args[0]}" if re.fullmatch(r"-\d+|0+", args[0]) else ""
        return self._write(f"{lead} (START WITH {args[0]} INCREMENT BY {args[1]}{low})", close)

    def _max_type(self, u: str, j: int, nxt: Token | None) -> bool:
        """``VARCHAR(MAX)`` and the other ``(MAX)`` types: their largest PostgreSQL size."""
        if u not in _MAX_TYPES or nxt is None or nxt.text != "(":
            return False
        k = self._next_sig(j + 1)
        c = self._next_sig(k + 1)
        if self._upper_at(k) == "MAX" and self._text_at(c) == ")":
            return self._write(_MAX_TYPES[u], c)
        return False

    def _character_varying_max(self, u: str, j: int, nxt: Token | None) -> bool:
        """``CHARACTER VARYING(MAX)``."""
        if u != "CHARACTER" or nxt is None or nxt.upper != "VARYING":
            return False
        k = self._next_sig(j + 1)
        m1 = self._next_sig(k + 1)
        m2 = self._next_sig(m1 + 1)
        if self._text_at(k) == "(" and self._upper_at(m1) == "MAX" and self._text_at(m2) == ")":
            return self._write("varchar(65535)", m2)
        return False

    def _simple_type(self, u: str, j: int, nxt: Token | None) -> bool:
        """SUPER, NVARCHAR, VARBYTE, ... where a type stands: after ``::``, a column name, or ``AS`` in a cast."""
        prev = self.prev
        if u not in _SIMPLE_TYPES or prev is None:
            return False
        if prev.text == "::" \
                or (self.is_ddl and prev.kind in ("word", "ident") and (self.depth >= 1 or not self.create_table)) \
                or (prev.upper == "AS" and nxt is not None and nxt.text == ")"):
            return self._write(_SIMPLE_TYPES[u], self.i)
        return False

    def _getdate(self, u: str, j: int, nxt: Token | None) -> bool:
        """``GETDATE()``: the statement's start in UTC, to the second."""
        if u != "GETDATE" or nxt is None or nxt.text != "(":
            return False
        k = self._next_sig(j + 1)
        if self._text_at(k) == ")":
            return self._write("(date_trunc('second', statement_timestamp() AT TIME ZONE 'UTC'))", k)
        return False

    def _sysdate(self, u: str, j: int, nxt: Token | None) -> bool:
        """``SYSDATE``: the transaction's start in UTC."""
        if u == "SYSDATE" and (nxt is None or nxt.text != "("):
            return self._write("(transaction_timestamp() AT TIME ZONE 'UTC')", self.i)
        return False

    def _function(self, u: str, j: int, nxt: Token | None) -> bool:
        """NVL, LEN: their PostgreSQL names."""
        if u in _FUNCS and nxt is not None and nxt.text == "(":
            return self._write(_FUNCS[u], self.i)
        return False


def _merge_remove_duplicates(tokens: list[Token], sig: list[int], stmt: str) -> list[Translated]:
    """``MERGE INTO t USING s ON cond REMOVE DUPLICATES`` -> DELETE matched rows + INSERT all of the source."""
    up = [tokens[i].upper for i in sig]
    try:
        i_using = up.index("USING")
        i_on = up.index("ON", i_using)
        i_remove = len(up) - 2
        assert up[1] == "INTO" and up[i_remove] == "REMOVE"
    except (ValueError, AssertionError):
        raise TranslationError("MERGE ... REMOVE DUPLICATES: expected MERGE INTO target USING source ON cond "
                               "REMOVE DUPLICATES") from None

    def span(a: int, b: int) -> str:
        return "".join(t.text for t in tokens[sig[a]:sig[b]]).strip()

    target = span(2, i_using)
    source = span(i_using + 1, i_on)
    cond = span(i_on + 1, i_remove)
    src_words = [tokens[i] for i in sig[i_using + 1:i_on]]
    if src_words and src_words[0].text == "(":
        raise TranslationError("MERGE ... REMOVE DUPLICATES needs a table as its source, not a subquery")
    tgt_words = [tokens[i] for i in sig[2:i_using]]
    tgt_name = tgt_words[0].text if tgt_words else target
    src_alias = src_words[-1].text if len(src_words) > 1 else source
    return [
        Translated(stmt, sql=f"DELETE FROM {target} USING {source} WHERE {cond}",
                   note="MERGE ... REMOVE DUPLICATES (delete matched)"),
        Translated(stmt, sql=f"INSERT INTO {tgt_name} SELECT {src_alias}.* FROM {source}",
                   note="MERGE ... REMOVE DUPLICATES (insert source)"),
    ]
