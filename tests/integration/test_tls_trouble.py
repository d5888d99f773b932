"""TLS that goes wrong in ways a certificate does not explain, and how sessions end.

Scripted servers on loopback (:class:`fixtures.hostile.TlsTrouble`) for SMTP and
IMAP, on implicit TLS and after STARTTLS: a server that sends an internal_error
alert, one that speaks only TLS 1.0, one that offers only a cipher preflight
refuses, one that advertises STARTTLS and then refuses it; and, for every session
that ends after the server answered, whether the server got QUIT or LOGOUT and a
TLS close_notify, without the report waiting for the server's goodbye.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import warnings
from pathlib import Path
from typing import Any

import pytest

from fixtures.certs import CertSet, make_certs
from fixtures.hostile import INTERNAL_ERROR_ALERT, MailProtocol, TlsTrouble
from preflight._resolver import HostLookup
from preflight._tls import make_context
from preflight.checks.imap import probe_imap
from preflight.checks.smtp import probe_smtp
from preflight.options import CheckOptions, Security
from preflight.payload import Account, parse_account
from preflight.report import CheckResult, Code, Status

pytestmark = pytest.mark.asyncio

HOST = "mail.preflight.test"
CANARY = "CANARY-tls-trouble-8c1"
PROTOCOLS: list[MailProtocol] = ["smtp", "imap"]
#: A TLS record holding a fatal handshake_failure alert (40), and unrecognized_name (112).
HANDSHAKE_FAILURE_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"
UNRECOGNIZED_NAME_ALERT = b"\x15\x03\x03\x00\x02\x02\x70"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(Path(tmp_path_factory.mktemp("tls-trouble-certs")))


def server_context(
    certs: CertSet,
    *,
    version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """The server's TLS: ``version`` only, and ``ciphers`` (TLS 1.2 at most) if given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server.cert, certs.server.key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0, on purpose
        if version is not None:
            context.set_ciphers("ALL:@SECLEVEL=0")
            context.minimum_version = version
            context.maximum_version = version
        if ciphers is not None:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers(ciphers)
    return context


def account(protocol: MailProtocol, port: int) -> Account:
    parsed = parse_account(
        {
            "from_name": "Test",
            "from_email": "alice@preflight.test",
            "user_name": "alice@preflight.test",
            "password": CANARY,
            "smtp_host": HOST,
            "smtp_port": port if protocol == "smtp" else 1,
            "imap_host": HOST,
            "imap_port": port if protocol == "imap" else 1,
            "warmup_enabled": False,
        }
    )
    assert parsed.account is not None, parsed.errors
    return parsed.account


async def probe(
    protocol: MailProtocol, server: TlsTrouble, certs: CertSet, starttls: bool, **option: Any
) -> CheckResult:
    """One check of ``server``; no secret in its report."""
    security: Security = "starttls" if starttls else "ssl"
    options = CheckOptions(
        ca_file=str(certs.ca_file), smtp_security=security, imap_security=security, **option
    )
    loop = asyncio.get_running_loop()
    lookup: asyncio.Future[HostLookup] = loop.create_future()
    lookup.set_result(HostLookup(HOST, ("127.0.0.1",)))
    check = probe_smtp if protocol == "smtp" else probe_imap
    result = await check(
        account(protocol, server.port),
        lookup,
        options,
        make_context(options.ca_file, options.insecure),
        loop.time() + 10,
    )
    assert CANARY not in json.dumps(result.to_dict())
    return result


both_paths = pytest.mark.parametrize("starttls", [False, True], ids=["implicit", "starttls"])
both_protocols = pytest.mark.parametrize("protocol", PROTOCOLS)


# --- what a failed handshake says --------------------------------------------------


@both_paths
@both_protocols
async def test_internal_error_alert_blames_the_provider(
    certs: CertSet, protocol: MailProtocol, starttls: bool
) -> None:
    """An internal_error alert is the server's own fault: named, and the hint says so."""
    async with TlsTrouble(protocol, starttls=starttls, alert=INTERNAL_ERROR_ALERT) as server:
        result = await probe(protocol, server, certs, starttls)
    assert result.code is Code.TLS_HANDSHAKE_FAILED, result
    assert result.message == "the server broke off the TLS handshake with an internal_error alert"
    assert result.details["tls_alert"] == "internal_error"
    assert result.details["step"] == ("starttls" if starttls else "tls")
    hint = result.hint or ""
    assert "fault on the provider's side" in hint
    assert "Retry later" in hint
    assert "old" not in hint  # no version or cipher is blamed
    assert "server_tls_version" not in result.details  # no second look: nothing to learn


@both_paths
@both_protocols
async def test_tls10_only_server_names_both_sides_versions(
    certs: CertSet, protocol: MailProtocol, starttls: bool
) -> None:
    """A TLS 1.0-only server: what preflight offered, and what the server speaks."""
    context = server_context(certs, version=ssl.TLSVersion.TLSv1)
    async with TlsTrouble(protocol, starttls=starttls, context=context) as server:
        result = await probe(protocol, server, certs, starttls)
    assert result.code is Code.TLS_HANDSHAKE_FAILED, result
    details = result.details
    assert details["tls_alert"] == "protocol_version"
    assert details["tls_versions_offered"] == ["TLSv1.2", "TLSv1.3"]
    assert details["server_tls_version"] == "TLSv1"
    assert result.message == (
        "no TLS version in common: preflight offers TLSv1.2 to TLSv1.3, the server speaks "
        "TLSv1 (the server sent a protocol_version alert)"
    )
    hint = result.hint or ""
    assert f"{HOST} speaks only TLSv1," in hint
    assert "it needs TLSv1.2 or later" in hint
    assert "must enable TLSv1.2" in hint


@both_paths
@both_protocols
async def test_weak_cipher_server_names_the_cipher(
    certs: CertSet, protocol: MailProtocol, starttls: bool
) -> None:
    """A TLS 1.2 server with only a SHA-1 cipher: not the version, the cipher is to blame."""
    context = server_context(certs, ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA")
    async with TlsTrouble(protocol, starttls=starttls, context=context) as server:
        result = await probe(protocol, server, certs, starttls)
    assert result.code is Code.TLS_HANDSHAKE_FAILED, result
    details = result.details
    assert details["tls_alert"] == "handshake_failure"
    assert details["server_tls_version"] == "TLSv1.2"
    assert details["server_cipher"] in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA")
    assert result.message.startswith("no cipher in common: the server speaks TLSv1.2")
    hint = result.hint or ""
    assert f"it chose {details['server_cipher']}" in hint
    assert "current ciphers" in hint
    assert "speaks only" not in hint  # the version is fine


@both_protocols
async def test_nothing_in_common_even_on_a_second_look(
    certs: CertSet, protocol: MailProtocol
) -> None:
    """A server that refuses every handshake: the hint says the second look failed too."""
    async with TlsTrouble(protocol, alert=HANDSHAKE_FAILURE_ALERT) as server:
        result = await probe(protocol, server, certs, starttls=False)
    assert result.code is Code.TLS_HANDSHAKE_FAILED, result
    assert result.details["tls_alert"] == "handshake_failure"
    assert "server_tls_version" not in result.details
    assert result.message == (
        "no TLS version or cipher in common with the server: preflight offers TLSv1.2 to "
        "TLSv1.3 (the server sent a handshake_failure alert)"
    )
    assert "did not complete either" in (result.hint or "")
    assert server.tls_ends == ["failed", "failed"]  # the check's handshake, the second look


@both_protocols
async def test_refusal_that_versions_do_not_explain(certs: CertSet, protocol: MailProtocol) -> None:
    """handshake_failure, yet the second look completes with a modern version and
    cipher: neither the version nor the cipher is blamed."""
    context = server_context(certs)
    async with TlsTrouble(
        protocol, alert=HANDSHAKE_FAILURE_ALERT, alert_once=True, context=context
    ) as server:
        result = await probe(protocol, server, certs, starttls=False)
    assert result.code is Code.TLS_HANDSHAKE_FAILED, result
    assert result.details["server_tls_version"] == "TLSv1.3"
    assert "yet completed a second one" in result.message
    hint = result.hint or ""
    assert "not the TLS version or cipher" in hint
    assert "weak" not in hint
    assert "speaks only" not in hint


@both_protocols
async def test_other_alert_is_named(certs: CertSet, protocol: MailProtocol) -> None:
    """Any other alert is named as it is, with what it means when that is known."""
    async with TlsTrouble(protocol, alert=UNRECOGNIZED_NAME_ALERT) as server:
        result = await probe(protocol, server, certs, starttls=False)
    assert result.code is Code.TLS_HANDSHAKE_FAILED, result
    assert result.details["tls_alert"] == "unrecognized_name"
    assert result.message == "the server broke off the TLS handshake with a unrecognized_name alert"
    assert "does not know the host name" in (result.hint or "")
    assert server.tls_ends == ["failed"]  # no second look: versions are not the question


# --- STARTTLS advertised, then refused -----------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "reply", "words"),
    [
        ("smtp", b"454 4.7.0 TLS not available due to temporary reason", "temporary"),
        ("smtp", b"540 5.7.0 TLS not available", "not set up or not working"),
        ("imap", b"NO [UNAVAILABLE] TLS not available", "not set up or not working"),
        ("imap", b"BAD STARTTLS not supported here", "not set up or not working"),
    ],
)
async def test_starttls_refused_after_being_advertised(
    certs: CertSet, protocol: MailProtocol, reply: bytes, words: str
) -> None:
    """Not a handshake failure: starttls_unsupported, the reply, a fitting hint; QUIT."""
    async with TlsTrouble(protocol, starttls_reply=reply) as server:
        result = await probe(protocol, server, certs, starttls=True)
        await asyncio.wait_for(server.ended.wait(), 5)
    assert result.code is Code.STARTTLS_UNSUPPORTED, result
    assert result.message == (
        f"the server advertised STARTTLS on port {server.port}, then refused it: {reply.decode()}"
    )
    assert result.details["reply"] == reply.decode()
    hint = result.hint or ""
    assert words in hint
    assert ("465" if protocol == "smtp" else "993") in hint
    assert "does not offer STARTTLS" not in hint
    goodbye = b"QUIT" if protocol == "smtp" else b"LOGOUT"
    assert any(line.upper().endswith(goodbye) for line in server.received), server.received


async def test_starttls_refusal_is_scrubbed(certs: CertSet) -> None:
    """A refusal that echoes the password is shown masked, like any reply."""
    reply = f"454 4.7.0 not now for {CANARY}".encode()
    async with TlsTrouble("smtp", starttls_reply=reply) as server:
        result = await probe("smtp", server, certs, starttls=True)
    assert result.code is Code.STARTTLS_UNSUPPORTED
    assert result.details["reply"].startswith("454 4.7.0 not now for ")


# --- how sessions end ---------------------------------------------------------------


@both_paths
@both_protocols
@pytest.mark.parametrize("login_ok", [False, True], ids=["refused", "accepted"])
async def test_session_ends_with_goodbye_and_close_notify(
    certs: CertSet, protocol: MailProtocol, starttls: bool, login_ok: bool
) -> None:
    """After a refused login as after a good one: QUIT/LOGOUT, then a TLS close_notify."""
    context = server_context(certs)
    async with TlsTrouble(
        protocol, starttls=starttls, context=context, login_ok=login_ok
    ) as server:
        result = await probe(protocol, server, certs, starttls)
        await asyncio.wait_for(server.ended.wait(), 5)
    if login_ok:
        assert result.status is Status.PASS, result
    else:
        assert result.code is Code.AUTH_FAILED, result
    goodbye = b"QUIT" if protocol == "smtp" else b"LOGOUT"
    assert server.received[-1].upper().endswith(goodbye), server.received
    assert server.tls_ends == ["close_notify"]


@both_protocols
async def test_a_goodbye_never_answered_does_not_hold_the_report(
    certs: CertSet, protocol: MailProtocol
) -> None:
    """A server that never answers QUIT/LOGOUT (nor closes): the report does not wait."""
    context = server_context(certs)
    async with TlsTrouble(protocol, context=context, login_ok=True, answer_goodbye=False) as server:
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await probe(protocol, server, certs, starttls=False)
        took = loop.time() - started
        await asyncio.wait_for(server.ended.wait(), 5)
    assert result.status is Status.PASS, result
    assert took < 5  # well within the 10 s deadline (a benchmark measures speed)
    goodbye = b"QUIT" if protocol == "smtp" else b"LOGOUT"
    assert server.received[-1].upper().endswith(goodbye), server.received
    assert server.tls_ends == ["close_notify"]


@both_protocols
async def test_failed_handshake_closes_hard(certs: CertSet, protocol: MailProtocol) -> None:
    """After a failed handshake nothing more is said: no goodbye in clear text."""
    async with TlsTrouble(protocol, starttls=True, alert=INTERNAL_ERROR_ALERT) as server:
        await probe(protocol, server, certs, starttls=True)
        await asyncio.wait_for(server.ended.wait(), 5)
    assert not [line for line in server.received if b"QUIT" in line or b"LOGOUT" in line]
