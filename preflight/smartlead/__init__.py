"""Everything that talks to SmartLead, or stands in front of it.

    >>> from preflight.smartlead import AccountRejected, guard_sync, SyncPreflightTransport

- the hooks, for a tool that saves accounts itself: ``guard`` / ``guard_sync``
  (``AccountRejected`` when the account fails) and the httpx transports
  ``PreflightTransport`` / ``SyncPreflightTransport`` (``REJECTED_CODE``,
  ``REPORT_EXTENSION``); ``preflight`` exports these too;
- the API client: ``SmartLeadClient``, ``RateLimit``, ``SaveResult``,
  ``SaveOutcome``, ``DEFAULT_BASE_URL``, ``Unauthorized``, ``LookupFailed``;
- the submit journal: ``Journal``, ``Entry``, ``JournalError``, ``JournalBusy``;
- ``submit_many`` (what ``preflight submit`` runs) and its ``SubmitRecord``;
- ``audit_many`` (what ``preflight audit`` runs), its ``AuditReport`` (an
  ``AccountReport`` with the platform's view, ``Platform``) and ``FetchFailed``.

The modules (``_guard``, ``_httpx_guard``, ``_client``, ``_journal``, ``_submit``, ``_audit``)
are internal. Names are imported lazily (PEP 562): ``preflight.guard`` does not
load httpx, nor the client the journal.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "DEFAULT_BASE_URL",
    "REJECTED_CODE",
    "REPORT_EXTENSION",
    "AccountRejected",
    "AuditReport",
    "Entry",
    "FetchFailed",
    "Journal",
    "JournalBusy",
    "JournalError",
    "LookupFailed",
    "Platform",
    "PreflightTransport",
    "RateLimit",
    "SaveOutcome",
    "SaveResult",
    "SmartLeadClient",
    "SubmitRecord",
    "SyncPreflightTransport",
    "Unauthorized",
    "audit_many",
    "guard",
    "guard_sync",
    "submit_many",
]

_WHERE = {
    "AuditReport": "_audit",
    "Platform": "_audit",
    "audit_many": "_audit",
    "FetchFailed": "_client",
    "AccountRejected": "_guard",
    "guard": "_guard",
    "guard_sync": "_guard",
    "PreflightTransport": "_httpx_guard",
    "SyncPreflightTransport": "_httpx_guard",
    "REJECTED_CODE": "_httpx_guard",
    "REPORT_EXTENSION": "_httpx_guard",
    "DEFAULT_BASE_URL": "_client",
    "LookupFailed": "_client",
    "RateLimit": "_client",
    "SaveOutcome": "_client",
    "SaveResult": "_client",
    "SmartLeadClient": "_client",
    "Unauthorized": "_client",
    "Entry": "_journal",
    "Journal": "_journal",
    "JournalBusy": "_journal",
    "JournalError": "_journal",
    "SubmitRecord": "_submit",
    "submit_many": "_submit",
}

if TYPE_CHECKING:
    from preflight.smartlead._audit import AuditReport, Platform, audit_many
    from preflight.smartlead._client import (
        DEFAULT_BASE_URL,
        FetchFailed,
        LookupFailed,
        RateLimit,
        SaveOutcome,
        SaveResult,
        SmartLeadClient,
        Unauthorized,
    )
    from preflight.smartlead._guard import AccountRejected, guard, guard_sync
    from preflight.smartlead._httpx_guard import (
        REJECTED_CODE,
        REPORT_EXTENSION,
        PreflightTransport,
        SyncPreflightTransport,
    )
    from preflight.smartlead._journal import Entry, Journal, JournalBusy, JournalError
    from preflight.smartlead._submit import SubmitRecord, submit_many


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'preflight.smartlead' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
