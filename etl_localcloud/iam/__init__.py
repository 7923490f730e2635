"""IAM enforced for the pipeline's own principals: sessions of service roles, and one enforcement point.

- :mod:`.sessions`: a service assumes its role (trust policy checked) and hands the code a session's keys
- :mod:`.requests`: a signed request read as IAM reads it (signer, operation, parameters)
- :mod:`.resources`: the actions, resources, condition keys and resource policy of an operation
- :mod:`.policy`: AWS's policy evaluation (statements, conditions, explicit Deny wins)
- :mod:`.enforcer`: the dispatcher's gate; AWS-shaped AccessDenied answers
"""

from __future__ import annotations

from etl_localcloud.iam.enforcer import Enforcer, Refusal, denial_message
from etl_localcloud.iam.sessions import AssumeRefused, RoleSessions, ServiceRole, Session

__all__ = ["Enforcer", "Refusal", "denial_message", "AssumeRefused", "RoleSessions", "ServiceRole", "Session"]
