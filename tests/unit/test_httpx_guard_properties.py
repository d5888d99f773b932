"""Properties of the httpx guard, offline: any body POSTed to the save URL gives a response.

Every generated payload lacks ``smtp_host`` (a required field), so the payload check
fails and nothing is contacted; the inner transport refuses to be called, which
proves no such save would leave.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from preflight.smartlead._httpx_guard import REJECTED_CODE, SyncPreflightTransport

SAVE_URL = "https://server.smartlead.ai/api/v1/email-accounts/save?api_key=KEY-CANARY-h9"

PROPERTIES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refuse(request: httpx.Request) -> httpx.Response:
    raise AssertionError("a save that failed its check reached the inner transport")


def client() -> httpx.Client:
    return httpx.Client(transport=SyncPreflightTransport(httpx.MockTransport(refuse)))


def assert_local_rejection(response: httpx.Response, *secrets: str) -> dict[str, Any]:
    assert response.status_code == 422
    assert response.headers["X-Preflight"] == "rejected"
    text = response.content.decode("utf-8")  # strict: the body is always valid UTF-8
    for secret in secrets:
        assert secret not in text
    body: dict[str, Any] = json.loads(text)
    assert body["ok"] is False
    assert body["error"]["code"] == REJECTED_CODE
    assert "\n" not in body["message"]
    assert body["message"].isprintable()
    return body


@PROPERTIES
@given(body=st.binary(max_size=300), encoding=st.sampled_from([None, "gzip", "identity"]))
def test_any_bytes_get_a_local_422(body: bytes, encoding: str | None) -> None:
    """Arbitrary bytes POSTed to the save URL: a local 422 with a report, never an exception."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    assume(not (isinstance(data, dict) and "smtp_host" in data))
    headers = {"Content-Encoding": encoding} if encoding else {}
    with client() as http:
        assert_local_rejection(http.post(SAVE_URL, content=body, headers=headers))


#: Text with what breaks output: lone surrogates, terminal controls, NUL, bidi overrides.
HOSTILE_TEXT = st.lists(
    st.sampled_from(["\udcff", "\ud800", "\x1b[2J", "\x1b]0;t\x07", "\x9b", "\x00", "\u202e", "@"])
    | st.characters(exclude_categories=()),
    max_size=12,
).map("".join)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | HOSTILE_TEXT,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)

SECRET = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=16).map(
    lambda s: "Pw-" + s
)

BASE: dict[str, Any] = {
    "from_name": "Alice",
    "from_email": "alice@example.com",
    "user_name": "alice@example.com",
    "smtp_port": 587,
    "imap_host": "imap.example.com",
    "imap_port": 993,
    "warmup_enabled": False,
}
FIELDS = st.sampled_from(
    [*BASE, "imap_user_name", "bcc", "type", "max_email_per_day", "token", "signature", "x"]
)


@PROPERTIES
@given(
    changes=st.dictionaries(FIELDS | st.text(max_size=10), JSON_VALUES, max_size=6),
    label=HOSTILE_TEXT,
    secret=SECRET,
    where=st.sampled_from(["password", "imap_password", "token"]),
)
def test_any_json_payload_gets_a_local_422_without_the_secret(
    changes: dict[str, Any], label: str, secret: str, where: str
) -> None:
    """Any JSON object (no smtp_host): a local 422 whose body never holds the password."""
    changes.pop("smtp_host", None)
    body = {**BASE, "from_email": label + "@example.com", **changes}
    body[where] = {"access_token": secret} if where == "token" else secret
    others = json.dumps({k: v for k, v in body.items() if k != where})
    assume(secret not in others)
    with client() as http:
        response = http.post(SAVE_URL, content=json.dumps(body).encode())
    rejected = assert_local_rejection(response, secret, "KEY-CANARY-h9")
    report = rejected["error"]["details"]["preflight"]
    assert report["checks"][0]["code"] == "payload_invalid"


@PROPERTIES
@given(value=JSON_VALUES)
def test_any_json_value_gets_a_local_422(value: Any) -> None:
    """Any JSON value as the whole body (list, number, string, object): a local 422."""
    assume(not (isinstance(value, dict) and "smtp_host" in value))
    with client() as http:
        assert_local_rejection(http.post(SAVE_URL, content=json.dumps(value).encode()))


def test_number_too_long_for_python_gets_a_local_422() -> None:
    """A body with a 5000-digit number (a ValueError, not a JSONDecodeError): a local 422."""
    with client() as http:
        body = assert_local_rejection(http.post(SAVE_URL, content=b'{"smtp_port": ' + b"9" * 5000))
    assert "not JSON" in body["error"]["details"]["preflight"]["checks"][0]["message"]


def test_surrogate_in_from_email_gets_a_utf8_422() -> None:
    """A from_email holding a lone surrogate: the 422 body is still valid UTF-8 JSON."""
    with client() as http:
        content = json.dumps({**BASE, "from_email": "a\udcff@example.com"}).encode()
        body = assert_local_rejection(http.post(SAVE_URL, content=content))
    assert body["error"]["details"]["preflight"]["account"] == "a\udcff@example.com"
    assert "a\\xff@example.com" in body["message"]  # shown as the byte it stands for


def test_duplicated_password_key_gets_a_local_422() -> None:
    """A body giving `password` twice (the second would win silently): a local 422."""
    content = (
        b'{"from_name": "A", "from_email": "a@example.com", "user_name": "a@example.com",'
        b' "password": "first-canary-h9", "password": "second-canary-h9",'
        b' "smtp_host": "smtp.example.com", "smtp_port": 465, "imap_host": "imap.example.com",'
        b' "imap_port": 993, "warmup_enabled": false}'
    )
    with client() as http:
        body = assert_local_rejection(
            http.post(SAVE_URL, content=content), "first-canary-h9", "second-canary-h9"
        )
    errors = body["error"]["details"]["preflight"]["checks"][0]["details"]["errors"]
    assert [e["field"] for e in errors] == ["password"]
    assert "more than once" in errors[0]["message"]
