"""Check accounts, then save only the verified ones to SmartLead: nothing lost, nothing twice.

Accounts are checked exactly as ``preflight check`` does (``check_many``); each one
that passes goes to ``POST /email-accounts/save`` as soon as its report is in, within
the client's rate limit. Every outcome is appended to the :class:`Journal` before
the next one is recorded. On a rerun, accounts the journal shows as saved are not
checked or sent again, and an account whose earlier POST had an unknown outcome is
first looked up on the platform: found means saved, not found means send.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from preflight.options import CheckOptions
from preflight.reader import RawAccount
from preflight.report import AccountReport, Status
from preflight.runner import account_label, check_many
from preflight.smartlead._client import (
    LookupFailed,
    SaveOutcome,
    SaveResult,
    SmartLeadClient,
    Unauthorized,
)
from preflight.smartlead._journal import Entry, Journal, account_key

__all__ = ["SubmitRecord", "submit_many"]


@dataclass(frozen=True)
class SubmitRecord:
    index: int
    account: str | None
    verdict: str
    message: str
    line: int | None = None
    report: AccountReport | None = None
    result: SaveResult | None = None
    #: Where the platform's own connection check disagrees with preflight's verdict.
    disagreement: tuple[str, ...] = ()
    #: The body that would be sent, secrets masked (dry runs only).
    payload: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.verdict in ("saved", "already_saved", "dry_run")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "index": self.index,
            "account": self.account,
            "line": self.line,
            "ok": self.ok,
            "verdict": self.verdict,
            "message": self.message,
            "disagreement": list(self.disagreement),
        }
        if self.result is not None:
            data["platform"] = self.result.to_dict()
        if self.payload is not None:
            data["payload"] = self.payload
        if self.report is not None:
            data["report"] = self.report.to_dict()
        return data


def _failed_message(report: AccountReport) -> str:
    failing = [c for c in report.checks if c.status is Status.FAIL]
    return "; ".join(f"{c.name}: {c.code.value}" for c in failing) or "check failed"


async def submit_many(
    accounts: Iterable[RawAccount],
    options: CheckOptions,
    client: SmartLeadClient,
    journal: Journal,
    *,
    concurrency: int = 20,
    per_host: int = 5,
    dry_run: bool = False,
) -> AsyncIterator[SubmitRecord]:
    """Check and save ``accounts``, yielding a record for each as it is settled.

    Raises :class:`preflight.smartlead._client.Unauthorized` when the API key is refused
    (every further call would fail too), after the saves in flight have settled:
    nothing is sent after the first 401, what was settled is in the journal and was
    yielded (the accounts refused are yielded as ``not_sent``).
    """
    settled: list[SubmitRecord] = []

    def to_check() -> Iterator[RawAccount]:
        for raw in accounts:
            label = account_label(raw.data)
            done = journal.saved(account_key(label)) if label else None
            if done is not None and not dry_run:
                settled.append(
                    SubmitRecord(
                        raw.index,
                        label,
                        "already_saved",
                        "saved in an earlier run (journal); not sent again",
                        raw.line,
                        result=None,
                    )
                )
                continue
            yield raw

    sending: set[asyncio.Task[SubmitRecord]] = set()
    try:
        reports = check_many(to_check(), options, concurrency=concurrency, per_host=per_host)
        async for report in reports:
            while settled:
                yield settled.pop(0)
            if client.refused is not None:
                # Checks in flight are cancelled and their connections closed.
                await reports.aclose()  # type: ignore[attr-defined]
                break
            if report.ok and report.validated is not None:
                sending.add(asyncio.ensure_future(_send(report, client, journal, dry_run)))
            else:
                yield SubmitRecord(
                    report.index,
                    report.account,
                    "failed_check",
                    _failed_message(report),
                    report.line,
                    report,
                )
            for task in [t for t in sending if t.done()]:
                sending.discard(task)
                yield task.result()
        while settled:
            yield settled.pop(0)
        while sending:
            done, sending = await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                yield task.result()
        if client.refused is not None:
            raise client.refused
    finally:
        for task in sending:
            task.cancel()
        for task in sending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _send(
    report: AccountReport, client: SmartLeadClient, journal: Journal, dry_run: bool
) -> SubmitRecord:
    account = report.validated
    assert account is not None
    key = account_key(account.from_email)

    def record(verdict: str, message: str, **extra: Any) -> SubmitRecord:
        return SubmitRecord(
            report.index, report.account, verdict, message, report.line, report, **extra
        )

    if dry_run:
        return record("dry_run", "verified; would be sent", payload=account.to_payload())
    if journal.saved(key) is not None:
        # Saved under another spelling of the same address earlier in this run.
        return record("already_saved", "saved already (journal); not sent again")
    if client.refused is not None:
        return record("not_sent", "not sent: SmartLead refused the API key (401)")
    if journal.uncertain(key):
        # An earlier POST may have been applied: look before sending again.
        try:
            found = await client.find_accounts(account.from_email, account.user_name)
        except LookupFailed as exc:
            return record("unknown", f"earlier outcome unknown and the look-up failed: {exc}")
        except Unauthorized:
            return record("not_sent", "not sent: SmartLead refused the API key (401)")
        if found:
            account_id = found[0].get("id")
            journal.append(
                Entry(
                    key,
                    "found",
                    account_id if isinstance(account_id, int) else None,
                    None,
                    "found on the platform after an unknown outcome",
                )
            )
            return record(
                "already_saved",
                f"an earlier attempt had saved it (found as id {account_id}); not sent again",
            )
    # The intent goes to disk before the request: if the process dies between the
    # platform applying the POST and the outcome being written, the rerun sees
    # "sending" and looks the account up instead of creating it twice.
    journal.append(Entry(key, "sending"))
    try:
        result = await client.save(account.to_payload(reveal_secrets=True))
    except Unauthorized:
        # A 401 is not applied: safe to send on a later run, with a good key.
        message = "not sent: SmartLead refused the API key (401)"
        journal.append(Entry(key, "not_sent", None, 401, message))
        return record("not_sent", message)
    journal.append(
        Entry(key, result.outcome.value, result.account_id, result.status, result.message)
    )
    if result.outcome is SaveOutcome.SAVED:
        disagreement = tuple(
            f"the platform reports {name} failing, preflight found it working"
            for name, success in (
                ("smtp", result.is_smtp_success),
                ("imap", result.is_imap_success),
            )
            if success is False
        )
        return record(
            "saved", f"saved as id {result.account_id}", result=result, disagreement=disagreement
        )
    return record(result.outcome.value, result.message, result=result)
