"""The life cycle the ``smtp`` and ``imap`` checks share, in one place.

Both walk the same road: resolve, connect, maybe TLS, greeting, maybe STARTTLS, one
login, goodbye; and fail on it in the same ways. :class:`Probe` owns that road: the
security mode, the TCP connection, the late-greeting TLS sniff (a mode mix-up), the
TLS record and its warnings, the translation of TLS failures and lost connections
into codes, the clear-text guard, the single login attempt and its refusal, the
deadline and the hard close. A subclass adds only what its protocol says: commands,
reply parsing, capability names (:mod:`preflight.checks.smtp`,
:mod:`preflight.checks.imap`). :class:`Session` is what both hand to a caller with
more to say after the login (the ``roundtrip`` check).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

from preflight._net import (
    ConnectFailure,
    Mode,
    ProbeState,
    ProbeStop,
    bounded,
    mode_for_port,
    offers_starttls,
    open_socket,
    presented_certificate,
    reportable_details,
    server_tls,
    tls_answers,
)
from preflight._resolver import HostLookup
from preflight._tls import (
    classify_tls_error,
    describe_der,
    describe_session,
    expiry_warning,
    find_cause,
    handshake_failure,
    offered_versions,
)
from preflight.checks._hints import (
    handshake_failure_text,
    hint_for,
    starttls_broken_hint,
    user_name_hint,
)
from preflight.checks._replies import XOAUTH2_HINT, classify_login_refusal, decode_xoauth2_challenge
from preflight.options import CheckOptions, Security
from preflight.payload import Account
from preflight.report import CheckResult, Code
from preflight.secret import Secret

__all__ = ["STARTTLS_MODES", "Probe", "Session"]

T = TypeVar("T")

#: The modes that look for STARTTLS after the clear-text greeting.
STARTTLS_MODES: tuple[Mode, ...] = ("starttls", "starttls?", "detect")
#: The second look at a certificate that failed verification is this short at most.
_CERT_FETCH_TIMEOUT = 2.0
#: The failures whose report carries the presented certificate (``details.certificate``).
_CERT_CODES = (Code.TLS_HOSTNAME_MISMATCH, Code.TLS_UNTRUSTED, Code.TLS_EXPIRED)


_TLS_ONLY_HINT = (
    "The connection is not encrypted, so the password was not sent, and this server offers "
    "no login before TLS anyway: use a TLS port (SMTP 465 or 587 with STARTTLS, IMAP 993 or "
    "143 with STARTTLS)."
)


class Probe:
    """One check of one server: the steps and results both protocols share."""

    #: "smtp" or "imap": the check's name, the hints' protocol, the port table.
    protocol: ClassVar[str]
    #: What the protocol's client raises; :meth:`translate` turns these into codes.
    errors: ClassVar[tuple[type[BaseException], ...]]
    #: Keys a passing report always has, in this order, None until known.
    preset: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        account: Account,
        options: CheckOptions,
        context: ssl.SSLContext,
        *,
        host: str,
        port: int,
        security: Security | None,
        user: str,
        password: Secret[str],
    ) -> None:
        self.account = account
        self.options = options
        self.context = context
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.token = account.access_token
        secrets = (password.reveal(), self.token or "")
        self.state = ProbeState(self.protocol, tuple(s for s in secrets if s))
        self.mode: Mode = mode_for_port(self.protocol, port, security)
        #: What was spoken when a mode mismatch shows: the hint tells the other.
        self.spoke = "ssl" if self.mode == "ssl" else "plain"
        #: The loop time the check must end by (set by :meth:`check`, :meth:`open_within`).
        self.deadline: float | None = None
        #: Whether the session may end politely (goodbye, close_notify, FIN) rather than
        #: hard: set by a stop at which the protocol is in a sane state (a refused login,
        #: a missing mechanism...), and by the goodbye after success. See :meth:`close`.
        self.polite = False
        #: Whether a second handshake looked at the TLS versions the server speaks.
        self.server_tls_looked = False

    # --- what a protocol adds ------------------------------------------------------

    async def session(self, addresses: tuple[str, ...]) -> None:
        """Connect to one of ``addresses`` and log in (or stop)."""
        raise NotImplementedError

    async def after_login(self) -> None:
        """What the check proves after the login, before the goodbye."""

    async def goodbye(self) -> None:
        """QUIT or LOGOUT after success, and close, without waiting for the server's
        answer: the report never depends on it (see :meth:`close`)."""
        self.polite = True
        self.close()

    def summary(self) -> str:
        """The message of a passing check."""
        raise NotImplementedError

    def close(self) -> None:
        """End the session: politely when :attr:`polite` (the protocol's goodbye, then
        TLS close_notify and FIN, without waiting for any answer), else hard (after a
        timeout or confusion). The session is never reused; closing twice is harmless."""
        raise NotImplementedError

    def translate_protocol(self, exc: BaseException) -> ProbeStop | None:
        """The protocol's own reading of ``exc``; None leaves it to :meth:`translate`."""
        return None

    # --- results -------------------------------------------------------------------

    def stop(
        self,
        code: Code,
        message: str,
        hint: str | None = None,
        reply: str | None = None,
        *,
        polite: bool = False,
    ) -> ProbeStop:
        """The failing result ``code``, as an exception that ends the probe. ``polite``:
        the session is in a sane state (the server has answered, nothing is half-sent),
        so it ends with the protocol's goodbye rather than a hard close."""
        self.polite = polite
        certificate = self.state.details.get("certificate")
        names = certificate.get("san", []) if isinstance(certificate, dict) else []
        hint = hint or hint_for(
            code,
            self.protocol,
            self.host,
            self.port,
            spoke=self.spoke,
            names=names,
            starttls=self.state.details.get("starttls_offered"),
        )
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
            hint_for(code, self.protocol, self.host, self.port, spoke=self.spoke),
        )

    def translate(self, exc: BaseException) -> ProbeStop:
        """The one place where library exceptions become report codes: a TLS failure
        the same for both protocols, then the protocol's own, then what is left."""
        step = self.state.step
        tls_error = find_cause(exc, ssl.SSLError)
        if tls_error is not None:
            code, message = classify_tls_error(tls_error)
            if code is Code.TLS_MODE_MISMATCH and step == "starttls":
                # STARTTLS was accepted, then clear text came instead of TLS (Courier-IMAP
                # whose couriertls fails: "NO STARTTLS failed: 500 Error starting
                # couriertls."): the port and mode are right, the server's TLS is not.
                return self.stop(
                    Code.STARTTLS_UNSUPPORTED,
                    f"the server accepted STARTTLS on port {self.port}, then answered in "
                    "clear text instead of starting TLS",
                    starttls_broken_hint(self.protocol),
                )
            if code is Code.TLS_HANDSHAKE_FAILED:
                return self.stop(code, *self._handshake_failure_text(tls_error))
            return self.stop(code, message)
        specific = self.translate_protocol(exc)
        if specific is not None:
            return specific
        if isinstance(exc, TimeoutError):
            return self.stop(Code.TIMEOUT, f"the server did not answer in time ({step})")
        if isinstance(exc, OSError):
            return self.stop(Code.PROTOCOL_ERROR, f"connection lost during {step}: {exc}")
        return self.stop(Code.PROTOCOL_ERROR, f"{step} failed: {exc}")

    def _handshake_failure_text(self, tls_error: ssl.SSLError) -> tuple[str, str]:
        """Message and hint of a ``tls_handshake_failed``: the server's alert, the
        versions offered, and what the server speaks when a second look learnt it."""
        facts = handshake_failure(tls_error)
        step = self.state.step
        if step not in ("tls", "starttls"):  # a TLS session that failed after its handshake
            said = f"a {facts.alert} alert" if facts.alert else facts.reason or str(tls_error)
            return (
                f"TLS failed during {step}: {said}",
                hint_for(Code.TLS_HANDSHAKE_FAILED, self.protocol, self.host, self.port),
            )
        details = self.state.details
        version = details.get("server_tls_version")
        cipher = details.get("server_cipher")
        return handshake_failure_text(
            alert=facts.alert,
            reason=facts.reason,
            mismatch=facts.mismatch,
            offered=offered_versions(self.context),
            server_version=version if isinstance(version, str) else None,
            server_cipher=cipher if isinstance(cipher, str) else None,
            looked=self.server_tls_looked,
            host=self.host,
            protocol=self.protocol,
            cipher_refused=cipher not in {c["name"] for c in self.context.get_ciphers()},
        )

    def over(self) -> str:
        """'over ssl, TLSv1.3' for the passing message."""
        details = self.state.details
        tls = f", {details['tls_version']}" if details.get("tls_version") else ""
        return f"over {details['security']}{tls}"

    # --- the life cycle --------------------------------------------------------------

    async def check(self, host: asyncio.Future[HostLookup], deadline: float) -> CheckResult:
        """The whole check before the loop time ``deadline``; closed afterwards."""
        self.deadline = deadline
        return await bounded(self, self.run(host), deadline)

    async def open_within(
        self, host: asyncio.Future[HostLookup], deadline: float
    ) -> CheckResult | None:
        """Log in before ``deadline`` and keep the session open; or the failing result."""
        self.deadline = deadline
        failed = await bounded(self, self.open(host), deadline, keep_open=True)
        return failed if isinstance(failed, CheckResult) else None

    async def run(self, host: asyncio.Future[HostLookup]) -> CheckResult:
        await self.open(host)
        await self.guarded(self.after_login())
        await self.goodbye()
        return self.state.passed(self.summary())

    async def open(self, host: asyncio.Future[HostLookup]) -> None:
        """Resolve, then the protocol's session up to a passed login."""
        lookup = await host
        if lookup.code is not None:
            raise self.stop(lookup.code, lookup.message)
        self.state.details.update(host=self.host, port=self.port, address=None)
        self.state.details.update(dict.fromkeys(self.preset))
        await self.guarded(self.session(lookup.addresses))

    async def guarded(self, work: Awaitable[T]) -> T:
        """``work``, with what the protocol's client raises translated into a stop."""
        try:
            return await work
        except ProbeStop:
            raise
        except self.errors as exc:
            await self.note_presented_certificate(exc)
            await self.note_starttls_offer(exc)
            await self.note_server_tls(exc)
            raise self.translate(exc) from None

    def _second_look_timeout(self) -> float:
        """A second, short connection's time: at most 2 s, never beyond the deadline."""
        timeout = _CERT_FETCH_TIMEOUT
        if self.deadline is not None:
            remaining = self.deadline - asyncio.get_running_loop().time() - 0.1
            timeout = min(timeout, remaining)
        return timeout

    async def note_starttls_offer(self, exc: BaseException) -> None:
        """Implicit TLS met clear text: whether that server offers STARTTLS
        (``details.starttls_offered``), seen on a second, short connection, so that the
        hint recommends STARTTLS only where it would work."""
        tls_error = find_cause(exc, ssl.SSLError)
        address = self.state.details.get("address")
        if tls_error is None or self.spoke != "ssl" or not isinstance(address, str):
            return
        if (
            self.state.step != "tls"
            or classify_tls_error(tls_error)[0] is not Code.TLS_MODE_MISMATCH
        ):
            return
        timeout = self._second_look_timeout()
        offered = await offers_starttls(address, self.port, self.protocol, timeout)
        if offered is not None:
            self.state.details["starttls_offered"] = offered

    async def note_server_tls(self, exc: BaseException) -> None:
        """After a handshake failure that is not about the certificate: the server's
        alert (``details.tls_alert``), the versions preflight offered
        (``details.tls_versions_offered``) and, when they found nothing in common, what
        the server speaks (``details.server_tls_version``, ``details.server_cipher``),
        learnt on a second, short handshake that allows TLS 1.0-1.3 and every cipher."""
        tls_error = find_cause(exc, ssl.SSLError)
        if tls_error is None or self.state.step not in ("tls", "starttls"):
            return
        if classify_tls_error(tls_error)[0] is not Code.TLS_HANDSHAKE_FAILED:
            return
        facts = handshake_failure(tls_error)
        details = self.state.details
        if facts.alert is not None:
            details["tls_alert"] = facts.alert
        details["tls_versions_offered"] = list(offered_versions(self.context))
        address = details.get("address")
        if not facts.mismatch or not isinstance(address, str):
            return
        timeout = self._second_look_timeout()
        if timeout <= 0:
            return
        self.server_tls_looked = True
        starttls = self.state.step == "starttls"
        spoken = await server_tls(address, self.port, self.protocol, starttls, timeout)
        if spoken is not None:
            details["server_tls_version"], details["server_cipher"] = spoken

    async def note_presented_certificate(self, exc: BaseException) -> None:
        """After a failed certificate verification, put the certificate the server
        presents in ``details.certificate``: a second, short connection with
        verification off, within the deadline (ssl keeps no certificate of a failed
        handshake). Its names let the hint say which host name to use."""
        tls_error = find_cause(exc, ssl.SSLCertVerificationError)
        address = self.state.details.get("address")
        if tls_error is None or not isinstance(address, str) or self.state.step == "connect":
            return
        if classify_tls_error(tls_error)[0] not in _CERT_CODES:
            return
        timeout = self._second_look_timeout()
        starttls = self.state.step == "starttls"
        der = await presented_certificate(address, self.port, self.protocol, starttls, timeout)
        described = describe_der(der) if der else None
        if described is not None:
            self.state.details["certificate"] = described

    async def connect_socket(self, addresses: tuple[str, ...]) -> tuple[socket.socket, str]:
        """A TCP connection to the first address that answers, and that address."""
        self.state.step = "connect"
        try:
            sock = await open_socket(
                addresses, self.port, self.options.timeouts.connect, self.protocol
            )
        except ConnectFailure as failure:
            raise self.stop(failure.code, failure.message) from None
        try:
            address: str = sock.getpeername()[0]
        except BaseException:
            sock.close()
            raise
        self.state.details["address"] = address
        self.state.step = "tls" if self.mode == "ssl" else "greeting"
        return sock, address

    async def plain_greeting(self, greeting: asyncio.Future[T], address: str) -> T | None:
        """The clear-text ``greeting``; if it is late, see whether the port speaks TLS.

        A port that completes a TLS handshake while the greeting is late is an
        implicit-TLS port spoken to in clear text: a mode mismatch, or (mode "detect")
        None, and the caller reconnects with TLS after :meth:`switch_to_tls`.
        """
        timeouts = self.options.timeouts
        try:
            done, _ = await asyncio.wait({greeting}, timeout=timeouts.sniff_after)
            if not done:
                sniff = asyncio.ensure_future(tls_answers(address, self.port, timeouts.greeting))
                try:
                    either: set[asyncio.Future[Any]] = {greeting, sniff}
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                    if not greeting.done() and await sniff:
                        if self.mode == "detect":
                            return None
                        raise self.stop(
                            Code.TLS_MODE_MISMATCH,
                            f"port {self.port} speaks implicit TLS, but the account uses "
                            f"{'STARTTLS' if self.mode != 'plain' else 'plain text'}",
                        )
                finally:
                    await _cancel(sniff)  # its socket is closed before we go on
            return await greeting
        finally:
            await _cancel(greeting)

    def switch_to_tls(self) -> None:
        """A port of no fixed convention turned out to speak implicit TLS."""
        self.close()
        self.mode = "ssl"
        self.spoke = "ssl"
        self.state.details["security_detected"] = True

    def record_tls(self, security: str, transport: asyncio.BaseTransport) -> None:
        """Note the TLS session (version, cipher, certificate) and its warnings."""
        self.state.details["security"] = security
        info = describe_session(transport.get_extra_info("ssl_object"))
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

    @property
    def encrypted(self) -> bool:
        return self.state.details.get("security") in ("ssl", "starttls")

    def refuse_plaintext(self, *, flag_helps: bool = True) -> None:
        """Stop before credentials would cross an unencrypted connection, unless allowed.

        ``flag_helps`` is False when the server has shown that a clear-text login cannot
        work anyway: then the hint does not suggest ``--allow-plaintext-auth``.
        """
        if not self.encrypted and not self.options.allow_plaintext_auth:
            raise self.stop(
                Code.AUTH_PLAINTEXT_REFUSED,
                "the connection is not encrypted; the credentials were not sent",
                None if flag_helps else _TLS_ONLY_HINT,
                polite=True,
            )

    def begin_login(self, step: str, mechanism: str) -> None:
        """The one login attempt starts: several with a wrong password lock accounts."""
        self.state.step = step
        self.state.details["auth_mechanism"] = mechanism
        if not self.encrypted:
            self.state.warnings.append("the credentials were sent in clear text")

    def refused(self, reply: str, status: int | None = None, *, polite: bool = True) -> ProbeStop:
        """A refused login, classified on the reply's meaning (app password, ...).
        ``polite``: the session can still say goodbye (not after the server's ``BYE``)."""
        verdict = classify_login_refusal(
            reply, self.host, status=status, secrets=self.state.secrets
        )
        hint = verdict.hint
        if verdict.code is Code.AUTH_FAILED:  # discover/ISPDB: a local-part provider
            hint = user_name_hint(self.protocol, self.host, self.user, hint)
        return self.stop(verdict.code, verdict.message, hint, reply=reply, polite=polite)

    def note_oauth_error(self, challenge: str) -> None:
        """Keep the error a server's XOAUTH2 challenge carries (base64 JSON)."""
        decoded = decode_xoauth2_challenge(challenge)
        if decoded:
            self.state.details["oauth_error"] = decoded

    def oauth_refused(self, reply: str) -> ProbeStop:
        return self.stop(
            Code.AUTH_FAILED,
            f"the server refused the OAuth token: {reply}",
            XOAUTH2_HINT,
            reply=reply,
            polite=True,
        )


class Session:
    """An authenticated session a probe hands to a caller (who closes it).

    ``details`` is what the check reports about the connection (address, security,
    tls_version, auth_mechanism, ...). After an exception or a timeout, :meth:`close`;
    never reuse.
    """

    def __init__(self, probe: Probe) -> None:
        self._probe = probe
        self.details: Mapping[str, Any] = MappingProxyType(probe.state.details)

    def failure(self, exc: BaseException, step: str) -> CheckResult:
        """The check's failing result for ``exc``, raised during ``step``."""
        self._probe.state.step = step
        return self._probe.translate(exc).result

    def close(self) -> None:
        """Close hard (after the goodbye too: then it only releases the connection)."""
        self._probe.close()


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel a task whose outcome no longer matters, swallow that outcome, and wait
    for it to end (a socket it holds is closed when this returns)."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    await asyncio.wait({task})
