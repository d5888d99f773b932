"""`preflight discover` with Thunderbird's ISPDB, against a local ISPDB.

A local HTTPS server (fixtures/ispdb_server.py, the test stack's certificate) serves
clientConfig documents at its ``--ispdb-url`` base and counts every request; the test
stack's DNS server (fixtures/dns_server.py, ``ISPDB_DOMAINS``) gives the MX records;
the real Dovecot and Postfix take the logins of ``discover --check``. No test asks the
real ISPDB: every discovery is given the local server's URL or is offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.dns_server import ISPDB_DOMAINS
from fixtures.ispdb_server import IspdbServer, client_config
from fixtures.stack import Stack
from preflight.discover import Discovery, discover, render_text
from preflight.discover._ispdb import Ispdb
from preflight.options import CheckOptions

D = ISPDB_DOMAINS
#: Never the real ISPDB: a CLI run without --ispdb-url would get this (nothing listens).
DEAD_ISPDB = "https://127.0.0.1:9/v1.1/"


@pytest.fixture(scope="module")
def ispdb(stack: Stack) -> Iterator[IspdbServer]:
    """The local ISPDB, with documents for the stack's mail host and the test domains."""
    mail = stack.mail_host
    imap_ssl, smtp_starttls = stack.imap["ssl"].port, stack.smtp["starttls"].port
    with IspdbServer(stack.certs.server.cert, stack.certs.server.key) as server:
        server.documents.update(
            {
                # ISPDB-only: preflight.test has no autoconfig, SRV or table entry.
                stack.domains["good"]: client_config(
                    stack.domains["good"],
                    imap=((mail, imap_ssl, "SSL", "%EMAILADDRESS%"),),
                    smtp=(
                        (mail, smtp_starttls, "STARTTLS", "%EMAILADDRESS%"),
                        (mail, 25, "plain", "%EMAILADDRESS%"),
                    ),
                    name="Preflight Test Mail",
                ),
                D["mx_base"]: client_config(
                    D["mx_base"],
                    imap=(("imap.%EMAILDOMAIN%", 993, "SSL", "%EMAILADDRESS%"),),
                    smtp=(("smtp.isp-mail.test", 465, "SSL", "%EMAILADDRESS%"),),
                    name="ISP Mail",
                ),
                "big-isp.test": client_config(
                    "big-isp.test",
                    imap=(("imap.big-isp.test", 993, "SSL", "%EMAILADDRESS%"),),
                    smtp=(("smtp.big-isp.test", 465, "SSL", "%EMAILADDRESS%"),),
                ),
                D["localpart"]: client_config(
                    D["localpart"],
                    # Plain first in the document: still ranked after SSL and STARTTLS.
                    imap=(
                        ("imap.localpart-isp.test", 143, "plain", "%EMAILLOCALPART%"),
                        ("imap.localpart-isp.test", 143, "STARTTLS", "%EMAILLOCALPART%"),
                        ("imap.localpart-isp.test", 993, "SSL", "%EMAILLOCALPART%"),
                    ),
                    smtp=(("smtp.localpart-isp.test", 465, "SSL", "%EMAILADDRESS%"),),
                    name="Local Part ISP",
                ),
                D["pop3_only"]: client_config(
                    D["pop3_only"],
                    pop3=(("pop.pop-only.test", 995, "SSL", "%EMAILADDRESS%"),),
                    smtp=(("smtp.pop-only.test", 465, "SSL", "%EMAILADDRESS%"),),
                    name="POP Only",
                ),
                D["clear_text"]: client_config(
                    D["clear_text"],
                    imap=(("mail.cleartext-isp.test", 143, "plain", "%EMAILADDRESS%"),),
                    smtp=(("mail.cleartext-isp.test", 25, "plain", "%EMAILADDRESS%"),),
                ),
                D["malformed"]: b"<clientConfig><emailProvider><incomingServer type='imap'>",
            }
        )
        server.behaviours[D["huge"]] = server.huge(with_length=False)
        slow = client_config(
            D["slow"],
            imap=(("imap.ispdb-slow.test", 993, "SSL", "%EMAILADDRESS%"),),
            smtp=(("smtp.ispdb-slow.test", 465, "SSL", "%EMAILADDRESS%"),),
        )
        server.behaviours[D["slow"]] = server.slow(slow, 1.0)
        yield server


def options(stack: Stack, **changes: Any) -> CheckOptions:
    host, port = stack.dns
    values: dict[str, Any] = {
        "dns_server": f"{host}:{port}",
        "ca_file": str(stack.ca_file),
        "timeout": 15.0,
    }
    values.update(changes)
    return CheckOptions(**values)


async def find(
    stack: Stack, server: IspdbServer, email: str, client: Ispdb | None = None, **kwargs: Any
) -> Discovery:
    client = client or Ispdb(server.base_url)
    kwargs.setdefault("probe", False)
    kwargs.setdefault("autoconfig", False)
    return await discover(email, options(stack), ispdb=client, **kwargs)


def requests_for(server: IspdbServer, domain: str) -> int:
    with server.lock:
        return server.requests.count(domain)


def setting(result: Discovery, protocol: str) -> tuple[str, int, str, str] | None:
    chosen = result.smtp if protocol == "smtp" else result.imap
    return None if chosen is None else (chosen.host, chosen.port, chosen.security, chosen.source)


def ispdb_lookups(result: Discovery) -> list[tuple[str, str, str]]:
    return [(lk.target, lk.result, lk.detail) for lk in result.lookups if lk.step == "ispdb"]


# --- the look-ups -------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.needs_local_ca
async def test_by_domain(stack: Stack, ispdb: IspdbServer) -> None:
    """A domain only the ISPDB knows: its servers, best first, said to come from it."""
    user = stack.credentials()[0]
    result = await find(stack, ispdb, user, autoconfig=True)
    mail = stack.mail_host
    assert setting(result, "imap") == (mail, stack.imap["ssl"].port, "ssl", "ispdb")
    assert setting(result, "smtp") == (mail, stack.smtp["starttls"].port, "starttls", "ispdb")
    assert result.skeleton()["user_name"] == user
    assert "imap_user_name" not in result.skeleton()
    # The clear-text server is listed (after the others), never chosen.
    smtp_listed = [(c.port, c.security) for c in result.candidates if c.source == "ispdb"]
    assert smtp_listed[-1] == (25, "plain")
    [(url, outcome, _)] = ispdb_lookups(result)
    assert (url, outcome) == (ispdb.base_url + stack.domains["good"], "found")
    text = render_text(result)
    assert "from Thunderbird's ISPDB (by domain)" in text
    assert "also listed: " in text


@pytest.mark.asyncio
async def test_by_mx_domain(stack: Stack, ispdb: IspdbServer) -> None:
    """No entry for the domain: the ISPDB is asked for its MX host's registrable domain,
    and the placeholders still take the address's own domain."""
    result = await find(stack, ispdb, f"ann@{D['by_mx']}")
    assert setting(result, "imap") == (f"imap.{D['by_mx']}", 993, "ssl", "ispdb-mx")
    assert setting(result, "smtp") == ("smtp.isp-mail.test", 465, "ssl", "ispdb-mx")
    lookups = ispdb_lookups(result)
    assert [(u.rsplit("/", 1)[1], r) for u, r, _ in lookups] == [
        (D["by_mx"], "none"),
        (D["mx_base"], "found"),
    ]
    assert f"by MX mx1.{D['mx_base']}" in lookups[1][2]
    assert "from Thunderbird's ISPDB (by MX domain)" in render_text(result)


@pytest.mark.asyncio
async def test_by_mx_host_less_its_first_label_first(stack: Stack, ispdb: IspdbServer) -> None:
    """MX mx1.eu.big-isp.test: eu.big-isp.test is asked, then big-isp.test, as
    Thunderbird does; the first entry found wins."""
    result = await find(stack, ispdb, f"ann@{D['by_deep_mx']}")
    asked = [u.rsplit("/", 1)[1] for u, _, _ in ispdb_lookups(result)]
    assert asked == [D["by_deep_mx"], "eu.big-isp.test", "big-isp.test"]
    assert setting(result, "smtp") == ("smtp.big-isp.test", 465, "ssl", "ispdb-mx")
    ispdb.documents["eu.big-isp.test"] = client_config(
        "eu.big-isp.test",
        imap=(("imap.eu.big-isp.test", 993, "SSL", "%EMAILADDRESS%"),),
        smtp=(("smtp.eu.big-isp.test", 465, "SSL", "%EMAILADDRESS%"),),
    )
    try:
        again = await find(stack, ispdb, f"ann@{D['by_deep_mx']}")
    finally:
        del ispdb.documents["eu.big-isp.test"]
    assert setting(again, "smtp") == ("smtp.eu.big-isp.test", 465, "ssl", "ispdb-mx")
    assert [u.rsplit("/", 1)[1] for u, _, _ in ispdb_lookups(again)][-1] == "eu.big-isp.test"


@pytest.mark.asyncio
async def test_table_mx_comes_before_the_ispdb_by_mx(stack: Stack, ispdb: IspdbServer) -> None:
    """An MX the bundled table knows (Microsoft 365) is not asked of the ISPDB."""
    before = requests_for(ispdb, "outlook.com")
    result = await find(stack, ispdb, f"ceo@{D['m365_mx']}")
    assert result.provider is not None
    assert result.provider.provider.id == "microsoft-365"
    assert setting(result, "smtp") == ("smtp.office365.com", 587, "starttls", "table")
    assert requests_for(ispdb, "outlook.com") == before
    assert [r for _, r, _ in ispdb_lookups(result)] == ["none", "skipped"]
    assert any("OUTLOOK type and connect with OAuth" in n for n in result.notes)
    assert result.skeleton()["type"] == "OUTLOOK"


@pytest.mark.asyncio
async def test_microsoft_365_by_autodiscover_cname(stack: Stack, ispdb: IspdbServer) -> None:
    """No MX, but autodiscover.DOMAIN points at outlook.com: Microsoft 365, OAuth advised."""
    result = await find(stack, ispdb, f"cfo@{D['m365_autodiscover']}", client=None)
    assert result.provider is not None
    assert (result.provider.provider.id, result.provider.via) == ("microsoft-365", "autodiscover")
    assert result.skeleton()["type"] == "OUTLOOK"
    assert any("OUTLOOK type and connect with OAuth" in n for n in result.notes)
    assert "autodiscover CNAME autodiscover.outlook.com" in render_text(result)


@pytest.mark.asyncio
async def test_local_part_user_names(stack: Stack, ispdb: IspdbServer) -> None:
    """%EMAILLOCALPART% for IMAP, %EMAILADDRESS% for SMTP: the skeleton says both, and
    the IMAP servers rank SSL, STARTTLS, clear text whatever the document's order."""
    result = await find(stack, ispdb, f"carol.king@{D['localpart']}")
    body = result.skeleton()
    assert (body["user_name"], body["imap_user_name"]) == (
        f"carol.king@{D['localpart']}",
        "carol.king",
    )
    imap = [(c.port, c.security) for c in result.candidates if c.protocol == "imap"]
    assert imap == [(993, "ssl"), (143, "starttls"), (143, "plain")]
    assert setting(result, "imap") == (f"imap.{D['localpart']}", 993, "ssl", "ispdb")


@pytest.mark.asyncio
async def test_custom_domain_at_a_local_part_provider_keeps_the_address(
    stack: Stack, ispdb: IspdbServer
) -> None:
    """An iCloud+ custom domain (MX at mail.icloud.com): the table's servers, but no
    local-part user name (the login there is the iCloud account's, not this one)."""
    result = await find(stack, ispdb, f"ann@{D['icloud_custom']}")
    assert result.provider is not None
    assert (result.provider.provider.id, result.provider.via) == ("icloud", "mx")
    assert setting(result, "imap") == ("imap.mail.me.com", 993, "ssl", "table")
    assert "imap_user_name" not in result.skeleton()


@pytest.mark.asyncio
async def test_pop3_only_provider_is_reported(stack: Stack, ispdb: IspdbServer) -> None:
    """POP3 and SMTP, no IMAP: the SMTP server is kept, the note says SmartLead needs IMAP."""
    result = await find(stack, ispdb, f"dan@{D['pop3_only']}")
    assert result.imap is None
    assert setting(result, "smtp") == (f"smtp.{D['pop3_only']}", 465, "ssl", "ispdb")
    [note] = [n for n in result.notes if "offers no IMAP" in n]
    assert "this provider offers no IMAP: SmartLead needs IMAP" in note
    assert "pop.pop-only.test:995" in note
    assert not result.found


@pytest.mark.asyncio
async def test_clear_text_only_is_reported_never_chosen(stack: Stack, ispdb: IspdbServer) -> None:
    """Only clear-text servers listed: neither is chosen, and each protocol's note says so."""
    result = await find(stack, ispdb, f"eve@{D['clear_text']}")
    assert (result.smtp, result.imap) == (None, None)
    notes = [n for n in result.notes if "only clear-text" in n]
    assert len(notes) == 2
    assert all("not chosen" in n for n in notes)
    assert any("mail.cleartext-isp.test:143 with no encryption" in n for n in notes)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("role", "outcome", "detail"),
    [
        ("malformed", "invalid", "not well-formed"),
        ("huge", "too_large", "larger than the cap"),
    ],
)
async def test_unusable_documents(
    stack: Stack, ispdb: IspdbServer, role: str, outcome: str, detail: str
) -> None:
    """A malformed or oversized answer is a look-up result; the search goes on."""
    started = time.monotonic()
    result = await find(stack, ispdb, f"fay@{D[role]}")
    assert time.monotonic() - started < 10
    [(_, result_, why)] = ispdb_lookups(result)
    assert (result_, detail in why) == (outcome, True)
    assert (result.smtp, result.imap) == (None, None)


@pytest.mark.asyncio
async def test_slow_server_within_the_deadline(stack: Stack, ispdb: IspdbServer) -> None:
    """A document that takes a second arrives within the ISPDB's 5 s; a client with a
    shorter time limit gives up on it, and says so."""
    result = await find(stack, ispdb, f"gus@{D['slow']}")
    assert setting(result, "imap") == (f"imap.{D['slow']}", 993, "ssl", "ispdb")
    impatient = Ispdb(ispdb.base_url, timeout=0.3)
    started = time.monotonic()
    cut = await find(stack, ispdb, f"gus@{D['slow']}", client=impatient)
    assert time.monotonic() - started < 3
    [(_, outcome, _)] = ispdb_lookups(cut)
    assert outcome == "timeout"


@pytest.mark.asyncio
async def test_shared_request_cut_short_by_one_deadline(stack: Stack, ispdb: IspdbServer) -> None:
    """Two look-ups of one domain share a request; when the one that made it runs out
    of time, the other asks again instead of failing with it."""
    import asyncio

    client = Ispdb(ispdb.base_url)
    address = f"hal@{D['slow']}"
    before = requests_for(ispdb, D["slow"])

    async def search(timeout: float) -> Discovery:
        return await discover(
            address, options(stack, timeout=timeout), ispdb=client, probe=False, autoconfig=False
        )

    short, patient = await asyncio.gather(search(0.5), search(15.0))
    assert short.imap is None
    assert any("deadline" in note for note in short.notes)
    assert setting(patient, "imap") == (f"imap.{D['slow']}", 993, "ssl", "ispdb")
    assert requests_for(ispdb, D["slow"]) == before + 2


@pytest.mark.asyncio
async def test_offline_makes_no_http_request(stack: Stack, ispdb: IspdbServer) -> None:
    """--offline: the table and DNS only; the ISPDB server sees nothing."""
    before = len(ispdb.requests)
    result = await find(stack, ispdb, f"ann@{D['by_mx']}", offline=True, autoconfig=True)
    assert len(ispdb.requests) == before
    assert ispdb_lookups(result) == []
    assert [lk.step for lk in result.lookups if lk.step == "mx"] == ["mx"]
    assert any("--offline" in n for n in result.notes)


# --- the caches ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_one_request_per_domain_per_run(stack: Stack, ispdb: IspdbServer) -> None:
    """Two addresses of one domain in a run: one request, the user names filled in per address."""
    client = Ispdb(ispdb.base_url)
    domain = D["localpart"]
    before = requests_for(ispdb, domain)
    first = await find(stack, ispdb, f"a@{domain}", client=client)
    second = await find(stack, ispdb, f"b@{domain}", client=client)
    assert requests_for(ispdb, domain) == before + 1
    assert client.requests == 1
    assert second.skeleton()["imap_user_name"] == "b"  # filled in per address
    assert "(cached)" not in ispdb_lookups(first)[0][2]
    assert "(cached)" in ispdb_lookups(second)[0][2]


@pytest.mark.asyncio
async def test_disk_cache_and_its_expiry(stack: Stack, ispdb: IspdbServer, tmp_path: Path) -> None:
    """--cache-dir: a second run asks nothing; an expired or corrupt entry is asked again."""
    domain = D["localpart"]
    cache = tmp_path / "cache"
    before = requests_for(ispdb, domain)
    await find(stack, ispdb, f"a@{domain}", client=Ispdb(ispdb.base_url, cache_dir=cache))
    assert requests_for(ispdb, domain) == before + 1
    [entry] = list(cache.iterdir())
    # A second run: the answer comes from the disk.
    again = Ispdb(ispdb.base_url, cache_dir=cache)
    result = await find(stack, ispdb, f"b@{domain}", client=again)
    assert (again.requests, requests_for(ispdb, domain)) == (0, before + 1)
    assert result.skeleton()["imap_user_name"] == "b"
    # Expired: asked again, and the entry rewritten.
    data = json.loads(entry.read_text())
    data["fetched_at"] -= 2 * 86400
    entry.write_text(json.dumps(data))
    expired = Ispdb(ispdb.base_url, cache_dir=cache)
    await find(stack, ispdb, f"c@{domain}", client=expired)
    assert (expired.requests, requests_for(ispdb, domain)) == (1, before + 2)
    assert json.loads(entry.read_text())["fetched_at"] > data["fetched_at"]
    # Corrupt: ignored, asked again, replaced; no temporary file left behind.
    entry.write_bytes(b"\x00{not json")
    corrupt = Ispdb(ispdb.base_url, cache_dir=cache)
    result = await find(stack, ispdb, f"d@{domain}", client=corrupt)
    assert corrupt.requests == 1
    assert result.imap is not None
    assert json.loads(entry.read_text())["result"] == "found"
    assert [p.name for p in cache.iterdir()] == [entry.name]


@pytest.mark.asyncio
async def test_no_entry_is_cached_too(stack: Stack, ispdb: IspdbServer, tmp_path: Path) -> None:
    """A 404 is an answer ("no entry"), kept like a document."""
    first = Ispdb(ispdb.base_url, cache_dir=tmp_path)
    await find(stack, ispdb, f"a@{D['m365_autodiscover']}", client=first)
    second = Ispdb(ispdb.base_url, cache_dir=tmp_path)
    result = await find(stack, ispdb, f"a@{D['m365_autodiscover']}", client=second)
    assert (first.requests, second.requests) == (1, 0)
    assert [(r, "(cached)" in d) for _, r, d in ispdb_lookups(result)] == [("none", True)]


# --- the command line ---------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PREFLIGHT_ISPDB_URL": DEAD_ISPDB, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=environment,
    )


def cli_flags(stack: Stack, ispdb: IspdbServer) -> list[str]:
    host, port = stack.dns
    return [
        "--dns-server",
        f"{host}:{port}",
        "--ca-file",
        str(stack.ca_file),
        "--ispdb-url",
        ispdb.base_url,
    ]


@pytest.mark.needs_local_servers
def test_cli_discover_check_against_the_real_servers(stack: Stack, ispdb: IspdbServer) -> None:
    """From an address to a verified payload in one command: the ISPDB's settings,
    then real SMTP (Postfix) and IMAP (Dovecot) logins."""
    user, password = stack.credentials()
    done = run_cli(
        "discover", user, *cli_flags(stack, ispdb), "--no-probe", "--check",
        "--password-env", "ISPDB_TEST_PW", "--format", "json", "--from-name", "Alice",
        env={"ISPDB_TEST_PW": password},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert password not in done.stdout + done.stderr
    assert "from Thunderbird's ISPDB (by domain)" in done.stderr
    assert "Next:" not in done.stderr  # the check is the next step, done
    report = json.loads(done.stdout)
    [account] = report.get("accounts", [report])
    assert account["ok"] is True
    checks = {c["name"]: c["status"] for c in account["checks"]}
    assert checks["smtp"] == "pass"
    assert checks["imap"] == "pass"


@pytest.mark.needs_local_servers
def test_cli_discover_check_wrong_password_fails(stack: Stack, ispdb: IspdbServer) -> None:
    """discover --check with a wrong password: exit 1, auth_failed, the password shown nowhere."""
    user = stack.credentials()[0]
    done = run_cli(
        "discover", user, *cli_flags(stack, ispdb), "--no-probe", "--check",
        "--password-env", "ISPDB_TEST_PW", env={"ISPDB_TEST_PW": "not-the-password"},
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "auth_failed" in done.stdout
    assert "not-the-password" not in done.stdout + done.stderr


def test_cli_check_needs_a_password_source(stack: Stack, ispdb: IspdbServer) -> None:
    """--check never takes a password from a flag value; no source is exit 2."""
    done = run_cli("discover", stack.credentials()[0], *cli_flags(stack, ispdb), "--check")
    assert done.returncode == 2
    assert "no password" in done.stderr
    flag = run_cli("discover", "a@b.test", "--password-env", "X")
    assert flag.returncode == 2
    assert "only with --check" in flag.stderr


def test_cli_input_file_writes_json_lines(stack: Stack, ispdb: IspdbServer, tmp_path: Path) -> None:
    """A CSV of addresses -> one skeleton per address, in order; what is not found is
    said on standard error; each domain asked of the ISPDB once."""
    addresses = tmp_path / "leads.csv"
    addresses.write_text(
        "name,email\n"
        f"Carol,carol@{D['localpart']}\n"
        f"Dave,dave@{D['localpart']}\n"
        f"Ann,ann@{D['by_mx']}\n"
        f"Dan,dan@{D['pop3_only']}\n"
        "Bad,not-an-address\n"
        "Icloud,someone@icloud.com\n"
    )
    before = requests_for(ispdb, D["localpart"])
    done = run_cli("discover", "--input", str(addresses), *cli_flags(stack, ispdb), "--no-probe")
    assert done.returncode == 1  # one not found, one malformed
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["from_email"] for line in lines] == [
        f"carol@{D['localpart']}",
        f"dave@{D['localpart']}",
        f"ann@{D['by_mx']}",
        f"dan@{D['pop3_only']}",
        "someone@icloud.com",
    ]
    assert lines[0]["imap_user_name"] == "carol"
    assert lines[2]["imap_host"] == f"imap.{D['by_mx']}"
    assert "imap_host" not in lines[3]
    assert lines[4]["imap_user_name"] == "someone"
    assert requests_for(ispdb, D["localpart"]) == before + 1
    assert f"dan@{D['pop3_only']}: not found: imap_host, imap_port" in done.stderr
    assert "line 6: " in done.stderr
    assert "skipped" in done.stderr
    full = run_cli(
        "discover", "--input", str(addresses), *cli_flags(stack, ispdb), "--no-probe",
        "--format", "json",
    )  # fmt: skip
    documents = [json.loads(line) for line in full.stdout.splitlines()]
    assert [d["payload"] for d in documents] == lines
    assert documents[2]["discovery"]["imap"]["source"] == "ispdb-mx"
    plain = tmp_path / "plain.txt"
    plain.write_text(f"# leads\n\ncarol@{D['localpart']}\n")
    one = run_cli("discover", "--input", str(plain), *cli_flags(stack, ispdb), "--no-probe")
    assert one.returncode == 0, one.stderr
    assert [json.loads(x)["imap_user_name"] for x in one.stdout.splitlines()] == ["carol"]


def test_cli_offline_and_bad_urls(stack: Stack, ispdb: IspdbServer) -> None:
    """--offline makes no request; a non-https or malformed --ispdb-url is exit 2, no traceback."""
    before = len(ispdb.requests)
    done = run_cli("discover", f"ann@{D['by_mx']}", *cli_flags(stack, ispdb), "--offline")
    assert len(ispdb.requests) == before
    assert done.returncode == 1
    neither = run_cli("discover", "--offline")
    assert neither.returncode == 2
    assert "give one EMAIL or --input FILE" in neither.stderr
    for url in ("http://127.0.0.1/v1.1/", "not a url", "https:///v1.1/"):
        bad = run_cli("discover", "a@b.test", "--ispdb-url", url)
        assert bad.returncode == 2, url
        assert "--ispdb-url" in bad.stderr
        assert "Traceback" not in bad.stderr


def test_cli_text_session_for_an_ispdb_only_domain(stack: Stack, ispdb: IspdbServer) -> None:
    """The text report names the ISPDB as the source and the IMAP user name."""
    done = run_cli("discover", f"carol@{D['localpart']}", *cli_flags(stack, ispdb), "--no-probe")
    assert done.returncode == 0, done.stderr
    assert "from Thunderbird's ISPDB (by domain)" in done.stdout
    assert "IMAP user carol" in done.stdout


@pytest.mark.needs_local_servers
def test_check_hints_the_local_part_user_name(stack: Stack, tmp_path: Path) -> None:
    """A refused IMAP login with a full address on iCloud's IMAP host (here the test
    Dovecot, by the local DNS): the hint says the user name is the part before the @,
    from the bundled table, without asking anything else."""
    from fixtures.dns_server import LOCALPART_IMAP_HOST

    host, port = stack.dns
    payload = {
        "from_name": "Someone",
        "from_email": "someone@preflight.test",
        "user_name": "someone@icloud.com",
        "password": "wrong-Pw-1",
        "smtp_host": stack.mail_host,
        "smtp_port": stack.smtp["starttls"].port,
        "imap_host": LOCALPART_IMAP_HOST,
        "imap_port": stack.imap["ssl"].port,
        "warmup_enabled": False,
    }
    accounts = tmp_path / "account.json"
    accounts.write_text(json.dumps(payload))
    done = run_cli(
        "check", str(accounts), "--format", "json", "--insecure", "--no-domain-check",
        "--dns-server", f"{host}:{port}", "--dns-for-hosts",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    [account] = report.get("accounts", [report])
    [imap] = [c for c in account["checks"] if c["name"] == "imap"]
    assert imap["code"] == "auth_failed"
    assert imap["hint"].startswith(
        "iCloud Mail's IMAP user name is the part before the @: set imap_user_name to 'someone'"
    )
    [smtp] = [c for c in account["checks"] if c["name"] == "smtp"]
    assert "part before the @" not in (smtp.get("hint") or "")
