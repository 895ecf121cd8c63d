"""The metadata store (aiosqlite): orgs, Arc bindings, API keys, agents, sessions, retention and audit.

`open_metadata(path)` gives a MetadataDB that builds every repository once (`db.orgs`, `db.arc_instances`,
`db.api_keys`, `db.agents`, `db.sessions`, `db.retention`, `db.audit`); `models.py` holds the records they
return. `_util.py` is internal.
"""

from memtrace.metadata.agents import Agents
from memtrace.metadata.db import LATEST_VERSION, MetadataDB, SchemaError, open_metadata
from memtrace.metadata.forgetting import Audit, Retention, RetentionPolicy
from memtrace.metadata.models import SESSION_STATUSES, Agent, ApiKeyInfo, KeyRecord, Org, Session, SessionStatus
from memtrace.metadata.sessions import Sessions

__all__ = [
    "LATEST_VERSION",
    "SESSION_STATUSES",
    "Agent",
    "Agents",
    "ApiKeyInfo",
    "Audit",
    "KeyRecord",
    "MetadataDB",
    "Org",
    "Retention",
    "RetentionPolicy",
    "SchemaError",
    "Session",
    "SessionStatus",
    "Sessions",
    "open_metadata",
]
