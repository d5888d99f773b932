"""The payload model: every documented field, every problem at once, no secret shown."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from preflight.payload import FIELDS, REQUIRED, Account, AccountType, RawObject, parse_account
from preflight.secret import Secret

CANARY = "CANARY-pw-7f3a"
DATA = Path(__file__).parent / "data"


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
    """Every field of the published save body is modelled, and no other (the page's field
    list is kept in tests/unit/data, copied from SmartLead's API reference)."""
    reference = json.loads((DATA / "save-account-fields.json").read_text())
    assert set(reference["documented"]) == set(FIELDS)
    assert set(reference["required"]) == set(REQUIRED)


def test_seed_example_is_valid() -> None:
    """The example payload of the API page passes with no error; its one warning is the
    rampup of 2, outside the 5-20 that SmartLead's warmup endpoint takes (issue 14)."""
    raw = json.loads((DATA / "example.json").read_text())
    parsed = parse_account(raw)
    assert parsed.errors == []
    assert [w.field for w in parsed.warnings] == ["daily_rampup"]
    assert "outside 5-20" in parsed.warnings[0].message
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
        ("localhost", "not a fully qualified host name"),
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
    """Numbers within the save page's advice (10-20 a day, rampup 2-5) and the warmup
    endpoint's ranges (1-50, 5-20, reply rate 20-100) draw no warning."""
    parsed = parse_account(good(total_warmup_per_day=15, daily_rampup=5, reply_rate_percentage=30))
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


# --- issue 9: hostile values, passwords in the wrong field ---------------------------


@pytest.mark.parametrize("host", ["localhost", "mail", "S3cret!pw", "pass:1234", "a.", "p w"])
def test_single_label_host_is_invalid_and_not_shown(host: str) -> None:
    """A host without a dot is refused, not echoed, and may be a misplaced password."""
    message = errors_of(good(imap_host=host))["imap_host"]
    assert message == (
        "imap_host is not a fully qualified host name (it has no dot, e.g. "
        "smtp.example.com); the value is not shown, as it may be a password in the "
        "wrong column"
    )


def test_swapped_password_and_host_columns() -> None:
    """password holding a host name while smtp_host does not: reported as swapped."""
    errors = errors_of(good(password="smtp.example.com", smtp_host=CANARY))
    assert errors == {
        "smtp_host": "smtp_host is not a host name but password is one: the password and "
        "smtp_host columns look swapped (neither value is shown)"
    }


def test_password_that_looks_like_a_host_is_fine_when_hosts_are() -> None:
    """A password with dots is not a swap while both host fields are host names."""
    assert errors_of(good(password="pass.word")) == {}


@pytest.mark.parametrize(
    ("field", "secret"),
    [
        ("user_name", "password"),
        ("from_name", "password"),
        ("smtp_host", "password"),
        ("imap_user_name", "imap_password"),
        ("custom_tracking_url", "imap_password"),
        ("signature", "password"),
    ],
)
def test_field_equal_to_a_password_is_invalid(field: str, secret: str) -> None:
    """Any other field holding a password's value is invalid, named, value not shown."""
    raw = good(imap_password="Other-" + CANARY)
    raw[field] = raw[secret]
    assert errors_of(raw) == {
        field: f"{field} holds the same value as {secret}: a password in the wrong field? "
        "(the value is not shown)"
    }


def test_number_equal_to_a_numeric_password_is_invalid() -> None:
    """A CSV cell read as a number still matches a password of the same digits."""
    errors = errors_of(good(password="70000", smtp_port=70000))
    assert list(errors) == ["smtp_port"]
    assert "70000" not in errors["smtp_port"]


def test_usual_equal_fields_are_fine() -> None:
    """from_email equal to user_name is normal; empty values never match."""
    assert errors_of(good(password="", token={"access_token": "t"}, custom_tracking_url="")) == {}


def test_swapped_host_value_elsewhere_is_hidden() -> None:
    """With swapped columns, other fields holding the swapped host value are hidden too."""
    errors = errors_of(good(password="smtp.example.com", smtp_host=CANARY, bcc=CANARY))
    assert errors["bcc"] == (
        "bcc holds the same value as smtp_host (which looks like the password): a password "
        "in the wrong field? (the value is not shown)"
    )
    assert CANARY not in json.dumps(errors)


@pytest.mark.parametrize(
    "field", ["from_email", "from_name", "user_name", "password", "smtp_host", "signature"]
)
def test_lone_surrogate_value_is_invalid(field: str) -> None:
    """A lone surrogate in any text field is refused before any library sees it."""
    assert errors_of(good(**{field: "ab\ud800cd.com"}))[field] == (
        f"{field} contains a lone surrogate (half of a UTF-16 pair, e.g. a \\ud800 escape), "
        "which is not text any server can take; the value is not shown"
    )


def test_lone_surrogate_in_key_and_token_is_escaped() -> None:
    """A lone surrogate in a key is shown escaped; one inside the token is refused."""
    errors = errors_of(good(**{"x\udc80": 1}, token={"access_token": ["\ud800"]}))
    assert errors == {
        "x\\x80": "'x\\x80' is not a field of the save-account API",
        "token": "token contains a lone surrogate (half of a UTF-16 pair, e.g. a \\ud800 "
        "escape), which is not text any server can take; the value is not shown",
    }


def test_nul_is_a_control_character() -> None:
    """NUL is refused like any control character, in every text field."""
    errors = errors_of(good(from_name="A\x00", password="p\x00w", smtp_host="a\x00.com"))
    assert set(errors) == {"from_name", "password", "smtp_host"}


def test_duplicated_key_is_an_error() -> None:
    """A key given twice (recorded by the reader) is an error naming it, not its values."""
    raw = RawObject(good())
    raw.duplicates = ("password",)
    assert errors_of(raw) == {
        "password": "'password' is given more than once in the object; give it once "
        "(the values are not shown)"
    }


def test_duplicated_key_inside_token_is_an_error() -> None:
    """A token object with a key twice is refused, its values not shown."""
    token = RawObject({"access_token": CANARY})
    token.duplicates = ("access_token",)
    assert errors_of(good(token=token)) == {
        "token": "token gives the same key more than once; the values are not shown"
    }


def test_huge_numbers_are_described_not_written() -> None:
    """Numbers too long to print are described by size, never echoed whole."""
    errors = errors_of(good(smtp_port=10**5000, imap_port=10**3999, max_email_per_day="9" * 200))
    assert errors == {
        "smtp_port": "smtp_port must be between 1 and 65535, got a number of over 4,000 digits",
        "imap_port": "imap_port must be between 1 and 65535, got a number of 4000 digits",
        "max_email_per_day": "max_email_per_day must be a number, not one of 200 digits",
    }


def test_long_values_and_keys_are_bounded_in_messages() -> None:
    """A megabyte value or key is shown by its first characters only."""
    errors = errors_of(good(type="X" * 1_000_000, **{"k" * 1_000_000: 1}))
    assert max(len(message) for message in errors.values()) < 200
    assert max(len(str(field)) for field in errors) <= 65
