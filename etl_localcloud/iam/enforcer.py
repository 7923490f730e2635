"""The one enforcement point: every request signed with an assumed-role session key is authorised here.

The dispatcher calls :meth:`Enforcer.refusal` before routing a request anywhere (moto or a provider).
Requests signed with the user's own keys (the admin's, or any key that is not a session key) pass, as
an account admin's do. A session key moto's STS never issued, or one whose token does not match,
answers ``InvalidClientTokenId`` (S3: ``InvalidAccessKeyId``); an expired one ``ExpiredToken``. A
denied call answers with the service's AccessDenied shape and AWS's message naming the session, the
action and the resource.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from etl_localcloud.iam.policy import Caller, Check, Decision, UnsupportedPolicy, evaluate
from etl_localcloud.iam.requests import Operation, operation, signer
from etl_localcloud.iam.resources import Scope, checks, set_caller
from etl_localcloud.iam.sessions import RoleSessions
from etl_localcloud.motohooks import iam as moto_iam

__all__ = ["Enforcer", "Refusal", "denial_message"]

log = logging.getLogger("etl_localcloud.iam")

DENIALS_KEPT = 200


@dataclass(frozen=True)
class Refusal:
    """An AWS-shaped error answer: status, error code and message, shaped for the service's protocol."""

    code: str
    message: str
    status: int = 403

    def response(self, op: Operation | None) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) as the service's protocol shapes its errors."""
        protocol = op.protocol if op is not None else "json"
        rid = str(uuid.uuid4())
        if protocol == "rest-xml":
            body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{self.code}</Code>"
                    f"<Message>{_xml(self.message)}</Message><RequestId>{rid}</RequestId></Error>")
            return self.status, {"Content-Type": "application/xml"}, body.encode()
        if protocol in ("query", "ec2"):
            body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{self.code}</Code>"
                    f"<Message>{_xml(self.message)}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>")
            return self.status, {"Content-Type": "text/xml"}, body.encode()
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": self.code,
                   "x-amzn-RequestId": rid}
        payload = {"__type": self.code, "message": self.message, "Message": self.message}
        if protocol == "rest-json":
            headers["Content-Type"] = "application/json"
            payload = {"Type": "User", "message": self.message, "Message": self.message}
        return self.status, headers, json.dumps(payload).encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# service -> (AccessDenied code, HTTP status) where it is not AccessDeniedException / 400 (JSON protocol)
_DENIED = {"s3": ("AccessDenied", 403), "sqs": ("AccessDenied", 403), "sns": ("AuthorizationError", 403),
           "sts": ("AccessDenied", 403), "iam": ("AccessDenied", 403), "ec2": ("UnauthorizedOperation", 403),
           "lambda": ("AccessDeniedException", 403)}


_ADMIN_POLICY = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def denial_message(session_arn: str, check: Check, decision: Decision) -> str:
    """AWS's wording of a denial."""
    head = f"User: {session_arn} is not authorized to perform: {check.action} on resource: {check.resource}"
    if decision.reason == "identity":
        return f"{head} with an explicit deny in an identity-based policy"
    if decision.reason == "resource":
        return f"{head} with an explicit deny in a resource-based policy"
    return f"{head} because no identity-based policy allows the {check.action} action"


def _bad_key(service: str, expired: bool) -> Refusal:
    if expired:
        code = "ExpiredToken" if service in ("s3", "sts", "iam", "sns", "sqs") else "ExpiredTokenException"
        return Refusal(code, "The security token included in the request is expired")
    if service == "s3":
        return Refusal("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
    code = "InvalidClientTokenId" if service in ("sts", "iam", "sns", "sqs", "ec2") else "UnrecognizedClientException"
    return Refusal(code, "The security token included in the request is invalid.")


class Enforcer:
    """Authorises session-signed requests against the role's policies and the resource's policy.

    ``enabled`` can change while the daemon runs (``etl-kit local up`` with a changed params key).
    """

    def __init__(self, account: str, region: str, enabled: bool = True, admin_keys: frozenset[str] = frozenset()):
        self.account = account
        self.region = region
        self.enabled = enabled
        self.admin_keys = admin_keys
        self.sessions = RoleSessions(account, region)
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.used: Counter[str] = Counter()  # "role/Sid" -> allowed requests it decided (the audit)
        self.listeners: list[Callable[[bool], None]] = []  # told when enforcement is switched
        self.denials: deque[dict[str, str]] = deque(maxlen=DENIALS_KEPT)  # the latest, for status and tests

    def switch(self, enforcing: bool) -> None:
        """Start or stop enforcing (the listeners learn of it)."""
        self.enabled = enforcing
        for listener in list(self.listeners):
            try:
                listener(enforcing)
            except Exception:
                log.exception("IAM switch listener failed")

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {"ok": True, "enforcing": self.enabled, **dict(self.counts),
                    "statements_used": dict(sorted(self.used.items())), "recent_denials": list(self.denials)}

    def refusal(self, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes] | None:
        """None when the request may go on, else the error answer to send instead."""
        set_caller(None)  # this thread served other requests before
        signed = signer(environ)
        if signed is None or not self.enabled:
            return None
        if signed.access_key_id in self.admin_keys:
            return self._admin_refusal(environ, signed.service)
        if not (signed.token or signed.access_key_id.startswith("ASIA")):
            return self._admin_refusal(environ, signed.service)  # the user's own key: an account admin's
        session = moto_iam.find_session(self.account, signed.access_key_id)
        op = operation(environ, signed.service)
        if session is None or session.session_token != signed.token or session.expired():
            self._count("refused_keys")
            return _bad_key(op.service, session is not None and session.session_token == signed.token).response(op)
        return self._authorise(op, session)

    def _admin_refusal(self, environ: dict[str, Any], service: str) -> tuple[int, dict[str, str], bytes] | None:
        """An admin is refused only by an explicit Deny in a bucket policy that covers it (e.g. ``Principal: *``)."""
        if service != "s3":
            return None
        op = operation(environ, service)
        root = f"arn:aws:iam::{self.account}:root"
        caller = Caller(self.account, role_arn=root, session_arn=root)
        scope = Scope(self.account, self.region, {"aws:securetransport": ("true",), "aws:principalarn": (root,),
                                                  "aws:principalaccount": (self.account,)})
        for check in checks(op, scope) if op.name else []:
            if check.resource_policy is None:
                continue
            try:
                decision = evaluate(check, caller, [("admin", _ADMIN_POLICY)])
            except UnsupportedPolicy as exc:
                return Refusal("AccessDenied", f"User: {root} is not authorized: {exc}").response(op)
            if not decision.allowed:
                return Refusal("AccessDenied", denial_message(root, check, decision)).response(op)
        return None

    def service_refusal(self, service: str, action: str, resource_arn: str, source_arn: str) -> str | None:
        """Why ``service`` may not do ``action`` on ``resource_arn`` for ``source_arn`` (its resource policy), or None.

        An AWS service delivering on a resource's behalf (EventBridge invoking a function, sending to a
        queue, publishing to a topic) is authorised by the target's resource policy alone.
        """
        if not self.enabled:
            return None
        parts = resource_arn.split(":")
        kind = parts[2] if len(parts) > 5 else ""
        ident = {"sqs": parts[-1], "sns": resource_arn, "lambda": parts[6] if len(parts) > 6 else ""}.get(kind, "")
        policy = moto_iam.resource_policy(kind, self.account, self.region, ident) if ident else None
        context: dict[str, tuple[str, ...]] = {"aws:sourcearn": (source_arn,), "aws:sourceaccount": (self.account,),
                   "aws:securetransport": ("true",)}
        try:
            decision = evaluate(Check(action, resource_arn, context, policy or {"Statement": []}),
                                Caller(self.account, service=service), [])
        except UnsupportedPolicy as exc:
            return str(exc)
        if decision.allowed:
            return None
        self._count("denied")
        why = "an explicit deny in" if decision.reason == "resource" else "no statement allowing it in"
        return (f"{service} is not authorized to perform: {action} on resource: {resource_arn} "
                f"({why} its resource policy)")

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] += n

    def _authorise(self, op: Operation, session: moto_iam.Session) -> tuple[int, dict[str, str], bytes] | None:
        role_name = session.role_arn.rsplit("/", 1)[-1]
        caller = Caller(self.account, role_arn=session.role_arn, session_arn=session.arn)
        userid = f"{moto_iam.role_id(self.account, session.role_arn)}:{session.session_name}"
        set_caller(userid)
        scope = Scope(self.account, self.region, {
            "aws:securetransport": ("true",), "aws:principalarn": (session.role_arn,),
            "aws:principalaccount": (self.account,), "aws:requestedregion": (self.region,),
            "aws:userid": (userid,)})
        identity = moto_iam.role_documents(self.account, session.role_arn)
        try:
            wanted = checks(op, scope) if op.name else []
            if not op.name:
                raise UnsupportedPolicy(f"the request matches no {op.service} operation")
            decided = [(c, evaluate(c, caller, identity)) for c in wanted]
        except UnsupportedPolicy as exc:
            self._count("denied")
            return Refusal("AccessDenied", f"User: {session.arn} is not authorized: {exc}").response(op)
        for check, decision in decided:
            if not decision.allowed:
                self._count("denied")
                log.info("IAM denied %s %s on %s (%s)", session.arn, check.action, check.resource, decision.reason)
                code, status = _DENIED.get(op.service, ("AccessDeniedException", 400))
                with self._lock:
                    self.counts["denial_seq"] += 1
                    self.denials.append({"seq": str(self.counts["denial_seq"]), "principal": session.arn,
                                         "action": check.action, "resource": check.resource,
                                         "operation": f"{op.service}:{op.name}",
                                         "reason": decision.reason, "code": code})
                return Refusal(code, denial_message(session.arn, check, decision), status).response(op)
        with self._lock:
            self.counts["allowed"] += 1
            for _, decision in decided:
                st = decision.statement
                self.used[f"{role_name}/{st if st.startswith('resource:') else st.rsplit(':', 1)[-1]}"] += 1
        return None
