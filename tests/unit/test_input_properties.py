"""Properties of the reader and the payload model (issue 9: make the next break visible).

For any bytes, any JSON value, any CSV: reading and validating gives reports or a
clean InputError, never another exception, and every report renders in every
format as UTF-8. A password never appears in any rendered form, even when the same
value is typed into other fields too.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflight.cli._render import make_writer
from preflight.payload import FIELDS, SECRET_FIELDS, parse_account
from preflight.reader import FORMATS, InputError, RawAccount, read_accounts
from preflight.report import AccountReport
from preflight.runner import validate, validate_all

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def outcome(data: bytes, fmt: str, source: str = "accounts") -> list[AccountReport] | InputError:
    """The reports of ``data``, or the InputError it raises; any other exception fails."""
    try:
        return list(validate_all(read_accounts(io.BytesIO(data), source=source, fmt=fmt)))
    except InputError as exc:
        return exc


def rendered(result: list[AccountReport] | InputError) -> str:
    """Everything a user could see of ``result``, in every format; must be UTF-8."""
    if isinstance(result, InputError):
        text = str(result)
    else:
        parts = []
        for fmt in ("text", "json", "jsonl"):
            out = io.StringIO()
            writer = make_writer(fmt, out)
            for report in result:
                writer.write(report)
            writer.close()
            parts.append(out.getvalue())
        text = "\n".join(parts)
    text.encode("utf-8")  # no lone surrogate escaped into the output
    return text


# --- any bytes ---------------------------------------------------------------------

# Pieces that make a reader's life hard, glued together at random.
FRAGMENTS = st.sampled_from(
    [
        b"[",
        b"]",
        b"{",
        b"}",
        b'"',
        b",",
        b":",
        b"\n",
        b"\r",
        b"\r\n",
        b" ",
        b"\xef\xbb\xbf",
        b"\xff",
        b"\xc3",
        b"\xed\xa0\x80",
        b"\x00",
        b'"from_email": "a@b.com"',
        b'"password": "pw"',
        b'"smtp_host"',
        b"from_name,smtp_port,password\n",
        b"9" * 4400,
        b"[" * 2000,
        b'"\\ud800"',
        b"1e999",
        b"true",
    ]
)
BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(FRAGMENTS, st.binary(max_size=8)), max_size=30).map(b"".join),
)


@SETTINGS
@given(data=BYTES, fmt=st.sampled_from(FORMATS), suffix=st.sampled_from(["", ".csv", ".jsonl"]))
def test_any_bytes_give_reports_or_input_error(data: bytes, fmt: str, suffix: str) -> None:
    """Any bytes, in any input format: reports or an InputError, and they render."""
    rendered(outcome(data, fmt, "accounts" + suffix))


# --- any JSON value ------------------------------------------------------------------

SCALARS = st.one_of(
    st.just("null"),
    st.booleans().map(json.dumps),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.sampled_from(["1e999", "-1e999", "9" * 4000, "9" * 4301, "-" + "1" * 5000]),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "-0", "1.5e-400"]),
    st.text(max_size=20).map(json.dumps),
    st.sampled_from(['"\\ud800"', '"a\\udfffb"', '"\\u0000"', '"x@\\ud83d.com"', '"a\\nb"']),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
)
KEYS = st.one_of(
    st.sampled_from([json.dumps(name) for name in FIELDS]),
    st.text(max_size=10).map(json.dumps),
    st.just('"\\ud800"'),
)


def _containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arrays = st.lists(children, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]")
    # Pairs, not a dict: keys may repeat, as they can in a file.
    objects = st.lists(st.tuples(KEYS, children), max_size=8).map(
        lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
    )
    return st.one_of(arrays, objects)


JSON_TEXT = st.recursive(SCALARS, _containers, max_leaves=12)


@SETTINGS
@given(value=JSON_TEXT, fmt=st.sampled_from(FORMATS))
def test_any_json_value_gives_reports_or_input_error(value: str, fmt: str) -> None:
    """Any JSON value, alone, in an array or as JSON Lines: reports or an InputError."""
    for text in (value, f"[{value},\n{value}]", f"{value}\n{value}\n"):
        rendered(outcome(text.encode("utf-8"), fmt))


@SETTINGS
@given(value=JSON_TEXT)
def test_any_decoded_json_value_validates(value: str) -> None:
    """Any value JSON decodes to gives a payload report that renders."""
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        return
    rendered([validate(RawAccount(0, 1, data))])


# Lone surrogates and NULs mixed into any text.
TEXT = st.text(st.one_of(st.characters(), st.sampled_from(["\ud800", "\udfff", "\x00"])))
PY_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**3990, max_value=10**4400),  # either side of 4,300 digits
    st.floats(),
    TEXT,
    st.sampled_from(list(FIELDS)),
)
PY_VALUES = st.recursive(
    PY_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(TEXT, st.sampled_from(list(FIELDS))), children, max_size=8),
    ),
    max_leaves=16,
)


@settings(SETTINGS, max_examples=80)
@given(value=st.dictionaries(st.sampled_from(list(FIELDS)), PY_VALUES, max_size=12))
def test_any_python_payload_validates(value: dict[str, Any]) -> None:
    """Any payload given from Python (huge ints, NaN, surrogates, NULs): a report."""
    rendered([validate(RawAccount(0, None, value))])


# --- any CSV -------------------------------------------------------------------------

CELLS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "587", "yes", "9" * 4400, "1e999", "\ud800", '{"access_token": 1}']),
    st.just("[" * 2000),
)
HEADER = st.lists(
    st.one_of(st.sampled_from(list(FIELDS)), st.text(max_size=6)), min_size=1, max_size=6
)


@SETTINGS
@given(header=HEADER, rows=st.lists(st.lists(CELLS, max_size=7), max_size=4))
def test_any_csv_gives_reports_or_input_error(header: list[str], rows: list[list[str]]) -> None:
    """Any CSV (cells with lone surrogates, huge numbers, deep JSON): reports or InputError."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    data = out.getvalue().encode("utf-8", "surrogatepass")
    for fmt in ("auto", "csv"):
        rendered(outcome(data, fmt, "accounts.csv"))


# --- no secret in any rendered form -----------------------------------------------------

# A distinctive start, so that no other text in a report contains it by chance.
PASSWORDS = st.text(max_size=16).map(lambda rest: "Zq7~" + rest)
PLAIN_PASSWORDS = st.text(st.characters(blacklist_categories=["Cs"]), max_size=16).map(
    lambda rest: "Zq7~" + rest
)
OTHER_FIELDS = sorted(name for name in FIELDS if name not in SECRET_FIELDS)


def body(password: str, imap_password: str | None, copies: list[str]) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "from_name": "Ann",
        "from_email": "ann@example.com",
        "user_name": "ann@example.com",
        "password": password,
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "imap_host": "imap.example.com",
        "imap_port": 993,
        "warmup_enabled": True,
    }
    if imap_password is not None:
        raw["imap_password"] = imap_password
    for name in copies:
        raw[name] = password
    return raw


def assert_hidden(text: str, *secrets: str | None) -> None:
    for secret in secrets:
        if secret is not None:
            assert secret not in text


@SETTINGS
@given(
    password=PASSWORDS,
    imap_password=st.one_of(st.none(), PASSWORDS.map(lambda p: "Yk8^" + p)),
    copies=st.lists(st.sampled_from(OTHER_FIELDS), unique=True, max_size=6),
)
def test_password_never_shown_from_json(
    password: str, imap_password: str | None, copies: list[str]
) -> None:
    """A password, also typed into other fields, appears in no message or rendering."""
    raw = body(password, imap_password, copies)
    parsed = parse_account(raw)
    messages = " ".join(p.message + str(p.field) for p in parsed.errors + parsed.warnings)
    assert_hidden(messages, password, imap_password)
    text = json.dumps(raw).encode()  # ensure_ascii: lone surrogates travel as escapes
    assert_hidden(rendered(outcome(text, "auto")), password, imap_password)
    assert_hidden(rendered(outcome(text + b"\n" + text, "jsonl")), password, imap_password)


@SETTINGS
@given(
    password=PLAIN_PASSWORDS,
    copies=st.lists(st.sampled_from(OTHER_FIELDS), unique=True, max_size=6),
    swap=st.booleans(),
)
def test_password_never_shown_from_csv(password: str, copies: list[str], swap: bool) -> None:
    """Read from CSV (cells typed, columns maybe swapped), the password never shows."""
    raw = body(password, None, copies)
    names = list(raw)
    if swap:
        i, j = names.index("password"), names.index("smtp_host")
        names[i], names[j] = names[j], names[i]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(names)
    writer.writerow([str(v) for v in raw.values()])
    data = out.getvalue().encode("utf-8")
    assert_hidden(rendered(outcome(data, "csv", "accounts.csv")), password)
