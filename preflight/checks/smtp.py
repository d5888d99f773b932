"""The ``smtp`` check: connect, TLS, greeting, EHLO, STARTTLS, one AUTH, QUIT.

The security mode is chosen explicitly, never left to aiosmtplib's opportunistic
default (which stays in clear text when STARTTLS is missing). Exactly one AUTH
mechanism is tried per check: several attempts with one wrong password is how
accounts get locked. aiosmtplib and ssl exceptions are translated to codes here,
in :meth:`_SmtpProbe.translate_protocol` and, for what both protocols share (TLS
failures, lost connections), in :meth:`preflight.checks._probe.Probe.translate`.

:func:`open_smtp_session` opens the same authenticated session for a caller that
has more to say than QUIT (the ``roundtrip`` check sends a message on it).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, ClassVar

import aiosmtplib
from aiosmtplib.auth import auth_xoauth2_encode

from preflight import _early
from preflight._net import SHORT_LIMIT, ProbeStop, part, reportable
from preflight._resolver import HostLookup
from preflight.checks._hints import starttls_refused_hint
from preflight.checks._probe import STARTTLS_MODES, Probe, Session
from preflight.options import CheckOptions
from preflight.payload import Account
from preflight.report import CheckResult, Code

__all__ = ["SmtpSession", "open_smtp_session", "probe_smtp"]


async def probe_smtp(
    account: Account,
    host: asyncio.Future[HostLookup],
    options: CheckOptions,
    context: ssl.SSLContext,
    deadline: float,
) -> CheckResult:
    """Check the account's SMTP server and credentials before the loop time ``deadline``."""
    return await _SmtpProbe(account, options, context).check(host, deadline)


async def open_smtp_session(
    account: Account,
    host: asyncio.Future[HostLookup],
    options: CheckOptions,
    context: ssl.SSLContext,
    deadline: float,
) -> SmtpSession | CheckResult:
    """An authenticated session, opened as the ``smtp`` check opens it (same security
    mode, one AUTH attempt) before the loop time ``deadline``; or, when it cannot be
    opened, the failing result the ``smtp`` check would report.

    The caller owns the session: :meth:`SmtpSession.close` it in a ``finally``.
    """
    probe = _SmtpProbe(account, options, context)
    failed = await probe.open_within(host, deadline)
    return failed or SmtpSession(probe)


class SmtpSession(Session):
    """An authenticated SMTP session (EHLO done, TLS as the account asks, AUTH passed).

    ``smtp`` is the aiosmtplib client for further commands; ``details`` what the
    ``smtp`` check reports about the connection (see :class:`~preflight.checks._probe.Session`).
    """

    def __init__(self, probe: _SmtpProbe) -> None:
        assert probe.smtp is not None
        super().__init__(probe)
        self._smtp_probe = probe
        self.smtp: aiosmtplib.SMTP = probe.smtp

    async def quit(self) -> None:
        """QUIT and close, without waiting for the server's answer."""
        await self._smtp_probe.goodbye()


_AUTH_AFTER_STARTTLS_HINT = (
    "The server offers AUTH only after STARTTLS: don't force plain text "
    "(--smtp-security plain); use STARTTLS (587) or SSL (465)."
)


class _SmtpProbe(Probe):
    protocol: ClassVar[str] = "smtp"
    errors: ClassVar[tuple[type[BaseException], ...]] = (
        aiosmtplib.SMTPException,
        OSError,
        ssl.SSLError,
    )

    def __init__(self, account: Account, options: CheckOptions, context: ssl.SSLContext) -> None:
        super().__init__(
            account,
            options,
            context,
            host=account.smtp_host,
            port=account.smtp_port,
            security=options.smtp_security,
            user=account.user_name,
            password=account.password,
        )
        self.smtp: aiosmtplib.SMTP | None = None
        #: The session began on a cold start's early connection past STARTTLS.
        self.resumed = False

    # --- results ---------------------------------------------------------------

    def summary(self) -> str:
        details = self.state.details
        details.setdefault("tls_version", None)  # the contract's key, also in clear text
        return f"logged in with AUTH {details['auth_mechanism']} {self.over()}"

    def close(self) -> None:
        if self.smtp is None:
            return
        transport = self.smtp.transport
        if self.polite:
            part(transport, b"QUIT\r\n")
        elif isinstance(transport, asyncio.WriteTransport):
            transport.abort()
        self.smtp.close()

    def translate_protocol(self, exc: BaseException) -> ProbeStop | None:
        step = self.state.step
        if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
            if "ready message" in str(exc):
                return self.stop(Code.GREETING_TIMEOUT, "connected, but the server never greeted")
            return self.stop(
                Code.GREETING_TIMEOUT, "connected, but the TLS handshake got no answer"
            )
        if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
            return self.stop(
                Code.PROTOCOL_ERROR,
                f"the server refused the session: {exc.code} {exc.message}",
                reply=f"{exc.code} {exc.message}",
                polite=True,
            )
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
            return self.stop(Code.PROTOCOL_ERROR, f"the server closed the connection during {step}")
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return self.stop(
                Code.PROTOCOL_ERROR,
                f"unexpected reply during {step}: {exc.code} {exc.message}",
                reply=f"{exc.code} {exc.message}",
                polite=True,
            )
        return None

    # --- the steps ---------------------------------------------------------------

    async def session(self, addresses: tuple[str, ...]) -> None:
        """Connect, greeting, EHLO, STARTTLS as the mode says, one AUTH."""
        await self.connect(addresses)
        if self.resumed:  # greeting, EHLO and STARTTLS done early: TLS is up
            await self.ehlo()
        else:
            await self.ehlo()
            if self.mode in STARTTLS_MODES:
                await self.starttls()
        await self.authenticate(self.choose_mechanism())

    async def connect(self, addresses: tuple[str, ...]) -> None:
        sock, address = await self.connect_socket(addresses)
        prelude = _early.prelude(sock)
        if prelude is not None:
            if self.mode == "starttls" and _RESUMABLE:
                await self.resume(sock, prelude)
                return
            sock.close()  # mid-STARTTLS, of no use to another mode: connect again
            sock, address = await self.connect_socket(addresses)
        timeouts = self.options.timeouts
        use_tls = self.mode == "ssl"
        self.smtp = aiosmtplib.SMTP(
            hostname=self.host,
            sock=sock,
            use_tls=use_tls,
            start_tls=False,
            tls_context=self.context,
            timeout=timeouts.command,
            local_hostname=self.options.local_hostname,
        )
        if use_tls:
            response = await self.smtp.connect(timeout=timeouts.greeting)
        else:
            greeting = asyncio.ensure_future(self.smtp.connect(timeout=timeouts.greeting))
            found = await self.plain_greeting(greeting, address)
            if found is None:  # the port speaks implicit TLS, and the mode allows it
                self.switch_to_tls()
                await self.connect((address,))
                return
            response = found
        self.state.details["greeting"] = _greeting_line(response.message)
        if use_tls:
            assert self.smtp.transport is not None
            self.record_tls("ssl", self.smtp.transport)
        else:
            self.state.details["security"] = "plain"

    async def resume(self, sock: socket.socket, prelude: _early.Prelude) -> None:
        """Go on from a cold start's early connection (:mod:`preflight._early`): its
        greeting, EHLO (STARTTLS offered) and STARTTLS (accepted) are done, so the
        TLS handshake comes next, exactly where :meth:`starttls` would begin it."""
        self.state.details["greeting"] = _greeting_line(prelude.greeting)
        self.state.details["security"] = "plain"
        self.state.step = "starttls"
        self.spoke = "plain"
        self.smtp = _ResumedSMTP(
            prelude.ready,
            hostname=self.host,
            sock=sock,
            use_tls=True,
            start_tls=False,
            tls_context=self.context,
            timeout=self.options.timeouts.command,
            local_hostname=self.options.local_hostname,
        )
        await self.smtp.connect(timeout=self.options.timeouts.greeting)
        assert self.smtp.transport is not None
        self.record_tls("starttls", self.smtp.transport)
        self.resumed = True

    async def ehlo(self) -> None:
        assert self.smtp is not None
        self.state.step = "ehlo"
        await self.smtp.ehlo()

    async def starttls(self) -> None:
        assert self.smtp is not None
        if not self.smtp.supports_extension("starttls"):
            if self.mode == "starttls":
                raise self.stop(
                    Code.STARTTLS_UNSUPPORTED,
                    f"the server does not offer STARTTLS on port {self.port}",
                    polite=True,
                )
            return  # "starttls?" and "detect": stay in clear text; AUTH is guarded below
        self.state.step = "starttls"
        self.spoke = "plain"
        try:
            await self.smtp.starttls(
                tls_context=self.context,
                server_hostname=self.host,
                timeout=self.options.timeouts.greeting,
            )
        except aiosmtplib.SMTPResponseException as exc:
            # Not a handshake: none began. The session is still clear text and sane.
            reply = f"{exc.code} {exc.message}"
            raise self.stop(
                Code.STARTTLS_UNSUPPORTED,
                f"the server advertised STARTTLS on port {self.port}, then refused it: {reply}",
                starttls_refused_hint(self.protocol, reply),
                reply=reply,
                polite=True,
            ) from None
        assert self.smtp.transport is not None
        self.record_tls("starttls", self.smtp.transport)
        # The extensions offered before TLS are void after it (RFC 3207): ask again.
        await self.ehlo()

    def choose_mechanism(self) -> str:
        assert self.smtp is not None
        offered = [reportable(m.upper(), limit=SHORT_LIMIT) for m in self.smtp.server_auth_methods]
        self.state.details["auth_offered"] = offered
        self.refuse_plaintext(flag_helps=bool(offered))
        if not offered:
            hint = None
            if not self.encrypted and self.smtp.supports_extension("starttls"):
                hint = _AUTH_AFTER_STARTTLS_HINT
            raise self.stop(
                Code.AUTH_UNSUPPORTED, "the server offers no AUTH mechanism", hint, polite=True
            )
        if self.token is not None and "XOAUTH2" in offered:
            return "XOAUTH2"
        if self.password.reveal():
            for mechanism in ("PLAIN", "LOGIN"):
                if mechanism in offered:
                    return mechanism
        raise self.stop(
            Code.AUTH_UNSUPPORTED,
            f"none of the offered mechanisms ({', '.join(offered)}) can be used"
            + (" with an OAuth token" if self.token is not None else ""),
            f"The server offers only {', '.join(offered)}, which preflight does not use "
            "(it logs in with PLAIN or LOGIN, or XOAUTH2 with a token): ask the provider "
            "to enable PLAIN/LOGIN over TLS, or give the account an OAuth token if it "
            "offers XOAUTH2.",
            polite=True,
        )

    async def authenticate(self, mechanism: str) -> None:
        assert self.smtp is not None
        self.begin_login("auth", mechanism)
        try:
            if mechanism == "XOAUTH2":
                await self._xoauth2()
            elif mechanism == "PLAIN":
                await self.smtp.auth_plain(self.user, self.password.reveal())
            else:
                await self.smtp.auth_login(self.user, self.password.reveal())
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise self.refused(f"{exc.code} {exc.message}", status=exc.code) from None

    async def _xoauth2(self) -> None:
        """XOAUTH2, keeping the server's error challenge for the report."""
        assert self.smtp is not None
        assert self.token is not None
        encoded = auth_xoauth2_encode(self.user, self.token)
        response = await self.smtp.execute_command(b"AUTH", b"XOAUTH2", encoded)
        if response.code == 334:
            # The challenge carries the error; answer it with an empty line (RFC 7628).
            self.note_oauth_error(response.message)
            response = await self.smtp.execute_command(b"")
            raise self.oauth_refused(f"{response.code} {response.message}")
        if response.code != 235:
            raise self.refused(f"{response.code} {response.message}", status=response.code)


def _greeting_line(text: object) -> str | None:
    """The greeting's first line, as a report may show it (it may be anything)."""
    if not isinstance(text, str) or not text:
        return None
    return reportable(text.splitlines()[0], limit=SHORT_LIMIT)


#: Whether this aiosmtplib has the two internals :class:`_ResumedSMTP` replaces and
#: calls (5.x); without them an early connection's STARTTLS is not taken over and the
#: probe connects again (tests/integration/test_early.py checks the installed one has).
_RESUMABLE = all(
    hasattr(aiosmtplib.SMTP, name) for name in ("_create_connection", "_on_connection_lost")
)


class _ResumedSMTP(aiosmtplib.SMTP):
    """aiosmtplib's client on a connection whose STARTTLS was accepted before asyncio
    was loaded (:mod:`preflight._early`): connecting is the TLS handshake alone, with
    the errors aiosmtplib's own STARTTLS raises (``SMTPProtocol.start_tls``), and the
    reply to STARTTLS stands for the greeting (no greeting follows a handshake)."""

    def __init__(self, ready: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ready = ready

    async def _create_connection(self, timeout: float | None) -> aiosmtplib.SMTPResponse:
        from aiosmtplib.protocol import SMTPProtocol

        assert self.loop is not None
        protocol = SMTPProtocol(loop=self.loop, connection_lost_callback=self._on_connection_lost)
        try:
            transport, _ = await self.loop.create_connection(
                lambda: protocol,
                sock=self.sock,
                ssl=await self._get_tls_context(),
                server_hostname=self.hostname,
                ssl_handshake_timeout=timeout,
            )
        except TimeoutError as exc:
            raise aiosmtplib.SMTPTimeoutError("Timed out while upgrading transport") from exc
        except ConnectionAbortedError as exc:  # asyncio's handshake timeout
            raise aiosmtplib.SMTPTimeoutError(
                "Connection aborted while upgrading transport"
            ) from exc
        except ConnectionError as exc:
            raise aiosmtplib.SMTPServerDisconnected(
                "Connection reset while upgrading transport"
            ) from exc
        self.protocol = protocol
        self.transport = transport
        return aiosmtplib.SMTPResponse(220, self._ready)
