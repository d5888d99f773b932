"""The report: per-check results, per-account reports, and the contract's codes.

The shape is the one in ``shared/design/check-contract.md``. A failed check is a
*result* carrying a :class:`Code` and a hint, not an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from preflight.payload import Account

__all__ = ["CHECK_NAMES", "AccountReport", "CheckResult", "Code", "Status", "skipped"]

#: The checks, in report order: the contract's four, then `domain` (an extension),
#: then `tracking` (issue 14: the payload's custom_tracking_url).
CHECK_NAMES: Final = ("payload", "mx", "smtp", "imap", "domain", "tracking")


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class Code(StrEnum):
    """Every code the contract names. Values are stable: scripts match on them."""

    OK = "ok"
    SKIPPED = "skipped"
    PAYLOAD_INVALID = "payload_invalid"
    DNS_NXDOMAIN = "dns_nxdomain"
    DNS_NO_MX = "dns_no_mx"
    DNS_NULL_MX = "dns_null_mx"
    DNS_TIMEOUT = "dns_timeout"
    DNS_SERVFAIL = "dns_servfail"
    HOST_NOT_FOUND = "host_not_found"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    GREETING_TIMEOUT = "greeting_timeout"
    TLS_MODE_MISMATCH = "tls_mode_mismatch"
    STARTTLS_UNSUPPORTED = "starttls_unsupported"
    TLS_UNTRUSTED = "tls_untrusted"
    TLS_HOSTNAME_MISMATCH = "tls_hostname_mismatch"
    TLS_EXPIRED = "tls_expired"
    TLS_HANDSHAKE_FAILED = "tls_handshake_failed"
    PROTOCOL_ERROR = "protocol_error"
    AUTH_FAILED = "auth_failed"
    AUTH_APP_PASSWORD_REQUIRED = "auth_app_password_required"
    AUTH_WEB_LOGIN_REQUIRED = "auth_web_login_required"
    AUTH_BASIC_DISABLED = "auth_basic_disabled"
    AUTH_THROTTLED = "auth_throttled"
    #: An addition to the contract: a temporary failure on the server's side (its
    #: password backend is down), not the account's and not throttling.
    SERVER_UNAVAILABLE = "server_unavailable"
    AUTH_UNSUPPORTED = "auth_unsupported"
    AUTH_PLAINTEXT_REFUSED = "auth_plaintext_refused"
    TIMEOUT = "timeout"
    # The `domain` check (an extension of the contract: sending-domain health).
    SPF_MISSING = "spf_missing"
    SPF_INVALID = "spf_invalid"
    SPF_TOO_MANY_LOOKUPS = "spf_too_many_lookups"
    SPF_NOT_COVERING = "spf_not_covering"
    DMARC_MISSING = "dmarc_missing"
    DMARC_POLICY_NONE = "dmarc_policy_none"
    DKIM_MISSING = "dkim_missing"
    #: The DKIM selector is a CNAME whose target has no key (Microsoft 365's
    #: selector1/selector2 before DKIM is turned on in the tenant).
    DKIM_NOT_ENABLED = "dkim_not_enabled"
    # The `roundtrip` check (--roundtrip): a real message from the account to itself.
    ROUNDTRIP_SEND_REFUSED = "roundtrip_send_refused"
    ROUNDTRIP_NOT_DELIVERED = "roundtrip_not_delivered"
    ROUNDTRIP_JUNK = "roundtrip_junk"
    # The `tracking` check (issue 14: the payload's custom_tracking_url); each a
    # `warn`, a `fail` with --strict.
    TRACKING_NOT_FOUND = "tracking_not_found"
    TRACKING_CNAME_MISMATCH = "tracking_cname_mismatch"
    TRACKING_NOT_HTTPS = "tracking_not_https"
    TRACKING_UNREACHABLE = "tracking_unreachable"
    TRACKING_TLS_UNTRUSTED = "tracking_tls_untrusted"
    TRACKING_TLS_HOSTNAME_MISMATCH = "tracking_tls_hostname_mismatch"
    TRACKING_TLS_EXPIRED = "tracking_tls_expired"
    TRACKING_TLS_FAILED = "tracking_tls_failed"
    # `preflight audit` (an extension: accounts already on SmartLead). The `audit`
    # check's warnings, each with its own code, and the `fetch` check's failure.
    RECONNECT_NEEDED = "reconnect_needed"
    BASIC_AUTH_ENDING = "basic_auth_ending"
    CERT_EXPIRING = "cert_expiring"
    DOMAIN_WORSE = "domain_worse"
    FETCH_FAILED = "fetch_failed"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check of one account.

    In ``details``, ``errors`` and ``warnings`` (when present, in any check) are lists
    of ``{"message": ...}`` objects, with ``"field"`` when the problem is a payload
    field's: the writers and scripts rely on that one shape.
    """

    name: str
    status: Status
    code: Code
    message: str
    hint: str | None = None
    elapsed_ms: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "code": self.code.value,
            "message": self.message,
            "hint": self.hint,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "details": dict(self.details),
        }


def skipped(name: str, message: str) -> CheckResult:
    """A check that did not run, and why."""
    return CheckResult(name, Status.SKIP, Code.SKIPPED, message)


@dataclass(frozen=True)
class AccountReport:
    """Everything preflight found about one account.

    ``line`` (an extension of the contract) is the 1-based line of the input where
    the account starts, when it came from a file.
    """

    index: int
    account: str | None
    checks: tuple[CheckResult, ...]
    line: int | None = None
    #: The valid payload that was checked (secrets masked in any repr); not reported.
    validated: Account | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """No check failed (warnings allowed)."""
        return all(check.status is not Status.FAIL for check in self.checks)

    def check(self, name: str) -> CheckResult:
        """The result of the check called ``name``."""
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "account": self.account,
            "ok": self.ok,
            "checks": [check.to_dict() for check in self.checks],
            "line": self.line,
        }
