"""Re-check the accounts already on SmartLead: what ``preflight audit`` runs.

The accounts are listed (``GET /email-accounts/``, filters and pages of 100), then
fetched one at a time (``GET /email-accounts/{id}/``, which gives the passwords in
plain text), turned into the save-account payload ``check`` takes, and checked
exactly as ``check`` does (:func:`preflight.runner.check_many`). Each report carries
the platform's own view of the account (:class:`Platform`): its connection flags and
failure errors, warmup status and reputation, and where it disagrees with
preflight. An ``audit`` check, appended after the others, holds the warnings only an
audit gives: the platform shows the account disconnected while its login works
(``reconnect_needed``), Microsoft is about to turn off the password login it uses
(``basic_auth_ending``), a server's certificate is about to expire
(``cert_expiring``), the sending domain's SPF/DMARC/DKIM got worse since a baseline
run (``domain_worse``).

Secrets: the fetched account (with its passwords) lives in memory only, in the
payload handed to the checks; it is never written, logged, put in a report or an
exception. What the platform says (failure errors) is scrubbed of the account's
passwords and the API key before it goes in a report.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from preflight._text import one_line, printable, shorten
from preflight.options import CheckOptions
from preflight.reader import RawAccount
from preflight.report import CHECK_NAMES, AccountReport, CheckResult, Code, Status, skipped
from preflight.runner import check_many
from preflight.smartlead._client import FetchFailed, SmartLeadClient, scrub

__all__ = [
    "BASIC_AUTH_END",
    "CERT_WARN_DAYS",
    "AuditReport",
    "DomainState",
    "Platform",
    "audit_check",
    "audit_many",
    "payload_from_platform",
    "read_baseline",
]

#: Microsoft turns SMTP AUTH with a password off by default for existing tenants at
#: the end of December 2026 (Exchange Team, 27 January 2026); admins can turn it
#: back on until the final removal in 2027.
BASIC_AUTH_END: Final = datetime.date(2026, 12, 31)

#: A server certificate expiring within this many days is an audit warning
#: (``cert_expiring``): time to tell whoever runs the server, before the platform
#: disconnects the account.
CERT_WARN_DAYS: Final = 30

#: Longest platform text kept in a report (a failure error).
_MAX_TEXT: Final = 300

_RECONNECT_HINT: Final = (
    "The settings work now: reconnect the account on SmartLead (Email Accounts, "
    "Reconnect; or POST /email-accounts/reconnect-failed-email-accounts)."
)


def _text(value: Any, secrets: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    return shorten(printable(one_line(scrub(str(value), secrets))), _MAX_TEXT)


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Platform:
    """What SmartLead shows about an account (no secret), and where preflight disagrees."""

    id: int | None
    is_smtp_success: bool | None = None
    is_imap_success: bool | None = None
    smtp_failure_error: str | None = None
    imap_failure_error: str | None = None
    warmup_status: str | None = None
    warmup_reputation: str | None = None
    blocked_reason: str | None = None
    esp: str | None = None
    client_id: int | None = None
    #: ``{"protocol", "platform", "preflight", "message"}`` for each protocol where
    #: the platform's connection flag and preflight's login disagree.
    disagreement: tuple[dict[str, str], ...] = ()

    @classmethod
    def from_item(cls, item: Mapping[str, Any], secrets: tuple[str, ...] = ()) -> Platform:
        """From a listing item (or a fetched account): only the fields named here."""
        warmup = item.get("warmup_details")
        warmup = warmup if isinstance(warmup, Mapping) else {}
        reputation = warmup.get("warmup_reputation")
        return cls(
            id=_int(item.get("id")),
            is_smtp_success=_flag(item.get("is_smtp_success")),
            is_imap_success=_flag(item.get("is_imap_success")),
            smtp_failure_error=_text(item.get("smtp_failure_error"), secrets),
            imap_failure_error=_text(item.get("imap_failure_error"), secrets),
            warmup_status=_text(warmup.get("status"), secrets),
            warmup_reputation=_text(reputation, secrets),
            blocked_reason=_text(warmup.get("blocked_reason"), secrets),
            esp=_text(item.get("type"), secrets),
            client_id=_int(item.get("client_id")),
        )

    @property
    def status(self) -> str:
        """``connected``, ``disconnected`` (both failing), ``smtp_failing``,
        ``imap_failing`` or ``unknown`` (the platform did not say)."""
        smtp, imap = self.is_smtp_success, self.is_imap_success
        if smtp is None and imap is None:
            return "unknown"
        if smtp is False and imap is False:
            return "disconnected"
        if smtp is False:
            return "smtp_failing"
        if imap is False:
            return "imap_failing"
        return "connected"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "is_smtp_success": self.is_smtp_success,
            "is_imap_success": self.is_imap_success,
            "smtp_failure_error": self.smtp_failure_error,
            "imap_failure_error": self.imap_failure_error,
            "warmup_status": self.warmup_status,
            "warmup_reputation": self.warmup_reputation,
            "blocked_reason": self.blocked_reason,
            "esp": self.esp,
            "client_id": self.client_id,
            "disagreement": [dict(d) for d in self.disagreement],
        }


@dataclass(frozen=True)
class AuditReport(AccountReport):
    """An account report (as ``check`` gives it) with the platform's view of the account."""

    platform: Platform = field(default_factory=lambda: Platform(None))

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["platform"] = self.platform.to_dict()
        return data


def payload_from_platform(account: Mapping[str, Any]) -> dict[str, Any]:
    """The save-account payload ``check`` takes, from a fetched account.

    The listing's names are mapped to the save body's (``username`` to
    ``user_name``, ``imap_username`` to ``imap_user_name``, ``message_per_day`` to
    ``max_email_per_day``, ``bcc_email`` to ``bcc``, ``custom_tracking_domain`` to
    ``custom_tracking_url``; ``warmup_enabled`` from the
    warmup status). The result holds the passwords: memory only.
    """
    warmup = account.get("warmup_details")
    warmup = warmup if isinstance(warmup, Mapping) else {}
    user = account.get("username") or account.get("user_name")
    payload: dict[str, Any] = {
        "from_name": account.get("from_name"),
        "from_email": account.get("from_email"),
        "user_name": user,
        "password": account.get("password"),
        "smtp_host": account.get("smtp_host"),
        "smtp_port": account.get("smtp_port"),
        "imap_host": account.get("imap_host"),
        "imap_port": account.get("imap_port"),
        "warmup_enabled": warmup.get("status") == "ACTIVE",
    }
    imap_user = account.get("imap_username") or account.get("imap_user_name")
    if imap_user and imap_user != user:
        payload["imap_user_name"] = imap_user
    imap_password = account.get("imap_password")
    if imap_password and imap_password != payload["password"]:
        payload["imap_password"] = imap_password
    optional = {
        "type": account.get("type"),
        "max_email_per_day": account.get("message_per_day", account.get("max_email_per_day")),
        "total_warmup_per_day": warmup.get("total_warmup_per_day"),
        "different_reply_to_address": account.get("different_reply_to_address"),
        "bcc": account.get("bcc_email"),
        "client_id": account.get("client_id"),
        # The listing's custom_tracking_domain is the save body's custom_tracking_url:
        # the tracking check audits it too.
        "custom_tracking_url": account.get(
            "custom_tracking_domain", account.get("custom_tracking_url")
        ),
    }
    payload.update({k: v for k, v in optional.items() if v not in (None, "")})
    return payload


def _secrets(account: Mapping[str, Any]) -> tuple[str, ...]:
    found = [account.get(name) for name in ("password", "imap_password")]
    return tuple(s for s in found if isinstance(s, str) and len(s) >= 3)


def _disagreement(report: AccountReport, platform: Platform) -> tuple[dict[str, str], ...]:
    found: list[dict[str, str]] = []
    for name, success, error in (
        ("smtp", platform.is_smtp_success, platform.smtp_failure_error),
        ("imap", platform.is_imap_success, platform.imap_failure_error),
    ):
        try:
            check = report.check(name)
        except KeyError:
            continue
        if check.status is Status.SKIP or success is None:
            continue
        works = check.status is not Status.FAIL
        if success is False and works:
            said = f" ({error})" if error else ""
            found.append(
                {
                    "protocol": name,
                    "platform": "failing",
                    "preflight": check.status.value,
                    "message": f"SmartLead shows {name.upper()} disconnected{said}, but the "
                    "login works now: a reconnect will fix it",
                }
            )
        elif success is True and not works:
            found.append(
                {
                    "protocol": name,
                    "platform": "connected",
                    "preflight": check.status.value,
                    "message": f"SmartLead shows {name.upper()} connected, but the login fails "
                    f"now ({check.code.value}): it will disconnect",
                }
            )
    return tuple(found)


def _is_microsoft(account: Mapping[str, Any]) -> bool:
    from preflight.providers import family_of

    kind = str(account.get("type") or "").upper()
    host = str(account.get("smtp_host") or "")
    return kind == "OUTLOOK" or family_of(host) == "microsoft"


def audit_check(
    report: AccountReport,
    platform: Platform,
    payload: Mapping[str, Any],
    *,
    today: datetime.date | None = None,
    baseline: Mapping[str, DomainState] | None = None,
) -> CheckResult:
    """The ``audit`` check: the warnings an audit adds to ``check``'s report.

    ``details.problems`` lists every one (``{"code", "message", "hint"}``); the
    check's code is the first one's. ``payload`` is what was checked (only its
    type, host names and whether it carries an OAuth token are read).
    """
    today = today or datetime.date.today()
    problems: list[dict[str, str]] = []
    stale = [d["protocol"].upper() for d in platform.disagreement if d["platform"] == "failing"]
    if stale:
        problems.append(
            {
                "code": Code.RECONNECT_NEEDED.value,
                "message": f"SmartLead shows {' and '.join(stale)} disconnected, but "
                f"the login{'s work' if len(stale) > 1 else ' works'} now",
                "hint": _RECONNECT_HINT,
            }
        )
    smtp = _check(report, "smtp")
    mechanism = str((smtp.details.get("auth_mechanism") if smtp else None) or "").upper()
    if (
        _is_microsoft(payload)
        and not _oauth(payload)
        and mechanism != "XOAUTH2"
        and smtp is not None
        and smtp.status in (Status.PASS, Status.WARN)
    ):
        days = (BASIC_AUTH_END - today).days
        when = (
            f"at the end of December 2026 ({days} days from now)"
            if days >= 0
            else "since the end of December 2026 (unless the tenant's admin turned it back on)"
        )
        problems.append(
            {
                "code": Code.BASIC_AUTH_ENDING.value,
                "message": "a Microsoft 365 / Outlook account that logs in with a password: "
                f"Microsoft turns SMTP AUTH with passwords off by default {when}",
                "hint": "Reconnect it with OAuth before then (SmartLead: connect with "
                "Microsoft, or POST /email-accounts/save-oauth with the account's token); "
                "password (basic) IMAP login is already off in Exchange Online.",
            }
        )
    for name in ("smtp", "imap"):
        check = _check(report, name)
        days_left = check.details.get("cert_days_left") if check is not None else None
        if (
            check is not None
            and check.status is not Status.FAIL
            and isinstance(days_left, int)
            and days_left < CERT_WARN_DAYS
        ):
            host = payload.get(f"{name}_host")
            problems.append(
                {
                    "code": Code.CERT_EXPIRING.value,
                    "message": f"the {name.upper()} server's certificate ({printable(host)}) "
                    f"expires in {days_left} days",
                    "hint": "Tell whoever runs the mail server to renew its certificate: once "
                    "it expires, every login fails (tls_expired) and SmartLead disconnects "
                    "the account.",
                }
            )
    domain = _check(report, "domain")
    name = str(domain.details.get("domain") or "") if domain is not None else ""
    before = (baseline or {}).get(name.lower())
    if domain is not None and before is not None and domain.status is not Status.SKIP:
        changes = DomainState.from_details(domain.details).worse_than(before)
        if changes:
            problems.append(
                {
                    "code": Code.DOMAIN_WORSE.value,
                    "message": f"{printable(name)} got worse since the baseline: "
                    + "; ".join(changes),
                    "hint": "Someone changed the domain's DNS since the baseline run: restore "
                    "its SPF and DMARC records (the domain check says what is wrong now), "
                    "or its mail lands in spam or is refused.",
                }
            )
    if not problems:
        return CheckResult("audit", Status.PASS, Code.OK, "nothing at risk found")
    first = problems[0]
    message = first["message"] if len(problems) == 1 else f"{len(problems)} things at risk"
    hint = first["hint"]
    if len(problems) > 1:
        hint += f" ({len(problems) - 1} more in details.problems.)"
    return CheckResult(
        "audit", Status.WARN, Code(first["code"]), message, hint, 0.0, {"problems": problems}
    )


def _oauth(payload: Mapping[str, Any]) -> bool:
    token = payload.get("token")
    return bool(payload.get("oauth")) or (
        isinstance(token, Mapping) and bool(token.get("access_token"))
    )


#: The domain check's problems whose appearance since a baseline makes a domain worse.
_WATCHED: Final = frozenset(
    {
        "spf_missing",
        "spf_invalid",
        "spf_too_many_lookups",
        "spf_not_covering",
        "dmarc_missing",
        "dmarc_policy_none",
        "dkim_missing",
    }
)
_POLICY_RANK: Final = {"reject": 2, "quarantine": 1, "none": 0}


@dataclass(frozen=True)
class DomainState:
    """A sending domain's SPF/DMARC/DKIM health as one domain check saw it."""

    problems: frozenset[str]
    dmarc_policy: str | None

    @classmethod
    def from_details(cls, details: Mapping[str, Any]) -> DomainState:
        problems = details.get("problems")
        codes = {
            str(p.get("code"))
            for p in (problems if isinstance(problems, list) else [])
            if isinstance(p, Mapping)
        }
        policy = details.get("dmarc_policy")
        return cls(frozenset(codes & _WATCHED), policy if isinstance(policy, str) else None)

    def worse_than(self, before: DomainState) -> list[str]:
        """What got worse since ``before`` (empty: nothing)."""
        changes = [f"now {code}" for code in sorted(self.problems - before.problems)]
        old = _POLICY_RANK.get((before.dmarc_policy or "").lower())
        new = _POLICY_RANK.get((self.dmarc_policy or "").lower(), -1)
        if old is not None and new < old:
            changes.append(
                f"DMARC p={before.dmarc_policy} before, {self.dmarc_policy or 'none'} now"
            )
        return changes


def read_baseline(reports: Any) -> dict[str, DomainState]:
    """Each sending domain's state in an earlier run: ``reports`` are report objects
    as ``check``/``audit`` write them in JSON (``--format json`` or ``jsonl``)."""
    found: dict[str, DomainState] = {}
    for report in reports:
        checks = report.get("checks") if isinstance(report, Mapping) else None
        for check in checks if isinstance(checks, list) else []:
            if not isinstance(check, Mapping) or check.get("name") != "domain":
                continue
            details = check.get("details")
            if check.get("status") in ("pass", "warn", "fail") and isinstance(details, Mapping):
                domain = details.get("domain")
                if isinstance(domain, str) and domain.lower() not in found:
                    found[domain.lower()] = DomainState.from_details(details)
    return found


def _check(report: AccountReport, name: str) -> CheckResult | None:
    try:
        return report.check(name)
    except KeyError:
        return None


def _not_checked(index: int, label: str | None, platform: Platform, why: str) -> AuditReport:
    failed = CheckResult(
        "fetch",
        Status.FAIL,
        Code.FETCH_FAILED,
        why,
        "The account's settings could not be fetched from SmartLead, so it was not "
        "checked: run the audit again (--username ADDRESS for this one).",
    )
    reason = "not run: the account could not be fetched from SmartLead"
    checks = (failed, *(skipped(name, reason) for name in CHECK_NAMES))
    return AuditReport(index, label, checks, None, platform=platform)


def _oauth_only(index: int, label: str | None, platform: Platform) -> AuditReport:
    """An account SmartLead holds no password for (connected with OAuth): nothing to log
    in with, so nothing is checked; not a failure."""
    why = (
        "an OAuth account: SmartLead keeps no password for it, so preflight cannot log in "
        "as SmartLead does; the platform's own status is shown"
    )
    checks = (
        CheckResult("fetch", Status.SKIP, Code.SKIPPED, why),
        *(skipped(name, "not run: no password to check (OAuth)") for name in CHECK_NAMES),
    )
    return AuditReport(index, label, checks, None, platform=platform)


@dataclass
class _Listed:
    index: int
    account_id: int | None
    label: str | None
    platform: Platform


async def audit_many(
    client: SmartLeadClient,
    options: CheckOptions,
    *,
    filters: Mapping[str, str | int | bool] | None = None,
    concurrency: int = 20,
    per_host: int = 5,
    ordered: bool = True,
    on_listed: Callable[[int], None] | None = None,
    today: datetime.date | None = None,
    baseline: Mapping[str, DomainState] | None = None,
) -> AsyncIterator[AuditReport]:
    """Audit every account the listing gives for ``filters``, yielding a report each.

    ``on_listed`` is called with the number of accounts once the listing is done.
    An account that cannot be fetched is reported as not checked (a failing
    ``fetch`` check, code ``fetch_failed``) and the audit goes on. Raises
    :class:`~preflight.smartlead._client.Unauthorized` on a 401 and
    :class:`~preflight.smartlead._client.LookupFailed` when the listing fails.
    """
    from preflight.runner import account_label

    listed: list[_Listed] = []
    async for item in client.list_accounts(filters):
        label = account_label({"from_email": item.get("from_email")})
        listed.append(_Listed(len(listed), _int(item.get("id")), label, Platform.from_item(item)))
    if on_listed is not None:
        on_listed(len(listed))
    by_index = {entry.index: entry for entry in listed}
    payloads: dict[int, Mapping[str, Any]] = {}
    ready: list[AuditReport] = []

    async def accounts() -> AsyncIterator[RawAccount]:
        for entry in listed:
            if entry.account_id is None:
                ready.append(
                    _not_checked(
                        entry.index, entry.label, entry.platform, "the listing gave no account id"
                    )
                )
                continue
            try:
                account = await client.get_account(entry.account_id)
            except FetchFailed as exc:
                ready.append(_not_checked(entry.index, entry.label, entry.platform, str(exc)))
                continue
            secrets = _secrets(account)
            entry.platform = Platform.from_item(account, secrets) if secrets else entry.platform
            payload = payload_from_platform(account)
            if not payload.get("password"):
                ready.append(_oauth_only(entry.index, entry.label, entry.platform))
                continue
            # What the audit check reads later; not the secrets.
            payloads[entry.index] = {
                "type": payload.get("type"),
                "smtp_host": payload.get("smtp_host"),
                "imap_host": payload.get("imap_host"),
                "oauth": _oauth(payload),
            }
            yield RawAccount(entry.index, None, payload)

    waiting: dict[int, AuditReport] = {}
    next_index = 0

    def settle(report: AuditReport) -> list[AuditReport]:
        nonlocal next_index
        if not ordered:
            return [report]
        waiting[report.index] = report
        out = []
        while next_index in waiting:
            out.append(waiting.pop(next_index))
            next_index += 1
        return out

    async for report in check_many(
        accounts(), options, concurrency=concurrency, per_host=per_host, ordered=False
    ):
        while ready:
            for done in settle(ready.pop(0)):
                yield done
        entry = by_index[report.index]
        platform = dataclasses.replace(
            entry.platform, disagreement=_disagreement(report, entry.platform)
        )
        payload = payloads.pop(report.index, {})
        extra = audit_check(report, platform, payload, today=today, baseline=baseline)
        audited = AuditReport(
            report.index,
            report.account if report.account is not None else entry.label,
            (*report.checks, extra),
            None,
            report.validated,
            platform=platform,
        )
        for done in settle(audited):
            yield done
    while ready:
        for done in settle(ready.pop(0)):
            yield done
    for index in sorted(waiting):
        yield waiting[index]
