"""Smoke tests of the test servers themselves, with stdlib clients and dnspython only.

They pin down what each fixture server does, so a misconfigured server fails
here, with a plain message, rather than as a puzzling probe failure later.
"""

from __future__ import annotations

import base64
import imaplib
import json
import re
import shutil
import smtplib
import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.name
import dns.resolver
import pytest

from fixtures import USERS, Endpoint, MissingSystemDependencyError, Stack
from fixtures.certs import make_certs
from fixtures.dovecot import Dovecot, DovecotListener
from fixtures.postfix import Postfix, PostfixListener
from fixtures.process import free_ports, group_members, is_root
from fixtures.pytest_support import endpoint, unavailable
from fixtures.stack import start_stack

TIMEOUT = 5.0  # seconds, for every client operation: nothing here may hang
CLIENT_NAME = "client.preflight.test"  # EHLO name: smtplib would ask DNS for ours
REPO = Path(__file__).resolve().parents[2]


def client_context(ep: Endpoint) -> ssl.SSLContext:
    """Verify against the endpoint's CA; without one (GreenMail), do not verify."""
    if ep.ca_file is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=str(ep.ca_file))


def auth_plain(smtp: smtplib.SMTP, user: str, password: str) -> tuple[int, bytes]:
    """One AUTH PLAIN attempt (smtplib's login() would try every mechanism)."""
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return smtp.docmd("AUTH", f"PLAIN {token}")


def smtp_session(ep: Endpoint) -> smtplib.SMTP:
    """An SMTP session on ``ep``, TLS negotiated as the endpoint requires, after EHLO."""
    smtp: smtplib.SMTP
    if ep.security == "ssl":
        smtp = smtplib.SMTP_SSL(
            ep.host,
            ep.port,
            local_hostname=CLIENT_NAME,
            timeout=TIMEOUT,
            context=client_context(ep),
        )
    else:
        smtp = smtplib.SMTP(ep.host, ep.port, local_hostname=CLIENT_NAME, timeout=TIMEOUT)
    smtp.ehlo()
    if ep.security == "starttls":
        smtp.starttls(context=client_context(ep))
        smtp.ehlo()
    return smtp


def imap_session(ep: Endpoint) -> imaplib.IMAP4:
    """An IMAP session on ``ep``, TLS negotiated as the endpoint requires."""
    if ep.security == "ssl":
        return imaplib.IMAP4_SSL(ep.host, ep.port, ssl_context=client_context(ep), timeout=TIMEOUT)
    imap = imaplib.IMAP4(ep.host, ep.port, timeout=TIMEOUT)
    if ep.security == "starttls":
        imap.starttls(client_context(ep))
    return imap


# --- Postfix (SMTP) ------------------------------------------------------------


@pytest.mark.needs_starttls
def test_submission_accepts_good_password_after_starttls(stack: Stack) -> None:
    """Postfix on 587 upgrades with STARTTLS, then accepts AUTH PLAIN with a good password."""
    user, password = stack.credentials()
    with smtp_session(endpoint(stack, "smtp", "starttls")) as smtp:
        code, _ = auth_plain(smtp, user, password)
    assert code == 235


@pytest.mark.needs_starttls
def test_submission_rejects_bad_password_with_535(stack: Stack) -> None:
    """Postfix on 587 answers 535 to a wrong password."""
    user, _ = stack.credentials()
    with smtp_session(endpoint(stack, "smtp", "starttls")) as smtp:
        code, _ = auth_plain(smtp, user, "not-the-password")
    assert code == 535


@pytest.mark.needs_starttls
def test_submission_refuses_auth_before_starttls(stack: Stack) -> None:
    """Postfix on 587 answers 530 to AUTH sent before STARTTLS."""
    ep = endpoint(stack, "smtp", "starttls")
    user, password = stack.credentials()
    with smtplib.SMTP(ep.host, ep.port, local_hostname=CLIENT_NAME, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        code, message = auth_plain(smtp, user, password)
    assert (code, b"STARTTLS" in message) == (530, True)


def test_smtps_accepts_good_password(stack: Stack) -> None:
    """The implicit-TLS SMTP port (465; GreenMail 3465) accepts a good password."""
    user, password = stack.credentials()
    with smtp_session(endpoint(stack, "smtp", "ssl")) as smtp:
        code, _ = auth_plain(smtp, user, password)
    assert code == 235


def test_smtps_rejects_bad_password_with_535(stack: Stack) -> None:
    """The implicit-TLS SMTP port (465; GreenMail 3465) answers 535 to a wrong password."""
    user, _ = stack.credentials()
    with smtp_session(endpoint(stack, "smtp", "ssl")) as smtp:
        code, _ = auth_plain(smtp, user, "not-the-password")
    assert code == 535


@pytest.mark.needs_starttls
def test_port_25_offers_starttls_and_auth_only_after_it(stack: Stack) -> None:
    """Postfix on 25 offers STARTTLS, hides AUTH in clear text, and offers it after TLS."""
    ep = endpoint(stack, "smtp", "plain")
    with smtplib.SMTP(ep.host, ep.port, local_hostname=CLIENT_NAME, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        before = (smtp.has_extn("starttls"), smtp.has_extn("auth"))
        smtp.starttls(context=client_context(ep))
        smtp.ehlo()
        after = smtp.has_extn("auth")
    assert (before, after) == ((True, False), True)


def test_local_root_stack_uses_the_real_port_numbers(stack: Stack) -> None:
    """As root, the local stack serves each mode on its conventional port number."""
    if stack.target != "local" or not is_root():
        pytest.skip("real port numbers need root and the local target")
    ports = {
        **{f"smtp.{k}": v.port for k, v in stack.smtp.items()},
        **{f"imap.{k}": v.port for k, v in stack.imap.items()},
    }
    assert ports == {
        "smtp.plain": 25,
        "smtp.starttls": 587,
        "smtp.ssl": 465,
        "imap.starttls": 143,
        "imap.ssl": 993,
        "imap.starttls_required": 143,
    }


# --- Dovecot (IMAP) ------------------------------------------------------------


def test_imaps_accepts_good_password(stack: Stack) -> None:
    """IMAP over implicit TLS (993; GreenMail 3993) accepts a good password."""
    user, password = stack.credentials()
    with imap_session(endpoint(stack, "imap", "ssl")) as imap:
        status, _ = imap.login(user, password)
    assert status == "OK"


def test_imaps_rejects_bad_password(stack: Stack) -> None:
    """IMAP over implicit TLS (993; GreenMail 3993) answers NO to a wrong password."""
    user, _ = stack.credentials()
    with (
        imap_session(endpoint(stack, "imap", "ssl")) as imap,
        pytest.raises(imaplib.IMAP4.error),
    ):
        imap.login(user, "not-the-password")


@pytest.mark.needs_starttls
def test_imap_starttls_login_succeeds(stack: Stack) -> None:
    """Dovecot on 143 upgrades with STARTTLS and then accepts a good password."""
    user, password = stack.credentials()
    with imap_session(endpoint(stack, "imap", "starttls")) as imap:
        status, _ = imap.login(user, password)
    assert status == "OK"


@pytest.mark.needs_starttls
def test_imap_starttls_endpoint_also_accepts_login_before_tls(stack: Stack) -> None:
    """Dovecot's normal 143 listener offers STARTTLS but does not require it (plaintext_auth)."""
    ep = endpoint(stack, "imap", "starttls")
    user, password = stack.credentials()
    with imaplib.IMAP4(ep.host, ep.port, timeout=TIMEOUT) as imap:
        capabilities = imap.capabilities
        status, _ = imap.login(user, password)
    assert ep.plaintext_auth
    assert ("STARTTLS" in capabilities, "LOGINDISABLED" in capabilities) == (True, False)
    assert status == "OK"


@pytest.mark.needs_starttls
def test_imap_strict_listener_refuses_login_before_starttls(stack: Stack) -> None:
    """Dovecot on 127.0.0.12:143 advertises LOGINDISABLED and refuses LOGIN before STARTTLS."""
    ep = endpoint(stack, "imap", "starttls_required")
    user, password = stack.credentials()
    with imaplib.IMAP4(ep.host, ep.port, timeout=TIMEOUT) as imap:
        capabilities = imap.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            imap.login(user, password)
    assert not ep.plaintext_auth
    assert ("STARTTLS" in capabilities, "LOGINDISABLED" in capabilities) == (True, True)


@pytest.mark.needs_starttls
def test_imap_strict_listener_accepts_login_after_starttls(stack: Stack) -> None:
    """After STARTTLS, the strict listener drops LOGINDISABLED and accepts a good password."""
    user, password = stack.credentials()
    with imap_session(endpoint(stack, "imap", "starttls_required")) as imap:
        capabilities = imap.capabilities
        status, _ = imap.login(user, password)
    assert ("LOGINDISABLED" in capabilities, status) == (False, "OK")


# --- Certificates --------------------------------------------------------------


def _handshake(
    address: tuple[str, int], context: ssl.SSLContext, server_hostname: str
) -> list[tuple[str, str]]:
    """A TLS handshake; returns the verified certificate's subjectAltName entries."""
    with (
        socket.create_connection(address, timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        certificate = tls.getpeercert()
    assert certificate is not None
    names = certificate["subjectAltName"]
    assert isinstance(names, tuple)
    return [(str(kind), str(value)) for kind, value in names]


@pytest.mark.needs_local_ca
@pytest.mark.parametrize(("kind", "name"), [("smtp", "ssl"), ("imap", "ssl")])
@pytest.mark.parametrize("by", ["host name", "IP address"])
def test_certificate_verifies_against_ca_file(stack: Stack, kind: str, name: str, by: str) -> None:
    """The servers' certificate verifies with ca_file, by mail host name and by IP address."""
    ep = endpoint(stack, kind, name)
    assert stack.ca_file is not None
    context = ssl.create_default_context(cafile=str(stack.ca_file))
    server_hostname = stack.mail_host if by == "host name" else ep.host
    names = _handshake(ep.address, context, server_hostname)
    assert ("DNS", stack.mail_host) in names


@pytest.mark.parametrize(
    ("name", "verify_code"),
    [
        ("ssl_expired", 10),  # X509_V_ERR_CERT_HAS_EXPIRED
        ("ssl_not_yet_valid", 9),  # X509_V_ERR_CERT_NOT_YET_VALID
        ("ssl_wrong_host", 62),  # X509_V_ERR_HOSTNAME_MISMATCH
        ("ssl_untrusted", 20),  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    ],
)
def test_bad_certificate_fails_verification(stack: Stack, name: str, verify_code: int) -> None:
    """Each bad-certificate server fails verification for exactly its one reason."""
    ep = endpoint(stack, "aiosmtpd", name)
    assert ep.ca_file is not None
    context = ssl.create_default_context(cafile=str(ep.ca_file))
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        _handshake(ep.address, context, stack.mail_host)
    assert caught.value.verify_code == verify_code


def test_untrusted_certificate_verifies_with_its_own_ca(stack: Stack) -> None:
    """The untrusted certificate is otherwise valid: trusting its CA makes it verify."""
    ep = endpoint(stack, "aiosmtpd", "ssl_untrusted")
    context = ssl.create_default_context(cafile=str(stack.certs.untrusted_ca_file))
    names = _handshake(ep.address, context, stack.mail_host)
    assert ("DNS", stack.mail_host) in names


# --- aiosmtpd --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["starttls", "ssl"])
def test_aiosmtpd_accepts_good_password(stack: Stack, name: str) -> None:
    """The aiosmtpd STARTTLS and implicit-TLS servers accept a good password (235)."""
    user, password = stack.credentials()
    with smtp_session(endpoint(stack, "aiosmtpd", name)) as smtp:
        code, _ = auth_plain(smtp, user, password)
    assert code == 235


@pytest.mark.parametrize("name", ["starttls", "ssl"])
def test_aiosmtpd_rejects_bad_password_with_535(stack: Stack, name: str) -> None:
    """The aiosmtpd STARTTLS and implicit-TLS servers answer 535 to a wrong password."""
    user, _ = stack.credentials()
    with smtp_session(endpoint(stack, "aiosmtpd", name)) as smtp:
        code, _ = auth_plain(smtp, user, "not-the-password")
    assert code == 535


def test_aiosmtpd_login_mechanism_accepts_good_password(stack: Stack) -> None:
    """The aiosmtpd implicit-TLS server also implements AUTH LOGIN."""
    user, password = stack.credentials()
    with smtp_session(endpoint(stack, "aiosmtpd", "ssl")) as smtp:
        smtp.user, smtp.password = user, password
        code, _ = smtp.auth("LOGIN", smtp.auth_login)
    assert code == 235


def test_aiosmtpd_starttls_server_requires_starttls(stack: Stack) -> None:
    """The aiosmtpd STARTTLS server answers 530 to AUTH before STARTTLS."""
    ep = endpoint(stack, "aiosmtpd", "starttls")
    user, password = stack.credentials()
    with smtplib.SMTP(ep.host, ep.port, local_hostname=CLIENT_NAME, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        code, _ = auth_plain(smtp, user, password)
    assert code == 530


def test_aiosmtpd_scripted_reply_is_sent_verbatim(stack: Stack) -> None:
    """The app_password server answers AUTH with Gmail's two-line 534 5.7.9 reply."""
    user, password = stack.credentials()
    with smtp_session(endpoint(stack, "aiosmtpd", "app_password")) as smtp:
        code, message = auth_plain(smtp, user, password)
    assert code == 534
    assert message.startswith(b"5.7.9 Application-specific password required")
    assert message.count(b"\n") == 1  # a continuation line plus the final line


# --- DNS -----------------------------------------------------------------------


@pytest.fixture
def resolver(stack: Stack) -> dns.resolver.Resolver:
    """A resolver that asks only the stack's DNS server, and quickly gives up."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [stack.dns[0]]
    resolver.port = stack.dns[1]
    resolver.timeout = 2.0
    resolver.lifetime = 2.0
    return resolver


def test_dns_good_domain_has_mx_to_mail_host(stack: Stack, resolver: dns.resolver.Resolver) -> None:
    """The good domain's MX is 10 mail.preflight.test."""
    answer = resolver.resolve(stack.domains["good"], "MX")
    assert [(r.preference, r.exchange.to_text()) for r in answer] == [(10, f"{stack.mail_host}.")]


def test_dns_mail_hosts_resolve_to_the_servers(
    stack: Stack, resolver: dns.resolver.Resolver
) -> None:
    """mail.preflight.test points at the mail servers, imap-strict at the strict listener."""
    mail = resolver.resolve(stack.mail_host, "A")
    strict = resolver.resolve(stack.strict_imap_host, "A")
    assert ([r.address for r in mail], [r.address for r in strict]) == (
        [stack.mail_address],
        [stack.strict_address],
    )


def test_dns_good_domain_has_spf_and_dmarc(stack: Stack, resolver: dns.resolver.Resolver) -> None:
    """The good domain publishes an SPF TXT record and a _dmarc TXT record."""
    good = stack.domains["good"]
    spf = [r.to_text() for r in resolver.resolve(good, "TXT")]
    dmarc = [r.to_text() for r in resolver.resolve(f"_dmarc.{good}", "TXT")]
    assert spf[0].startswith('"v=spf1 ')
    assert dmarc[0].startswith('"v=DMARC1; p=reject')


def test_dns_null_mx(stack: Stack, resolver: dns.resolver.Resolver) -> None:
    """The null_mx domain answers one MX record: preference 0, exchange the root (RFC 7505)."""
    answer = resolver.resolve(stack.domains["null_mx"], "MX")
    assert [(r.preference, r.exchange) for r in answer] == [(0, dns.name.root)]


def test_dns_a_only_domain_has_address_but_no_mx(
    stack: Stack, resolver: dns.resolver.Resolver
) -> None:
    """The a_only domain has no MX (NoAnswer) but an A record to fall back to."""
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve(stack.domains["a_only"], "MX")
    answer = resolver.resolve(stack.domains["a_only"], "A")
    assert [r.address for r in answer] == [stack.mail_address]


@pytest.mark.parametrize("rdtype", ["MX", "A", "AAAA"])
def test_dns_nodata_domain_exists_without_records(
    stack: Stack, resolver: dns.resolver.Resolver, rdtype: str
) -> None:
    """The nodata domain exists but has no MX, A or AAAA record (NoAnswer, not NXDOMAIN)."""
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve(stack.domains["nodata"], rdtype)


def test_dns_unknown_domain_is_nxdomain(stack: Stack, resolver: dns.resolver.Resolver) -> None:
    """The nxdomain domain does not exist."""
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve(stack.domains["nxdomain"], "MX")


@pytest.mark.parametrize("role", ["servfail", "refused"])
def test_dns_error_rcodes_leave_no_nameserver(
    stack: Stack, resolver: dns.resolver.Resolver, role: str
) -> None:
    """SERVFAIL and REFUSED answers surface in dnspython as NoNameservers."""
    with pytest.raises(dns.resolver.NoNameservers):
        resolver.resolve(stack.domains[role], "MX")


def test_dns_silent_domain_times_out_quickly(stack: Stack, resolver: dns.resolver.Resolver) -> None:
    """The timeout domain is never answered: a 0.5 s lifetime ends in a timeout, promptly."""
    resolver.lifetime = 0.5
    started = time.monotonic()
    with pytest.raises(dns.exception.Timeout):
        resolver.resolve(stack.domains["timeout"], "MX")
    assert time.monotonic() - started < 2.0


def test_dns_answers_over_tcp(stack: Stack, resolver: dns.resolver.Resolver) -> None:
    """The DNS server answers over TCP on the same port as UDP."""
    answer = resolver.resolve(stack.domains["good"], "MX", tcp=True)
    assert [r.exchange.to_text() for r in answer] == [f"{stack.mail_host}."]


# --- The fixtures themselves ---------------------------------------------------


def test_stack_never_shows_passwords(stack: Stack) -> None:
    """Neither repr(stack) nor the JSON that `python -m fixtures serve` prints holds a password."""
    shown = repr(stack) + json.dumps(stack.describe())
    assert [p for p in stack.users.values() if p in shown] == []
    assert sorted(stack.describe()["users"]) == sorted(USERS)


def test_greenmail_compose_file_matches_fixture_users() -> None:
    """docker/compose.yml pins a GreenMail tag, keeps auth on, and has the fixtures' users."""
    text = (REPO / "docker" / "compose.yml").read_text(encoding="utf-8")
    code = [line.split("#", 1)[0] for line in text.splitlines()]
    options = [word for line in code for word in line.split() if word.startswith("-D")]
    assert re.search(r"image:\s*greenmail/standalone:\d+\.\d+\.\d+\s", "\n".join(code))
    users = {}
    for option in options:
        if option.startswith("-Dgreenmail.users="):
            for entry in option.partition("=")[2].split(","):
                login, _, rest = entry.partition(":")
                password, _, domain = rest.rpartition("@")
                users[f"{login}@{domain}"] = password
    assert users == dict(USERS)
    assert "-Dgreenmail.users.login=email" in options
    assert [o for o in options if "auth.disabled" in o] == []


@pytest.fixture
def lifecycle_dir() -> Iterator[Path]:
    """A short, world-traversable run directory for a private Dovecot/Postfix pair."""
    rundir = Path(tempfile.mkdtemp(prefix="preflight-lifecycle-"))
    rundir.chmod(0o755)
    yield rundir
    shutil.rmtree(rundir, ignore_errors=True)


def _refused(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


@pytest.mark.needs_local_servers
def test_servers_stop_without_leaving_processes_and_restart(
    tmp_path: Path, lifecycle_dir: Path
) -> None:
    """Dovecot and Postfix stop leaving no process and free ports, and start again right away."""
    address = "127.0.0.21"  # not the session stack's addresses: both run at once
    imap_port, smtp_port = free_ports(address, 2)
    certs = make_certs(tmp_path / "certs")
    for round_ in (1, 2):  # the second round proves a restart works at once
        work = tmp_path / f"round{round_}"
        dovecot = Dovecot(
            confdir=work,
            rundir=lifecycle_dir / f"r{round_}",
            logdir=work,
            cert=certs.server,
            users=USERS,
            listeners=[DovecotListener("imaps", address, imap_port, ssl=True)],
            auth_socket_owner="postfix" if is_root() else None,
        )
        postfix = None
        try:
            try:
                dovecot.start()
            except MissingSystemDependencyError as exc:
                if is_root():
                    raise
                unavailable(str(exc))
            if is_root():
                assert dovecot.auth_socket is not None
                postfix = Postfix(
                    confdir=work / "postfix",
                    rundir=lifecycle_dir / f"r{round_}",
                    logdir=work,
                    cert=certs.server,
                    sasl_socket=dovecot.auth_socket,
                    listeners=[PostfixListener(address, smtp_port, "smtps")],
                )
                postfix.start()
            processes = [p.process for p in (dovecot, postfix) if p is not None]
            groups = [p.pid for p in processes if p is not None]
            assert all(group_members(g) for g in groups)
        finally:
            if postfix is not None:
                postfix.stop()
            dovecot.stop()
        assert [group_members(g) for g in groups] == [[] for _ in groups]
        assert _refused((address, imap_port))
        if is_root():
            assert _refused((address, smtp_port))


@pytest.mark.needs_local_servers
def test_second_stack_takes_next_slot_and_stops_cleanly(stack: Stack, tmp_path: Path) -> None:
    """A stack started while another runs moves to free addresses, works, and stops cleanly."""
    if not is_root():
        pytest.skip("without root every stack uses free high ports: no slots to move between")
    user, password = stack.credentials()
    with start_stack(tmp_path / "second", target="local") as second:
        assert second.mail_address != stack.mail_address
        with imap_session(endpoint(second, "imap", "ssl")) as imap:
            status, _ = imap.login(user, password)
        with smtp_session(endpoint(second, "smtp", "starttls")) as smtp:
            code, _ = auth_plain(smtp, user, password)
        addresses = [e.address for e in (*second.smtp.values(), *second.imap.values())]
    # Stopping raises if any Dovecot or Postfix process survives; the ports are free.
    assert (status, code) == ("OK", 235)
    assert [a for a in addresses if not _refused(a)] == []
