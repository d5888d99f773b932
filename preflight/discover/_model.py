"""The results of a search (candidates, look-ups, the discovery), the ports tried, and
the address being searched for."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from preflight.errors import PreflightError
from preflight.options import Security
from preflight.payload import AccountType
from preflight.providers import ProviderMatch

Protocol = Literal["smtp", "imap"]
#: Where a setting came from: the bundled table, the domain's SRV records, its own
#: autoconfig document, Thunderbird's ISPDB by the domain ("ispdb") or by the domain of
#: its MX host ("ispdb-mx"), or guessing.
Source = Literal["table", "srv", "autoconfig", "ispdb", "ispdb-mx", "guess"]
#: The sources that are clientConfig documents (parsed by the same safe parser).
DOCUMENT_SOURCES: Final[tuple[Source, ...]] = ("autoconfig", "ispdb", "ispdb-mx")
#: Preference of a document's servers: implicit TLS, then STARTTLS, then clear text.
SECURITY_ORDER: Final[Mapping[str, int]] = {"ssl": 0, "starttls": 1, "plain": 2}

#: The ports guessing probes, best first, with the security each is probed with
#: ("starttls" means: clear-text greeting, then STARTTLS looked for in EHLO/CAPABILITY).
SMTP_PORTS: Final[tuple[tuple[int, Security], ...]] = (
    (465, "ssl"),
    (587, "starttls"),
    (25, "starttls"),
)
IMAP_PORTS: Final[tuple[tuple[int, Security], ...]] = ((993, "ssl"), (143, "starttls"))
DEFAULT_PORTS: Final[Mapping[str, tuple[tuple[int, Security], ...]]] = {
    "smtp": SMTP_PORTS,
    "imap": IMAP_PORTS,
}

AUTOCONFIG_PATH = "/mail/config-v1.1.xml"
WELL_KNOWN_PATH = "/.well-known/autoconfig/mail/config-v1.1.xml"
#: Longest line a probe reads from a server, and most lines of one reply.
MAX_LINE = 8192
MAX_LINES = 200
SECURITY_LABEL: Final = {"ssl": "SSL/TLS", "starttls": "STARTTLS", "plain": "no encryption"}
HOST_RE = re.compile(
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?$"
)


@dataclass(frozen=True)
class Candidate:
    """One server setting that a source named (and, when probed, what it did)."""

    protocol: Protocol
    host: str
    port: int
    security: Security
    source: Source
    #: The login name the source gives (autoconfig's ``username``), if any.
    username: str | None = None
    #: None: not contacted; True: it greeted; False: it did not (``detail`` says why).
    answered: bool | None = None
    #: For TLS: whether the certificate verified (None when not known).
    verified: bool | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "protocol": self.protocol,
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "source": self.source,
        }
        if self.username is not None:
            data["username"] = self.username
        data["answered"] = self.answered
        if self.verified is not None:
            data["verified"] = self.verified
        if self.detail:
            data["detail"] = self.detail
        return data

    def label(self) -> str:
        return f"{self.host}:{self.port} with {SECURITY_LABEL[self.security]}"


@dataclass(frozen=True)
class Lookup:
    """One thing discover asked, and what came of it.

    ``result``: ``found``, ``none`` (asked, nothing there), ``nxdomain``, ``timeout``,
    ``servfail``, ``error``, ``does_not_resolve``, ``refused``, ``tls_error``,
    ``http_status``, ``too_large``, ``invalid``, ``skipped``. An ISPDB answer from the
    cache says so in ``detail``.
    """

    step: Literal["mx", "srv", "spf", "autodiscover", "autoconfig", "ispdb", "guess"]
    target: str
    result: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        data = {"step": self.step, "target": self.target, "result": self.result}
        if self.detail:
            data["detail"] = self.detail
        return data


@dataclass(frozen=True)
class Discovery:
    """What :func:`discover` found for one address."""

    email: str
    domain: str
    smtp: Candidate | None
    imap: Candidate | None
    type: AccountType
    user_name: str
    imap_user_name: str | None
    provider: ProviderMatch | None
    mx: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    lookups: tuple[Lookup, ...]
    notes: tuple[str, ...]
    elapsed_ms: float

    @property
    def found(self) -> bool:
        """Both an SMTP and an IMAP server were found."""
        return self.smtp is not None and self.imap is not None

    @property
    def missing(self) -> tuple[str, ...]:
        """The payload's required fields the skeleton leaves for the user."""
        missing = ["from_name", "password"]
        if self.smtp is None:
            missing += ["smtp_host", "smtp_port"]
        if self.imap is None:
            missing += ["imap_host", "imap_port"]
        return tuple(missing)

    def skeleton(self) -> dict[str, Any]:
        """A save-account body without ``from_name`` and ``password`` (never filled in)."""
        body: dict[str, Any] = {"from_email": self.email, "user_name": self.user_name}
        if self.smtp is not None:
            body["smtp_host"] = self.smtp.host
            body["smtp_port"] = self.smtp.port
        if self.imap is not None:
            body["imap_host"] = self.imap.host
            body["imap_port"] = self.imap.port
        if self.imap_user_name is not None:
            body["imap_user_name"] = self.imap_user_name
        body["warmup_enabled"] = False
        body["type"] = self.type.value
        return body

    def to_dict(self) -> dict[str, Any]:
        """``{"payload": skeleton, "discovery": where each setting came from}``."""
        provider = None
        if self.provider is not None:
            entry = self.provider.provider
            provider = {
                "id": entry.id,
                "name": entry.name,
                "matched_by": self.provider.via,
                "evidence": self.provider.evidence,
                "source": entry.source,
                "note": entry.note or None,
            }
        return {
            "payload": self.skeleton(),
            "discovery": {
                "found": self.found,
                "missing": list(self.missing),
                "domain": self.domain,
                "provider": provider,
                "smtp": self.smtp.to_dict() if self.smtp else None,
                "imap": self.imap.to_dict() if self.imap else None,
                "mx": list(self.mx),
                "candidates": [c.to_dict() for c in self.candidates],
                "lookups": [lookup.to_dict() for lookup in self.lookups],
                "notes": list(self.notes),
                "elapsed_ms": round(self.elapsed_ms, 1),
            },
        }


class AutoconfigError(PreflightError, ValueError):
    """An autoconfig document that cannot be used; ``reason`` is a Lookup result.

    A :class:`~preflight.errors.PreflightError`, and a ``ValueError`` as before.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --- the address -----------------------------------------------------------------


def parse_address(email: str) -> tuple[str, str, str]:
    """(normalized address, local part, ASCII domain); ValueError when not an address."""
    from email_validator import EmailNotValidError, validate_email

    if re.search(r"[\x00-\x1f\x7f]", email):
        raise ValueError("the address contains a control character")
    try:
        # Syntax only (the DNS is ours to ask, async); .test names admitted as in payload.
        valid = validate_email(email, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(f"{email!r} is not a valid address: {exc}") from None
    return valid.normalized, valid.local_part, valid.ascii_domain.lower()
