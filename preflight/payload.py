"""The save-account payload: its schema, validation and serialization.

The schema is SmartLead's ``POST /api/v1/email-accounts/save`` body as published
(``shared/reference/smartlead-save-email-account.txt``). :func:`parse_account`
checks one raw mapping and reports *every* problem at once, each with the field it
belongs to, so a user fixes a row in one go rather than one error per run.

No message built here ever contains the value of a secret field (``password``,
``imap_password``, ``token``), of a field the schema does not know (a typo'd
``pasword`` still holds a password), of a field that holds the same value as a
password, or of a host field without a dot (a password in the wrong column, which
must not reach a resolver either). Other values are shown escaped and bounded.

Hostile input is refused field by field, before any library sees it: a lone
surrogate (``"\\ud800"`` in JSON) in any text, a control character (NUL included)
in any single-line field, a key given twice (the reader records it in
:class:`RawObject`).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Final

from preflight._text import shorten, shown
from preflight.secret import Secret

__all__ = [
    "FIELDS",
    "REQUIRED",
    "Account",
    "AccountType",
    "FieldSpec",
    "Kind",
    "Parsed",
    "Problem",
    "RawObject",
    "access_token_of",
    "parse_account",
    "secret_values",
    "tracking_url_parts",
]


class Kind(Enum):
    """What a field holds, which decides how it is checked and read from CSV."""

    TEXT = "text"  # a single-line string (CR/LF refused: it ends up in headers or commands)
    HTML = "html"  # free text: the signature may span lines
    SECRET_TEXT = "secret_text"
    EMAIL = "email"
    HOST = "host"
    PORT = "port"
    BOOL = "bool"
    COUNT = "count"  # a whole number >= 0
    NUMBER = "number"  # any number >= 0
    PERCENT = "percent"  # a number 0-100
    TYPE = "type"
    TOKEN = "token"  # an OAuth token object, secret
    URL = "url"  # custom_tracking_url: a host name, optionally after http:// or https://


@dataclass(frozen=True)
class FieldSpec:
    """One documented field of the save body."""

    name: str
    kind: Kind
    required: bool = False
    doc: str = ""

    @property
    def secret(self) -> bool:
        return self.kind in (Kind.SECRET_TEXT, Kind.TOKEN)


_SPECS: Final = (
    FieldSpec("id", Kind.COUNT, doc="email account id, only for updates"),
    FieldSpec("from_name", Kind.TEXT, True, "display name for outgoing mail"),
    FieldSpec("from_email", Kind.EMAIL, True, "the sending address"),
    FieldSpec("user_name", Kind.TEXT, True, "SMTP user name, usually the address"),
    FieldSpec("password", Kind.SECRET_TEXT, True, "SMTP password or app password"),
    FieldSpec("smtp_host", Kind.HOST, True, "SMTP server host name"),
    FieldSpec("smtp_port", Kind.PORT, True, "SMTP port: 587 STARTTLS, 465 SSL, 25 plain"),
    FieldSpec("imap_host", Kind.HOST, True, "IMAP server host name"),
    FieldSpec("imap_port", Kind.PORT, True, "IMAP port: 993 SSL, 143 STARTTLS"),
    FieldSpec("warmup_enabled", Kind.BOOL, True, "whether to warm the account up"),
    FieldSpec("type", Kind.TYPE, doc="GMAIL, OUTLOOK or SMTP"),
    FieldSpec("token", Kind.TOKEN, doc="OAuth token object (Gmail/Outlook OAuth)"),
    FieldSpec("different_reply_to_address", Kind.EMAIL, doc="reply-to, if not from_email"),
    FieldSpec("imap_user_name", Kind.TEXT, doc="IMAP user name, if not user_name"),
    FieldSpec("imap_password", Kind.SECRET_TEXT, doc="IMAP password, if not password"),
    FieldSpec("max_email_per_day", Kind.COUNT, doc="daily cap, warmup included"),
    FieldSpec("custom_tracking_url", Kind.URL, doc="custom domain for tracking links"),
    FieldSpec("bcc", Kind.EMAIL, doc="BCC address for all outgoing mail"),
    FieldSpec("time_to_wait_in_mins", Kind.NUMBER, doc="minimum minutes between emails"),
    FieldSpec("signature", Kind.HTML, doc="signature HTML"),
    FieldSpec("total_warmup_per_day", Kind.COUNT, doc="warmup emails per day"),
    FieldSpec("daily_rampup", Kind.COUNT, doc="daily increase of warmup emails"),
    FieldSpec("reply_rate_percentage", Kind.PERCENT, doc="target warmup reply rate"),
    FieldSpec("client_id", Kind.COUNT, doc="client id for multi-tenant accounts"),
    FieldSpec("is_suspended", Kind.BOOL, doc="suspend the account on creation"),
)

#: Every documented field, in the order the API documents them (``id`` first).
FIELDS: Final[Mapping[str, FieldSpec]] = {spec.name: spec for spec in _SPECS}
REQUIRED: Final = tuple(spec.name for spec in _SPECS if spec.required)
SECRET_FIELDS: Final = frozenset(spec.name for spec in _SPECS if spec.secret)
_PLAIN_FIELDS: Final = tuple(spec.name for spec in _SPECS if not spec.secret)

# The save page's advice: "start with 10-20 emails and use daily_rampup of 2-5".
# Values within a factor of two of that range pass quietly; further out is a warning,
# never an error: the API accepts them and the user may mean it.
WARMUP_PER_DAY_ADVICE: Final = (10, 20)
RAMPUP_ADVICE: Final = (2, 5)
#: What SmartLead's warmup endpoint (POST /email-accounts/{id}/warmup) takes. The save
#: endpoint stores other values (its own example has a rampup of 2), but a later
#: warmup change with them is refused: a warning, citing the range.
WARMUP_RANGES: Final[Mapping[str, tuple[int, int]]] = {
    "total_warmup_per_day": (1, 50),
    "daily_rampup": (5, 20),
    "reply_rate_percentage": (20, 100),
}


class AccountType(StrEnum):
    """The documented values of ``type``."""

    GMAIL = "GMAIL"
    OUTLOOK = "OUTLOOK"
    SMTP = "SMTP"


class RawObject(dict[str, Any]):
    """A JSON object as read, remembering the keys it gave more than once.

    ``json`` keeps the last of duplicated keys silently (a second ``password``
    wins); the reader records them here so the payload check can refuse them.
    """

    duplicates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or doubtful) with a payload, tied to its field."""

    field: str | None
    message: str

    def to_dict(self) -> dict[str, str | None]:
        return {"field": self.field, "message": self.message}


@dataclass(frozen=True, kw_only=True)
class Account:
    """A valid save-account payload. Secrets are :class:`Secret` and never print."""

    from_name: str
    from_email: str
    user_name: str
    password: Secret[str]
    smtp_host: str
    smtp_port: int
    imap_host: str
    imap_port: int
    warmup_enabled: bool
    id: int | None = None
    type: AccountType | None = None
    token: Secret[dict[str, Any]] | None = None
    different_reply_to_address: str | None = None
    imap_user_name: str | None = None
    imap_password: Secret[str] | None = None
    max_email_per_day: int | None = None
    custom_tracking_url: str | None = None
    bcc: str | None = None
    time_to_wait_in_mins: int | float | None = None
    signature: str | None = None
    total_warmup_per_day: int | None = None
    daily_rampup: int | None = None
    reply_rate_percentage: int | float | None = None
    client_id: int | None = None
    is_suspended: bool | None = None
    #: The ASCII (IDNA) form of ``from_email``'s domain, for DNS look-ups.
    email_domain: str = field(default="", compare=False, repr=False)

    @property
    def access_token(self) -> str | None:
        """The OAuth access token XOAUTH2 logs in with, when the account has a usable one
        (see :func:`access_token_of`)."""
        return access_token_of(self.token)

    @property
    def imap_login(self) -> str:
        """The user name IMAP logs in with."""
        return self.imap_user_name if self.imap_user_name is not None else self.user_name

    @property
    def imap_secret(self) -> Secret[str]:
        """The password IMAP logs in with."""
        return self.imap_password if self.imap_password is not None else self.password

    def to_payload(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """The body the save endpoint expects, fields in documented order.

        Secrets are masked unless ``reveal_secrets`` is true, which only the code
        that POSTs the body may ask for. Absent optional fields are left out.
        """
        body: dict[str, Any] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, Secret):
                value = value.reveal() if reveal_secrets else str(value)
            elif isinstance(value, AccountType):
                value = value.value
            body[name] = value
        return body


def access_token_of(token: object) -> str | None:
    """The one rule for a usable OAuth token: an object whose ``access_token`` is
    non-empty text. The payload check, both probes and the roundtrip ask it here."""
    if isinstance(token, Secret):
        token = token.reveal()
    if not isinstance(token, dict):
        return None
    value = token.get("access_token")
    return value if isinstance(value, str) and value else None


@dataclass
class Parsed:
    """The outcome of checking one raw payload."""

    account: Account | None
    errors: list[Problem]
    warnings: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.errors


# --- checks of single values -------------------------------------------------------
#
# Each returns (value, error message). The message names the field and, for fields
# that are not secret, the offending value, so it reads on its own in any output.

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # HTML may span lines
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


_SURROGATE = re.compile("[\ud800-\udfff]")
_DIGITS = re.compile(r"^[+-]?\d{100,}$")


def _show(value: object) -> str:
    """A short, printable rendering of a (non-secret) value for a message.

    Text is quoted and shown inert (:mod:`preflight._text`); a huge number is
    described, not written out (and int() of more than 4,300 digits would raise).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        # 14,000 bits is about 4,200 digits: str() still writes it out.
        if value.bit_length() <= 14_000:
            return f"a number of {len(str(abs(value)))} digits"
        return "a number of over 4,000 digits"
    if isinstance(value, str):  # quoted, shown as every outside text is
        return f"'{shown(value, 58)}'"
    return shorten(repr(value), 60)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _surrogate_message(name: str) -> str:
    return (
        f"{name} contains a lone surrogate (half of a UTF-16 pair, e.g. a \\ud800 escape), "
        "which is not text any server can take; the value is not shown"
    )


def _check_text(name: str, value: object, *, multiline: bool = False) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"{name} must be text, not {_json_type(value)}"
    if FIELDS[name].required and not value.strip():
        return None, f"{name} is empty"
    bad = (_CONTROL_BUT_LINES if multiline else _CONTROL).search(value)
    if bad:
        return None, (
            f"{name} contains a control character ({bad.group()!r}); line breaks in a "
            "header or command are how injection starts"
        )
    return value, None


def _check_secret(name: str, value: object) -> tuple[Any, str | None]:
    # Never echo the value, not even a part of it.
    if not isinstance(value, str):
        return None, f"{name} must be text, not {_json_type(value)}"
    if _CONTROL.search(value):
        return None, f"{name} contains a line break or control character, which no server accepts"
    if value != value.strip():
        return None, (
            f"{name} starts or ends with spaces; remove them (Google shows app passwords "
            "with spaces, but they are not part of the password)"
        )
    return Secret(value), None


def _check_host(name: str, value: object) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"{name} must be a host name (text), not {_json_type(value)}"
    if not value:
        return None, f"{name} is empty"
    if _CONTROL.search(value):
        return None, (
            f"{name} contains a line break or control character: not a host name, and "
            "the start of a command injection"
        )
    if _SURROGATE.search(value):
        return None, _surrogate_message(name)
    literal = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        ipaddress.ip_address(literal)
    except ValueError:
        pass
    else:
        return literal, None
    if "." not in value.removesuffix("."):
        # "localhost", "mail" or a password typed in the wrong column: a server the
        # world can reach has a dotted name. Never echoed, never sent to a resolver.
        return None, (
            f"{name} is not a fully qualified host name (it has no dot, e.g. "
            "smtp.example.com); the value is not shown, as it may be a password in the "
            "wrong column"
        )
    if value != value.strip():
        return None, f"{name} {_show(value)} has spaces around it"
    if any(ch.isspace() for ch in value):
        return None, f"{name} {_show(value)} contains spaces"
    if _SCHEME.match(value):
        host = value.split("://", 1)[1].split("/", 1)[0]
        return None, f"{name} {_show(value)} is a URL; give only the host name, e.g. {_show(host)}"
    if "/" in value:
        return None, (
            f"{name} {_show(value)} contains a path; give only the host name, "
            f"e.g. {_show(value.split('/', 1)[0])}"
        )
    if "@" in value:
        return None, f"{name} {_show(value)} is an address; give the server's host name"
    if value.count(":") == 1:
        host, port = value.split(":")
        port_field = name.replace("host", "port")
        if re.fullmatch("[0-9]{1,5}", port):
            return None, (
                f"{name} {_show(value)} includes a port; put {port} in {port_field} "
                f"and {_show(host)} here"
            )
    ascii_host = value
    if not value.isascii():
        try:
            import idna  # comes with email-validator

            ascii_host = idna.encode(value, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return None, f"{name} {_show(value)} is not a valid host name"
    labels = ascii_host[:-1].split(".") if ascii_host.endswith(".") else ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in labels):
        return None, f"{name} {_show(value)} is not a valid host name"
    if labels[-1].isdigit():
        return None, f"{name} {_show(value)} is neither a valid host name nor an IP address"
    return value, None


_TRACKING_EXAMPLE: Final = "'https://track.example.com'"
_BROKEN_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


def _check_tracking_url(name: str, value: object) -> tuple[Any, str | None]:
    """custom_tracking_url: a host name, optionally after ``http://`` or ``https://``
    (and a bare ``/``), and nothing else: no user or password, no port, no path, query
    or fragment, no space or control character. An empty value is "none"."""
    if not isinstance(value, str):
        return None, f"{name} must be text (a host name), not {_json_type(value)}"
    if value == "":
        return value, None
    if "@" in value:
        # user:password@host: never echoed.
        return None, (
            f"{name} contains '@' (a user name or password before the host, or an address); "
            f"give only the host, e.g. {_TRACKING_EXAMPLE} (the value is not shown)"
        )
    if _CONTROL.search(value):
        return None, f"{name} contains a line break or control character: not a host name"
    if any(ch.isspace() for ch in value):
        return None, f"{name} {_show(value)} contains spaces"
    _, error = _split_tracking_url(name, value)
    return (value, None) if error is None else (None, error)


def _split_tracking_url(name: str, value: str) -> tuple[tuple[str | None, str], str | None]:
    """((scheme or None, ASCII host), None) for a valid custom_tracking_url, else
    (..., the message)."""
    scheme: str | None = None
    rest = value
    if "://" in value:
        given, rest = value.split("://", 1)
        if given.lower() not in ("http", "https"):
            return (None, ""), (
                f"{name} {_show(value)} has the scheme {_show(given)}; tracked links are "
                f"http:// or https:// (best https), e.g. {_TRACKING_EXAMPLE}"
            )
        scheme = given.lower()
    elif _BROKEN_SCHEME.match(value):
        return (None, ""), (
            f"{name} {_show(value)} has a malformed scheme (it needs '://'); "
            f"e.g. {_TRACKING_EXAMPLE}"
        )
    elif value.startswith("//"):
        return (
            None,
            "",
        ), f"{name} {_show(value)} has no scheme before //; e.g. {_TRACKING_EXAMPLE}"
    if "\\" in rest or "%" in rest:
        return (None, ""), (
            f"{name} {_show(value)} contains a backslash or a %-escape: not a host name "
            f"(browsers read them as a path or another host); e.g. {_TRACKING_EXAMPLE}"
        )
    host = rest[:-1] if rest.endswith("/") and rest.count("/") == 1 else rest
    cut = min((host.find(c) for c in "/?#" if c in host), default=-1)
    if cut >= 0:
        return (None, ""), (
            f"{name} {_show(value)} has a path, query or fragment; SmartLead builds the "
            f"links' paths itself: give only the host, e.g. {_show(_with(scheme, host[:cut]))}"
        )
    if not host:
        return (None, ""), f"{name} {_show(value)} has no host; e.g. {_TRACKING_EXAMPLE}"
    if host.startswith("[") or _IPV6ISH.fullmatch(host):
        return (None, ""), _ip_message(name, value)
    if "." not in host.removesuffix("."):
        return (None, ""), (
            f"{name} is not a fully qualified host name (it has no dot, e.g. "
            "track.example.com); the value is not shown, as it may be a password in the "
            "wrong column"
        )
    if ":" in host:
        return (None, ""), (
            f"{name} {_show(value)} includes a port; tracked links use "
            f"the scheme's own port: give only the host, e.g. "
            f"{_show(_with(scheme, host.split(':', 1)[0]))}"
        )
    checked, error = _check_host(name, host)
    if error is not None:
        return (None, ""), error.replace(f"{name} {_show(host)}", f"{name} {_show(value)}")
    try:
        ipaddress.ip_address(checked)
    except ValueError:
        pass
    else:
        return (None, ""), _ip_message(name, value)
    ascii_host = host
    if not host.isascii():
        import idna

        ascii_host = idna.encode(host, uts46=True).decode("ascii")
    return (scheme, ascii_host.lower().rstrip(".")), None


_IPV6ISH: Final = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")


def _ip_message(name: str, value: str) -> str:
    return (
        f"{name} {_show(value)} is an IP address; a tracking domain is a host name (it "
        f"needs a CNAME and a certificate), e.g. {_TRACKING_EXAMPLE}"
    )


def _with(scheme: str | None, host: str) -> str:
    return f"{scheme}://{host}" if scheme else host


def tracking_url_parts(value: str) -> tuple[str | None, str]:
    """(``"http"``, ``"https"`` or None, the ASCII host in lower case) of a valid
    ``custom_tracking_url``; ``ValueError`` when it is not one."""
    parts, error = _split_tracking_url("custom_tracking_url", value)
    if error is not None or _check_tracking_url("custom_tracking_url", value)[1] is not None:
        raise ValueError(error or "not a valid custom_tracking_url")
    return parts


def _number(name: str, value: object) -> tuple[int | float | None, str | None]:
    # bool is an int in Python, but `true` is not a number in JSON.
    if isinstance(value, str) and _DIGITS.match(value.strip()):
        # CSV digits that int() refuses to read (over 4,300 of them).
        return None, f"{name} must be a number, not one of {len(value.strip())} digits"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{name} must be a number, not {_json_type(value)}" + (
            f" ({_show(value)})" if isinstance(value, str) else ""
        )
    if isinstance(value, float) and not math.isfinite(value):
        return None, f"{name} must be a finite number"
    return value, None


def _whole(name: str, value: object) -> tuple[int | None, str | None]:
    number, error = _number(name, value)
    if error or number is None:
        return None, error
    if isinstance(number, float):
        if not number.is_integer():
            return None, f"{name} must be a whole number, got {_show(number)}"
        number = int(number)
    return number, None


def _check_port(name: str, value: object) -> tuple[Any, str | None]:
    port, error = _whole(name, value)
    if error or port is None:
        return None, error
    if not 1 <= port <= 65535:
        return None, f"{name} must be between 1 and 65535, got {_show(port)}"
    return port, None


def _check_count(name: str, value: object) -> tuple[Any, str | None]:
    count, error = _whole(name, value)
    if error or count is None:
        return None, error
    if count < 0:
        return None, f"{name} must not be negative, got {_show(count)}"
    return count, None


def _check_number(name: str, value: object) -> tuple[Any, str | None]:
    number, error = _number(name, value)
    if error or number is None:
        return None, error
    if number < 0:
        return None, f"{name} must not be negative, got {_show(number)}"
    return number, None


def _check_percent(name: str, value: object) -> tuple[Any, str | None]:
    number, error = _number(name, value)
    if error or number is None:
        return None, error
    if not 0 <= number <= 100:
        return None, f"{name} must be between 0 and 100, got {_show(number)}"
    return number, None


def _check_bool(name: str, value: object) -> tuple[Any, str | None]:
    if not isinstance(value, bool):
        return None, f"{name} must be true or false, not {_json_type(value)}" + (
            f" ({_show(value)})" if isinstance(value, str | int) else ""
        )
    return value, None


def _check_type(name: str, value: object) -> tuple[Any, str | None]:
    allowed = ", ".join(t.value for t in AccountType)
    if not isinstance(value, str):
        return None, f"{name} must be one of {allowed}, not {_json_type(value)}"
    try:
        return AccountType(value), None
    except ValueError:
        pass
    if value.upper() in AccountType.__members__:
        return None, f"{name} {_show(value)} must be upper case: {value.upper()!r}"
    return None, f"{name} {_show(value)} is not one of {allowed}"


def _check_token(name: str, value: object) -> tuple[Any, str | None]:
    if not isinstance(value, dict):
        return None, f"{name} must be an object (the OAuth token), not {_json_type(value)}"
    # Walked without recursion: a token nested as deep as JSON allows is no stack risk.
    stack: list[object] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str) and _SURROGATE.search(node):
            return None, _surrogate_message(name)
        if isinstance(node, RawObject) and node.duplicates:
            return None, f"{name} gives the same key more than once; the values are not shown"
        if isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return Secret(value), None


@dataclass(frozen=True)
class _PlainAddress:
    """What the payload takes from email-validator's answer, for a plain address."""

    normalized: str
    ascii_domain: str


#: An address email-validator accepts as it is, but for the case of its domain: a
#: dot-atom of letters and digits with single ``.``/``_``/``+``/``-`` between them,
#: at a name of LDH labels (no ``--``) under an all-letter top-level domain.
_PLAIN_ADDRESS: Final = re.compile(
    r"(?P<local>[A-Za-z0-9]+(?:[._+-][A-Za-z0-9]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\.)+[A-Za-z]{2,63})",
)
#: email-validator's special-use names (a domain at or under one is left to it) and
#: the RFC 2142 mailbox names it lowercases; tests/unit/test_plain_address.py keeps
#: both lists equal to the library's.
SPECIAL_USE_DOMAINS: Final = (
    "arpa",
    "invalid",
    "local",
    "localhost",
    "onion",
    "test",
)
CASE_INSENSITIVE_MAILBOXES: Final = frozenset(
    {
        "info",
        "marketing",
        "sales",
        "support",
        "abuse",
        "noc",
        "security",
        "postmaster",
        "hostmaster",
        "usenet",
        "news",
        "webmaster",
        "www",
        "uucp",
        "ftp",
    }
)


def plain_address(value: str) -> _PlainAddress | None:
    """email-validator's answer for an everyday address, without importing it (its
    regular expressions take ~30 ms to compile: a cold start's largest single cost);
    None for anything else, which the library then judges."""
    match = _PLAIN_ADDRESS.fullmatch(value)
    if match is None or len(value) > 254:
        return None
    local, domain = match["local"], match["domain"].lower()
    if len(local) > 64 or len(domain) > 253 or local.lower() in CASE_INSENSITIVE_MAILBOXES:
        return None
    if any(len(label) > 63 for label in domain.split(".")):
        return None
    # The check passes test_environment=True to the library, which admits `.test`.
    if any(domain == d or domain.endswith("." + d) for d in SPECIAL_USE_DOMAINS if d != "test"):
        return None
    return _PlainAddress(f"{local}@{domain}", domain)


def _check_email(name: str, value: object) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"{name} must be an email address (text), not {_json_type(value)}"
    if _CONTROL.search(value):
        return None, f"{name} contains a line break or control character"
    plain = plain_address(value)
    if plain is not None:
        return plain, None
    from email_validator import EmailNotValidError, validate_email

    try:
        # Syntax only: deliverability is the mx check's job, done async with a deadline.
        # test_environment admits the `.test` names of RFC 6761, which the local test
        # servers use; in real use such a domain fails the mx check (NXDOMAIN).
        valid = validate_email(value, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        # The library's reason may quote parts of the value: bounded like the value.
        return None, f"{name} {_show(value)} is not a valid address: {shown(str(exc), 160)}"
    return valid, None


_CHECKS: Final = {
    Kind.TEXT: _check_text,
    Kind.HTML: lambda name, value: _check_text(name, value, multiline=True),
    Kind.SECRET_TEXT: _check_secret,
    Kind.EMAIL: _check_email,
    Kind.HOST: _check_host,
    Kind.PORT: _check_port,
    Kind.BOOL: _check_bool,
    Kind.COUNT: _check_count,
    Kind.NUMBER: _check_number,
    Kind.PERCENT: _check_percent,
    Kind.TYPE: _check_type,
    Kind.TOKEN: _check_token,
    Kind.URL: _check_tracking_url,
}


def suggest_field(name: str) -> str | None:
    """The documented field a typo most likely meant, if any is close."""
    if len(name) > 64:  # no field is that long; difflib on a megabyte key takes seconds
        return None
    import difflib  # only for a misspelt field name: not on every account's path

    close = difflib.get_close_matches(name.lower(), FIELDS, n=1, cutoff=0.6)
    return close[0] if close else None


# --- the whole payload -------------------------------------------------------------


def parse_account(raw: object) -> Parsed:
    """Check one raw payload against the documented schema.

    Every problem is collected; none stops the others. ``account`` is set only when
    there are no errors. Warnings never make a payload invalid.
    """
    errors: list[Problem] = []
    warnings: list[Problem] = []
    if not isinstance(raw, Mapping):
        errors.append(Problem(None, f"an account must be a JSON object, not {_json_type(raw)}"))
        return Parsed(None, errors, warnings)

    values: dict[str, Any] = {}
    email_domain = ""
    for key in getattr(raw, "duplicates", ()):
        # json keeps the last one silently; which value the user meant is unknown.
        errors.append(
            Problem(
                _field_name(key),
                f"{_show(key)} is given more than once in the object; give it once "
                "(the values are not shown)",
            )
        )
    for key in raw:
        if not isinstance(key, str) or key not in FIELDS:
            # The value is never shown: a typo'd "pasword" still holds a password.
            guess = suggest_field(key) if isinstance(key, str) else None
            errors.append(
                Problem(
                    _field_name(key),
                    f"{_show(key)} is not a field of the save-account API"
                    + (f"; did you mean {guess!r}?" if guess else ""),
                )
            )
    swapped = _swapped_hosts(raw)
    hidden = _holding_secrets(raw, swapped)
    for name, spec in FIELDS.items():
        value = raw.get(name)
        if value is None:
            if spec.required:
                errors.append(Problem(name, f"{name} is required ({spec.doc})"))
            continue
        if name in hidden:
            errors.append(Problem(name, hidden[name]))
            continue
        if isinstance(value, str) and _SURROGATE.search(value):
            # Before any check: email-validator, idna and sockets raise on these.
            errors.append(Problem(name, _surrogate_message(name)))
            continue
        checked, error = _CHECKS[spec.kind](name, value)
        if error:
            if name in swapped:
                error = (
                    f"{name} is not a host name but password is one: the password and "
                    f"{name} columns look swapped (neither value is shown)"
                )
            errors.append(Problem(name, error))
            continue
        if spec.kind is Kind.EMAIL:
            if name == "from_email":
                email_domain = checked.ascii_domain
            checked = checked.normalized
        values[name] = checked

    _check_relations(raw, values, errors, warnings)
    if errors:
        return Parsed(None, errors, warnings)
    return Parsed(Account(**values, email_domain=email_domain), errors, warnings)


def _field_name(key: object) -> str:
    """A key the API does not know, as ``Problem.field``: printable and bounded."""
    return shown(key, 64) if isinstance(key, str) else _show(key)


def secret_values(raw: Mapping[Any, Any]) -> set[str]:
    """The non-empty ``password`` and ``imap_password`` of a raw payload, and a host
    field's value when it looks swapped with the password (it is the password)."""
    found = (raw.get(name) for name in ("password", "imap_password", *_swapped_hosts(raw)))
    return {value for value in found if isinstance(value, str) and value}


def _as_text(value: object) -> str | None:
    """A raw value as the text a CSV cell held (so ``587`` matches a password "587")."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value.bit_length() <= 64:
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return None


def _holding_secrets(raw: Mapping[Any, Any], swapped: set[str]) -> dict[str, str]:
    """Fields other than the secrets whose value is a password, with their message.

    A password typed in the wrong field would otherwise be printed in a message and,
    in a host field, sent to DNS. from_email equal to user_name is normal; only
    equality with a secret counts, and empty values never match. A host column
    swapped with the password column holds the password: it counts as one.
    """
    secrets: dict[str, str] = {}
    for name in ("password", "imap_password", *swapped):
        value = raw.get(name)
        if isinstance(value, str) and value:
            which = name if name in SECRET_FIELDS else f"{name} (which looks like the password)"
            secrets.setdefault(value, which)
    if not secrets:
        return {}
    found: dict[str, str] = {}
    for name in _PLAIN_FIELDS:
        if name in swapped or name not in raw:
            continue
        text = _as_text(raw[name])
        if text is not None and text in secrets:
            found[name] = (
                f"{name} holds the same value as {secrets[text]}: a password in the wrong "
                "field? (the value is not shown)"
            )
    return found


def _swapped_hosts(raw: Mapping[Any, Any]) -> set[str]:
    """Host fields that are not host names while ``password`` is one (swapped columns)."""
    password = raw.get("password")
    if (
        not isinstance(password, str)
        or not ("." in password or ":" in password)  # the usual case, quickly
        or _check_host("password", password)[1] is not None
    ):
        return set()
    return {
        name
        for name in ("smtp_host", "imap_host")
        if raw.get(name) is not None and _check_host(name, raw[name])[1] is not None
    }


def _check_relations(
    raw: Mapping[str, Any],
    values: dict[str, Any],
    errors: list[Problem],
    warnings: list[Problem],
) -> None:
    """Checks that involve more than one field."""
    password = values.get("password")
    if isinstance(password, Secret) and not password.reveal():
        token = values.get("token")
        if token is None and "token" not in raw:
            errors.append(
                Problem(
                    "password",
                    "password is empty; give the password (or app password), or a token "
                    "for an OAuth account",
                )
            )
        elif isinstance(token, Secret) and access_token_of(token) is None:
            errors.append(
                Problem(
                    "token",
                    "token must carry an access_token (non-empty text) when password is empty",
                )
            )

    per_day = values.get("total_warmup_per_day")
    cap = values.get("max_email_per_day")
    if per_day is not None and cap is not None and per_day > cap:
        errors.append(
            Problem(
                "total_warmup_per_day",
                f"total_warmup_per_day ({_show(per_day)}) is above max_email_per_day "
                f"({_show(cap)}), which includes warmup emails",
            )
        )

    rampup = values.get("daily_rampup")
    warmup = values.get("warmup_enabled")
    if warmup is False:
        given = [n for n in ("total_warmup_per_day", "daily_rampup") if values.get(n) is not None]
        if given:
            warnings.append(
                Problem(
                    given[0],
                    f"{' and '.join(given)} will be ignored: warmup_enabled is false",
                )
            )
    outside = _outside_warmup_ranges(values, warnings)
    if warmup is True:
        low, high = WARMUP_PER_DAY_ADVICE
        if (
            per_day is not None
            and "total_warmup_per_day" not in outside
            and not low / 2 <= per_day <= high * 2
        ):
            warnings.append(
                Problem(
                    "total_warmup_per_day",
                    f"total_warmup_per_day {_show(per_day)} is far from the advised start of "
                    f"{low}-{high} a day",
                )
            )
        low, high = RAMPUP_ADVICE
        if rampup is not None and "daily_rampup" not in outside and rampup > high * 2:
            warnings.append(
                Problem(
                    "daily_rampup",
                    f"daily_rampup {_show(rampup)} is far above the advised {low}-{high} a day",
                )
            )

    reply_to = values.get("different_reply_to_address")
    if reply_to is not None and reply_to == values.get("from_email"):
        warnings.append(
            Problem(
                "different_reply_to_address",
                "different_reply_to_address is the same as from_email",
            )
        )


def _outside_warmup_ranges(values: Mapping[str, Any], warnings: list[Problem]) -> set[str]:
    """A warning for each warmup number outside what SmartLead's warmup endpoint takes
    (:data:`WARMUP_RANGES`); the fields warned about."""
    outside: set[str] = set()
    for name, (low, high) in WARMUP_RANGES.items():
        value = values.get(name)
        if value is None or low <= value <= high:
            continue
        outside.add(name)
        warnings.append(
            Problem(
                name,
                f"{name} {_show(value)} is outside {low}-{high}, the range SmartLead's warmup "
                f"endpoint (POST /email-accounts/{{id}}/warmup) takes: the account is saved, "
                f"but a later warmup change with this value is refused",
            )
        )
    return outside
