"""The bundled table against ISPDB-format documents, the clientConfig parser and the
ISPDB's disk cache under arbitrary input, the registrable domain, the user-name hint."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.ispdb_server import FIXTURE_DIR, client_config, fixture_document
from preflight.checks._hints import user_name_hint
from preflight.discover import AutoconfigError
from preflight.discover._autoconfig import parse_config
from preflight.discover._ispdb import Ispdb, mx_domains, parse_base_url, registrable_domain
from preflight.discover._model import HOST_RE, SECURITY_ORDER
from preflight.providers import PROVIDERS, by_domain, get

FIXTURES = sorted(p.name for p in FIXTURE_DIR.iterdir() if p.name != "README.md")


# --- the table agrees with the ISPDB-format entries it overlaps ------------------------


def test_every_fixture_overlaps_the_table() -> None:
    """Each ISPDB-format fixture is for a domain of the bundled table."""
    assert len(FIXTURES) >= 5
    assert all(by_domain(domain) is not None for domain in FIXTURES)


@pytest.mark.parametrize("domain", FIXTURES)
def test_table_agrees_with_the_document(domain: str) -> None:
    """The document's best server per protocol is one of the table's, its hosts are the
    table's, and the user-name pattern (address or local part) is the table's."""
    provider = by_domain(domain)
    assert provider is not None
    email = f"some.one@{domain}"
    config = parse_config(fixture_document(domain), email, domain, "ispdb")
    for protocol in ("smtp", "imap"):
        listed = [c for c in config.candidates if c.protocol == protocol]
        assert listed, f"{domain}: no {protocol} server in the document"
        table = provider.smtp if protocol == "smtp" else provider.imap
        best = listed[0]
        assert (best.host, best.port, best.security) in {
            (s.host, s.port, s.security) for s in table
        }, f"{domain}: the document's best {protocol} server is not in the table"
        assert {c.host for c in listed} <= {s.host for s in table} | set(provider.hosts)
        assert {c.username for c in listed} == {provider.login_name(protocol, email)}, (
            f"{domain}: {protocol} user name"
        )


def test_local_part_providers_in_the_table() -> None:
    """The providers whose IMAP wants the part before the @, and their skeleton."""
    local = {p.id for p in PROVIDERS if p.imap_user == "localpart"}
    assert {"icloud", "webde", "free"} <= local
    assert get("icloud").login_name("imap", "a.b@icloud.com") == "a.b"
    assert get("icloud").login_name("smtp", "a.b@icloud.com") == "a.b@icloud.com"
    assert get("gmail").login_name("imap", "a@gmail.com") == "a@gmail.com"


@pytest.mark.asyncio
async def test_table_skeleton_for_a_local_part_provider() -> None:
    """An iCloud address from the table: imap_user_name is the local part, nothing asked."""
    from preflight.discover import discover

    result = await discover("Some.One@me.com")  # the table: nothing is asked
    body = result.skeleton()
    assert (body["user_name"], body["imap_user_name"]) == ("Some.One@me.com", "Some.One")
    assert result.lookups == ()


# --- the parser under arbitrary input ----------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_parse_config_never_raises_anything_else(data: bytes) -> None:
    """Arbitrary bytes: a document, or AutoconfigError('invalid'), never another exception."""
    try:
        parse_config(data, "a@b.test", "b.test", "ispdb")
    except AutoconfigError as exc:
        reason = exc.reason
    else:
        reason = "invalid"
    assert reason == "invalid"


_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="<&]"),
    max_size=40,
)
_SERVER = st.tuples(
    st.one_of(st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){1,3}", fullmatch=True), _TEXT),
    st.integers(-5, 70_000),
    st.sampled_from(["SSL", "STARTTLS", "plain", "TLS", "ssl", "bogus", ""]),
    st.one_of(st.sampled_from(["%EMAILADDRESS%", "%EMAILLOCALPART%", ""]), _TEXT),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_SERVER, max_size=4),
    st.lists(_SERVER, max_size=4),
    st.lists(_SERVER, max_size=2),
)
def test_parse_config_keeps_only_sane_servers_best_first(
    imap: list[tuple[str, int, str, str]],
    smtp: list[tuple[str, int, str, str]],
    pop3: list[tuple[str, int, str, str]],
) -> None:
    """Generated documents: valid hosts and ports only, best security first, printable names."""
    document = client_config("b.test", imap=tuple(imap), smtp=tuple(smtp), pop3=tuple(pop3))
    reason = ""
    try:
        config = parse_config(document, "al@b.test", "b.test", "ispdb")
    except AutoconfigError as exc:
        reason = exc.reason
    if reason:
        assert reason == "invalid"
        return
    ranks = [SECURITY_ORDER[c.security] for c in config.candidates]
    assert ranks == sorted(ranks)
    for candidate in config.candidates:
        assert HOST_RE.match(candidate.host)
        assert 1 <= candidate.port <= 65535
        assert candidate.source == "ispdb"
        if candidate.username is not None:
            assert candidate.username.isprintable()
            assert "%EMAIL" not in candidate.username
    assert len(config.candidates) == len(set(config.candidates))


# --- the disk cache under arbitrary files ------------------------------------------


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=512),
        st.dictionaries(
            st.sampled_from(["version", "url", "fetched_at", "result", "document", "detail"]),
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_cache_files_of_any_content_are_ignored_or_sane(tmp_path: Path, content: bytes) -> None:
    """A cache file of any content is ignored or read as a sane answer, never an exception."""
    client = Ispdb("https://127.0.0.1:9/v1.1/", cache_dir=tmp_path)
    path = client._cache_file("b.test")
    assert path is not None
    path.write_bytes(content)
    answer = client._read_cache("b.test")
    assert answer is None or answer.result in ("found", "none")


def test_cache_entry_round_trip_and_expiry(tmp_path: Path) -> None:
    """An entry written is read back; another base URL misses; an expired one is ignored."""
    from preflight.discover._ispdb import IspdbAnswer

    client = Ispdb("https://127.0.0.1:9/v1.1", cache_dir=tmp_path, ttl=60)
    url = client.url_for("b.test")
    assert url == "https://127.0.0.1:9/v1.1/b.test"
    client._write_cache(IspdbAnswer("b.test", url, "found", document=b"<clientConfig/>"))
    answer = client._read_cache("b.test")
    assert answer is not None
    assert (answer.result, answer.document, answer.cached) == ("found", b"<clientConfig/>", True)
    # Another base URL is another cache entry.
    assert Ispdb("https://127.0.0.2/v1.1/", cache_dir=tmp_path)._read_cache("b.test") is None
    path = client._cache_file("b.test")
    assert path is not None
    entry = json.loads(path.read_text())
    entry["fetched_at"] = time.time() - 61
    path.write_text(json.dumps(entry))
    assert client._read_cache("b.test") is None


def test_cache_dir_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    """A cache directory that cannot be created is only a cache miss."""
    from preflight.discover._ispdb import IspdbAnswer

    blocker = tmp_path / "file"
    blocker.write_text("x")
    client = Ispdb("https://127.0.0.1:9/v1.1/", cache_dir=blocker / "sub")
    client._write_cache(IspdbAnswer("b.test", "u", "none"))
    assert client._read_cache("b.test") is None


# --- URLs, registrable domains, the hint -------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://autoconfig.thunderbird.net/v1.1/", "ftp://x/", "https:///v1.1/", "not a url", ""],
)
def test_only_https_ispdb_urls(url: str) -> None:
    """The ISPDB base URL must be https:// with a host."""
    with pytest.raises(ValueError, match=r"https|URL"):
        parse_base_url(url)


def test_ispdb_url_path_gets_its_slash() -> None:
    """A base URL without a trailing slash gets one; the port is kept."""
    assert parse_base_url("https://mirror.example:8443/ispdb") == (
        "mirror.example",
        8443,
        "/ispdb/",
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("mx01.mail.icloud.com", "icloud.com"),
        ("mx00.gmx.net.", "gmx.net"),
        ("mx.example.co.uk", "example.co.uk"),
        ("smtp.city.kawasaki.jp", "city.kawasaki.jp"),
        ("mx1.isp-mail.test", "isp-mail.test"),
        ("co.uk", None),
        ("", None),
        ("bad host", None),
    ],
)
def test_registrable_domain(host: str, expected: str | None) -> None:
    """Registrable domains by the Public Suffix List, multi-label suffixes included."""
    assert registrable_domain(host) == expected


@given(st.text(max_size=80))
def test_registrable_domain_never_raises(host: str) -> None:
    """Any text: None or a suffix of the host name."""
    found = registrable_domain(host)
    assert found is None or host.lower().rstrip(".").endswith(found)


def test_user_name_hint() -> None:
    """The hint names the local part only for a local-part provider's server and a full address."""
    hint = user_name_hint("imap", "imap.mail.me.com", "jo@icloud.com", "Check the password.")
    assert hint == (
        "iCloud Mail's IMAP user name is the part before the @: set imap_user_name to 'jo', "
        "not the full address. Check the password."
    )
    # Already the local part, SMTP (full address), or another provider: unchanged.
    assert user_name_hint("imap", "imap.mail.me.com", "jo", "h") == "h"
    assert user_name_hint("smtp", "smtp.mail.me.com", "jo@icloud.com", "h") == "h"
    assert user_name_hint("imap", "imap.gmail.com", "jo@gmail.com", "h") == "h"
    # A custom domain hosted at iCloud (iCloud+) logs in with another account's name.
    assert user_name_hint("imap", "imap.mail.me.com", "jo@example.test", "h") == "h"
    assert user_name_hint("smtp", "smtp.web.de", "jo@web.de").startswith(
        "WEB.DE's SMTP user name is the part before the @: set user_name to 'jo'"
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("mx1.isp-mail.test", ["isp-mail.test"]),
        ("mx1.eu.big-isp.test", ["eu.big-isp.test", "big-isp.test"]),
        ("a-b.mail.protection.outlook.com", ["mail.protection.outlook.com", "outlook.com"]),
        ("mx.example.co.uk.", ["example.co.uk"]),
        ("co.uk", []),
    ],
)
def test_mx_domains(host: str, expected: list[str]) -> None:
    """The MX host less its first label (when below the registrable domain), then the
    registrable domain: Thunderbird's two ISPDB look-ups by MX."""
    assert mx_domains(host) == expected
