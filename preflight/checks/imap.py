"""The ``imap`` check: connect, TLS, greeting, STARTTLS, one login, EXAMINE INBOX, LOGOUT.

Mirrors :mod:`preflight.checks.smtp`. The security mode is chosen explicitly from
the port (993 implicit TLS, 143 STARTTLS required, other ports detected), never
left to chance. Exactly one login is attempted: LOGIN, AUTHENTICATE PLAIN when
LOGIN is disabled, or AUTHENTICATE XOAUTH2 for an account with an OAuth token.
A login is not the end: ``EXAMINE INBOX`` (read-only) proves there is a mailbox
to read replies from. The IMAP client is aioimaplib's protocol as extended in
:mod:`preflight.checks._imap_client`; its exceptions are translated to codes here, in
:meth:`_ImapProbe.translate_protocol`, and those both protocols share (TLS failures,
lost connections) in :meth:`preflight.checks._probe.Probe.translate`.

:func:`open_imap_session` opens the same authenticated session for a caller that
has more to do than EXAMINE (the ``roundtrip`` check searches and deletes on it).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from typing import ClassVar

from preflight._net import SHORT_LIMIT, ProbeStop, reportable
from preflight._resolver import HostLookup
from preflight.checks._hints import starttls_refused_hint
from preflight.checks._imap_client import (
    ImapClient,
    ImapError,
    ProtocolViolation,
    Reply,
    capabilities_in,
)
from preflight.checks._probe import STARTTLS_MODES, Probe, Session
from preflight.checks._replies import classify_login_refusal
from preflight.options import CheckOptions
from preflight.payload import Account
from preflight.report import CheckResult, Code

__all__ = ["ImapSession", "open_imap_session", "probe_imap"]

_NO_INBOX_HINT = (
    "The login works, but the mailbox cannot be opened over IMAP: check that IMAP access "
    "is enabled for this mailbox (provider settings or admin console) and that it has an "
    "INBOX; see details.reply for the server's words."
)
_LOGIN_BEFORE_TLS_HINT = (
    "The server accepts logins only over TLS: use 993 with SSL or 143 with STARTTLS, not "
    "a plain-text connection."
)
_LOGIN_BEFORE_STARTTLS_HINT = (
    "This server takes logins only over TLS, and it offers STARTTLS: use 143 with STARTTLS "
    "(or 993 with SSL), not a plain-text connection: allowing clear-text logins cannot help."
)
_NO_MAILBOX_HINT = (
    "The login works, but the mailbox does not exist on the server: the mail administrator "
    "must create it, or enable IMAP access for it (provider settings or admin console); "
    "see details.reply."
)
#: What a server says when the logged-in user has no mailbox (Cyrus, Courier, Dovecot).
_NO_MAILBOX = re.compile(
    r"mailbox does not exist|no such file or directory|\[NONEXISTENT\]|mailbox doesn't exist",
    re.IGNORECASE,
)
_NO_MECHANISM_HINT = (
    "The IMAP server offers no login preflight can use with these credentials: check the "
    "host and port the provider documents for IMAP, or give the account a password (or an "
    "OAuth token for a server that offers XOAUTH2)."
)
#: Capabilities kept in a report: real servers list a few dozen.
_MAX_CAPABILITIES_SHOWN = 100
#: A count int() takes: ASCII digits, not thousands of them (Python refuses > 4300).
_EXISTS = re.compile(r"^([0-9]{1,18}) EXISTS\b", re.IGNORECASE)


async def probe_imap(
    account: Account,
    host: asyncio.Future[HostLookup],
    options: CheckOptions,
    context: ssl.SSLContext,
    deadline: float,
) -> CheckResult:
    """Check the account's IMAP server and credentials before the loop time ``deadline``."""
    return await _ImapProbe(account, options, context).check(host, deadline)


async def open_imap_session(
    account: Account,
    host: asyncio.Future[HostLookup],
    options: CheckOptions,
    context: ssl.SSLContext,
    deadline: float,
) -> ImapSession | CheckResult:
    """An authenticated session, opened as the ``imap`` check opens it (same security
    mode, one login attempt) before the loop time ``deadline``; or, when it cannot be
    opened, the failing result the ``imap`` check would report.

    The caller owns the session: :meth:`ImapSession.close` it in a ``finally``.
    """
    probe = _ImapProbe(account, options, context)
    failed = await probe.open_within(host, deadline)
    return failed or ImapSession(probe)


class ImapSession(Session):
    """An authenticated IMAP session (TLS as the account asks, logged in, nothing selected).

    ``client`` takes further commands, one at a time; ``details`` is what the ``imap``
    check reports about the connection (see :class:`~preflight.checks._probe.Session`). After a
    cancelled command too, :meth:`close`.
    """

    def __init__(self, probe: _ImapProbe) -> None:
        assert probe.client is not None
        super().__init__(probe)
        self._imap_probe = probe
        self.client: ImapClient = probe.client

    async def logout(self) -> None:
        """LOGOUT and close, without waiting for the server's answer."""
        await self._imap_probe.goodbye()


class _ImapProbe(Probe):
    protocol: ClassVar[str] = "imap"
    errors: ClassVar[tuple[type[BaseException], ...]] = (ImapError, OSError, ssl.SSLError)
    # The contract's keys of a passing check, present even on a clear-text session.
    preset: ClassVar[tuple[str, ...]] = ("security", "tls_version", "auth_mechanism")

    def __init__(self, account: Account, options: CheckOptions, context: ssl.SSLContext) -> None:
        super().__init__(
            account,
            options,
            context,
            host=account.imap_host,
            port=account.imap_port,
            security=options.imap_security,
            user=account.imap_login,
            password=account.imap_secret,
        )
        self.client: ImapClient | None = None
        self.sock: socket.socket | None = None
        self.capabilities: list[str] = []

    # --- results ---------------------------------------------------------------

    def summary(self) -> str:
        details = self.state.details
        inbox = details.get("inbox_messages")
        count = f" ({inbox} messages)" if isinstance(inbox, int) else ""
        return (
            f"logged in with {details['auth_mechanism']} {self.over()}; "
            f"INBOX opened read-only{count}"
        )

    def close(self) -> None:
        if self.client is not None and self.client.transport is not None:
            if self.polite:
                self.client.part()
            else:
                self.client.abort()
        elif self.sock is not None:
            self.sock.close()  # connected, but no transport took the socket over
        self.client = None
        self.sock = None

    def translate_protocol(self, exc: BaseException) -> ProbeStop | None:
        step = self.state.step
        if isinstance(exc, TimeoutError) and step in ("tls", "greeting"):
            what = "TLS handshake" if step == "tls" else "greeting"
            return self.stop(Code.GREETING_TIMEOUT, f"connected, but no {what} came")
        if isinstance(exc, ProtocolViolation):
            return self.stop(Code.PROTOCOL_ERROR, f"{exc} (during {step})")
        if isinstance(exc, ImapError | ConnectionError):
            bye = self.client.bye if self.client is not None else None
            if bye is not None:
                return self._said_bye(bye)
            # Also asyncio's "SSL handshake is taking longer than ..." (ConnectionAbortedError).
            if step == "tls" and "handshake" in str(exc):
                return self.stop(Code.GREETING_TIMEOUT, "connected, but no TLS handshake came")
            return self.stop(Code.PROTOCOL_ERROR, f"the server closed the connection during {step}")
        return None

    def _said_bye(self, bye: str) -> ProbeStop:
        """The server ended the session with ``* BYE``: its words say why."""
        reply = f"BYE {bye}"
        step = self.state.step
        if step == "login" and _NO_MAILBOX.search(reply):
            # Courier-IMAP: "* BYE [ALERT] Fatal error: No such file or directory" once
            # the password was checked and the mailbox could not be opened.
            return self.stop(
                Code.PROTOCOL_ERROR,
                f"the mailbox does not exist on the server (it ended the session during "
                f"login): {reply}",
                _NO_MAILBOX_HINT,
                reply=reply,
            )
        if step == "login":
            return self.refused(reply, polite=False)
        if step == "examine":
            return self._inbox_refused(reply, polite=False)
        return self.stop(
            Code.PROTOCOL_ERROR,
            f"the server ended the session during {step}: {reply}",
            reply=reply,
        )

    def _inbox_refused(self, reply: str, *, polite: bool = True) -> ProbeStop:
        """INBOX cannot be opened after a login that worked (``NO``, or ``* BYE``: then
        not ``polite``, the server has ended the session)."""
        if _NO_MAILBOX.search(reply):
            return self.stop(
                Code.PROTOCOL_ERROR,
                f"logged in, but INBOX cannot be opened: the mailbox does not exist: {reply}",
                _NO_MAILBOX_HINT,
                reply=reply,
                polite=polite,
            )
        verdict = classify_login_refusal(reply, self.host, secrets=self.state.secrets)
        if verdict.code is Code.SERVER_UNAVAILABLE:
            return self.stop(
                verdict.code, verdict.message, verdict.hint, reply=reply, polite=polite
            )
        return self.stop(
            Code.PROTOCOL_ERROR,
            f"logged in, but INBOX cannot be opened: {reply}",
            _NO_INBOX_HINT,
            reply=reply,
            polite=polite,
        )

    # --- the steps ---------------------------------------------------------------

    async def session(self, addresses: tuple[str, ...]) -> None:
        """Connect, greeting, STARTTLS as the mode says, one login."""
        preauth = await self.connect(addresses)
        if not preauth:
            await self.capability()
            if self.mode in STARTTLS_MODES:
                await self.starttls()
            await self.authenticate(self.choose_mechanism())

    async def connect(self, addresses: tuple[str, ...]) -> bool:
        """Connect and read the greeting; True when the server pre-authenticated us."""
        self.sock, address = await self.connect_socket(addresses)
        timeouts = self.options.timeouts
        client = ImapClient()
        loop = asyncio.get_running_loop()
        if self.mode == "ssl":
            async with asyncio.timeout(timeouts.greeting):
                await loop.create_connection(
                    lambda: client,
                    sock=self.sock,
                    ssl=self.context,
                    server_hostname=self.host,
                    ssl_handshake_timeout=timeouts.greeting,
                )
            self.client, self.sock = client, None
            self.record_tls("ssl", client.transport)
            self.state.step = "greeting"
            async with asyncio.timeout(timeouts.greeting):
                greeting = await client.wait_greeting()
        else:
            await loop.create_connection(lambda: client, sock=self.sock)
            self.client, self.sock = client, None
            self.state.details["security"] = "plain"
            waiting = asyncio.ensure_future(self._greeting_within_timeout(client))
            found = await self.plain_greeting(waiting, address)
            if found is None:  # the port speaks implicit TLS, and the mode allows it
                self.switch_to_tls()
                return await self.connect((address,))
            greeting = found
        return self._greeted(greeting)

    async def _greeting_within_timeout(self, client: ImapClient) -> str:
        async with asyncio.timeout(self.options.timeouts.greeting):
            return await client.wait_greeting()

    def _greeted(self, greeting: str) -> bool:
        """Read the greeting: go on after ``* OK``, note ``* PREAUTH``, stop otherwise."""
        self.state.details["greeting"] = reportable(greeting, limit=SHORT_LIMIT)
        words = greeting.split(maxsplit=2)
        status = words[1].upper() if len(words) > 1 and words[0] == "*" else None
        if status == "BYE":
            raise self.stop(
                Code.PROTOCOL_ERROR,
                f"the server refused the session: {greeting}",
                reply=greeting,
            )
        if status not in ("OK", "PREAUTH"):
            raise self.stop(
                Code.PROTOCOL_ERROR,
                f"the server's greeting is not IMAP: {reportable(greeting, limit=100)}",
                reply=greeting,
            )
        self.capabilities = capabilities_in(greeting) or []
        if status == "PREAUTH":
            # Nothing to log in to: the credentials cannot be checked here.
            self.state.details["auth_mechanism"] = "PREAUTH"
            self.state.warnings.append(
                "the server pre-authenticated the session, so the password was not checked"
            )
            return True
        return False

    async def capability(self) -> None:
        """The server's capabilities, asked for unless the greeting listed them."""
        assert self.client is not None
        if not self.capabilities:
            self.state.step = "capability"
            async with asyncio.timeout(self.options.timeouts.command):
                reply, found = await self.client.capability()
            if not reply.ok:
                raise self.stop(
                    Code.PROTOCOL_ERROR,
                    f"the server refused CAPABILITY: {reply.line}",
                    reply=reply.line,
                    polite=True,
                )
            self.capabilities = found
        # As many as a server cares to list, each as a report may show it.
        shown = self.capabilities[:_MAX_CAPABILITIES_SHOWN]
        self.state.details["capabilities"] = [reportable(c, limit=SHORT_LIMIT) for c in shown]

    async def starttls(self) -> None:
        assert self.client is not None
        if "STARTTLS" not in (c.upper() for c in self.capabilities):
            if self.mode == "starttls":
                raise self.stop(
                    Code.STARTTLS_UNSUPPORTED,
                    f"the server does not offer STARTTLS on port {self.port}",
                    polite=True,
                )
            return  # "detect": stay in clear text; the login is guarded below
        self.state.step = "starttls"
        timeout = self.options.timeouts.greeting
        async with asyncio.timeout(timeout):
            reply = await self.client.starttls(self.context, self.host, timeout)
        if not reply.ok:
            # Not a handshake: none began. The session is still clear text and sane.
            raise self.stop(
                Code.STARTTLS_UNSUPPORTED,
                f"the server advertised STARTTLS on port {self.port}, then refused it: "
                f"{reply.line}",
                starttls_refused_hint(self.protocol, reply.line),
                reply=reply.line,
                polite=True,
            )
        self.record_tls("starttls", self.client.transport)
        # The capabilities sent before TLS are void after it (RFC 3501 §6.2.1): ask again.
        self.capabilities = []
        await self.capability()

    def choose_mechanism(self) -> str:
        capabilities = [c.upper() for c in self.capabilities]
        offered = [c.removeprefix("AUTH=") for c in capabilities if c.startswith("AUTH=")]
        self.state.details["auth_offered"] = [
            reportable(c, limit=SHORT_LIMIT) for c in offered[:_MAX_CAPABILITIES_SHOWN]
        ]
        if not self.encrypted and (
            "XTLSREQUIRED" in capabilities
            or ("LOGINDISABLED" in capabilities and not self._authenticate_possible(offered))
        ):
            # A clear-text login cannot work here, with or without --allow-plaintext-auth.
            said = "XTLSREQUIRED" if "XTLSREQUIRED" in capabilities else "LOGINDISABLED"
            raise self.stop(
                Code.AUTH_PLAINTEXT_REFUSED,
                f"the server refuses logins before TLS ({said}); nothing was sent",
                self._before_tls_hint(),
                polite=True,
            )
        self.refuse_plaintext()
        if self.token is not None and "XOAUTH2" in offered:
            return "XOAUTH2"
        if self.password.reveal():
            if "LOGINDISABLED" not in capabilities:
                return "LOGIN"
            if "PLAIN" in offered:
                return "PLAIN"
            raise self.stop(
                Code.AUTH_UNSUPPORTED,
                "the server disables LOGIN and offers no usable AUTHENTICATE mechanism"
                + (f" ({', '.join(offered)})" if offered else ""),
                _NO_MECHANISM_HINT,
                polite=True,
            )
        raise self.stop(
            Code.AUTH_UNSUPPORTED,
            "the account has no password, and the server does not offer XOAUTH2"
            + (f" (it offers {', '.join(offered)})" if offered else ""),
            _NO_MECHANISM_HINT,
            polite=True,
        )

    async def authenticate(self, mechanism: str) -> None:
        assert self.client is not None
        self.begin_login("login", mechanism)
        user = self.user
        sasl_ir = "SASL-IR" in (c.upper() for c in self.capabilities)
        async with asyncio.timeout(self.options.timeouts.command):
            if mechanism == "XOAUTH2":
                assert self.token is not None
                response = f"user={user}\x01auth=Bearer {self.token}\x01\x01".encode()
                reply = await self.client.authenticate(
                    "XOAUTH2", response, initial_response=sasl_ir
                )
            elif mechanism == "PLAIN":
                response = f"\0{user}\0{self.password.reveal()}".encode()
                reply = await self.client.authenticate("PLAIN", response, initial_response=sasl_ir)
            else:
                reply = await self.client.login(user, self.password.reveal())
        if not reply.ok:
            self._refused(mechanism, reply)

    def _authenticate_possible(self, offered: list[str]) -> bool:
        """Whether an AUTHENTICATE preflight would use is offered (LOGIN aside)."""
        if self.token is not None and "XOAUTH2" in offered:
            return True
        return bool(self.password.reveal()) and "PLAIN" in offered

    def _offers_starttls(self) -> bool:
        return "STARTTLS" in (c.upper() for c in self.capabilities)

    def _before_tls_hint(self) -> str:
        return _LOGIN_BEFORE_STARTTLS_HINT if self._offers_starttls() else _LOGIN_BEFORE_TLS_HINT

    def _refused(self, mechanism: str, reply: Reply) -> None:
        if mechanism == "XOAUTH2" and reply.challenges:
            # The challenge carries the error; it was answered with an empty line.
            self.note_oauth_error(reply.challenges[-1])
            raise self.oauth_refused(reply.line)
        if not self.encrypted and self._offers_starttls():
            # A login refused before TLS by a server that offers TLS (GNU imap4d: "NO LOGIN
            # Command disabled"): whatever the words, the password was not the question.
            verdict = classify_login_refusal(reply.line, self.host, secrets=self.state.secrets)
            if verdict.code in (Code.AUTH_FAILED, Code.AUTH_PLAINTEXT_REFUSED):
                raise self.stop(
                    Code.AUTH_PLAINTEXT_REFUSED,
                    f"the server refused a login before TLS: {reply.line}",
                    _LOGIN_BEFORE_STARTTLS_HINT,
                    reply=reply.line,
                    polite=True,
                )
        raise self.refused(reply.line)

    async def after_login(self) -> None:
        """Open INBOX read-only: a login without a mailbox is no use to a sender."""
        assert self.client is not None
        self.state.step = "examine"
        async with asyncio.timeout(self.options.timeouts.command):
            reply = await self.client.command("EXAMINE", "INBOX")
        if not reply.ok:
            raise self._inbox_refused(reply.line)
        for line in reply.untagged:
            exists = _EXISTS.match(line)
            if exists:
                self.state.details["inbox_messages"] = int(exists[1])
