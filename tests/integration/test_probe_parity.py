"""The SMTP and IMAP probes fail alike where their road is the same (preflight/checks/_probe.py).

Each case gives both probes the same bad certificate, on implicit TLS and after
STARTTLS, from small stub servers on loopback; the two reports must carry the same
code, message and hint (the hint's protocol words aside). A copy of the TLS
translation drifting in one probe fails here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from fixtures.certs import WRONG_HOST, CertFiles, CertSet, make_certs
from fixtures.hostile import INTERNAL_ERROR_ALERT, TlsTrouble
from preflight._resolver import HostLookup
from preflight._tls import make_context
from preflight.checks.imap import probe_imap
from preflight.checks.smtp import probe_smtp
from preflight.options import CheckOptions, Security
from preflight.payload import Account, parse_account
from preflight.report import CheckResult, Code

pytestmark = pytest.mark.asyncio

HOST = "mail.preflight.test"  # a name every test certificate but wrong_host carries
CASES = [
    ("expired", Code.TLS_EXPIRED),
    ("not_yet_valid", Code.TLS_EXPIRED),
    ("wrong_host", Code.TLS_HOSTNAME_MISMATCH),
    ("untrusted", Code.TLS_UNTRUSTED),
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(Path(tmp_path_factory.mktemp("parity-certs")))


def server_context(files: CertFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    return context


async def smtp_starttls(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext
) -> None:
    writer.write(b"220 stub ESMTP\r\n")
    await reader.readline()  # EHLO
    writer.write(b"250-stub\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n")
    await reader.readline()  # STARTTLS
    writer.write(b"220 go ahead\r\n")
    await writer.drain()
    await writer.start_tls(context)


async def imap_starttls(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext
) -> None:
    writer.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] stub\r\n")
    tag = (await reader.readline()).split(b" ")[0]  # STARTTLS
    writer.write(tag + b" OK begin TLS\r\n")
    await writer.drain()
    await writer.start_tls(context)


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, ssl.SSLContext], Any]


@contextlib.asynccontextmanager
async def stub(context: ssl.SSLContext, script: Script | None) -> AsyncIterator[int]:
    """A loopback server: implicit TLS (``script`` None) or the STARTTLS ``script``."""

    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            with contextlib.suppress(Exception):
                if script is not None:
                    await script(reader, writer, context)
                await reader.read()
        finally:
            writer.close()

    server = await asyncio.start_server(
        handle, "127.0.0.1", 0, ssl=context if script is None else None
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in handlers:  # no connection outlives the test (its loop)
            task.cancel()
        if handlers:
            await asyncio.wait(handlers)


def account(smtp_port: int, imap_port: int) -> Account:
    parsed = parse_account(
        {
            "from_name": "Test",
            "from_email": "alice@preflight.test",
            "user_name": "alice@preflight.test",
            "password": "CANARY-parity-4f7",
            "smtp_host": HOST,
            "smtp_port": smtp_port,
            "imap_host": HOST,
            "imap_port": imap_port,
            "warmup_enabled": False,
        }
    )
    assert parsed.account is not None, parsed.errors
    return parsed.account


async def both(account: Account, options: CheckOptions) -> tuple[CheckResult, CheckResult]:
    loop = asyncio.get_running_loop()
    lookup: asyncio.Future[HostLookup] = loop.create_future()
    lookup.set_result(HostLookup(HOST, ("127.0.0.1",)))
    context = make_context(options.ca_file, options.insecure)
    deadline = loop.time() + 10
    smtp = await probe_smtp(account, lookup, options, context, deadline)
    imap = await probe_imap(account, lookup, options, context, deadline)
    return smtp, imap


def same_words(hint: str | None, protocol: str) -> str:
    """The hint with its protocol's words made neutral."""
    return (hint or "").replace(protocol.upper(), "PROTO").replace(protocol, "proto")


@pytest.mark.parametrize(("starttls"), [False, True], ids=["implicit", "starttls"])
@pytest.mark.parametrize(("key", "code"), CASES)
async def test_tls_failure_is_reported_alike(
    certs: CertSet, key: str, code: Code, starttls: bool
) -> None:
    """One bad certificate gives SMTP and IMAP the same code, message and hint."""
    context = server_context(getattr(certs, key))
    smtp_script = smtp_starttls if starttls else None
    imap_script = imap_starttls if starttls else None
    security: Security = "starttls" if starttls else "ssl"
    options = CheckOptions(
        ca_file=str(certs.ca_file), smtp_security=security, imap_security=security
    )
    async with stub(context, smtp_script) as smtp_port, stub(context, imap_script) as imap_port:
        smtp, imap = await both(account(smtp_port, imap_port), options)
    assert smtp.code is code, smtp
    assert imap.code is code, imap
    assert smtp.message == imap.message
    assert same_words(smtp.hint, "smtp") == same_words(imap.hint, "imap")
    assert smtp.details["step"] == imap.details["step"] == ("starttls" if starttls else "tls")


#: What each bad certificate presents: its SANs and its issuer's organisation.
PRESENTED = {
    "expired": ("mail.preflight.test", "preflight test CA"),
    "not_yet_valid": ("mail.preflight.test", "preflight test CA"),
    "wrong_host": (WRONG_HOST, "preflight test CA"),
    "untrusted": ("mail.preflight.test", "preflight untrusted CA"),
}


@pytest.mark.parametrize(("starttls"), [False, True], ids=["implicit", "starttls"])
@pytest.mark.parametrize(("key", "code"), CASES)
async def test_failed_certificate_is_described_alike(
    certs: CertSet, key: str, code: Code, starttls: bool
) -> None:
    """A certificate that fails verification is in both reports' details.certificate."""
    context = server_context(getattr(certs, key))
    smtp_script = smtp_starttls if starttls else None
    imap_script = imap_starttls if starttls else None
    security: Security = "starttls" if starttls else "ssl"
    options = CheckOptions(
        ca_file=str(certs.ca_file), smtp_security=security, imap_security=security
    )
    async with stub(context, smtp_script) as smtp_port, stub(context, imap_script) as imap_port:
        smtp, imap = await both(account(smtp_port, imap_port), options)
    name, issuer = PRESENTED[key]
    for result in (smtp, imap):
        assert result.code is code, result
        certificate = result.details["certificate"]
        assert set(certificate) == {"subject", "san", "issuer", "not_before", "not_after"}
        assert name in certificate["san"], certificate
        assert issuer in certificate["issuer"], certificate
        assert certificate["not_before"] < certificate["not_after"]
    assert smtp.details["certificate"] == imap.details["certificate"]


@pytest.mark.parametrize(("starttls"), [False, True], ids=["implicit", "starttls"])
async def test_hostname_mismatch_hint_names_the_san(certs: CertSet, starttls: bool) -> None:
    """tls_hostname_mismatch's hint names the certificate's SAN as the host to use."""
    context = server_context(certs.wrong_host)
    security: Security = "starttls" if starttls else "ssl"
    options = CheckOptions(
        ca_file=str(certs.ca_file), smtp_security=security, imap_security=security
    )
    smtp_script = smtp_starttls if starttls else None
    imap_script = imap_starttls if starttls else None
    async with stub(context, smtp_script) as smtp_port, stub(context, imap_script) as imap_port:
        smtp, imap = await both(account(smtp_port, imap_port), options)
    assert smtp.hint is not None
    assert imap.hint is not None
    assert f"it is for {WRONG_HOST}: use that as smtp_host" in smtp.hint
    assert f"it is for {WRONG_HOST}: use that as imap_host" in imap.hint


def plain_smtp(starttls: bool) -> Script:
    """A clear-text SMTP server that offers STARTTLS or not (and never does it)."""

    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: ssl.SSLContext
    ) -> None:
        writer.write(b"220 stub ESMTP\r\n")
        while line := await reader.readline():
            if line.upper().startswith(b"EHLO"):
                offer = b"250-STARTTLS\r\n" if starttls else b""
                writer.write(b"250-stub\r\n" + offer + b"250 AUTH PLAIN\r\n")
            else:
                writer.write(b"502 no\r\n")
            await writer.drain()

    return script


def plain_imap(starttls: bool) -> Script:
    """A clear-text IMAP server that offers STARTTLS or not (and never does it)."""

    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: ssl.SSLContext
    ) -> None:
        writer.write(b"* OK stub ready\r\n")
        while line := await reader.readline():
            tag = line.split(b" ")[0]
            if b"CAPABILITY" in line.upper():
                offer = b" STARTTLS" if starttls else b""
                writer.write(b"* CAPABILITY IMAP4rev1" + offer + b" AUTH=PLAIN\r\n")
                writer.write(tag + b" OK done\r\n")
            else:
                writer.write(tag + b" BAD no\r\n")
            await writer.drain()

    return script


@pytest.mark.parametrize("offered", [False, True], ids=["no-starttls", "starttls"])
async def test_tls_to_clear_text_port_hint_matches_starttls_offer(
    certs: CertSet, offered: bool
) -> None:
    """Implicit TLS met by clear text recommends STARTTLS only when the server offers it."""
    context = server_context(certs.server)  # unused: the stubs speak clear text only
    options = CheckOptions(ca_file=str(certs.ca_file), smtp_security="ssl", imap_security="ssl")
    async with (
        stub(context, plain_smtp(offered)) as smtp_port,
        stub(context, plain_imap(offered)) as imap_port,
    ):
        smtp, imap = await both(account(smtp_port, imap_port), options)
    for result in (smtp, imap):
        assert result.code is Code.TLS_MODE_MISMATCH, result
        assert result.details["starttls_offered"] is offered, result
        assert ("use STARTTLS on it" in (result.hint or "")) is offered, result.hint
        assert ("offers no STARTTLS" in (result.hint or "")) is not offered, result.hint


async def test_certificate_second_look_is_bounded(certs: CertSet) -> None:
    """A server silent on the second look costs at most 2 s, and no certificate is made up."""
    context = server_context(certs.wrong_host)
    connections = 0

    async def first_only(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: ssl.SSLContext
    ) -> None:
        nonlocal connections
        connections += 1
        if connections % 2 == 1:  # each probe's own connection: TLS, the wrong name
            await writer.start_tls(tls)
        else:  # its second look: silence
            await asyncio.sleep(60)

    options = CheckOptions(ca_file=str(certs.ca_file), smtp_security="ssl", imap_security="ssl")
    loop = asyncio.get_running_loop()
    async with stub(context, first_only) as smtp_port:
        started = loop.time()
        smtp, _ = await both(account(smtp_port, 1), options)
        took = loop.time() - started
    assert smtp.code is Code.TLS_HOSTNAME_MISMATCH, smtp
    assert "certificate" not in smtp.details
    assert "shared hosting" in (smtp.hint or "")
    assert took < 4.0


#: Failed handshakes that are no certificate's fault, from fixtures.hostile.TlsTrouble.
TROUBLE = ["internal_error", "tls10_only", "starttls_refused"]


@pytest.mark.parametrize("trouble", TROUBLE)
async def test_handshake_trouble_is_reported_alike(certs: CertSet, trouble: str) -> None:
    """An alert, a TLS 1.0-only server, a refused STARTTLS: the same code, message
    (ports aside) and hint (protocol words aside) for SMTP and IMAP."""
    settings: dict[str, Any] = {"starttls": True}
    if trouble == "internal_error":
        settings["alert"] = INTERNAL_ERROR_ALERT
    elif trouble == "tls10_only":
        context = server_context(certs.server)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.set_ciphers("ALL:@SECLEVEL=0")
            context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1
        settings["context"] = context
    replies = {"smtp": b"454 4.7.0 TLS not available due to temporary reason", "imap": b"NO no"}
    options = CheckOptions(
        ca_file=str(certs.ca_file), smtp_security="starttls", imap_security="starttls"
    )
    async with (
        TlsTrouble(
            "smtp",
            **settings,
            starttls_reply=replies["smtp"] if trouble == "starttls_refused" else None,
        ) as smtp_server,
        TlsTrouble(
            "imap",
            **settings,
            starttls_reply=replies["imap"] if trouble == "starttls_refused" else None,
        ) as imap_server,
    ):
        smtp, imap = await both(account(smtp_server.port, imap_server.port), options)
    assert smtp.code is imap.code, (smtp, imap)
    for key in ("tls_alert", "tls_versions_offered", "server_tls_version", "step"):
        assert smtp.details.get(key) == imap.details.get(key), key
    if trouble == "starttls_refused":
        # The replies differ by protocol; the hints by their reading of them (454 is
        # temporary by RFC 3207, an IMAP NO says nothing of the kind).
        assert smtp.code is Code.STARTTLS_UNSUPPORTED
        return
    assert smtp.code is Code.TLS_HANDSHAKE_FAILED
    assert smtp.message == imap.message
    assert same_words(smtp.hint, "smtp") == same_words(imap.hint, "imap")
