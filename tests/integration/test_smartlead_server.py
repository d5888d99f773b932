"""The SmartLead-compatible test server (fixtures/smartlead.py), over real HTTP.

Each test starts its own server on 127.0.0.1 port 0; none needs the mail
stack. Rate limiting is off unless a test is about it, so that tests making
many requests are not slowed by it.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import fixtures.smartlead
from fixtures.smartlead import Faults, RateLimit, SmartLeadServer

API_KEY = "sl-test-key-5f2c9a"
PASSWORD = "pw-canary-7d41e0"
REPO = Path(__file__).resolve().parents[2]


def account(email: str = "ana@preflight.test", **overrides: Any) -> dict[str, Any]:
    """A valid save body for ``email``."""
    body: dict[str, Any] = {
        "from_name": "Ana",
        "from_email": email,
        "user_name": email,
        "password": PASSWORD,
        "smtp_host": "mail.preflight.test",
        "smtp_port": 587,
        "imap_host": "mail.preflight.test",
        "imap_port": 993,
        "warmup_enabled": True,
        "total_warmup_per_day": 20,
        "type": "SMTP",
    }
    body.update(overrides)
    return body


@pytest.fixture
def server() -> Iterator[SmartLeadServer]:
    """A server with rate limiting off; fails the test if the server itself raised."""
    with SmartLeadServer(api_key=API_KEY, rate_limit=RateLimit(enabled=False)) as running:
        yield running
        assert running.errors == []


@pytest.fixture
def client(server: SmartLeadServer) -> Iterator[httpx.Client]:
    """An httpx client pointed at the server, with the right key."""
    with httpx.Client(
        base_url=server.base_url, params={"api_key": API_KEY}, timeout=5.0
    ) as running:
        yield running


def save(client: httpx.Client, body: Any) -> httpx.Response:
    return client.post("/email-accounts/save", json=body)


def test_public_api() -> None:
    """The module exports exactly its documented names."""
    assert fixtures.smartlead.__all__ == [
        "API_PREFIX",
        "DEFAULT_API_KEY",
        "ENCRYPTED_PLACEHOLDER",
        "MASK",
        "MAX_PAGE_SIZE",
        "REQUIRED_FIELDS",
        "ErrorShape",
        "Faults",
        "RateLimit",
        "Received",
        "SmartLeadServer",
        "main",
    ]


def test_base_url_is_loopback_api_root(server: SmartLeadServer) -> None:
    """base_url is http://127.0.0.1:PORT/api/v1 on a kernel-chosen port."""
    _, port = server.address
    assert f"http://127.0.0.1:{port}/api/v1" == server.base_url
    assert port > 0


def test_stop_closes_the_port() -> None:
    """After the context manager exits, nothing listens on the port any more."""
    with SmartLeadServer() as running:
        url = running.base_url
    with httpx.Client() as plain, pytest.raises(httpx.ConnectError):
        plain.get(f"{url}/email-accounts/")


def test_save_returns_documented_success_body(
    server: SmartLeadServer, client: httpx.Client
) -> None:
    """A valid save is 200 with ok, message and data {id, from_email, flags, warmup_details}."""
    response = save(client, account())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "ok": True,
        "message": "Email account added successfully",
        "data": {
            "id": 1,
            "from_email": "ana@preflight.test",
            "is_smtp_success": True,
            "is_imap_success": True,
            "warmup_details": {"status": "ACTIVE", "total_warmup_per_day": 20},
        },
    }
    stored = server.accounts[1]
    assert stored["username"] == "ana@preflight.test"
    assert stored["password"] == PASSWORD


def test_ids_increase_per_account(client: httpx.Client) -> None:
    """Each new account gets a larger id than the previous one."""
    ids = [save(client, account(f"u{i}@preflight.test")).json()["data"]["id"] for i in range(3)]
    assert sorted(set(ids)) == ids


def test_duplicate_saves_create_separate_accounts(
    server: SmartLeadServer, client: httpx.Client
) -> None:
    """Saving the same address twice without id creates two accounts, both counted."""
    first = save(client, account()).json()["data"]["id"]
    second = save(client, account(email="ANA@preflight.test")).json()["data"]["id"]
    assert first != second
    assert server.saves_of("ana@preflight.test") == 2
    assert [first, second] == [a["id"] for a in server.accounts_of("ana@preflight.test")]


def test_save_with_id_updates_that_account(server: SmartLeadServer, client: httpx.Client) -> None:
    """A body with an existing id updates it: same id, no new account."""
    created = save(client, account()).json()["data"]["id"]
    response = save(client, account(id=created, smtp_port=465))
    assert response.status_code == 200
    assert response.json()["message"] == "Email account updated successfully"
    assert created == response.json()["data"]["id"]
    assert [created] == list(server.accounts)
    assert server.accounts[created]["smtp_port"] == 465


def test_update_of_unknown_id_is_422(server: SmartLeadServer, client: httpx.Client) -> None:
    """A body naming an id that does not exist is a validation error, nothing stored."""
    response = save(client, account(id=999))
    assert response.status_code == 422
    assert "id" in response.json()["error"]["details"]
    assert server.accounts == {}


@pytest.mark.parametrize("params", [{"api_key": "wrong-key"}, {}], ids=["wrong", "missing"])
def test_bad_or_missing_key_is_401(server: SmartLeadServer, params: dict[str, str]) -> None:
    """A wrong or absent api_key is 401 in the older error shape, nothing stored."""
    with httpx.Client(base_url=server.base_url, params=params) as other:
        response = save(other, account())
    assert response.status_code == 401
    assert response.json() == {"ok": False, "message": "Invalid API key"}
    assert server.accounts == {}


def test_force_401_rejects_the_right_key(server: SmartLeadServer, client: httpx.Client) -> None:
    """Faults.force_401 rejects every request until it is switched off."""
    server.faults.force_401 = True
    assert client.get("/email-accounts/").status_code == 401
    assert save(client, account()).status_code == 401
    server.faults.force_401 = False
    assert save(client, account()).status_code == 200


def test_missing_fields_are_422_in_newer_shape(
    server: SmartLeadServer, client: httpx.Client
) -> None:
    """Missing or mistyped fields are 422 VALIDATION_ERROR with a detail per field."""
    body = account(smtp_port="587", warmup_enabled="yes")
    del body["password"]
    response = save(client, body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert isinstance(error["message"], str)
    assert {"password", "smtp_port", "warmup_enabled"} == set(error["details"])
    assert server.accounts == {}


def test_chunked_body_is_read(server: SmartLeadServer, client: httpx.Client) -> None:
    """A body sent with Transfer-Encoding: chunked is read like any other."""
    payload = json.dumps(account()).encode()
    response = client.post("/email-accounts/save", content=iter([payload[:10], payload[10:]]))
    assert response.status_code == 200
    assert server.received[-1].headers["transfer-encoding"] == "chunked"


def test_non_json_body_is_422(client: httpx.Client) -> None:
    """A body that is not JSON is 422 VALIDATION_ERROR too."""
    response = client.post(
        "/email-accounts/save", content=b"from_email=x", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_connection_failed_is_400_in_older_shape(
    server: SmartLeadServer, client: httpx.Client
) -> None:
    """An address in Faults.connection_failed is 400 {ok: false, message} and not stored."""
    server.faults.connection_failed = {"bad@preflight.test"}
    response = save(client, account("bad@preflight.test"))
    assert response.status_code == 400
    body = response.json()
    assert False is body["ok"]
    assert body["message"].startswith("SMTP connection failed")
    assert server.accounts_of("bad@preflight.test") == []
    assert save(client, account("good@preflight.test")).status_code == 200


def test_connection_failed_may_still_create(server: SmartLeadServer, client: httpx.Client) -> None:
    """With connection_failed_creates the 400 still leaves an account marked as failing."""
    server.faults.update(connection_failed={"bad@preflight.test"}, connection_failed_creates=True)
    assert save(client, account("bad@preflight.test")).status_code == 400
    [stored] = server.accounts_of("bad@preflight.test")
    assert False is stored["is_smtp_success"]
    assert server.received[-1].account_id == stored["id"]


def test_unverified_addresses_report_false_flags(
    server: SmartLeadServer, client: httpx.Client
) -> None:
    """smtp_failed / imap_failed addresses are saved (200) with the matching flag false."""
    server.faults.smtp_failed = {"nosmtp@preflight.test"}
    server.faults.imap_failed = {"noimap@preflight.test"}
    smtp = save(client, account("nosmtp@preflight.test")).json()["data"]
    imap = save(client, account("noimap@preflight.test")).json()["data"]
    assert (smtp["is_smtp_success"], smtp["is_imap_success"]) == (False, True)
    assert (imap["is_smtp_success"], imap["is_imap_success"]) == (True, False)
    assert server.accounts[smtp["id"]]["smtp_failure_error"]


def test_listing_pages_through_accounts(server: SmartLeadServer, client: httpx.Client) -> None:
    """GET /email-accounts/ returns a JSON list by id, sliced by offset and limit."""
    for i in range(5):
        save(client, account(f"u{i}@preflight.test"))
    pages = [
        client.get("/email-accounts/", params={"offset": offset, "limit": 2}).json()
        for offset in (0, 2, 4, 6)
    ]
    assert [len(page) for page in pages] == [2, 2, 1, 0]
    listed = [a for page in pages for a in page]
    assert [a["id"] for a in listed] == [1, 2, 3, 4, 5]
    first = listed[0]
    assert "u0@preflight.test" == first["from_email"] == first["username"] == first["user_name"]
    assert True is first["is_smtp_success"] is first["is_imap_success"]
    assert len(client.get("/email-accounts").json()) == 5  # no trailing slash, default limit


def test_add_account_seeds_an_existing_account(
    server: SmartLeadServer, client: httpx.Client
) -> None:
    """add_account stores an account without HTTP; the listing and ids include it."""
    seeded = server.add_account(account())
    assert client.get(f"/email-accounts/{seeded}/").json()["from_email"] == "ana@preflight.test"
    assert save(client, account("b@preflight.test")).json()["data"]["id"] == seeded + 1
    assert server.saves_of("ana@preflight.test") == 0


def test_listing_filters_by_email(client: httpx.Client) -> None:
    """The email (or username) query parameter keeps only that address's accounts."""
    save(client, account("a@preflight.test"))
    save(client, account("b@preflight.test"))
    save(client, account("a@preflight.test"))
    found = client.get("/email-accounts/", params={"email": "A@preflight.test"}).json()
    assert [a["id"] for a in found] == [1, 3]
    found = client.get("/email-accounts/", params={"username": "b@preflight.test"}).json()
    assert [a["id"] for a in found] == [2]


@pytest.mark.parametrize("params", [{"limit": 101}, {"limit": 0}, {"offset": -1}, {"limit": "x"}])
def test_listing_rejects_bad_paging(client: httpx.Client, params: dict[str, Any]) -> None:
    """limit above 100 (or below 1), a negative offset or a non-number are 422."""
    response = client.get("/email-accounts/", params=params)
    assert response.status_code == 422
    assert set(params) == set(response.json()["error"]["details"])


def test_get_one_account(client: httpx.Client) -> None:
    """GET /email-accounts/{id}/ returns that account; an unknown id is 404."""
    created = save(client, account()).json()["data"]["id"]
    response = client.get(f"/email-accounts/{created}/")
    assert response.status_code == 200
    assert response.json()["from_email"] == "ana@preflight.test"
    missing = client.get("/email-accounts/999/")
    assert missing.status_code == 404
    assert False is missing.json()["ok"]


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    """An unknown path is 404 and a known path with the wrong method 405."""
    assert client.get("/campaigns/").status_code == 404
    assert client.get("/email-accounts/save").status_code == 405


def test_rate_limit_per_second_then_ok_after_retry_after(server: SmartLeadServer) -> None:
    """Over the per-second burst: 429 RATE_LIMIT_EXCEEDED with Retry-After; OK after waiting."""
    server.rate_limit = RateLimit(per_second=2, per_minute=100)
    with httpx.Client(base_url=server.base_url, params={"api_key": API_KEY}) as client:
        first = client.get("/email-accounts/")
        assert (
            first.headers["x-ratelimit-limit"],
            first.headers["x-ratelimit-remaining"],
        ) == ("100", "99")
        client.get("/email-accounts/")
        limited = save(client, account())
        assert limited.status_code == 429
        retry_after = int(limited.headers["retry-after"])
        assert retry_after == 1
        error = limited.json()["error"]
        assert (error["code"], error["retry_after"]) == ("RATE_LIMIT_EXCEEDED", 1)
        assert server.accounts_of("ana@preflight.test") == []
        time.sleep(retry_after)
        assert save(client, account()).status_code == 200


def test_rate_limit_per_minute(server: SmartLeadServer) -> None:
    """The per-minute budget (window shrunk to 1 s here) runs out and comes back."""
    server.rate_limit = RateLimit(per_second=100, per_minute=3, minute=1.0)
    with httpx.Client(base_url=server.base_url, params={"api_key": API_KEY}) as client:
        remaining = [
            client.get("/email-accounts/").headers["x-ratelimit-remaining"] for _ in range(3)
        ]
        assert remaining == ["2", "1", "0"]
        limited = client.get("/email-accounts/")
        assert limited.status_code == 429
        assert limited.headers["x-ratelimit-remaining"] == "0"
        time.sleep(int(limited.headers["retry-after"]))
        assert client.get("/email-accounts/").status_code == 200


def test_rate_limit_on_by_default() -> None:
    """A default server answers the 11th request within a second with 429."""
    with (
        SmartLeadServer(api_key=API_KEY) as running,
        httpx.Client(base_url=running.base_url, params={"api_key": API_KEY}) as client,
    ):
        statuses = [client.get("/email-accounts/").status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]


def test_rate_limit_off_switch(client: httpx.Client) -> None:
    """RateLimit(enabled=False) never answers 429 and sends no x-ratelimit headers."""
    responses = [client.get("/email-accounts/") for _ in range(15)]
    assert {200} == {r.status_code for r in responses}
    assert "x-ratelimit-limit" not in responses[-1].headers


def test_force_429(server: SmartLeadServer, client: httpx.Client) -> None:
    """Faults.force_429 answers the next N saves 429 with the given Retry-After."""
    server.faults.update(force_429=1, retry_after=7)
    limited = save(client, account())
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["retry_after"] == 7
    assert save(client, account()).status_code == 200
    assert len(server.accounts) == 1


def test_delay_times_out_the_client_but_still_applies(
    server: SmartLeadServer, client: httpx.Client
) -> None:
    """A delayed save times the client out, yet the account appears once the delay ends."""
    server.faults.update(delay=0.4, delayed=1)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post("/email-accounts/save", json=account(), timeout=0.1)
    assert time.monotonic() - started < 0.4
    assert server.accounts_of("ana@preflight.test") == []
    deadline = time.monotonic() + 2
    while not server.accounts_of("ana@preflight.test") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.accounts_of("ana@preflight.test")) == 1
    started = time.monotonic()
    assert save(client, account("next@preflight.test")).status_code == 200
    assert time.monotonic() - started < 0.3  # delayed=1 is used up


def test_drop_after_read_applies_then_closes(server: SmartLeadServer, client: httpx.Client) -> None:
    """drop_after_read: the client gets a connection error, yet the account exists."""
    server.faults.drop_after_read = 1
    with pytest.raises(httpx.RemoteProtocolError):
        save(client, account())
    assert len(server.accounts_of("ana@preflight.test")) == 1
    record = server.received[-1]
    assert (record.dropped, record.status) == (True, None)
    assert record.account_id == server.accounts_of("ana@preflight.test")[0]["id"]
    assert save(client, account("next@preflight.test")).status_code == 200


def test_drop_with_reset(server: SmartLeadServer, client: httpx.Client) -> None:
    """drop_mode="reset" ends the connection with RST: a read error on the client."""
    server.faults.update(drop_after_read=1, drop_mode="reset")
    with pytest.raises(httpx.ReadError):
        save(client, account())
    assert len(server.accounts_of("ana@preflight.test")) == 1


def test_drop_before_apply_stores_nothing(server: SmartLeadServer, client: httpx.Client) -> None:
    """drop_before_apply: the client gets a connection error and no account exists."""
    server.faults.drop_before_apply = 1
    with pytest.raises(httpx.RemoteProtocolError):
        save(client, account())
    assert server.saves_of("ana@preflight.test") == 1
    assert server.accounts_of("ana@preflight.test") == []
    assert save(client, account()).status_code == 200


def test_5xx_burst_then_recovery(server: SmartLeadServer, client: httpx.Client) -> None:
    """status_5xx answers N saves 500/502/503 in alternating shapes, applies none, then recovers."""
    server.faults.update(status_5xx=4, status_5xx_shapes=("old", "new", "html"))
    failed = [save(client, account()) for _ in range(4)]
    assert [r.status_code for r in failed] == [500, 502, 503, 500]
    assert failed[0].json() == {"ok": False, "message": "Internal Server Error"}
    assert failed[1].json()["error"]["code"] == "BAD_GATEWAY"
    assert failed[2].headers["content-type"].startswith("text/html")
    assert server.accounts_of("ana@preflight.test") == []
    assert save(client, account()).status_code == 200
    assert server.saves_of("ana@preflight.test") == 5


def test_faults_scope_all_reaches_listing(server: SmartLeadServer, client: httpx.Client) -> None:
    """By default faults hit saves only; with scope="all" they hit listings too."""
    server.faults.status_5xx = 1
    assert client.get("/email-accounts/").status_code == 200
    server.faults.scope = "all"
    assert client.get("/email-accounts/").status_code == 500


def test_stop_ends_idle_keep_alive_connections(server: SmartLeadServer) -> None:
    """stop() returns promptly even while a client holds a keep-alive connection open."""
    with httpx.Client(base_url=server.base_url, params={"api_key": API_KEY}) as client:
        client.get("/email-accounts/")
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1
        with pytest.raises(httpx.TransportError):
            client.get("/email-accounts/")


def test_faults_update_rejects_unknown_names() -> None:
    """Faults.update refuses a misspelt switch rather than ignoring it."""
    with pytest.raises(TypeError, match="dropafter"):
        Faults().update(dropafter=1)


def test_key_and_password_never_logged_or_recorded(
    server: SmartLeadServer,
    client: httpx.Client,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Neither key (right or wrong) nor password reaches output, logs, or received's repr."""
    # The server's own logger only: httpx logs every URL, key included, at
    # INFO, which is the client's business (preflight must silence it).
    caplog.set_level(logging.DEBUG, logger="fixtures.smartlead")
    wrong = "wrong-key-0c8e11"
    save(client, account())
    server.faults.drop_after_read = 1
    with pytest.raises(httpx.RemoteProtocolError):
        save(client, account())
    with httpx.Client(base_url=server.base_url, params={"api_key": wrong}) as other:
        assert other.get("/email-accounts/").status_code == 401
    client.get("/email-accounts/", params={"api_key": [API_KEY, wrong]})
    client.post("/email-accounts/save", content=b"not json " + PASSWORD.encode())
    out, err = capfd.readouterr()
    recorded = repr(server.received) + repr(server)
    for secret in (API_KEY, wrong, PASSWORD):
        assert secret not in out + err + caplog.text + recorded
    assert all(set(r.query["api_key"]) == {"***"} for r in server.received)


def test_cli_serves_until_interrupted() -> None:
    """python -m fixtures.smartlead prints its base URL, serves, and exits 0 on SIGINT."""
    env = {**os.environ, "PREFLIGHT_TEST_SL_KEY": API_KEY}
    with subprocess.Popen(
        [sys.executable, "-m", "fixtures.smartlead", "--api-key-env", "PREFLIGHT_TEST_SL_KEY"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            # Bounded: a server that neither prints nor exits must not hang the run.
            ready, _, _ = select.select([process.stdout], [], [], 10)
            assert ready, "no base URL printed within 10 s"
            base_url = process.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:")
            assert base_url.endswith("/api/v1")
            with httpx.Client(base_url=base_url, params={"api_key": API_KEY}) as client:
                assert save(client, account()).status_code == 200
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0
    assert API_KEY not in out + err
    assert PASSWORD not in out + err


def test_echo_quotes_the_key_in_a_401(server: SmartLeadServer) -> None:
    """Faults.echo: a 401 quotes the key it was given, as a careless platform does."""
    server.faults.update(echo=True)
    with httpx.Client(base_url=server.base_url, params={"api_key": "wrong-key-3k"}) as wrong:
        refused = wrong.get("/email-accounts/")
    assert (
        refused.status_code,
        refused.json()["message"],
    ) == (401, "Invalid API key: wrong-key-3k")


def test_echo_quotes_the_url_in_a_5xx(server: SmartLeadServer, client: httpx.Client) -> None:
    """Faults.echo: a forced 5xx quotes the request URL, api_key included."""
    server.faults.update(echo=True, status_5xx=1)
    failed = save(client, account())
    assert failed.status_code == 500
    assert f"api_key={API_KEY}" in failed.json()["message"]


def test_echo_quotes_the_body_in_400_and_422(server: SmartLeadServer, client: httpx.Client) -> None:
    """Faults.echo: a 400 or 422 quotes the request body, password included."""
    server.faults.update(echo=True, connection_failed={"ana@preflight.test"})
    rejected = save(client, account())
    invalid = save(client, account("bo@preflight.test", from_name=None))
    assert (rejected.status_code, invalid.status_code) == (400, 422)
    assert PASSWORD in rejected.json()["message"]
    assert PASSWORD in invalid.json()["message"]


def test_documented_error_shapes(server: SmartLeadServer, client: httpx.Client) -> None:
    """Faults.error_style='documented': the published 400, 422 and 401 bodies."""
    server.faults.update(error_style="documented", connection_failed={"ana@preflight.test"})
    rejected = save(client, account())
    invalid = save(client, account("bo@preflight.test", from_name=None))
    with httpx.Client(base_url=server.base_url, params={"api_key": "wrong"}) as wrong:
        refused = wrong.get("/email-accounts/")
    assert [rejected.json(), invalid.json(), refused.json()] == [
        {"ok": False, "message": "SMTP connection failed", "error": "Invalid credentials"},
        {"error": "from_name is required"},
        {"message": "Invalid API Key"},
    ]


def test_listing_html(server: SmartLeadServer, client: httpx.Client) -> None:
    """Faults.listing_html: a listing answered 200 with an HTML page."""
    server.faults.update(listing_html=True)
    page = client.get("/email-accounts/")
    assert (page.status_code, page.headers["content-type"].split(";")[0]) == (200, "text/html")
    assert page.text.startswith("<!DOCTYPE html>")


def test_retry_after_any_text(server: SmartLeadServer, client: httpx.Client) -> None:
    """Faults.retry_after may be any text: 86400, inf."""
    server.faults.update(force_429=2, retry_after="86400")
    first = save(client, account())
    server.faults.update(retry_after="inf")
    second = save(client, account())
    assert [
        (r.headers["retry-after"], r.json()["error"].get("retry_after")) for r in (first, second)
    ] == [("86400", 86400), ("inf", None)]


def test_revoke_key_after(server: SmartLeadServer, client: httpx.Client) -> None:
    """Faults.revoke_key_after: the key works N times, then every request is 401."""
    server.faults.update(revoke_key_after=2)
    statuses = [client.get("/email-accounts/").status_code for _ in range(4)]
    assert statuses == [200, 200, 401, 401]


def test_server_error_for_some_addresses(server: SmartLeadServer, client: httpx.Client) -> None:
    """Faults.server_error: saves of those addresses are 500 and not applied."""
    server.faults.update(server_error={"ana@preflight.test"})
    statuses = [save(client, account(e)).status_code for e in ("ana@preflight.test", "bo@x.test")]
    assert statuses == [500, 200]
    assert server.accounts_of("ana@preflight.test") == []
