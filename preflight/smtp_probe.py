"""The ``smtp`` check: connect, TLS, greeting, EHLO, STARTTLS, one AUTH, QUIT.

The security mode is chosen explicitly, never left to aiosmtplib's opportunistic
default (which stays in clear text when STARTTLS is missing). Exactly one AUTH
mechanism is tried per check: several attempts with one wrong password is how
accounts get locked. aiosmtplib and ssl exceptions are translated to codes here,
in :meth:`_SmtpProbe.translate`, and nowhere else.

:func:`open_smtp_session` opens the same authenticated session for a caller that
has more to say than QUIT (the ``roundtrip`` check sends a message on it).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import aiosmtplib
from aiosmtplib.auth import auth_xoauth2_encode

from preflight.hints import hint_for
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

__all__ = ["SmtpSession", "open_smtp_session", "probe_smtp"]


async def probe_smtp(
    account: Account,
    host: asyncio.Future[HostLookup],
    options: CheckOptions,
    context: ssl.SSLContext,
    deadline: float,
) -> CheckResult:
    """Check the account's SMTP server and credentials before the loop time ``deadline``."""
    probe = _SmtpProbe(account, options, context)
    return await bounded(probe, probe.run(host), deadline)


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
    failed = await bounded(probe, probe.open(host), deadline, keep_open=True)
    return failed if isinstance(failed, CheckResult) else SmtpSession(probe)


class SmtpSession:
    """An authenticated SMTP session (EHLO done, TLS as the account asks, AUTH passed).

    ``smtp`` is the aiosmtplib client for further commands; ``details`` what the
    ``smtp`` check reports about the connection (address, security, tls_version,
    auth_mechanism, ...). After an exception or a timeout, :meth:`close`; never reuse.
    """

    def __init__(self, probe: _SmtpProbe) -> None:
        assert probe.smtp is not None
        self._probe = probe
        self.smtp: aiosmtplib.SMTP = probe.smtp
        self.details: Mapping[str, Any] = MappingProxyType(probe.state.details)

    def failure(self, exc: BaseException, step: str) -> CheckResult:
        """The ``smtp`` check's failing result for ``exc``, raised during ``step``."""
        self._probe.state.step = step
        return self._probe.translate(exc).result

    async def quit(self) -> None:
        """QUIT, politely and briefly; a server that will not is no failure."""
        await self._probe.quit()

    def close(self) -> None:
        """Close hard (after QUIT too: then it only releases the socket)."""
        self._probe.close()


class _SmtpProbe:
    def __init__(self, account: Account, options: CheckOptions, context: ssl.SSLContext) -> None:
        self.account = account
        self.options = options
        self.context = context
        self.host = account.smtp_host
        self.port = account.smtp_port
        secrets = [account.password.reveal()]
        if account.token is not None:
            token = account.token.reveal().get("access_token")
            if isinstance(token, str):
                secrets.append(token)
        self.state = ProbeState("smtp", tuple(s for s in secrets if s))
        self.smtp: aiosmtplib.SMTP | None = None
        self.mode: Mode = mode_for_port("smtp", self.port, options.smtp_security)
        self.spoke = "ssl" if self.mode == "ssl" else "plain"

    # --- results ---------------------------------------------------------------

    def stop(
        self, code: Code, message: str, hint: str | None = None, reply: str | None = None
    ) -> ProbeStop:
        hint = hint or hint_for(code, "smtp", self.host, self.port, spoke=self.spoke)
        return ProbeStop(self.state.fail(code, message, hint, reply))

    def timed_out(self) -> CheckResult:
        step = self.state.step
        if step in ("resolve", "connect"):
            code = Code.CONNECT_TIMEOUT if step == "connect" else Code.TIMEOUT
        elif step in ("greeting", "tls"):
            code = Code.GREETING_TIMEOUT
        else:
            code = Code.TIMEOUT
        return self.state.fail(
            code,
            f"no answer within the deadline (during {step})",
            hint_for(code, "smtp", self.host, self.port, spoke=self.spoke),
        )

    def close(self) -> None:
        """Close hard: after a timeout or confusion the session is never reused."""
        if self.smtp is None:
            return
        transport = self.smtp.transport
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()
        self.smtp.close()

    def translate(self, exc: BaseException) -> ProbeStop:
        """The one place where library exceptions become report codes."""
        tls_error = find_tls_error(exc)
        if tls_error is not None:
            code, message = classify_tls_error(tls_error)
            return self.stop(code, message)
        if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
            if "ready message" in str(exc):
                return self.stop(Code.GREETING_TIMEOUT, "connected, but the server never greeted")
            return self.stop(
                Code.GREETING_TIMEOUT, "connected, but the TLS handshake got no answer"
            )
        if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
            return self.stop(Code.TIMEOUT, f"the server did not answer in time ({self.state.step})")
        if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
            return self.stop(
                Code.PROTOCOL_ERROR,
                f"the server refused the session: {exc.code} {exc.message}",
                reply=f"{exc.code} {exc.message}",
            )
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
            return self.stop(
                Code.PROTOCOL_ERROR,
                f"the server closed the connection during {self.state.step}",
            )
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return self.stop(
                Code.PROTOCOL_ERROR,
                f"unexpected reply during {self.state.step}: {exc.code} {exc.message}",
                reply=f"{exc.code} {exc.message}",
            )
        if isinstance(exc, ConnectionError | OSError):
            return self.stop(
                Code.PROTOCOL_ERROR, f"connection lost during {self.state.step}: {exc}"
            )
        return self.stop(Code.PROTOCOL_ERROR, f"{self.state.step} failed: {exc}")

    # --- the steps ---------------------------------------------------------------

    async def run(self, host: asyncio.Future[HostLookup]) -> CheckResult:
        await self.open(host)
        await self.quit()
        details = self.state.details
        details.setdefault("tls_version", None)  # the contract's key, also in clear text
        security = details["security"]
        tls = f", {details['tls_version']}" if details.get("tls_version") else ""
        return self.state.passed(
            f"logged in with AUTH {details['auth_mechanism']} over {security}{tls}"
        )

    async def open(self, host: asyncio.Future[HostLookup]) -> None:
        """Resolve, connect, greeting, EHLO, STARTTLS as the mode says, one AUTH."""
        lookup = await host
        if lookup.code is not None:
            raise self.stop(lookup.code, lookup.message)
        self.state.details.update(host=self.host, port=self.port, address=None)
        try:
            await self.connect(lookup.addresses)
            await self.ehlo()
            if self.mode in ("starttls", "starttls?", "detect"):
                await self.starttls()
            mechanism = self.choose_mechanism()
            await self.authenticate(mechanism)
        except ProbeStop:
            raise
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise self.translate(exc) from None

    async def connect(self, addresses: tuple[str, ...]) -> None:
        timeouts = self.options.timeouts
        self.state.step = "connect"
        try:
            sock = await open_socket(addresses, self.port, timeouts.connect)
        except ConnectFailure as failure:
            raise self.stop(failure.code, failure.message) from None
        address = sock.getpeername()[0]
        self.state.details["address"] = address
        use_tls = self.mode == "ssl"
        self.state.step = "tls" if use_tls else "greeting"
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
            await self._connect_tls()
        else:
            await self._connect_plain(address)

    async def _connect_tls(self) -> None:
        assert self.smtp is not None
        try:
            response = await self.smtp.connect(timeout=self.options.timeouts.greeting)
        except aiosmtplib.SMTPException as exc:
            raise self.translate(exc) from None
        self.state.details["greeting"] = _greeting_line(response.message)
        self.state.details["security"] = "ssl"
        self._record_tls()

    async def _connect_plain(self, address: str) -> None:
        """Wait for the clear-text greeting; if it is late, see whether the port speaks TLS."""
        assert self.smtp is not None
        timeouts = self.options.timeouts
        greeting = asyncio.ensure_future(self.smtp.connect(timeout=timeouts.greeting))
        try:
            done, _ = await asyncio.wait({greeting}, timeout=timeouts.sniff_after)
            if not done and await self._speaks_tls(greeting, address):
                if self.mode == "detect":
                    await self._switch_to_tls(address)
                    return
                raise self.stop(
                    Code.TLS_MODE_MISMATCH,
                    f"port {self.port} speaks implicit TLS, but the account uses "
                    f"{'STARTTLS' if self.mode != 'plain' else 'plain text'}",
                )
            try:
                response = await greeting
            except aiosmtplib.SMTPException as exc:
                raise self.translate(exc) from None
        finally:
            # Whatever ended the wait, the greeting's outcome must not go unobserved.
            _discard(greeting)
        self.state.details["greeting"] = _greeting_line(response.message)
        self.state.details["security"] = "plain"

    async def _speaks_tls(self, greeting: asyncio.Future[Any], address: str) -> bool:
        """While the greeting is late, whether the port completes a TLS handshake."""
        sniff = asyncio.ensure_future(
            tls_answers(address, self.port, self.options.timeouts.greeting)
        )
        try:
            await asyncio.wait({greeting, sniff}, return_when=asyncio.FIRST_COMPLETED)
            return not greeting.done() and await sniff
        finally:
            _discard(sniff)

    async def _switch_to_tls(self, address: str) -> None:
        """A port of no fixed convention turned out to speak implicit TLS."""
        assert self.smtp is not None
        self.close()
        self.mode = "ssl"
        self.spoke = "ssl"
        self.state.details["security_detected"] = True
        await self.connect((address,))

    def _record_tls(self) -> None:
        assert self.smtp is not None
        assert self.smtp.transport is not None
        ssl_object = self.smtp.transport.get_extra_info("ssl_object")
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
            raise self.stop(
                Code.TLS_HANDSHAKE_FAILED,
                f"the server refused STARTTLS: {exc.code} {exc.message}",
                reply=f"{exc.code} {exc.message}",
            ) from None
        self.state.details["security"] = "starttls"
        self._record_tls()
        # The extensions offered before TLS are void after it (RFC 3207): ask again.
        self.state.step = "ehlo"
        await self.smtp.ehlo()

    def choose_mechanism(self) -> str:
        assert self.smtp is not None
        offered = [reportable(m.upper(), limit=SHORT_LIMIT) for m in self.smtp.server_auth_methods]
        self.state.details["auth_offered"] = offered
        encrypted = self.state.details.get("security") in ("ssl", "starttls")
        if not encrypted and not self.options.allow_plaintext_auth:
            raise self.stop(
                Code.AUTH_PLAINTEXT_REFUSED,
                "the connection is not encrypted; the credentials were not sent",
            )
        if not offered:
            raise self.stop(Code.AUTH_UNSUPPORTED, "the server offers no AUTH mechanism")
        has_token = self.account.token is not None and isinstance(
            self.account.token.reveal().get("access_token"), str
        )
        if has_token and "XOAUTH2" in offered:
            return "XOAUTH2"
        if self.account.password.reveal():
            for mechanism in ("PLAIN", "LOGIN"):
                if mechanism in offered:
                    return mechanism
        raise self.stop(
            Code.AUTH_UNSUPPORTED,
            f"none of the offered mechanisms ({', '.join(offered)}) can be used"
            + (" with an OAuth token" if has_token else ""),
        )

    async def authenticate(self, mechanism: str) -> None:
        assert self.smtp is not None
        self.state.step = "auth"
        self.state.details["auth_mechanism"] = mechanism
        if self.state.details.get("security") not in ("ssl", "starttls"):
            self.state.warnings.append("the credentials were sent in clear text")
        user = self.account.user_name
        try:
            if mechanism == "XOAUTH2":
                await self._xoauth2(user)
            elif mechanism == "PLAIN":
                await self.smtp.auth_plain(user, self.account.password.reveal())
            else:
                await self.smtp.auth_login(user, self.account.password.reveal())
        except aiosmtplib.SMTPAuthenticationError as exc:
            reply = f"{exc.code} {exc.message}"
            verdict = classify_login_refusal(
                reply, self.host, status=exc.code, secrets=self.state.secrets
            )
            raise self.stop(verdict.code, verdict.message, verdict.hint, reply=reply) from None

    async def _xoauth2(self, user: str) -> None:
        """XOAUTH2, keeping the server's error challenge for the report."""
        assert self.smtp is not None
        assert self.account.token is not None
        token = self.account.token.reveal()["access_token"]
        encoded = auth_xoauth2_encode(user, token)
        response = await self.smtp.execute_command(b"AUTH", b"XOAUTH2", encoded)
        if response.code == 334:
            # The challenge carries the error; answer it with an empty line (RFC 7628).
            challenge = decode_xoauth2_challenge(response.message)
            if challenge:
                self.state.details["oauth_error"] = challenge
            response = await self.smtp.execute_command(b"")
            reply = f"{response.code} {response.message}"
            raise self.stop(
                Code.AUTH_FAILED,
                f"the server refused the OAuth token: {reply}",
                XOAUTH2_HINT,
                reply=reply,
            )
        if response.code != 235:
            reply = f"{response.code} {response.message}"
            verdict = classify_login_refusal(
                reply, self.host, status=response.code, secrets=self.state.secrets
            )
            raise self.stop(verdict.code, verdict.message, verdict.hint, reply=reply)

    async def quit(self) -> None:
        """Say goodbye politely; a server that will not is not a failure of the account."""
        if self.smtp is None:
            return
        self.state.step = "quit"
        transport = self.smtp.transport
        try:
            async with asyncio.timeout(2):
                await self.smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            # aiosmtplib closes gracefully after the 221, which over TLS starts a
            # close_notify exchange that can outlive the event loop and leave the
            # socket to the garbage collector. QUIT has had its answer: close hard.
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()


def _discard(task: asyncio.Future[Any]) -> None:
    """Cancel a task whose outcome no longer matters, and swallow that outcome."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _greeting_line(text: Any) -> str | None:
    """The greeting's first line, as a report may show it (it may be anything)."""
    if not isinstance(text, str) or not text:
        return None
    return reportable(text.splitlines()[0], limit=SHORT_LIMIT)
