"""`preflight discover`: table, SRV, autoconfig over HTTPS and guessing, against local servers.

Everything is local: a DNS server with its own zone (MX, SRV, TXT, A records), an
HTTPS server with a trustme certificate serving autoconfig documents (good,
well-known, malformed, with a DOCTYPE, huge, slow), and small SMTP and IMAP servers
that greet on loopback addresses 127.0.3.1xx (clear of the test stack's .11/.12). As
root they listen on the real port numbers (465, 587, 25, 993, 143, 443), which is
what discover probes; otherwise on high ports, handed to discover through its
``ports`` and ``autoconfig_port`` parameters. No test asks a real DNS server or host.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import trustme
from dnslib import MX, QTYPE, RR, SRV, TXT, A  # type: ignore[import-untyped]

from fixtures.dns_server import DnsServer, Zone
from fixtures.local_http import LocalHTTPSServer
from preflight.discover import (
    AutoconfigError,
    Discovery,
    discover,
    parse_autoconfig,
    render_text,
    suggest_alternatives,
)
from preflight.options import CheckOptions, Security
from preflight.providers import PROVIDERS, Provider

ROOT = os.geteuid() == 0
REAL_PORTS = {"smtps": 465, "submission": 587, "smtp": 25, "imaps": 993, "imap": 143, "https": 443}

GOOD_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="ac-good.test">
    <domain>ac-good.test</domain>
    <incomingServer type="pop3">
      <hostname>pop.ac-good.test</hostname><port>995</port><socketType>SSL</socketType>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.%EMAILDOMAIN%</hostname>
      <port>465</port>
      <socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.%EMAILDOMAIN%</hostname>
      <port>587</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>
"""

WELL_KNOWN_XML = b"""<clientConfig version="1.1"><emailProvider id="x">
<incomingServer type="imap"><hostname>mx.hosting.test</hostname><port>143</port>
<socketType>STARTTLS</socketType><username>%EMAILADDRESS%</username></incomingServer>
<outgoingServer type="smtp"><hostname>mx.hosting.test</hostname><port>587</port>
<socketType>STARTTLS</socketType><username>%EMAILADDRESS%</username></outgoingServer>
</emailProvider></clientConfig>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<clientConfig><emailProvider><incomingServer type="imap"><hostname>&lol4;</hostname>
</incomingServer></emailProvider></clientConfig>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE clientConfig [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<clientConfig><emailProvider><incomingServer type="imap"><hostname>&xxe;</hostname>
<port>993</port><socketType>SSL</socketType></incomingServer></emailProvider></clientConfig>"""


# --- the local world: addresses, ports, certificates ------------------------------------


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _pick_ports(addresses: list[str]) -> dict[str, int]:
    """The real port numbers as root when free on every address, else free high ports."""
    if ROOT and all(_bindable(a, p) for a in addresses for p in REAL_PORTS.values()):
        return dict(REAL_PORTS)
    ports: dict[str, int] = {}
    candidate = 20_000 + os.getpid() % 20_000
    for name in REAL_PORTS:
        while not all(_bindable(a, candidate) for a in addresses):
            candidate += 1
        ports[name] = candidate
        candidate += 1
    return ports


def _pick_addresses(count: int) -> list[str]:
    """Loopback addresses 127.0.3.100+ on which the real port numbers are free."""
    found: list[str] = []
    for last in range(100, 250):
        address = f"127.0.3.{last}"
        if all(_bindable(address, p) for p in (25, 143, 443, 465, 587, 993) if ROOT) and (
            _bindable(address, 0)
        ):
            found.append(address)
        if len(found) == count:
            return found
    raise RuntimeError("no free loopback addresses under 127.0.3.0/24")


class MailStub:
    """An SMTP or IMAP server that greets, answers EHLO/CAPABILITY and QUIT/LOGOUT,
    and records every command it is sent (discover must never log in)."""

    def __init__(
        self,
        address: str,
        port: int,
        protocol: Literal["smtp", "imap"],
        mode: Security,
        context: ssl.SSLContext,
    ) -> None:
        self.address, self.port, self.protocol, self.mode = address, port, protocol, mode
        self.context = context
        self.commands: list[str] = []
        self.connections = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server = socket.create_server((address, port), backlog=64)
        self._server.settimeout(0.05)
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        sock: socket.socket = conn
        try:
            sock.settimeout(5)
            if self.mode == "ssl":
                sock = self.context.wrap_socket(conn, server_side=True)
            if self.protocol == "smtp":
                self._smtp(sock)
            else:
                self._imap(sock)
        except (OSError, ValueError):
            pass
        finally:
            sock.close()
            conn.close()

    def _lines(self, sock: socket.socket) -> Iterator[str]:
        buffer = b""
        while not self._stop.is_set():
            chunk = sock.recv(4096)
            if not chunk:
                return
            buffer += chunk
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                text = line.decode()
                self.commands.append(text)
                yield text

    def _smtp(self, sock: socket.socket) -> None:
        sock.sendall(b"220 stub.test ESMTP ready\r\n")
        for line in self._lines(sock):
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                offer = b"250-STARTTLS\r\n" if self.mode == "starttls" else b""
                sock.sendall(b"250-stub.test\r\n" + offer + b"250 AUTH PLAIN LOGIN\r\n")
            elif verb == "QUIT":
                sock.sendall(b"221 bye\r\n")
                return
            else:
                sock.sendall(b"502 not here\r\n")

    def _imap(self, sock: socket.socket) -> None:
        sock.sendall(b"* OK stub.test IMAP ready\r\n")
        for line in self._lines(sock):
            tag, _, command = line.partition(" ")
            if command.upper() == "CAPABILITY":
                offer = b" STARTTLS" if self.mode == "starttls" else b""
                sock.sendall(b"* CAPABILITY IMAP4rev1" + offer + b"\r\n")
                sock.sendall(tag.encode() + b" OK done\r\n")
            elif command.upper() == "LOGOUT":
                sock.sendall(b"* BYE\r\n" + tag.encode() + b" OK bye\r\n")
                return
            else:
                sock.sendall(tag.encode() + b" BAD not here\r\n")

    def stop(self) -> None:
        self._stop.set()
        self._acceptor.join(timeout=5)
        self._server.close()
        for thread in self._threads:
            thread.join(timeout=5)


@dataclass
class Request:
    host: str
    path: str


class _HttpsServer(LocalHTTPSServer):
    requests: list[Request]
    stopping: threading.Event


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HttpsServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0]
        path = self.path
        self.server.requests.append(Request(host, path))
        bare = path.split("?", 1)[0]
        autoconfig = bare == "/mail/config-v1.1.xml"
        well_known = bare == "/.well-known/autoconfig/mail/config-v1.1.xml"
        try:
            if host == "autoconfig.ac-good.test" and autoconfig:
                self._send(GOOD_XML)
            elif host == "ac-wellknown.test" and well_known:
                self._send(WELL_KNOWN_XML)
            elif host == "autoconfig.ac-malformed.test" and autoconfig:
                self._send(b"<clientConfig><emailProvider><incomingServer type='imap'>")
            elif host == "autoconfig.ac-doctype.test" and autoconfig:
                self._send(BILLION_LAUGHS)
            elif host == "autoconfig.ac-huge.test" and autoconfig:
                self._huge(with_length=False)
            elif host == "autoconfig.ac-huge-length.test" and autoconfig:
                self._huge(with_length=True)
            elif host == "autoconfig.ac-slow.test" and autoconfig:
                self._slow()
            else:
                self._send(b"not found", status=404)
        except OSError:
            pass

    def _send(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _huge(self, *, with_length: bool) -> None:
        total = 8 * 1024 * 1024
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        if with_length:
            self.send_header("Content-Length", str(total))
        self.end_headers()
        self.wfile.write(b"<clientConfig><!-- ")
        chunk = b"x" * 65536
        for _ in range(total // len(chunk)):
            if self.server.stopping.is_set():
                return
            self.wfile.write(chunk)

    def _slow(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(GOOD_XML)))
        self.end_headers()
        for byte in GOOD_XML:
            if self.server.stopping.wait(0.2):
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()


@dataclass
class World:
    dns: str
    ca_file: str
    ports: dict[str, int]
    http_address: str
    addresses: dict[str, str]
    requests: list[Request]
    stubs: dict[str, MailStub] = field(default_factory=dict)

    def options(self, *, ca: bool = True, **changes: Any) -> CheckOptions:
        values: dict[str, Any] = {
            "dns_server": self.dns,
            "ca_file": self.ca_file if ca else None,
            "timeout": 15.0,
        }
        values.update(changes)
        return CheckOptions(**values)

    @property
    def guess_ports(self) -> dict[str, tuple[tuple[int, Security], ...]]:
        p = self.ports
        return {
            "smtp": ((p["smtps"], "ssl"), (p["submission"], "starttls"), (p["smtp"], "starttls")),
            "imap": ((p["imaps"], "ssl"), (p["imap"], "starttls")),
        }

    async def discover(self, email: str, *, ca: bool = True, **kwargs: Any) -> Discovery:
        options = kwargs.pop("options", None) or self.options(ca=ca)
        kwargs.setdefault("ports", self.guess_ports)
        kwargs.setdefault("autoconfig_port", self.ports["https"])
        return await discover(email, options, **kwargs)


def mx_domain(provider: Provider, suffix: str) -> str:
    return f"{provider.id}.{suffix.replace('.', '-')}.test"


def _zone(addresses: dict[str, str]) -> Zone:
    ttl = 60
    http = addresses["http"]
    entries: list[tuple[str, int, Any]] = []
    # One custom domain per MX suffix of every provider in the table.
    for provider in PROVIDERS:
        for suffix in provider.mx:
            entries.append((mx_domain(provider, suffix), QTYPE.MX, MX(f"mx.{suffix}.", 10)))
    entries += [
        # SRV records beat the MX table (the MX says Google).
        ("srv.test", QTYPE.MX, MX("aspmx.l.google.com.", 1)),
        ("_submission._tcp.srv.test", QTYPE.SRV, SRV(0, 1, 587, "smtp.srv-host.test.")),
        ("_imap._tcp.srv.test", QTYPE.SRV, SRV(0, 1, 143, "imap.srv-host.test.")),
        ("_imaps._tcp.srv.test", QTYPE.SRV, SRV(20, 1, 993, "imap2.srv-host.test.")),
        ("_imaps._tcp.srv.test", QTYPE.SRV, SRV(10, 1, 993, "imap.srv-host.test.")),
        # "." says: not offered (RFC 6186 3.4).
        ("_submissions._tcp.srv-none.test", QTYPE.SRV, SRV(0, 0, 0, ".")),
        ("_submission._tcp.srv-none.test", QTYPE.SRV, SRV(0, 1, 587, "mail.srv-none.test.")),
        ("_imaps._tcp.srv-none.test", QTYPE.SRV, SRV(0, 1, 993, "mail.srv-none.test.")),
        # autoconfig beats the MX table (the MX says Zoho EU).
        ("ac-good.test", QTYPE.MX, MX("mx.zoho.eu.", 10)),
        ("autoconfig.ac-good.test", QTYPE.A, A(http)),
        ("ac-wellknown.test", QTYPE.A, A(http)),
        ("autoconfig.ac-malformed.test", QTYPE.A, A(http)),
        ("autoconfig.ac-doctype.test", QTYPE.A, A(http)),
        ("autoconfig.ac-huge.test", QTYPE.A, A(http)),
        ("autoconfig.ac-huge-length.test", QTYPE.A, A(http)),
        ("autoconfig.ac-slow.test", QTYPE.A, A(http)),
        # Guessing: smtp./imap. answer, mail. does not exist.
        ("guess.test", QTYPE.TXT, TXT("v=spf1 -all")),
        ("smtp.guess.test", QTYPE.A, A(addresses["smtp_guess"])),
        ("imap.guess.test", QTYPE.A, A(addresses["imap_guess"])),
        # Ranking: clear text on smtp./imap., TLS on mail.
        ("rank.test", QTYPE.TXT, TXT("v=spf1 -all")),
        ("smtp.rank.test", QTYPE.A, A(addresses["rank_plain"])),
        ("imap.rank.test", QTYPE.A, A(addresses["rank_plain"])),
        ("mail.rank.test", QTYPE.A, A(addresses["rank_tls"])),
        # Nothing anywhere.
        ("nothing.test", QTYPE.TXT, TXT("v=spf1 -all")),
        # A filtering service in MX, Microsoft 365 in SPF.
        ("filtered.test", QTYPE.MX, MX("mx1.filter-service.test.", 10)),
        (
            "filtered.test",
            QTYPE.TXT,
            TXT("v=spf1 include:spf.protection.outlook.com include:_spf.crm.test -all"),
        ),
    ]
    records: dict[str, list[RR]] = {}
    for owner, rtype, rdata in entries:
        name = owner.rstrip(".") + "."
        records.setdefault(name, []).append(RR(name, rtype, rdata=rdata, ttl=ttl))
    return Zone(
        records={k: tuple(v) for k, v in records.items()},
        rcodes={},
        dropped=("silent.test.",),
    )


STUB_SPECS: tuple[tuple[str, str, Literal["smtp", "imap"], Security], ...] = (
    ("smtp_guess", "smtps", "smtp", "ssl"),
    ("smtp_guess", "submission", "smtp", "starttls"),
    ("imap_guess", "imaps", "imap", "ssl"),
    ("imap_guess", "imap", "imap", "starttls"),
    ("rank_plain", "smtp", "smtp", "plain"),
    ("rank_plain", "imap", "imap", "plain"),
    ("rank_tls", "submission", "smtp", "starttls"),
    ("rank_tls", "imaps", "imap", "ssl"),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """DNS, HTTPS and mail stubs on 127.0.3.1xx, started once for this module."""
    roles = ["http", "smtp_guess", "imap_guess", "rank_plain", "rank_tls", "silent"]
    picked = _pick_addresses(len(roles))
    addresses = dict(zip(roles, picked, strict=True))
    ports = _pick_ports(picked)
    names = [
        "autoconfig.ac-good.test",
        "ac-wellknown.test",
        "autoconfig.ac-malformed.test",
        "autoconfig.ac-doctype.test",
        "autoconfig.ac-huge.test",
        "autoconfig.ac-huge-length.test",
        "autoconfig.ac-slow.test",
        "smtp.guess.test",
        "imap.guess.test",
        "smtp.rank.test",
        "imap.rank.test",
        "mail.rank.test",
    ]
    ca = trustme.CA(organization_name="preflight discover test CA")
    cert = ca.issue_cert(*names)
    ca_file = tmp_path_factory.mktemp("discover") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    dns = DnsServer(_zone(addresses))
    host, port = dns.start()
    https = _HttpsServer((addresses["http"], ports["https"]), _Handler)
    https.context = context
    https.requests = []
    https.stopping = threading.Event()
    https_thread = threading.Thread(
        target=https.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    https_thread.start()
    stubs: dict[str, MailStub] = {}
    try:
        for role, port_name, protocol, mode in STUB_SPECS:
            key = f"{role}:{port_name}"
            stubs[key] = MailStub(addresses[role], ports[port_name], protocol, mode, context)
        yield World(
            dns=f"{host}:{port}",
            ca_file=str(ca_file),
            ports=ports,
            http_address=addresses["http"],
            addresses=addresses,
            requests=https.requests,
            stubs=stubs,
        )
    finally:
        for stub in stubs.values():
            stub.stop()
        https.stopping.set()
        https.shutdown()
        https.server_close()
        https_thread.join(timeout=5)
        dns.stop()


def lookup(result: Discovery, step: str, target_part: str = "") -> tuple[str, str]:
    for item in result.lookups:
        if item.step == step and target_part in item.target:
            return item.result, item.detail
    raise AssertionError(f"no {step} lookup for {target_part!r}: {result.lookups}")


def setting(result: Discovery, protocol: str) -> tuple[str, int, str, str] | None:
    candidate = result.smtp if protocol == "smtp" else result.imap
    if candidate is None:
        return None
    return (candidate.host, candidate.port, candidate.security, candidate.source)


# --- parsing autoconfig documents (no network) ------------------------------------------


def test_parse_autoconfig_reads_servers_and_fills_placeholders() -> None:
    """IMAP and SMTP servers come in the document's order, placeholders filled in."""
    found = parse_autoconfig(GOOD_XML, "alice@ac-good.test")
    assert [(c.protocol, c.host, c.port, c.security, c.username) for c in found] == [
        ("imap", "imap.ac-good.test", 993, "ssl", "alice"),
        ("smtp", "smtp.ac-good.test", 465, "ssl", "alice@ac-good.test"),
        ("smtp", "smtp.ac-good.test", 587, "starttls", "alice@ac-good.test"),
    ]


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["laughs", "xxe"])
def test_parse_autoconfig_refuses_any_doctype(document: bytes) -> None:
    """A DTD is refused before any entity is declared or expanded (no bomb, no XXE)."""
    with pytest.raises(AutoconfigError, match="DOCTYPE") as caught:
        parse_autoconfig(document, "a@b.test")
    assert caught.value.reason == "invalid"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"<clientConfig><emailProvider>", "not well-formed"),
        (b"<html><body>hello</body></html>", "not <clientConfig>"),
        (b"<clientConfig><emailProvider/></clientConfig>", "names no IMAP or SMTP server"),
        (b"", "not well-formed"),
    ],
)
def test_parse_autoconfig_rejects_unusable_documents(document: bytes, message: str) -> None:
    """Malformed XML, another document, or one without servers is an AutoconfigError."""
    with pytest.raises(AutoconfigError, match=message):
        parse_autoconfig(document, "a@b.test")


def test_parse_autoconfig_skips_bad_entries() -> None:
    """Entries with a bad host, port or socket type are left out; the good one stays."""
    document = b"""<clientConfig><emailProvider>
      <incomingServer type="imap"><hostname>evil host\r\nX</hostname><port>993</port>
        <socketType>SSL</socketType></incomingServer>
      <incomingServer type="imap"><hostname>imap.b.test</hostname><port>99999</port>
        <socketType>SSL</socketType></incomingServer>
      <incomingServer type="imap"><hostname>imap.b.test</hostname><port>993</port>
        <socketType>magic</socketType></incomingServer>
      <outgoingServer type="smtp"><hostname>smtp.b.test</hostname><port>25</port>
        <socketType>plain</socketType></outgoingServer>
      <outgoingServer type="smtp"><hostname>SMTP.B.TEST</hostname><port>587</port>
        <socketType>STARTTLS</socketType></outgoingServer>
    </emailProvider></clientConfig>"""
    found = parse_autoconfig(document, "a@b.test")
    assert [(c.protocol, c.host, c.port, c.security) for c in found] == [
        ("smtp", "smtp.b.test", 587, "starttls"),
        ("smtp", "smtp.b.test", 25, "plain"),
    ]


# --- the table --------------------------------------------------------------------------

MX_CASES = [(p, s) for p in PROVIDERS for s in p.mx]


@pytest.mark.asyncio
@pytest.mark.parametrize(("provider", "suffix"), MX_CASES, ids=[f"{p.id}:{s}" for p, s in MX_CASES])
async def test_every_provider_from_its_mx_data(
    world: World, provider: Provider, suffix: str
) -> None:
    """A custom domain with MX at each suffix of each entry gets that entry's settings."""
    result = await world.discover(f"someone@{mx_domain(provider, suffix)}", probe=False)
    assert result.provider is not None
    assert (provider.id, "mx") == (result.provider.provider.id, result.provider.via)
    first_smtp, first_imap = provider.smtp[0], provider.imap[0]
    assert (first_smtp.host, first_smtp.port, first_smtp.security, "table") == setting(
        result, "smtp"
    )
    assert (first_imap.host, first_imap.port, first_imap.security, "table") == setting(
        result, "imap"
    )
    assert provider.type == result.type
    assert result.found


@pytest.mark.asyncio
async def test_provider_domain_needs_no_network() -> None:
    """A provider's own domain is answered from the table: not even DNS is asked."""
    # A DNS server that does not exist: any query would time out.
    options = CheckOptions(dns_server="127.0.3.254:9", timeout=10)
    started = time.monotonic()
    result = await discover("Someone@Outlook.de", options)
    assert time.monotonic() - started < 1
    assert setting(result, "smtp") == ("smtp-mail.outlook.com", 587, "starttls", "table")
    assert (
        result.provider.provider.id if result.provider else None,
        result.provider.via if result.provider else None,
    ) == ("outlook-com", "domain")
    assert result.lookups == ()
    assert result.skeleton()["type"] == "OUTLOOK"


@pytest.mark.asyncio
async def test_spf_names_the_provider_behind_a_filtering_mx(world: World) -> None:
    """MX at an unknown filter, SPF including Microsoft 365: Microsoft 365, said so."""
    result = await world.discover("ceo@filtered.test", probe=False)
    assert result.provider is not None
    assert (result.provider.provider.id, result.provider.via) == ("microsoft-365", "spf")
    assert setting(result, "smtp") == ("smtp.office365.com", 587, "starttls", "table")
    assert any("inferred from the SPF record" in note for note in result.notes)


# --- SRV --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_srv_records_win_over_the_mx_table(world: World) -> None:
    """The domain's own SRV records beat what its MX suggests; TLS and priority rank."""
    result = await world.discover("bob@srv.test", probe=False, autoconfig=False)
    assert setting(result, "smtp") == ("smtp.srv-host.test", 587, "starttls", "srv")
    # _imaps (implicit TLS) before _imap; priority 10 before 20.
    assert setting(result, "imap") == ("imap.srv-host.test", 993, "ssl", "srv")
    assert result.type.value == "SMTP"
    assert result.provider is not None
    assert result.provider.provider.id == "google-workspace"  # seen, not used
    assert lookup(result, "srv", "_imaps._tcp") == (
        "found",
        "imap.srv-host.test:993, imap2.srv-host.test:993",
    )


@pytest.mark.asyncio
async def test_srv_dot_target_means_not_offered(world: World) -> None:
    """A target of "." is no server; the other service record is used."""
    result = await world.discover("bob@srv-none.test", probe=False, autoconfig=False)
    assert setting(result, "smtp") == ("mail.srv-none.test", 587, "starttls", "srv")
    assert setting(result, "imap") == ("mail.srv-none.test", 993, "ssl", "srv")
    assert any("_submissions._tcp.srv-none.test" in note for note in result.notes)


# --- autoconfig -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_autoconfig_document_wins_over_the_mx_table(world: World) -> None:
    """autoconfig.DOMAIN's document is fetched over verified TLS and used, its user names too."""
    result = await world.discover("alice@ac-good.test", probe=False)
    assert setting(result, "smtp") == ("smtp.ac-good.test", 465, "ssl", "autoconfig")
    assert setting(result, "imap") == ("imap.ac-good.test", 993, "ssl", "autoconfig")
    assert result.user_name == "alice@ac-good.test"
    assert result.imap_user_name == "alice"
    assert result.skeleton()["imap_user_name"] == "alice"
    assert result.provider is not None
    assert result.provider.provider.id == "zoho-eu"  # the MX, seen but outranked
    assert lookup(result, "autoconfig", "autoconfig.ac-good.test")[0] == "found"
    asked = [r.path for r in world.requests if r.host == "autoconfig.ac-good.test"]
    assert "/mail/config-v1.1.xml?emailaddress=alice%40ac-good.test" in asked


@pytest.mark.asyncio
async def test_autoconfig_well_known_location(world: World) -> None:
    """Without autoconfig.DOMAIN, https://DOMAIN/.well-known/autoconfig/... is used."""
    result = await world.discover("carol@ac-wellknown.test", probe=False)
    assert setting(result, "smtp") == ("mx.hosting.test", 587, "starttls", "autoconfig")
    assert setting(result, "imap") == ("mx.hosting.test", 143, "starttls", "autoconfig")
    assert lookup(result, "autoconfig", "autoconfig.ac-wellknown")[0] == "does_not_resolve"


@pytest.mark.asyncio
async def test_autoconfig_malformed_is_ignored(world: World) -> None:
    """A broken document is reported and not used."""
    result = await world.discover("dan@ac-malformed.test", probe=False)
    outcome, detail = lookup(result, "autoconfig", "autoconfig.ac-malformed")
    assert outcome == "invalid"
    assert "not well-formed" in detail
    assert result.smtp is None
    assert result.imap is None
    assert not result.found


@pytest.mark.asyncio
async def test_autoconfig_with_doctype_is_refused(world: World) -> None:
    """A billion-laughs document over HTTPS is refused at its DOCTYPE."""
    result = await world.discover("eve@ac-doctype.test", probe=False)
    outcome, detail = lookup(result, "autoconfig", "autoconfig.ac-doctype")
    assert (outcome, "DOCTYPE" in detail) == ("invalid", True)
    assert result.imap is None


@pytest.mark.asyncio
@pytest.mark.parametrize("domain", ["ac-huge.test", "ac-huge-length.test"])
async def test_autoconfig_size_cap(world: World, domain: str) -> None:
    """An 8 MiB answer (with or without Content-Length) stops at the cap, quickly."""
    started = time.monotonic()
    result = await world.discover(f"f@{domain}", probe=False, max_document_bytes=64 * 1024)
    assert time.monotonic() - started < 4
    outcome, detail = lookup(result, "autoconfig", f"autoconfig.{domain}")
    assert outcome == "too_large"
    assert str(64 * 1024) in detail


@pytest.mark.asyncio
async def test_autoconfig_slow_server_is_cut_off(world: World) -> None:
    """A server that trickles its answer is given http_timeout seconds in all."""
    started = time.monotonic()
    result = await world.discover("g@ac-slow.test", probe=False, http_timeout=1.0)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5
    assert lookup(result, "autoconfig", "autoconfig.ac-slow")[0] == "timeout"
    assert result.smtp is None


@pytest.mark.asyncio
async def test_autoconfig_needs_a_trusted_certificate(world: World) -> None:
    """Without the test CA the document is not trusted, so not used."""
    result = await world.discover("alice@ac-good.test", ca=False, probe=False)
    outcome, detail = lookup(result, "autoconfig", "autoconfig.ac-good.test")
    assert outcome == "tls_error"
    assert "certificate" in detail
    # The MX table still answers (Zoho EU), not the untrusted document.
    assert setting(result, "smtp") == ("smtppro.zoho.eu", 465, "ssl", "table")


# --- guessing ---------------------------------------------------------------------------


def _no_login(world: World) -> None:
    for stub in world.stubs.values():
        verbs = {c.split(" ")[0].upper() for c in stub.commands} | {
            c.split(" ")[1].upper() for c in stub.commands if " " in c and stub.protocol == "imap"
        }
        assert not verbs & {"AUTH", "LOGIN", "AUTHENTICATE", "STARTTLS"}, stub.commands


@pytest.mark.asyncio
async def test_guessing_probes_and_prefers_implicit_tls(world: World) -> None:
    """smtp./imap. guessed and probed: implicit TLS wins over STARTTLS; no login sent."""
    result = await world.discover("hal@guess.test")
    assert ("smtp.guess.test", world.ports["smtps"], "ssl", "guess") == setting(result, "smtp")
    assert ("imap.guess.test", world.ports["imaps"], "ssl", "guess") == setting(result, "imap")
    assert result.smtp is not None
    assert result.smtp.verified is True
    assert result.smtp.detail == "greeting: 220 stub.test ESMTP ready"
    answered = {(c.protocol, c.port, c.security) for c in result.candidates if c.answered}
    assert ("smtp", world.ports["submission"], "starttls") in answered
    assert ("imap", world.ports["imap"], "starttls") in answered
    not_found = [c for c in result.candidates if c.host == "mail.guess.test"]
    assert not_found
    assert all(c.answered is False and "does not resolve" in c.detail for c in not_found)
    assert result.found
    _no_login(world)


@pytest.mark.asyncio
async def test_guessing_ranks_tls_over_clear_text_across_hosts(world: World) -> None:
    """smtp.rank.test speaks only clear text; mail.rank.test's STARTTLS/TLS ports win."""
    result = await world.discover("ivy@rank.test")
    assert ("mail.rank.test", world.ports["submission"], "starttls", "guess") == setting(
        result, "smtp"
    )
    assert ("mail.rank.test", world.ports["imaps"], "ssl", "guess") == setting(result, "imap")
    plain = [c for c in result.candidates if c.host == "smtp.rank.test" and c.answered]
    assert [("plain", world.ports["smtp"])] == [(c.security, c.port) for c in plain]


@pytest.mark.asyncio
async def test_text_report_shows_the_choice_and_what_else_answered(world: World) -> None:
    """The text report names the chosen server, its greeting, and the other answers."""
    result = await world.discover("ivy@rank.test")
    text = render_text(result)
    ports = world.ports
    assert f"SMTP      mail.rank.test:{ports['submission']}" in text
    assert "greeting: 220 stub.test ESMTP ready" in text
    assert f"also answered: smtp.rank.test:{ports['smtp']} with no encryption" in text


@pytest.mark.asyncio
async def test_no_guessing_below_a_domain_that_does_not_exist(world: World) -> None:
    """NXDOMAIN for the domain: nothing below it exists, so nothing is guessed."""
    result = await world.discover("x@no-such-domain.test")
    assert not result.found
    assert [lk for lk in result.lookups if lk.step == "guess"] == []
    assert "the domain no-such-domain.test does not exist (NXDOMAIN)" in result.notes


@pytest.mark.asyncio
async def test_guessing_ranks_an_unverified_certificate_below_starttls(world: World) -> None:
    """Without the CA, TLS on 465/993 does not verify: STARTTLS on 587/143 ranks first."""
    result = await world.discover("hal@guess.test", ca=False, autoconfig=False)
    assert ("smtp.guess.test", world.ports["submission"], "starttls", "guess") == setting(
        result, "smtp"
    )
    assert ("imap.guess.test", world.ports["imap"], "starttls", "guess") == setting(result, "imap")
    unverified = [c for c in result.candidates if c.verified is False]
    assert {world.ports["smtps"], world.ports["imaps"]} == {c.port for c in unverified}


@pytest.mark.asyncio
async def test_no_probe_connects_to_no_mail_server(world: World) -> None:
    """With probe=False nothing is guessed, nothing contacted, and nothing found."""
    before = {key: stub.connections for key, stub in world.stubs.items()}
    result = await world.discover("hal@guess.test", probe=False)
    assert before == {key: stub.connections for key, stub in world.stubs.items()}
    assert not result.found
    assert "guessing was skipped (--no-probe)" in result.notes


@pytest.mark.asyncio
async def test_nothing_found(world: World) -> None:
    """A domain with no MX, SRV, autoconfig or guessable host: found is false, steps listed."""
    result = await world.discover("nobody@nothing.test")
    assert (result.smtp, result.imap) == (None, None)
    assert not result.found
    assert {"from_name", "password", "smtp_host", "imap_port"} <= set(result.missing)
    assert lookup(result, "guess", "smtp")[0] == "none"
    assert lookup(result, "mx")[0] == "none"  # the name exists, without MX
    assert "smtp_host" not in result.skeleton()


@pytest.mark.asyncio
async def test_deadline_bounds_the_whole_search(world: World) -> None:
    """A DNS server that never answers cannot hold discover past its deadline."""
    started = time.monotonic()
    result = await world.discover("x@silent.test", options=world.options(timeout=1.5))
    assert time.monotonic() - started < 2.5
    assert any("deadline" in note for note in result.notes)
    assert not result.found


@pytest.mark.asyncio
async def test_no_name_goes_to_the_system_resolver(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a DNS server given, getaddrinfo never sees a host name (only addresses)."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in str(host) else socket.AF_INET, str(host))
        except OSError:
            asked.append(str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    for email in ("hal@guess.test", "alice@ac-good.test", "nobody@nothing.test"):
        await world.discover(email)
    assert asked == []


# --- hints for check --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_suggest_alternatives_names_the_port_that_answers(world: World) -> None:
    """465 timed out, but mail.rank.test answers on 587 with STARTTLS: the hint says so."""
    ports = world.ports
    hint = await suggest_alternatives(
        "smtp",
        "mail.rank.test",
        ports["smtps"],
        options=world.options(),
        code="connect_timeout",
        ports=world.guess_ports,
    )
    expected = (
        f"{ports['smtps']} timed out; mail.rank.test:{ports['submission']} with STARTTLS answers."
    )
    assert expected == hint


@pytest.mark.asyncio
async def test_suggest_alternatives_prefers_tls(world: World) -> None:
    """Of 465 (TLS) and 587 (STARTTLS), both answering, implicit TLS is suggested."""
    ports = world.ports
    hint = await suggest_alternatives(
        "imap",
        "imap.guess.test",
        4,  # a port nothing uses
        options=world.options(),
        code="connect_refused",
        addresses=(world.addresses["imap_guess"],),
        ports=world.guess_ports,
    )
    assert f"4 refused the connection; imap.guess.test:{ports['imaps']} with SSL/TLS answers." == (
        hint
    )


@pytest.mark.asyncio
async def test_suggest_alternatives_none_when_nothing_answers(world: World) -> None:
    """A host where nothing listens gives no suggestion (None), within the timeout."""
    started = time.monotonic()
    hint = await suggest_alternatives(
        "smtp",
        world.addresses["silent"],
        world.ports["smtps"],
        options=world.options(),
        code="connect_refused",
        timeout=2.0,
        ports=world.guess_ports,
    )
    assert hint is None
    assert time.monotonic() - started < 3


# --- the command line -------------------------------------------------------------------


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # Never the real ISPDB: the CLI asks it by default; here nothing listens there.
    env = {**os.environ, "PREFLIGHT_ISPDB_URL": "https://127.0.0.1:9/v1.1/"}
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
        env=env,
    )


def test_cli_json_skeleton_passes_validate(world: World) -> None:
    """`discover --format json` prints a payload that validate accepts once completed."""
    workspace = next(p for p in PROVIDERS if p.id == "google-workspace")
    email = f"someone@{mx_domain(workspace, 'google.com')}"
    done = run_cli(
        "discover", email, "--dns-server", world.dns, "--format", "json", "--no-probe",
        "--ca-file", world.ca_file,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    payload = document["payload"]
    assert "password" not in payload
    assert {
        "from_email": email,
        "user_name": email,
        "smtp_host": "smtp.gmail.com",
        "smtp_port": 465,
        "imap_host": "imap.gmail.com",
        "imap_port": 993,
        "warmup_enabled": False,
        "type": "GMAIL",
    } == payload
    discovery = document["discovery"]
    assert discovery["missing"] == ["from_name", "password"]
    assert (discovery["smtp"]["source"], discovery["imap"]["source"]) == ("table", "table")
    assert (
        discovery["provider"]["id"],
        discovery["provider"]["matched_by"],
    ) == ("google-workspace", "mx")
    completed = {**payload, "from_name": "Someone", "password": "app-password-here"}
    checked = run_cli("validate", "-", stdin=json.dumps(completed))
    assert checked.returncode == 0, checked.stdout


def test_cli_text_report(world: World) -> None:
    """The text report names each setting and where it came from."""
    done = run_cli(
        "discover", "bob@srv.test", "--dns-server", world.dns, "--no-probe", "--no-autoconfig",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "SMTP      smtp.srv-host.test:587" in done.stdout
    assert "from the domain's SRV record" in done.stdout
    assert "Google Workspace (MX aspmx.l.google.com)" in done.stdout


@pytest.mark.skipif(
    not ROOT, reason="the command probes the real port numbers, which need root to serve"
)
def test_cli_guesses_on_the_real_ports(world: World) -> None:
    """As a user runs it: guessing on 465/587/25/993/143, the greeting shown."""
    if world.ports != REAL_PORTS:
        pytest.skip("the real port numbers are taken on the test addresses")
    done = run_cli(
        "discover", "hal@guess.test", "--dns-server", world.dns, "--ca-file", world.ca_file
    )
    assert done.returncode == 0, done.stderr
    assert "smtp.guess.test:465" in done.stdout
    assert "guessed; it answered" in done.stdout


def test_cli_exit_status_when_nothing_is_found(world: World) -> None:
    """Nothing found is exit 1, with the steps tried; a malformed address is exit 2."""
    done = run_cli("discover", "nobody@nothing.test", "--dns-server", world.dns, "--no-probe")
    assert done.returncode == 1
    assert "not found" in done.stdout
    bad = run_cli("discover", "not-an-address", "--dns-server", world.dns)
    assert bad.returncode == 2
    assert "not a valid address" in bad.stderr
    assert bad.stdout == ""
