"""IAM policy evaluation for one request: statements, conditions, and AWS's decision logic.

Follows AWS's documented evaluation for a principal and a resource of one account: an explicit Deny in
any applicable policy wins; otherwise an Allow in an identity policy of the principal, or in the
resource's policy naming the principal (the role or its session), allows; otherwise the request is
implicitly denied. A resource policy whose principal is the account (``arn:aws:iam::ACCOUNT:root``)
grants nothing by itself (the identity policy must allow), as on AWS.

Evaluated: ``Effect``, ``Action`` / ``NotAction`` (case-insensitive, ``*`` and ``?``), ``Resource`` /
``NotResource`` (``*`` and ``?``), ``Principal`` / ``NotPrincipal`` (``*``, ``AWS`` role / session / account
ARNs, ``Service``), and ``Condition`` with the operators of :data:`OPERATORS` (each also with
``IfExists``), the set qualifiers ``ForAllValues:`` / ``ForAnyValue:`` and AWS's rules for a key missing
from the request. An operator not in that table raises :class:`UnsupportedPolicy`: a policy the local
cloud cannot evaluate refuses the request instead of guessing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Caller", "Check", "Decision", "UnsupportedPolicy", "OPERATORS", "evaluate", "statement_allows",
           "wildcard"]


class UnsupportedPolicy(Exception):
    """A policy uses a construct this evaluator does not evaluate (named in the message)."""


@dataclass(frozen=True)
class Caller:
    """Who signs the request: an assumed-role session (``role_arn`` + ``session_arn``) or a service."""

    account: str
    role_arn: str = ""
    session_arn: str = ""
    service: str = ""  # e.g. "events.amazonaws.com" for a delivery a service makes

    @property
    def arn(self) -> str:
        return self.session_arn or self.service


@dataclass(frozen=True)
class Check:
    """One authorisation AWS makes for a request: an action on a resource, with the request's condition keys.

    ``context`` maps lower-case condition keys to their values in the request (a key absent is absent).
    ``resource_policy`` is the policy of the resource AWS evaluates with it (bucket, topic, queue, secret,
    function), if any.
    """

    action: str
    resource: str
    context: dict[str, tuple[str, ...]] = field(default_factory=dict)
    resource_policy: dict[str, Any] | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome of one :class:`Check`: allowed, or why not (``implicit``, ``identity`` or ``resource`` deny)."""

    allowed: bool
    reason: str = ""  # "" | "implicit" | "identity" | "resource"
    statement: str = ""  # the Sid (or index) of the statement that decided, for the audit


@functools.lru_cache(maxsize=4096)
def _pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    rx = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(rx, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: ``*`` any run of characters, ``?`` one character, the rest literal."""
    return _pattern(pattern, ignore_case).fullmatch(value) is not None


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _str_eq(e: str, a: str) -> bool:
    return e == a


def _num(f: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def cmp(e: str, a: str) -> bool:
        try:
            return f(float(a), float(e))
        except ValueError:
            return False
    return cmp


# operator -> (compare(expected, actual), negated)
OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (_str_eq, False),
    "StringNotEquals": (_str_eq, True),
    "StringEqualsIgnoreCase": (lambda e, a: e.lower() == a.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda e, a: e.lower() == a.lower(), True),
    "StringLike": (wildcard, False),
    "StringNotLike": (wildcard, True),
    "ArnEquals": (wildcard, False),  # AWS matches ArnEquals with wildcards too
    "ArnLike": (wildcard, False),
    "ArnNotEquals": (wildcard, True),
    "ArnNotLike": (wildcard, True),
    "Bool": (lambda e, a: e.lower() == a.lower(), False),
    "NumericEquals": (_num(lambda a, e: a == e), False),
    "NumericNotEquals": (_num(lambda a, e: a == e), True),
    "NumericLessThan": (_num(lambda a, e: a < e), False),
    "NumericLessThanEquals": (_num(lambda a, e: a <= e), False),
    "NumericGreaterThan": (_num(lambda a, e: a > e), False),
    "NumericGreaterThanEquals": (_num(lambda a, e: a >= e), False),
}


_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}  # ${*} ${?} ${$}: the literal characters


def _variables(value: str, context: dict[str, tuple[str, ...]]) -> str | None:
    """``value`` with its policy variables (``${aws:userid}``...) replaced from the request; None if one is unset."""
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        name = m.group(1)
        if name in _SPECIAL:
            return _SPECIAL[name]
        got = context.get(name.lower())
        if not got or len(got) != 1:
            missing = True
            return ""
        return got[0]

    out = _VARIABLE.sub(sub, value)
    return None if missing else out


def _condition(operator: str, key: str, expected: Any, context: dict[str, tuple[str, ...]]) -> bool:
    """Whether one condition (operator, key, expected values) holds for the request."""
    qualifier, _, op = operator.rpartition(":")
    if_exists = op.endswith("IfExists") and op != "IfExists"
    op = op[: -len("IfExists")] if if_exists else op
    actual = context.get(key.lower())
    wanted = [str(v).lower() if isinstance(v, bool) else str(v) for v in _as_list(expected)]
    if any("${" in w for w in wanted):
        resolved = [_variables(w, context) for w in wanted]
        if any(w is None for w in resolved):
            return False  # a policy variable the request has no value for matches nothing, as on AWS
        wanted = [w for w in resolved if w is not None]
    if op == "Null":
        return (actual is None) == (wanted[0].lower() == "true")
    if op not in OPERATORS or qualifier not in ("", "ForAllValues", "ForAnyValue"):
        raise UnsupportedPolicy(f"condition operator {operator!r} (key {key}) is not evaluated by the local cloud")
    compare, negated = OPERATORS[op]
    if actual is None:
        return if_exists or negated or qualifier == "ForAllValues"
    hits = [any(compare(e, a) for e in wanted) for a in actual]
    if qualifier == "ForAllValues":
        return all((not h) if negated else h for h in hits)
    if qualifier == "ForAnyValue":
        return any((not h) if negated else h for h in hits)
    return not any(hits) if negated else any(hits)


def conditions_hold(block: dict[str, Any] | None, context: dict[str, tuple[str, ...]]) -> bool:
    """Whether every condition of a statement's ``Condition`` block holds (AND of all)."""
    for operator, keys in (block or {}).items():
        for key, expected in keys.items():
            if not _condition(operator, key, expected, context):
                return False
    return True


def _element(st: dict[str, Any], positive: str, value: str, *, ignore_case: bool) -> bool:
    """Whether ``value`` is covered by ``Action`` / ``Resource`` (or excluded by their ``Not`` forms)."""
    if positive in st:
        return any(wildcard(str(p), value, ignore_case=ignore_case) for p in _as_list(st[positive]))
    negative = "Not" + positive
    if negative in st:
        return not any(wildcard(str(p), value, ignore_case=ignore_case) for p in _as_list(st[negative]))
    return positive == "Resource"  # trust policies have no Resource


def _principal_names(caller: Caller, *, grant: bool) -> tuple[set[str], set[str]]:
    """(AWS principals, service principals) a statement may name to match ``caller``."""
    aws: set[str] = set()
    if caller.role_arn:
        aws = {caller.role_arn, caller.session_arn}
        if not grant:  # the account as principal delegates to IAM: it denies, it does not grant
            aws |= {caller.account, f"arn:aws:iam::{caller.account}:root"}
    return aws, ({caller.service} if caller.service else set())


def _principal(st: dict[str, Any], caller: Caller) -> bool:
    grant = st.get("Effect") == "Allow"
    aws, services = _principal_names(caller, grant=grant)
    key = "Principal" if "Principal" in st else "NotPrincipal" if "NotPrincipal" in st else ""
    if not key:
        return True  # an identity policy
    spec = st[key]
    if spec == "*":
        hit = True
    else:
        named_aws = {str(p) for p in _as_list(spec.get("AWS", []))}
        named_services = {str(p) for p in _as_list(spec.get("Service", []))}
        hit = "*" in named_aws or bool(named_aws & aws) or bool(named_services & services)
    return hit if key == "Principal" else not hit


def statement_allows(st: dict[str, Any], check: Check, caller: Caller, *, resource_policy: bool) -> bool:
    """Whether statement ``st`` applies to ``check`` (action, resource, principal and conditions all match)."""
    if not _element(st, "Action", check.action, ignore_case=True):
        return False
    if not _element(st, "Resource", check.resource, ignore_case=False):
        return False
    if resource_policy and not _principal(st, caller):
        return False
    return conditions_hold(st.get("Condition"), check.context)


def _scan(doc: dict[str, Any] | None, check: Check, caller: Caller, *, resource_policy: bool) -> tuple[str, str]:
    """("deny" | "allow" | "", statement id) of one policy document for ``check``."""
    found, sid = "", ""
    for i, st in enumerate(_as_list((doc or {}).get("Statement", []))):
        if not statement_allows(st, check, caller, resource_policy=resource_policy):
            continue
        if st.get("Effect") == "Deny":
            return "deny", str(st.get("Sid", i))
        if st.get("Effect") == "Allow" and not found:
            found, sid = "allow", str(st.get("Sid", i))
    return found, sid


def evaluate(check: Check, caller: Caller, identity: list[tuple[str, dict[str, Any]]]) -> Decision:
    """AWS's decision for ``check`` by ``caller`` with its identity policies (name, document)."""
    allowed_by = ""
    for name, doc in identity:
        verdict, sid = _scan(doc, check, caller, resource_policy=False)
        if verdict == "deny":
            return Decision(False, "identity", f"{name}:{sid}")
        if verdict == "allow" and not allowed_by:
            allowed_by = f"{name}:{sid}"
    if check.resource_policy is not None:
        verdict, sid = _scan(check.resource_policy, check, caller, resource_policy=True)
        if verdict == "deny":
            return Decision(False, "resource", f"resource:{sid}")
        if verdict == "allow" and not allowed_by:
            allowed_by = f"resource:{sid}"
    if allowed_by:
        return Decision(True, "", allowed_by)
    return Decision(False, "implicit")
