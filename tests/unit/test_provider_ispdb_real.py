"""The bundled provider table against the real Thunderbird ISPDB entries it overlaps.

``tests/data/ispdb/`` holds unmodified copies of ISPDB documents (MPL-2.0, test data
only; its README names the commit of each). Each is parsed with preflight's own
clientConfig parser (``preflight.discover._autoconfig.parse_config``), and every table
entry that one of the document's ``<domain>`` names leads to must agree with it.

A document's domain leads to a table entry the way ``providers.match`` recognises a
domain: by the entry's own address domains (``gmail.com``), else by its MX suffixes
(the ISPDB lists MX domains too, ``olc.protection.outlook.com``, and Thunderbird asks
it by the MX host's domain).

"Agree" means, for SMTP and for IMAP each:

1. the document names at least one server of the protocol;
2. the table's first choice (host, port, security) is one of the document's servers
   of that protocol, with the same port and the same security;
3. the table's first choice is as secure as the document's best server of that
   protocol (implicit TLS before STARTTLS before clear text);
4. every host the document names for the protocol is a host the table knows for the
   provider (any row of its family: ``Provider.server_hosts``), so a document's other
   servers are recognised as the provider's;
5. the user name the document gives every server of the protocol (``%EMAILADDRESS%``
   or ``%EMAILLOCALPART%``, expanded) is the table's ``login_name`` for it.

Where the table differs on purpose, ``EXCEPTIONS`` names the pair and the reason; the
test then checks that they do still differ, so an exception cannot outlive its cause.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from preflight.discover import AutoconfigError
from preflight.discover._autoconfig import _safe_tree, parse_config
from preflight.discover._model import SECURITY_ORDER
from preflight.providers import PROVIDERS, Provider, by_domain, by_mx

DATA = Path(__file__).resolve().parents[1] / "data" / "ispdb"
DOCUMENTS = sorted(p.name for p in DATA.glob("*.xml"))

#: Documents whose stored text is not well-formed XML, and the one repair the test
#: makes in memory to read them (the file on disk stays as the ISPDB has it).
MALFORMED: dict[str, tuple[bytes, bytes]] = {
    # "POP3 &amP; IMAP": entity names are case-sensitive, so &amP; is undefined.
    "web.de.xml": (b"&amP;", b"&amp;"),
}

#: (document, table entry) pairs where the table differs from the ISPDB on purpose.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("1und1.de.xml", "ionos-de"): (
        "The ISPDB lists the IONOS hosting MX domain kundenserver.de (and schlund.de) in "
        "both 1und1.de.xml (imap/smtp.1und1.de, the 1&1 DSL mailboxes) and ionos.de "
        "(imap/smtp.ionos.de). A domain whose MX is at kundenserver.de is an IONOS "
        "hosting customer's, and IONOS's settings page names the ionos.de hosts: the "
        "table follows ionos.de, which agrees."
    ),
}

#: The table entries the real documents reach (a new document or table row that
#: changes the overlap must say so here).
EXPECTED_OVERLAP = {
    "aol",
    "fastmail",
    "free",
    "gmail",
    "gmx",
    "gmx-com",
    "google-workspace",
    "icloud",
    "ionos-de",
    "ionos-es",
    "ionos-fr",
    "ionos-uk",
    "ionos-us",
    "mailru",
    "microsoft-365",
    "outlook-com",
    "rackspace",
    "webde",
    "yahoo",
    "yandex",
    "zoho-personal-us",
}


def _document(name: str) -> bytes:
    data = (DATA / name).read_bytes()
    if name in MALFORMED:
        wrong, right = MALFORMED[name]
        data = data.replace(wrong, right)
    return data


def _domains(name: str) -> list[str]:
    """The document's ``<domain>`` names, read with preflight's safe XML reader."""
    root = _safe_tree(_document(name))
    return [(d.text or "").strip().lower() for d in root.iter("domain") if d.text]


def _table_entry(domain: str) -> tuple[Provider, str] | None:
    provider = by_domain(domain)
    if provider is not None:
        return provider, "domain"
    found = by_mx([domain])
    return (found[0], "mx") if found is not None else None


@dataclass(frozen=True)
class Overlap:
    document: str
    provider: Provider
    domains: tuple[str, ...]  # the document's domains that lead to this entry


def _overlaps() -> Iterator[Overlap]:
    for name in DOCUMENTS:
        found: dict[str, tuple[Provider, list[str]]] = {}
        for domain in _domains(name):
            entry = _table_entry(domain)
            if entry is not None:
                found.setdefault(entry[0].id, (entry[0], []))[1].append(domain)
        for provider, domains in found.values():
            yield Overlap(name, provider, tuple(domains))


OVERLAPS = list(_overlaps())


def _disagreements(overlap: Overlap) -> list[str]:
    """What does not agree between the document and the table entry (empty: agreement)."""
    provider = overlap.provider
    domain = overlap.domains[0]
    email = f"some.one@{domain}"
    config = parse_config(_document(overlap.document), email, domain, "ispdb")
    family_hosts = {
        h for row in PROVIDERS if row.family == provider.family for h in row.server_hosts
    }
    problems: list[str] = []
    for protocol in ("smtp", "imap"):
        listed = [c for c in config.candidates if c.protocol == protocol]
        if not listed:
            problems.append(f"{protocol}: the document names no server")
            continue
        first = (provider.smtp if protocol == "smtp" else provider.imap)[0]
        servers = {(c.host, c.port, c.security) for c in listed}
        if (first.host, first.port, first.security) not in servers:
            problems.append(
                f"{protocol}: the table's {first.host}:{first.port} {first.security} is not "
                f"among the document's {sorted(servers)}"
            )
        best = min(SECURITY_ORDER[c.security] for c in listed)
        if SECURITY_ORDER[first.security] > best:
            problems.append(f"{protocol}: the document has a more secure server than the table's")
        unknown = {c.host for c in listed} - family_hosts
        if unknown:
            problems.append(f"{protocol}: hosts unknown to the table: {sorted(unknown)}")
        expected = provider.login_name(protocol, email)
        names = {c.username for c in listed}
        if names != {expected}:
            problems.append(f"{protocol}: user names {sorted(map(str, names))} != {expected!r}")
    return problems


def _id(overlap: Overlap) -> str:
    return f"{overlap.document}-{overlap.provider.id}"


# --- the documents ---------------------------------------------------------------


def test_every_document_is_listed_with_its_commit() -> None:
    """Each copy is in the folder's README with the file it came from and a commit id."""
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert "Mozilla Public License" in readme
    assert "https://github.com/thunderbird/autoconfig" in readme
    assert len(DOCUMENTS) >= 15
    for name in DOCUMENTS:
        row = re.search(
            rf"^\| {re.escape(name)} \| ispdb/\S+ \| ([0-9a-f]{{40}}) \|$", readme, re.M
        )
        assert row is not None, f"{name} is not listed in tests/data/ispdb/README.md"


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_parses(name: str) -> None:
    """preflight's parser reads every document (the malformed ones once repaired) and
    finds an SMTP and an IMAP server in it."""
    config = parse_config(_document(name), "some.one@example.test", "example.test", "ispdb")
    assert {c.protocol for c in config.candidates} == {"smtp", "imap"}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_documents_are_refused_as_stored(name: str) -> None:
    """The stored web.de entry is not well-formed XML (``&amP;``): the parser says so."""
    data = (DATA / name).read_bytes()
    assert MALFORMED[name][0] in data
    with pytest.raises(AutoconfigError) as raised:
        parse_config(data, "some.one@web.de", "web.de", "ispdb")
    assert raised.value.reason == "invalid"


def test_the_documents_overlap_the_expected_table_entries() -> None:
    """The real documents reach these table entries, and every document reaches one."""
    assert {o.provider.id for o in OVERLAPS} == EXPECTED_OVERLAP
    assert {o.document for o in OVERLAPS} == set(DOCUMENTS)


def test_local_part_user_names_are_backed_by_the_ispdb() -> None:
    """Every local-part user name in the table (iCloud's IMAP, WEB.DE's and Free's SMTP
    and IMAP) is one a real document gives, and the reverse."""
    table = {
        (p.id, protocol)
        for p in PROVIDERS
        for protocol, pattern in (("smtp", p.smtp_user), ("imap", p.imap_user))
        if pattern == "localpart"
    }
    documents: set[tuple[str, str]] = set()
    for overlap in OVERLAPS:
        domain = overlap.domains[0]
        config = parse_config(_document(overlap.document), f"x.y@{domain}", domain, "ispdb")
        documents |= {
            (overlap.provider.id, c.protocol) for c in config.candidates if c.username == "x.y"
        }
    assert table == documents
    assert {("icloud", "imap"), ("webde", "smtp"), ("free", "imap")} <= table


# --- the agreement ---------------------------------------------------------------


@pytest.mark.parametrize(
    "overlap",
    [o for o in OVERLAPS if (o.document, o.provider.id) not in EXCEPTIONS],
    ids=_id,
)
def test_table_agrees_with_the_ispdb(overlap: Overlap) -> None:
    """The table entry agrees with the document in the five points of the module's
    docstring: servers, first choice, security, known hosts, user-name pattern."""
    assert _disagreements(overlap) == []


@pytest.mark.parametrize("pair", sorted(EXCEPTIONS))
def test_exceptions_still_differ(pair: tuple[str, str]) -> None:
    """Each listed exception is a real overlap that does differ (else: remove it)."""
    overlap = next(o for o in OVERLAPS if (o.document, o.provider.id) == pair)
    assert _disagreements(overlap)
