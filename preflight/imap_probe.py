"""The ``imap`` check: connect, TLS, greeting, STARTTLS, one login, EXAMINE INBOX, LOGOUT.

Mirrors :mod:`preflight.smtp_probe`. The security mode is chosen explicitly from
the port (993 implicit TLS, 143 STARTTLS required, other ports detected), never
left to chance. Exactly one login is attempted: LOGIN, AUTHENTICATE PLAIN when
LOGIN is disabled, or AUTHENTICATE XOAUTH2 for an account with an OAuth token.
A login is not the end: ``EXAMINE INBOX`` (read-only) proves there is a mailbox
to read replies from. The IMAP client is aioimaplib's protocol as extended in
:mod:`preflight.imap_starttls`; its, ssl's and the socket's exceptions are
translated to codes here, in :meth:`_ImapProbe.translate`, and nowhere else.

:func:`open_imap_session` opens the same authenticated session for a caller that
has more to do than EXAMINE (the ``roundtrip`` check searches and deletes on it).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from preflight.hints import hint_for
from preflight.imap_starttls import ImapClient, ImapError, ProtocolViolation, Reply
from preflight.imap_starttls import capabilities_in as _capabilities_in
from preflight.net import (
    SHORT_LIMIT,
    ConnectFailure,
    Mode,
    ProbeState,
    ProbeStop,
    bounded,
    mode_for_port,
    open_socket,
    reportable,
    reportable_details,
    tls_answers,
)
from preflight.options import CheckOptions
from preflight.payload import Account
from preflight.replies import XOAUTH2_HINT, classify_login_refusal, decode_xoauth2_challenge
from preflight.report import CheckResult, Code
from preflight.resolver import HostLookup
from preflight.tls import classify_tls_error, describe_session, expiry_warning, find_tls_error

__all__ = ["ImapSession", "open_imap_session", "probe_imap"]

#: LOGOUT is a courtesy: a server slow to say goodbye does not hold the report.
_LOGOUT_TIMEOUT = 2.0

_NO_INBOX_HINT = (
    "The login works, but the mailbox cannot be opened over IMAP: check that IMAP access "
    "is enabled for this mailbox (provider settings or admin console) and that it has an "
    "INBOX; see details.reply for the server's words."
)
_LOGIN_BEFORE_TLS_HINT = (
    "The server accepts logins only over TLS: use 993 with SSL or 143 with STARTTLS, not "
    "a plain-text connection."
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
    probe = _ImapProbe(account, options, context)
    return await bounded(probe, probe.run(host), deadline)


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
    failed = await bounded(probe, probe.open(host), deadline, keep_open=True)
    return failed if isinstance(failed, CheckResult) else ImapSession(probe)


class ImapSession:
    """An authenticated IMAP session (TLS as the account asks, logged in, nothing selected).

    ``client`` takes further commands, one at a time; ``details`` is what the ``imap``
    check reports about the connection (address, security, tls_version,
    auth_mechanism, ...). After an exception, a timeout or a cancelled command,
    :meth:`close`; never reuse.
    """

    def __init__(self, probe: _ImapProbe) -> None:
        assert probe.client is not None
        self._probe = probe
        self.client: ImapClient = probe.client
        self.details: Mapping[str, Any] = MappingProxyType(probe.state.details)

    def failure(self, exc: BaseException, step: str) -> CheckResult:
        """The ``imap`` check's failing result for ``exc``, raised during ``step``."""
        self._probe.state.step = step
        return self._probe.translate(exc).result

    async def logout(self) -> None:
        """LOGOUT, politely and briefly; a server that will not is no failure."""
        await self._probe.logout()

    def close(self) -> None:
        """Close hard (after LOGOUT too: then it only releases the connection)."""
        self._probe.close()


class _ImapProbe:
    def __init__(self, account: Account, options: CheckOptions, context: ssl.SSLContext) -> None:
        self.account = account
        self.options = options
        self.context = context
        self.host = account.imap_host
        self.port = account.imap_port
        self.token: str | None = None
        if account.token is not None:
            token = account.token.reveal().get("access_token")
            if isinstance(token, str) and token:
                self.token = token
        secrets = (account.imap_secret.reveal(), self.token or "")
        self.state = ProbeState("imap", tuple(s for s in secrets if s))
        self.client: ImapClient | None = None
        self.sock: socket.socket | None = None
        self.mode: Mode = mode_for_port("imap", self.port, options.imap_security)
        self.spoke = "ssl" if self.mode == "ssl" else "plain"
        self.capabilities: list[str] = []

    # --- results ---------------------------------------------------------------

    def stop(
        self, code: Code, message: str, hint: str | None = None, reply: str | None = None
    ) -> ProbeStop:
        hint = hint or hint_for(code, "imap", self.host, self.port, spoke=self.spoke)
        return ProbeStop(self.state.fail(code, message, hint, reply))

    def timed_out(self) -> CheckResult:
        step = self.state.step
        if step == "connect":
            code = Code.CONNECT_TIMEOUT
        elif step in ("tls", "greeting"):
            code = Code.GREETING_TIMEOUT
        else:
            code = Code.TIMEOUT
        return self.state.fail(
            code,
            f"no answer within the deadline (during {step})",
            hint_for(code, "imap", self.host, self.port, spoke=self.spoke),
        )

    def close(self) -> None:
        """Close hard: after a timeout or confusion the session is never reused."""
        if self.client is not None and self.client.transport is not None:
            self.client.abort()
        elif self.sock is not None:
            self.sock.close()  # connected, but no transport took the socket over
        self.client = None
        self.sock = None

    def translate(self, exc: BaseException) -> ProbeStop:
        """The one place where library exceptions become report codes."""
        step = self.state.step
        tls_error = find_tls_error(exc)
        if tls_error is not None:
            code, message = classify_tls_error(tls_error)
            return self.stop(code, message)
        if isinstance(exc, TimeoutError):
            if step in ("tls", "greeting"):
                what = "TLS handshake" if step == "tls" else "greeting"
                return self.stop(Code.GREETING_TIMEOUT, f"connected, but no {what} came")
            return self.stop(Code.TIMEOUT, f"the server did not answer in time ({step})")
        if isinstance(exc, ProtocolViolation):
            return self.stop(Code.PROTOCOL_ERROR, f"{exc} (during {step})")
        if isinstance(exc, ImapError | ConnectionError):
            # Also asyncio's "SSL handshake is taking longer than ..." (ConnectionAbortedError).
            if step == "tls" and "handshake" in str(exc):
                return self.stop(Code.GREETING_TIMEOUT, "connected, but no TLS handshake came")
            return self.stop(Code.PROTOCOL_ERROR, f"the server closed the connection during {step}")
        if isinstance(exc, OSError):
            return self.stop(Code.PROTOCOL_ERROR, f"connection lost during {step}: {exc}")
        return self.stop(Code.PROTOCOL_ERROR, f"{step} failed: {exc}")

    # --- the steps ---------------------------------------------------------------

    async def run(self, host: asyncio.Future[HostLookup]) -> CheckResult:
        await self.open(host)
        try:
            await self.examine()
        except ProbeStop:
            raise
        except (ImapError, OSError, ssl.SSLError) as exc:
            raise self.translate(exc) from None
        await self.logout()
        details = self.state.details
        security = details["security"]
        tls = f", {details['tls_version']}" if details.get("tls_version") else ""
        inbox = details.get("inbox_messages")
        count = f" ({inbox} messages)" if isinstance(inbox, int) else ""
        return self.state.passed(
            f"logged in with {details['auth_mechanism']} over {security}{tls}; "
            f"INBOX opened read-only{count}"
        )

    async def open(self, host: asyncio.Future[HostLookup]) -> None:
        """Resolve, connect, greeting, STARTTLS as the mode says, one login."""
        lookup = await host
        if lookup.code is not None:
            raise self.stop(lookup.code, lookup.message)
        details = self.state.details
        # The contract's keys of a passing check, present even on a clear-text session.
        details.update(host=self.host, port=self.port, address=None, security=None)
        details.update(tls_version=None, auth_mechanism=None)
        try:
            preauth = await self.connect(lookup.addresses)
            if not preauth:
                await self.capability()
                if self.mode in ("starttls", "starttls?", "detect"):
                    await self.starttls()
                mechanism = self.choose_mechanism()
                await self.authenticate(mechanism)
        except ProbeStop:
            raise
        except (ImapError, OSError, ssl.SSLError) as exc:
            raise self.translate(exc) from None

    async def connect(self, addresses: tuple[str, ...]) -> bool:
        """Connect and read the greeting; True when the server pre-authenticated us."""
        timeouts = self.options.timeouts
        self.state.step = "connect"
        try:
            self.sock = await open_socket(addresses, self.port, timeouts.connect)
        except ConnectFailure as failure:
            raise self.stop(failure.code, failure.message) from None
        address = self.sock.getpeername()[0]
        self.state.details["address"] = address
        use_tls = self.mode == "ssl"
        self.state.step = "tls" if use_tls else "greeting"
        client = ImapClient()
        loop = asyncio.get_running_loop()
        if use_tls:
            async with asyncio.timeout(timeouts.greeting):
                await loop.create_connection(
                    lambda: client,
                    sock=self.sock,
                    ssl=self.context,
                    server_hostname=self.host,
                    ssl_handshake_timeout=timeouts.greeting,
                )
            self.client, self.sock = client, None
            self.state.details["security"] = "ssl"
            self._record_tls()
            self.state.step = "greeting"
            async with asyncio.timeout(timeouts.greeting):
                greeting = await client.wait_greeting()
        else:
            await loop.create_connection(lambda: client, sock=self.sock)
            self.client, self.sock = client, None
            self.state.details["security"] = "plain"
            found = await self._plain_greeting(client, address)
            if found is None:  # the port speaks implicit TLS, and the mode allows it
                return await self._switch_to_tls(address)
            greeting = found
        return self._greeted(greeting)

    async def _plain_greeting(self, client: ImapClient, address: str) -> str | None:
        """Wait for the clear-text greeting; if it is late, see whether the port speaks TLS.

        None: no greeting, but TLS answers and the mode is "detect".
        """
        timeouts = self.options.timeouts

        async def greeting_within_timeout() -> str:
            async with asyncio.timeout(timeouts.greeting):
                return await client.wait_greeting()

        greeting = asyncio.ensure_future(greeting_within_timeout())
        try:
            done, _ = await asyncio.wait({greeting}, timeout=timeouts.sniff_after)
            if not done:
                sniff = asyncio.ensure_future(tls_answers(address, self.port, timeouts.greeting))
                try:
                    await asyncio.wait({greeting, sniff}, return_when=asyncio.FIRST_COMPLETED)
                    if not greeting.done() and await sniff:
                        if self.mode == "detect":
                            return None
                        raise self.stop(
                            Code.TLS_MODE_MISMATCH,
                            f"port {self.port} speaks implicit TLS, but the account uses "
                            f"{'STARTTLS' if self.mode != 'plain' else 'plain text'}",
                        )
                finally:
                    sniff.cancel()
                    await asyncio.wait({sniff})  # its socket is closed before we go on
            return await greeting
        finally:
            greeting.cancel()
            await asyncio.wait({greeting})

    async def _switch_to_tls(self, address: str) -> bool:
        """A port of no fixed convention turned out to speak implicit TLS."""
        self.close()
        self.mode = "ssl"
        self.spoke = "ssl"
        self.state.details["security_detected"] = True
        return await self.connect((address,))

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
        self.capabilities = _capabilities_in(greeting) or []
        if status == "PREAUTH":
            # Nothing to log in to: the credentials cannot be checked here.
            self.state.details["auth_mechanism"] = "PREAUTH"
            self.state.warnings.append(
                "the server pre-authenticated the session, so the password was not checked"
            )
            return True
        return False

    def _record_tls(self) -> None:
        assert self.client is not None
        ssl_object = self.client.transport.get_extra_info("ssl_object")
        info = describe_session(ssl_object)
        # The certificate's names are the server's words too.
        self.state.details.update(reportable_details(info, ()))
        if self.options.insecure:
            self.state.details["verified"] = False
            self.state.warnings.append("the certificate was not verified (--insecure)")
        else:
            self.state.details["verified"] = True
        warning = expiry_warning(info)
        if warning:
            self.state.warnings.append(warning)

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
                )
            return  # "detect": stay in clear text; the login is guarded below
        self.state.step = "starttls"
        timeout = self.options.timeouts.greeting
        async with asyncio.timeout(timeout):
            reply = await self.client.starttls(self.context, self.host, timeout)
        if not reply.ok:
            raise self.stop(
                Code.TLS_HANDSHAKE_FAILED,
                f"the server refused STARTTLS: {reply.line}",
                reply=reply.line,
            )
        self.state.details["security"] = "starttls"
        self._record_tls()
        # The capabilities sent before TLS are void after it (RFC 3501 §6.2.1): ask again.
        self.capabilities = []
        await self.capability()

    def choose_mechanism(self) -> str:
        capabilities = [c.upper() for c in self.capabilities]
        offered = [c.removeprefix("AUTH=") for c in capabilities if c.startswith("AUTH=")]
        self.state.details["auth_offered"] = [
            reportable(c, limit=SHORT_LIMIT) for c in offered[:_MAX_CAPABILITIES_SHOWN]
        ]
        encrypted = self.state.details.get("security") in ("ssl", "starttls")
        if not encrypted and not self.options.allow_plaintext_auth:
            raise self.stop(
                Code.AUTH_PLAINTEXT_REFUSED,
                "the connection is not encrypted; the credentials were not sent",
            )
        if self.token is not None and "XOAUTH2" in offered:
            return "XOAUTH2"
        if self.account.imap_secret.reveal():
            if "LOGINDISABLED" not in capabilities:
                return "LOGIN"
            if "PLAIN" in offered:
                return "PLAIN"
            if not encrypted:
                raise self.stop(
                    Code.AUTH_PLAINTEXT_REFUSED,
                    "the server refuses logins before TLS (LOGINDISABLED); nothing was sent",
                    _LOGIN_BEFORE_TLS_HINT,
                )
            raise self.stop(
                Code.AUTH_UNSUPPORTED,
                "the server disables LOGIN and offers no usable AUTHENTICATE mechanism"
                + (f" ({', '.join(offered)})" if offered else ""),
                _NO_MECHANISM_HINT,
            )
        raise self.stop(
            Code.AUTH_UNSUPPORTED,
            "the account has no password, and the server does not offer XOAUTH2"
            + (f" (it offers {', '.join(offered)})" if offered else ""),
            _NO_MECHANISM_HINT,
        )

    async def authenticate(self, mechanism: str) -> None:
        assert self.client is not None
        self.state.step = "login"
        self.state.details["auth_mechanism"] = mechanism
        if self.state.details.get("security") not in ("ssl", "starttls"):
            self.state.warnings.append("the credentials were sent in clear text")
        user = self.account.imap_login
        sasl_ir = "SASL-IR" in (c.upper() for c in self.capabilities)
        async with asyncio.timeout(self.options.timeouts.command):
            if mechanism == "XOAUTH2":
                assert self.token is not None
                response = f"user={user}\x01auth=Bearer {self.token}\x01\x01".encode()
                reply = await self.client.authenticate(
                    "XOAUTH2", response, initial_response=sasl_ir
                )
            elif mechanism == "PLAIN":
                response = f"\0{user}\0{self.account.imap_secret.reveal()}".encode()
                reply = await self.client.authenticate("PLAIN", response, initial_response=sasl_ir)
            else:
                reply = await self.client.login(user, self.account.imap_secret.reveal())
        if not reply.ok:
            self._refused(mechanism, reply)

    def _refused(self, mechanism: str, reply: Reply) -> None:
        if mechanism == "XOAUTH2" and reply.challenges:
            # The challenge carries the error; it was answered with an empty line.
            challenge = decode_xoauth2_challenge(reply.challenges[-1])
            if challenge:
                self.state.details["oauth_error"] = challenge
            raise self.stop(
                Code.AUTH_FAILED,
                f"the server refused the OAuth token: {reply.line}",
                XOAUTH2_HINT,
                reply=reply.line,
            )
        verdict = classify_login_refusal(reply.line, self.host, secrets=self.state.secrets)
        raise self.stop(verdict.code, verdict.message, verdict.hint, reply=reply.line)

    async def examine(self) -> None:
        """Open INBOX read-only: a login without a mailbox is no use to a sender."""
        assert self.client is not None
        self.state.step = "examine"
        async with asyncio.timeout(self.options.timeouts.command):
            reply = await self.client.command("EXAMINE", "INBOX")
        if not reply.ok:
            raise self.stop(
                Code.PROTOCOL_ERROR,
                f"logged in, but INBOX cannot be opened: {reply.line}",
                _NO_INBOX_HINT,
                reply=reply.line,
            )
        for line in reply.untagged:
            exists = _EXISTS.match(line)
            if exists:
                self.state.details["inbox_messages"] = int(exists[1])

    async def logout(self) -> None:
        """Say goodbye politely; a server that will not is not a failure of the account."""
        if self.client is None:
            return
        self.state.step = "logout"
        try:
            async with asyncio.timeout(_LOGOUT_TIMEOUT):
                await self.client.command("LOGOUT")
        except (ImapError, OSError, TimeoutError):
            pass
