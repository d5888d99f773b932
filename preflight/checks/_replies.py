"""What a server's refusal of a login means, and what the user should do.

Providers word the same refusal many ways, add request ids, split it over several
``NNN-`` lines and reuse one enhanced status code for several causes (Microsoft's
5.7.139 alone covers at least five). So replies are classified on their meaning:
rules look for the phrases and codes that carry it, most specific first. Sources:
``shared/reference/provider-replies.md``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from preflight._net import SHORT_LIMIT, reportable, scrub
from preflight.providers import family_of
from preflight.report import Code

__all__ = [
    "SERVER_UNAVAILABLE_HINT",
    "Verdict",
    "classify_login_refusal",
    "decode_xoauth2_challenge",
    "provider_of",
]


@dataclass(frozen=True)
class Verdict:
    code: Code
    message: str
    hint: str


def provider_of(host: str) -> str | None:
    """Which provider family (google, microsoft, yahoo, zoho, ...) a server host name
    belongs to, if any: a look-up in the one table, :mod:`preflight.providers`."""
    return family_of(host)


_GOOGLE_APP_PW = (
    "Gmail wants an app password for this account: with 2-Step Verification on, create one "
    "at https://myaccount.google.com/apppasswords and use it instead of the account password."
)
_YAHOO_APP_PW = (
    "Yahoo/AOL wants an app password: generate one in the account's security settings and "
    "use it instead of the normal password."
)


_THROTTLED = (
    "The server is throttling logins: wait a while, then retry once. Repeated attempts "
    "prolong the block."
)
SERVER_UNAVAILABLE_HINT: Final = (
    "The server could not check the login just now (a temporary failure on its side, such "
    "as its password service being down): nothing says the account is wrong; retry later, "
    "and tell the mail provider if it lasts."
)


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    code: Code
    hint: str
    provider: str | None = None  # the rule applies only to this provider's hosts


def _rule(pattern: str, code: Code, hint: str, provider: str | None = None) -> _Rule:
    return _Rule(re.compile(pattern, re.IGNORECASE | re.DOTALL), code, hint, provider)


_RULES: Final = (
    _rule(
        r"5\.7\.9\b|application-specific password|InvalidSecondFactor|\bapp password",
        Code.AUTH_APP_PASSWORD_REQUIRED,
        _GOOGLE_APP_PW,
    ),
    _rule(r"#AUTH005", Code.AUTH_APP_PASSWORD_REQUIRED, _YAHOO_APP_PW),
    _rule(
        r"5\.7\.14\b|log ?in via your web browser|WebLoginRequired|web login required",
        Code.AUTH_WEB_LOGIN_REQUIRED,
        "Google blocked the sign-in as suspicious: sign in on the web, approve the activity, "
        "then retry with an app password or OAuth.",
    ),
    _rule(
        r"SmtpClientAuthentication is disabled|smtp_auth_disabled",
        Code.AUTH_BASIC_DISABLED,
        "SMTP AUTH is turned off for this Microsoft 365 tenant or mailbox: an admin must enable "
        "Authenticated SMTP for the mailbox, or connect with OAuth (type OUTLOOK).",
    ),
    _rule(
        r"5\.7\.30\b|basic authentication is (not supported|disabled)|security defaults",
        Code.AUTH_BASIC_DISABLED,
        "Password (basic) authentication is turned off for this account: connect with OAuth "
        "(type OUTLOOK), or have an admin allow it.",
    ),
    _rule(
        r"5\.7\.139\b.*credentials were incorrect",
        Code.AUTH_FAILED,
        "Microsoft rejected the password: re-type it; if MFA is on, use an app password.",
    ),
    _rule(
        r"5\.7\.139\b",
        Code.AUTH_BASIC_DISABLED,
        "Microsoft refused password sign-in for this account (MFA, a conditional access policy, "
        "or SMTP AUTH turned off): check with the tenant's admin, or connect with OAuth.",
    ),
    _rule(
        r"too many (login|authentication|auth) attempts|rate.?limit|\[LIMIT\]"
        r"|thread limit exceeded|too many (concurrent |simultaneous )?(connections|sessions)",
        Code.AUTH_THROTTLED,
        _THROTTLED,
    ),
    _rule(
        r"unable to authenticate at present|temporary (problem|failure|error)"
        r"|temporary authentication failure|\[UNAVAILABLE\]"
        r"|(service|backend) (is )?(temporarily )?unavailable",
        Code.SERVER_UNAVAILABLE,
        SERVER_UNAVAILABLE_HINT,
    ),
    _rule(r"try again later|temporarily", Code.AUTH_THROTTLED, _THROTTLED),
    # Courier-IMAP answers LOGIN with this * BYE alone when the password was right but
    # the user's Maildir is missing (imapd runs only after authentication).
    _rule(
        r"\[ALERT\] Fatal error: No such file or directory",
        Code.PROTOCOL_ERROR,
        "The login works, but the mailbox does not exist on the server: the mail "
        "administrator must create it, or enable IMAP access for it; see details.reply.",
    ),
    _rule(
        r"must issue a STARTTLS|encryption required|\[PRIVACYREQUIRED\]|LOGINDISABLED"
        r"|XTLSREQUIRED",
        Code.AUTH_PLAINTEXT_REFUSED,
        "The server accepts credentials only over TLS: use 587 with STARTTLS or 465 with SSL "
        "(IMAP: 993, or 143 with STARTTLS).",
    ),
    _rule(
        r"5\.7\.3\b",
        Code.AUTH_FAILED,
        "Microsoft could not authenticate: the password may be wrong, MFA may need an app "
        "password, or SMTP AUTH may be off for the mailbox. Check all three.",
        "microsoft",
    ),
    _rule(
        r".",
        Code.AUTH_FAILED,
        "Zoho refused the login: enable IMAP/SMTP access in Zoho Mail settings; organisation "
        "accounts use smtppro/imappro on the regional domain (.eu, .in, ...); with 2FA on, use "
        "an app-specific password.",
        "zoho",
    ),
    _rule(
        r".",
        Code.AUTH_FAILED,
        "Microsoft rejected the login: re-type the password, and check that basic "
        "authentication is allowed for the mailbox.",
        "microsoft",
    ),
    _rule(
        r".",
        Code.AUTH_FAILED,
        "Google rejected the login: re-type the app password (Google shows it with spaces: "
        "remove them) and use the full address as user name.",
        "google",
    ),
)

_GENERIC = (
    "The server rejected the user name or password: re-type them, and check whether the "
    "provider wants an app password."
)


def classify_login_refusal(
    reply: str, host: str, *, status: int | None = None, secrets: Iterable[str] = ()
) -> Verdict:
    """The code and hint for a refused login (SMTP reply or IMAP response text).

    ``secrets`` are masked in the whole reply before anything else is done with it
    (a server may echo the credentials; a secret cut or re-spaced first would escape
    the mask).
    """
    provider = provider_of(host)
    text = " ".join(scrub(reply, secrets).split())
    message = f"the server refused the login: {reportable(text, limit=SHORT_LIMIT)}"
    for rule in _RULES:
        if rule.provider is not None and rule.provider != provider:
            continue
        if rule.pattern.search(text):
            return Verdict(rule.code, message, rule.hint)
    if status is not None and 400 <= status < 500:
        return Verdict(Code.SERVER_UNAVAILABLE, message, SERVER_UNAVAILABLE_HINT)
    return Verdict(Code.AUTH_FAILED, message, _GENERIC)


def decode_xoauth2_challenge(payload: str) -> str | None:
    """The JSON error inside a server's XOAUTH2 ``334``/``+`` challenge, if any."""
    try:
        raw = base64.b64decode(payload.strip(), validate=True)
        data = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):  # deep nesting: RecursionError
        return None
    return json.dumps(data, sort_keys=True) if isinstance(data, dict) else None


XOAUTH2_HINT: Final = (
    "The OAuth access token was refused: it is expired, revoked, or lacks the mail scope "
    "(Google: https://mail.google.com/). Refresh or re-grant it."
)
