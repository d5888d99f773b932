"""The payload's fast path for everyday addresses agrees with email-validator.

``payload.plain_address`` answers for the addresses most payloads carry without
importing email-validator (a cold start's largest single cost). It may decline any
address (the library then judges it); what it accepts, the library must accept with
the same normalized address and domain. Hypothesis searches for a disagreement.
"""

from __future__ import annotations

import email_validator
import pytest
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from hypothesis import example, given, settings
from hypothesis import strategies as st

from preflight.payload import (
    CASE_INSENSITIVE_MAILBOXES,
    SPECIAL_USE_DOMAINS,
    parse_account,
    plain_address,
)


def library(value: str) -> tuple[str, str] | None:
    try:
        valid = validate_email(value, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return None
    return valid.normalized, valid.ascii_domain


def test_the_copied_lists_are_the_library_s() -> None:
    assert tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES) == SPECIAL_USE_DOMAINS
    assert frozenset(CASE_INSENSITIVE_MAILBOX_NAMES) == CASE_INSENSITIVE_MAILBOXES


# Pieces that sit at the edges of the rules: separators, hyphens, digits, case,
# special-use names, punycode, long labels.
_PIECES = st.sampled_from(
    [
        "a", "Z", "0", "9", ".", "-", "_", "+", "--", "..", "xn--", "ab--", "@", "com",
        "test", "local", "localhost", "arpa", "onion", "invalid", "Info", "POSTMASTER",
        "co1", "x" * 63, "y" * 64, "é", " ", '"', "(", ")", "[", "]", "!", "#", "=", "~",
    ]
)  # fmt: skip
_ADDRESSES = st.one_of(
    st.emails(),
    st.lists(_PIECES, min_size=1, max_size=12).map("".join),
    st.tuples(
        st.lists(_PIECES, min_size=1, max_size=5).map("".join),
        st.lists(_PIECES, min_size=1, max_size=6).map("".join),
    ).map("@".join),
    st.text(alphabet="aB3.-_+@", max_size=40),
)


@settings(max_examples=1000, deadline=None)
@given(_ADDRESSES)
@example("John.Doe@Example.COM")
@example("Postmaster@example.com")
@example("a@b.test")
@example("a@ab--cd.com")
@example("a@xn--bcher-kva.com")
@example("a@b.c0m")
@example(("x" * 64) + "@example.com")
@example("a@" + ".".join(["a" * 63] * 4) + ".com")
def test_what_the_fast_path_accepts_the_library_accepts_alike(value: str) -> None:
    plain = plain_address(value)
    if plain is None:
        return
    assert library(value) == (plain.normalized, plain.ascii_domain), value


@pytest.mark.parametrize(
    "value",
    ["john.doe@example.com", "John.Doe+tag@Mail.Example.co.uk", "a_b-c@sub-domain.example.org"],
)
def test_everyday_addresses_take_the_fast_path(value: str) -> None:
    plain = plain_address(value)
    assert plain is not None
    assert (plain.normalized, plain.ascii_domain) == library(value)


def test_the_payload_check_never_imports_the_library_for_an_everyday_address() -> None:
    """Run in a fresh interpreter: importing the library is what the fast path avoids."""
    import subprocess
    import sys

    code = (
        "import sys; from preflight.payload import parse_account; "
        "p = parse_account({'from_name': 'A', 'from_email': 'A.B@Example.com', "
        "'user_name': 'a.b@example.com', 'password': 'x', 'smtp_host': 'smtp.example.com', "
        "'smtp_port': 587, 'imap_host': 'imap.example.com', 'imap_port': 993, "
        "'warmup_enabled': False}); "
        "print(p.account.from_email, p.account.email_domain, 'email_validator' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["A.B@example.com", "example.com", "False"]


def test_a_declined_address_is_still_judged_by_the_library() -> None:
    assert plain_address("a..b@example.com") is None
    parsed = parse_account({"from_email": "a..b@example.com"})
    problems = [p.message for p in parsed.errors if p.field == "from_email"]
    assert len(problems) == 1
    assert "two periods in a row" in problems[0]
