"""The blocklist check's pure parts: query names, zone names, what an answer means."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight.checks._zones import domain_query, ip_query, ptr_name, reverse_labels, valid_zone
from preflight.checks.blocklist import delist_page, read_answer
from preflight.options import DEFAULT_DOMAIN_BLOCKLISTS, DEFAULT_IP_BLOCKLISTS, CheckOptions
from preflight.report import CHECK_NAMES, Code

IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str)


def test_query_names_as_the_lists_document_them() -> None:
    """The examples of the issue and of the lists' own pages."""
    assert ip_query("1.2.3.4", "zen.spamhaus.org") == "4.3.2.1.zen.spamhaus.org"
    assert domain_query("Example.COM.", "dbl.spamhaus.org") == "example.com.dbl.spamhaus.org"
    assert ip_query("2001:db8::1", "zen.spamhaus.org") == (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org"
    )
    assert ptr_name("192.0.2.7") == "7.2.0.192.in-addr.arpa"
    # An IPv4-mapped IPv6 address is the IPv4 address on the wire.
    assert reverse_labels("::ffff:192.0.2.7") == "7.2.0.192"


@given(IPV4)
def test_ipv4_reversal_is_the_octets_backwards(address: str) -> None:
    """Any IPv4 address: four labels, the octets backwards, as in-addr.arpa spells it."""
    labels = reverse_labels(address).split(".")
    assert len(labels) == 4
    assert ".".join(reversed(labels)) == address
    assert ptr_name(address) == ipaddress.ip_address(address).reverse_pointer


@given(IPV6)
def test_ipv6_reversal_is_32_nibbles_backwards(address: str) -> None:
    """Any IPv6 address: 32 hex nibbles backwards (an IPv4-mapped one: its IPv4 form)."""
    ip = ipaddress.IPv6Address(address)
    name = reverse_labels(address)
    if ip.ipv4_mapped is not None:
        assert name == reverse_labels(str(ip.ipv4_mapped))
        return
    nibbles = name.split(".")
    assert len(nibbles) == 32
    assert all(len(n) == 1 and n in "0123456789abcdef" for n in nibbles)
    assert int("".join(reversed(nibbles)), 16) == int(ip)
    assert ptr_name(address) == ip.reverse_pointer
    assert ip_query(address, "zone.test") == f"{name}.zone.test"


@pytest.mark.parametrize(
    "zone", ["zen.spamhaus.org", "ABC123def.zen.dq.spamhaus.net", "b.barracudacentral.org."]
)
def test_valid_zones_are_normalized(zone: str) -> None:
    """A zone name is taken lower-cased and without its final dot (DQS keys included)."""
    assert valid_zone(zone) == zone.lower().rstrip(".")


@pytest.mark.parametrize(
    "zone",
    [
        "",
        ".",
        "a..b",
        "bad zone",
        "zen.spamhaus.org\x00",
        "-x.test",
        "ü.test",
        "a" * 64 + ".test",
        ("x" * 60 + ".") * 4 + "test",
    ],
)
def test_invalid_zones_are_refused(zone: str) -> None:
    """What is not a DNS name, or leaves no room for a query, is a ValueError."""
    with pytest.raises(ValueError, match="zone name"):
        valid_zone(zone)


@given(st.text(max_size=300))
def test_any_text_is_a_valid_zone_or_a_value_error(text: str) -> None:
    """Any text: a clean zone name or a ValueError, never anything else."""
    try:
        zone = valid_zone(text)
    except ValueError:
        return
    assert zone
    assert len(zone) <= 253 - 64
    assert set(zone) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


@pytest.mark.parametrize(
    ("zone", "answers", "verdict", "words"),
    [
        ("dbl.spamhaus.org", ["127.0.1.2"], "listed", "spam domain"),
        ("dbl.spamhaus.org", ["127.0.1.4"], "listed", "phishing"),
        ("zen.spamhaus.org", ["127.0.0.2", "127.0.0.4"], "listed", "XBL"),
        ("zen.spamhaus.org", ["127.0.0.10"], "listed", "PBL"),
        ("multi.surbl.org", ["127.0.0.80"], "listed", "MW: malware, ABUSE"),
        ("bl.spamcop.net", ["127.0.0.2"], "listed", "127.0.0.2"),
        ("zen.spamhaus.org", ["127.255.255.254"], "unavailable", "public or open resolver"),
        ("zen.spamhaus.org", ["127.255.255.255"], "unavailable", "too many queries"),
        ("zen.spamhaus.org", ["127.255.255.252"], "unavailable", "mistyped"),
        ("zen.spamhaus.org", ["127.255.255.250"], "unavailable", "error code"),
        ("dbl.spamhaus.org", ["127.0.1.255"], "unavailable", "IP queries"),
        ("multi.surbl.org", ["127.0.0.1"], "unavailable", "refused"),
        ("zen.spamhaus.org", ["198.51.100.7"], "unavailable", "wildcarding"),
        ("zen.spamhaus.org", ["127.0.0.2", "127.255.255.254"], "unavailable", "resolver"),
        ("zen.spamhaus.org", ["not-an-address"], "unavailable", "not an IPv4"),
    ],
)
def test_answers_are_read_with_care(
    zone: str, answers: list[str], verdict: str, words: str
) -> None:
    """Listing codes by list; refusal codes, wildcards and junk are unavailable."""
    got, meaning = read_answer(zone, answers)
    assert (got, words in meaning) == (verdict, True), meaning


@given(IPV4.filter(lambda a: not a.startswith("127.")), st.sampled_from(DEFAULT_IP_BLOCKLISTS))
def test_an_answer_outside_loopback_is_never_a_listing(address: str, zone: str) -> None:
    """An address outside 127.0.0.0/8 is a wildcarding resolver, never a listing."""
    assert read_answer(zone, [address])[0] == "unavailable"


@given(st.integers(0, 255), st.sampled_from((*DEFAULT_DOMAIN_BLOCKLISTS, "bl.test")))
def test_spamhaus_error_range_is_never_a_listing(last: int, zone: str) -> None:
    """127.255.255.x is an error code on any zone, never a listing."""
    assert read_answer(zone, [f"127.255.255.{last}"])[0] == "unavailable"


def test_delisting_pages_by_operator() -> None:
    """Each default list's operator has its look-up and removal page; others none."""
    assert delist_page("zen.spamhaus.org") == "https://check.spamhaus.org/"
    assert delist_page("KEY.zen.dq.spamhaus.net") == "https://check.spamhaus.org/"
    assert delist_page("b.barracudacentral.org") is not None
    assert delist_page("bl.spamcop.net") is not None
    assert delist_page("multi.surbl.org") is not None
    assert delist_page("notspamhaus.org") is None


def test_options_defaults_and_validation() -> None:
    """The defaults are the documented lists; zones given are checked and normalized."""
    options = CheckOptions()
    assert options.check_blocklist is True
    assert options.domain_blocklists == ("dbl.spamhaus.org", "multi.surbl.org")
    assert options.ip_blocklists == ("zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net")
    given_ = CheckOptions(ip_blocklists=["BL.Test.", "bl.test"], domain_blocklists=())  # type: ignore[arg-type]
    assert (given_.ip_blocklists, given_.domain_blocklists) == (("bl.test",), ())
    with pytest.raises(TypeError):
        CheckOptions(ip_blocklists="zen.spamhaus.org")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a DNS zone"):
        CheckOptions(domain_blocklists=("bad zone",))


def test_blocklist_check_and_codes_are_registered() -> None:
    """The check comes right after domain; its four codes are in Code."""
    assert CHECK_NAMES.index("blocklist") == CHECK_NAMES.index("domain") + 1
    assert {c.value for c in Code} >= {
        "blocklisted",
        "blocklist_unavailable",
        "rdns_missing",
        "rdns_mismatch",
    }


def test_rdns_hints_name_the_host_or_say_there_is_none() -> None:
    """The reverse-DNS hints suggest the SMTP host's name, never an address as a name."""
    from preflight.checks._rdns import Rdns, rdns_problems

    ((code, message, hint),) = rdns_problems(Rdns("192.0.2.7", "missing"), "mail.example.com")
    assert code is Code.RDNS_MISSING
    assert "192.0.2.7" in message
    assert "PTR) to mail.example.com and keep mail.example.com resolving to 192.0.2.7" in hint
    ((_, _, hint),) = rdns_problems(Rdns("192.0.2.7", "missing"), "192.0.2.7")
    assert "the server's host name" in hint
    mismatch = Rdns("192.0.2.7", "mismatch", ("other.example",), {"other.example": []})
    ((code, message, _),) = rdns_problems(mismatch, "mail.example.com")
    assert code is Code.RDNS_MISMATCH
    assert "other.example -> nothing" in message
    timeout = Rdns("192.0.2.7", "unavailable", failure="timeout")
    assert rdns_problems(timeout, "mail.example.com")[0][0] is Code.DNS_TIMEOUT
    assert rdns_problems(Rdns("192.0.2.7", "ok"), "mail.example.com") == []


@pytest.mark.parametrize(
    ("answers", "words"),
    [
        (("127.255.255.254",), "Data Query Service"),
        (("127.255.255.255",), "Data Query Service"),
        (("127.0.0.1",), "Data Query Service"),
        (("127.255.255.252",), "mistyped"),
        (("127.0.1.255",), "lists domains, not addresses"),
        (("198.51.100.7",), "invents answers"),
        ((), "did not answer"),
    ],
)
def test_unavailable_hints_follow_the_answer(answers: tuple[str, ...], words: str) -> None:
    """The hint of an unavailable list says what to do about what it answered."""
    from preflight.checks.blocklist import ZoneResult, _unavailable_hint

    result = ZoneResult("zen.spamhaus.org", "192.0.2.7", "q", "unavailable", answers)
    hint = _unavailable_hint(result)
    assert words in hint
    assert "--" in hint  # names the flag to use


def test_a_query_name_over_the_dns_limit_is_unavailable_without_asking() -> None:
    """A long domain under a long zone: no query is sent, the list is unavailable."""
    import asyncio

    from preflight.checks.blocklist import lookup_domain

    class NoResolver:
        async def resolve(self, *args: object, **kwargs: object) -> object:
            raise AssertionError("nothing may be asked")

    domain = ".".join(["a" * 60] * 3) + ".test"
    zone = "x" * 60 + ".example"
    (result,) = asyncio.run(lookup_domain(domain, (zone,), NoResolver(), 1e12))  # type: ignore[arg-type]
    assert (result.verdict, "longer than DNS allows" in result.meaning) == ("unavailable", True)
