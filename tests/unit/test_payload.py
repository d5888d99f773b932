"""The payload model: every documented field, every problem at once, no secret shown."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from preflight.payload import FIELDS, REQUIRED, Account, AccountType, parse_account
from preflight.secret import Secret

CANARY = "CANARY-pw-7f3a"
DATA = Path(__file__).parent / "data"
REFERENCE = Path(__file__).parents[3] / "shared" / "reference" / "smartlead-save-email-account.txt"


def good(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from_name": "Alice Example",
        "from_email": "alice@example.com",
        "user_name": "alice@example.com",
        "password": CANARY,
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "imap_host": "imap.example.com",
        "imap_port": 993,
        "warmup_enabled": True,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def errors_of(raw: object) -> dict[str | None, str]:
    parsed = parse_account(raw)
    return {p.field: p.message for p in parsed.errors}


def test_schema_matches_published_reference() -> None:
    """Every field of the published save body is modelled, and no other."""
    if not REFERENCE.exists() and not os.environ.get("CI"):
        pytest.skip("shared/reference is not beside this checkout")
    text = REFERENCE.read_text()
    body = text.split("Request Body", 1)[1].split("Response Codes", 1)[0]
    documented = re.findall(r"^([a-z_]+)\n(?:string|number|boolean|object)\n", body, re.M)
    required = re.findall(r"^([a-z_]+)\n(?:string|number|boolean|object)\nrequired\n", body, re.M)
    assert set(documented) == set(FIELDS)
    assert set(required) == set(REQUIRED)


def test_seed_example_is_valid() -> None:
    """The example payload of the API page passes with no error and no warning."""
    raw = json.loads((DATA / "example.json").read_text())
    parsed = parse_account(raw)
    assert parsed.errors == []
    assert parsed.warnings == []
    assert parsed.account is not None
    assert parsed.account.type is AccountType.GMAIL


def test_serializes_back_to_the_same_body() -> None:
    """to_payload(reveal_secrets=True) gives back exactly the body that was read."""
    raw = json.loads((DATA / "example.json").read_text())
    parsed = parse_account(raw)
    assert parsed.account is not None
    assert parsed.account.to_payload(reveal_secrets=True) == raw


def test_serialization_masks_secrets_by_default() -> None:
    """Without reveal_secrets, the password and token are masked."""
    parsed = parse_account(good(token={"access_token": "TOKEN-CANARY"}, imap_password=CANARY))
    assert parsed.account is not None
    shown = json.dumps(parsed.account.to_payload())
    assert CANARY not in shown
    assert "TOKEN-CANARY" not in shown
    assert parsed.account.to_payload(reveal_secrets=True)["password"] == CANARY


def test_email_is_normalized() -> None:
    """from_email's domain is lower-cased (the local part is kept as given)."""
    parsed = parse_account(good(from_email="Alice@EXAMPLE.com"))
    assert parsed.account is not None
    assert parsed.account.from_email == "Alice@example.com"
    assert parsed.account.email_domain == "example.com"


def test_every_missing_required_field_is_reported() -> None:
    """An empty object names each required field, all at once."""
    assert set(errors_of({})) == set(REQUIRED)


def test_all_problems_in_one_pass() -> None:
    """Bad address, port 70000, type YAHOO and a typo all come back together."""
    raw = good(from_email="not-an-address", smtp_port=70000, type="YAHOO", smtp_prot=587)
    errors = errors_of(raw)
    assert set(errors) == {"from_email", "smtp_port", "type", "smtp_prot"}
    assert "70000" in errors["smtp_port"]
    assert "'smtp_port'" in errors["smtp_prot"]


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("smtp_prot", "smtp_port"),
        ("pasword", "password"),
        ("imap_user", "imap_user_name"),
        ("warmup_enable", "warmup_enabled"),
        ("fromemail", "from_email"),
    ],
)
def test_unknown_field_suggests_closest(typo: str, meant: str) -> None:
    """A field the API does not document is an error naming the closest documented one."""
    message = errors_of(good(**{typo: "x"}))[typo]
    assert f"did you mean {meant!r}" in message


def test_unknown_field_without_close_match() -> None:
    """A field far from every documented one is still an error, with no guess."""
    message = errors_of(good(zzzz=1))["zzzz"]
    assert "not a field" in message
    assert "did you mean" not in message


@pytest.mark.parametrize("port", [0, 65536, 70000, -1])
def test_port_out_of_range(port: int) -> None:
    """Ports outside 1-65535 are refused."""
    assert "between 1 and 65535" in errors_of(good(imap_port=port))["imap_port"]


@pytest.mark.parametrize("port", [True, "587", None, 587.5, [587]])
def test_port_wrong_type(port: object) -> None:
    """A port must be a whole JSON number: not a boolean, text, fraction or list."""
    errors = errors_of(good(smtp_port=port))
    assert "smtp_port" in errors


def test_integral_float_port_is_accepted() -> None:
    """587.0 is the number 587 in JSON."""
    parsed = parse_account(good(smtp_port=587.0))
    assert parsed.account is not None
    assert parsed.account.smtp_port == 587


@pytest.mark.parametrize(
    ("host", "expect"),
    [
        ("smtp://smtp.gmail.com", "URL"),
        ("https://smtp.gmail.com/x", "URL"),
        ("smtp.gmail.com/path", "path"),
        ("smtp.gmail.com:587", "includes a port"),
        (" smtp.gmail.com", "spaces around"),
        ("smtp gmail.com", "contains spaces"),
        ("smtp.gmail.com\r\nMAIL FROM:<x>", "control character"),
        ("smtp.gmail.com\n", "control character"),
        ("user@gmail.com", "address"),
        ("-bad-.example.com", "not a valid host name"),
        ("a" * 64 + ".example.com", "not a valid host name"),
        ("192.168.1", "neither"),
        ("", "empty"),
    ],
)
def test_bad_host_names(host: str, expect: str) -> None:
    """Host names are syntactically host names: no scheme, path, port, space or CR/LF."""
    assert expect in errors_of(good(smtp_host=host))["smtp_host"]


@pytest.mark.parametrize(
    "host",
    [
        "smtp.gmail.com",
        "smtp.gmail.com.",
        "127.0.0.1",
        "::1",
        "[::1]",
        "mail.bücher.de",
        "mx_1.example.com",
    ],
)
def test_good_host_names(host: str) -> None:
    """Names, IP literals, a trailing dot and IDN names are accepted."""
    assert "smtp_host" not in errors_of(good(smtp_host=host))


def test_type_wrong_case_suggests_upper() -> None:
    """'gmail' is not GMAIL, but the message says what to write."""
    assert "'GMAIL'" in errors_of(good(type="gmail"))["type"]


def test_token_must_be_object() -> None:
    """token is an object; its value is never echoed."""
    message = errors_of(good(token="TOKEN-CANARY"))["token"]
    assert "object" in message
    assert "TOKEN-CANARY" not in message


def test_oauth_only_account_needs_token() -> None:
    """An empty password is allowed only with a token that carries an access_token."""
    assert "password" in errors_of(good(password=""))
    assert "token" in errors_of(good(password="", token={"refresh": "x"}))
    parsed = parse_account(good(password="", token={"access_token": "TOKEN-CANARY"}))
    assert parsed.errors == []


@pytest.mark.parametrize(
    "name",
    [
        "max_email_per_day",
        "time_to_wait_in_mins",
        "daily_rampup",
        "total_warmup_per_day",
        "client_id",
        "id",
    ],
)
def test_numbers_non_negative(name: str) -> None:
    """Counts and numbers must not be negative."""
    assert "negative" in errors_of(good(**{name: -1}))[name]


@pytest.mark.parametrize("value", [-0.5, 100.5, 250])
def test_reply_rate_percentage_range(value: float) -> None:
    """reply_rate_percentage is within 0-100."""
    assert "0 and 100" in errors_of(good(reply_rate_percentage=value))["reply_rate_percentage"]


def test_warmup_above_daily_cap_is_error() -> None:
    """total_warmup_per_day above max_email_per_day is an error."""
    errors = errors_of(good(total_warmup_per_day=30, max_email_per_day=20))
    assert "max_email_per_day" in errors["total_warmup_per_day"]


def test_far_warmup_numbers_are_warnings_only() -> None:
    """Warmup numbers far from the advice warn but keep the payload valid."""
    parsed = parse_account(good(total_warmup_per_day=45, daily_rampup=15, max_email_per_day=100))
    assert parsed.errors == []
    assert {w.field for w in parsed.warnings} == {"total_warmup_per_day", "daily_rampup"}


def test_advised_warmup_numbers_do_not_warn() -> None:
    """The documented advice (10-20 a day, rampup 2-5) draws no warning."""
    parsed = parse_account(good(total_warmup_per_day=15, daily_rampup=3))
    assert parsed.warnings == []


@pytest.mark.parametrize("field", ["different_reply_to_address", "bcc"])
def test_optional_addresses_validated(field: str) -> None:
    """reply-to and bcc are checked like from_email when present."""
    assert field in errors_of(good(**{field: "nope"}))
    parsed = parse_account(good(**{field: "Team@EXAMPLE.org"}))
    assert parsed.account is not None
    assert getattr(parsed.account, field) == "Team@example.org"


def test_crlf_in_user_name_refused() -> None:
    """CR/LF in a user name is refused before it can reach a protocol command."""
    assert "control character" in errors_of(good(user_name="a\r\nQUIT"))["user_name"]


def test_signature_may_span_lines() -> None:
    """The HTML signature may contain line breaks."""
    assert errors_of(good(signature="<p>Hi</p>\r\n<p>Bye</p>")) == {}


def test_test_domain_is_accepted() -> None:
    """An RFC 6761 .test domain (the local test servers') is valid syntax."""
    parsed = parse_account(good(from_email="a@mail.preflight.test"))
    assert parsed.errors == []
    assert parsed.warnings == []


def test_not_an_object() -> None:
    """A JSON value that is not an object is one clear error."""
    assert errors_of([1, 2]) == {None: "an account must be a JSON object, not a list"}


def test_secret_never_in_messages_or_repr() -> None:
    """No error, warning, repr or str of the model contains a password or token."""
    raw = good(
        password=f"  {CANARY}\n",
        imap_password=CANARY,
        token={"access_token": CANARY},
        pasword=CANARY,
        smtp_port="x",
    )
    parsed = parse_account(raw)
    text = repr(parsed) + str(parsed) + json.dumps([p.to_dict() for p in parsed.errors])
    assert CANARY not in text
    ok = parse_account(good(imap_password=CANARY, token={"access_token": CANARY}))
    assert ok.account is not None
    assert CANARY not in repr(ok.account) + str(ok.account) + f"{ok.account}"


def test_password_with_spaces_is_error_without_echo() -> None:
    """A pasted app password with spaces around it is refused, and not shown."""
    message = errors_of(good(password=f" {CANARY} "))["password"]
    assert "spaces" in message
    assert CANARY not in message


def test_account_imap_credentials_fall_back() -> None:
    """IMAP uses imap_user_name/imap_password when given, else the SMTP ones."""
    a = parse_account(good()).account
    b = parse_account(good(imap_user_name="box", imap_password="other")).account
    assert a is not None
    assert b is not None
    assert (a.imap_login, a.imap_secret.reveal()) == ("alice@example.com", CANARY)
    assert (b.imap_login, b.imap_secret.reveal()) == ("box", "other")


def test_input_not_mutated() -> None:
    """Checking a payload leaves the caller's dict as it was."""
    raw = good(type="GMAIL")
    before = copy.deepcopy(raw)
    parse_account(raw)
    assert raw == before


def test_account_fields_are_the_documented_ones() -> None:
    """The Account dataclass carries every documented field."""
    assert all(hasattr(Account, name) or name in Account.__dataclass_fields__ for name in FIELDS)
    assert isinstance(parse_account(good()).account.password, Secret)  # type: ignore[union-attr]
