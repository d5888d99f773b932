"""PreflightTransport in front of a real SmartLead stand-in, checking against real mail servers.

The SmartLead API is ``fixtures.smartlead.SmartLeadServer`` (a real HTTP server on
loopback); good accounts are checked against the session's Dovecot/Postfix stack.
Nothing is mocked: requests that get through cross a real socket, and requests
that must not are proven absent from the server's own record.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from fixtures.accounts import valid_payload
from fixtures.smartlead import RateLimit, SmartLeadServer
from fixtures.stack import Stack
from preflight.options import CheckOptions
from preflight.report import CHECK_NAMES, AccountReport
from preflight.smartlead._httpx_guard import (
    REPORT_EXTENSION,
    PreflightTransport,
    SyncPreflightTransport,
    is_account_save,
)

API_KEY = "KEY-CANARY-7f3kq2"
CANARY = "PW-CANARY-httpx-9xw2"


def needs_postfix(stack: Stack) -> None:
    if "postfix" in stack.unavailable:
        pytest.skip(stack.unavailable["postfix"])


def invalid_payload() -> dict[str, Any]:
    """A body that fails the payload check alone (a port out of range, a typo'd
    field holding a value): nothing is contacted for it, so no stack is needed."""
    return {
        "from_name": "Bob",
        "from_email": "bob@example.com",
        "user_name": "bob@example.com",
        "password": CANARY,
        "smtp_host": "smtp.example.com",
        "smtp_port": 70000,
        "smtp_prot": 587,
        "imap_host": "imap.example.com",
        "imap_port": 993,
        "warmup_enabled": False,
    }


def stack_options(stack: Stack) -> CheckOptions:
    host, port = stack.dns
    return CheckOptions(
        ca_file=str(stack.ca_file) if stack.ca_file else None,
        dns_server=f"{host}:{port}",
        resolve_hosts_with_dns_server=True,
    )


@pytest.fixture
def smartlead() -> Iterator[SmartLeadServer]:
    with SmartLeadServer(api_key=API_KEY, rate_limit=RateLimit(enabled=False)) as server:
        yield server
    assert server.errors == []


def save_url(server: SmartLeadServer, slash: str = "") -> str:
    return f"{server.base_url}/email-accounts/save{slash}"


PARAMS = {"api_key": API_KEY}


class Recording(httpx.AsyncBaseTransport):
    """A real AsyncHTTPTransport that also keeps the body bytes it was handed."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.bodies: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(await request.aread())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def assert_local_rejection(response: httpx.Response) -> dict[str, Any]:
    """The local 422 in both SmartLead error shapes; returns the preflight report."""
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-preflight"] == "rejected"
    body = response.json()
    assert body["ok"] is False
    assert body["error"]["code"] == "PREFLIGHT_REJECTED"
    assert body["message"] == body["error"]["message"]
    assert "\n" not in body["message"]
    report: dict[str, Any] = body["error"]["details"]["preflight"]
    assert report["ok"] is False
    assert isinstance(response.extensions[REPORT_EXTENSION], AccountReport)
    assert response.extensions[REPORT_EXTENSION].to_dict() == report
    return report


def codes(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["code"] for c in report["checks"]}


@pytest.mark.asyncio
async def test_invalid_payload_answered_locally(smartlead: SmartLeadServer) -> None:
    """An invalid payload gets the local 422, report payload_invalid; SmartLead sees nothing."""
    async with httpx.AsyncClient(transport=PreflightTransport()) as client:
        response = await client.post(save_url(smartlead), params=PARAMS, json=invalid_payload())
    report = assert_local_rejection(response)
    assert codes(report) == {
        "payload": "payload_invalid",
        **dict.fromkeys(CHECK_NAMES[1:], "skipped"),
    }
    fields = {e["field"] for e in report["checks"][0]["details"]["errors"]}
    assert {"smtp_port", "smtp_prot"} <= fields
    assert (
        response.json()["message"] == "preflight rejected bob@example.com: payload payload_invalid"
    )
    assert smartlead.received == []
    assert CANARY not in response.text
    assert API_KEY not in response.text + str(response.headers)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (b"", {}, "not JSON"),
        (b'{"from_email": "a@b.c",', {}, "not JSON"),
        (b"\xff\xfe\xfd", {}, "not JSON"),
        (b"[1, 2]", {}, "not a list"),
        (b'"text"', {}, "not text"),
        (b"[" * 100_000, {}, "nested too deeply"),
        (gzip.compress(b"{}"), {"Content-Encoding": "gzip"}, "gzip-encoded"),
    ],
    ids=["empty", "truncated", "not-utf", "list", "string", "deep", "gzip"],
)
async def test_body_that_is_not_a_json_object_answered_locally(
    smartlead: SmartLeadServer, body: bytes, headers: dict[str, str], reason: str
) -> None:
    """A save whose body is not one JSON object gets the local 422 (payload_invalid) too."""
    async with httpx.AsyncClient(transport=PreflightTransport()) as client:
        response = await client.post(
            save_url(smartlead),
            params=PARAMS,
            content=body,
            headers={"Content-Type": "application/json", **headers},
        )
    report = assert_local_rejection(response)
    assert codes(report)["payload"] == "payload_invalid"
    assert reason in report["checks"][0]["message"]
    assert smartlead.received == []


@pytest.mark.asyncio
@pytest.mark.parametrize("slash", ["", "/"], ids=["no-slash", "trailing-slash"])
@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "streamed"])
async def test_good_payload_forwarded_byte_for_byte(
    stack: Stack, smartlead: SmartLeadServer, slash: str, streamed: bool
) -> None:
    """A passing account is sent on with its body bytes unchanged, and SmartLead saves it."""
    needs_postfix(stack)
    user, _ = stack.credentials()
    # Odd spacing, key order and escapes: any re-serialisation would show.
    raw = json.dumps(valid_payload(stack), indent=3, ensure_ascii=True).encode()
    raw = raw.replace(b'"Alice"', b'"Al\\u0069ce"')
    recorder = Recording()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 7):
            yield raw[start : start + 7]

    async with httpx.AsyncClient(
        transport=PreflightTransport(recorder, options=stack_options(stack))
    ) as client:
        response = await client.post(
            save_url(smartlead, slash),
            params=PARAMS,
            content=chunks() if streamed else raw,
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    assert "x-preflight" not in response.headers
    assert response.extensions[REPORT_EXTENSION].ok is True
    assert recorder.bodies == [raw]
    assert smartlead.saves_of(user) == 1
    [received] = smartlead.received
    assert received.body == json.loads(raw)
    assert received.status == 200
    assert len(smartlead.accounts_of(user)) == 1


@pytest.mark.asyncio
async def test_wrong_password_blocked_with_auth_failed(
    stack: Stack, smartlead: SmartLeadServer
) -> None:
    """A wrong password is caught by real SMTP and IMAP logins; the save never leaves."""
    needs_postfix(stack)
    body = valid_payload(stack, password=CANARY)
    async with httpx.AsyncClient(
        transport=PreflightTransport(options=stack_options(stack))
    ) as client:
        response = await client.post(save_url(smartlead), params=PARAMS, json=body)
    report = assert_local_rejection(response)
    assert {name: codes(report)[name] for name in CHECK_NAMES[:5]} == {
        "payload": "ok",
        "mx": "ok",
        "smtp": "auth_failed",
        "imap": "auth_failed",
        "domain": "ok",
    }
    assert "smtp auth_failed, imap auth_failed" in response.json()["message"]
    assert smartlead.received == []
    assert CANARY not in response.text


@pytest.mark.asyncio
async def test_other_requests_pass_straight_through(smartlead: SmartLeadServer) -> None:
    """Listings, other paths and other methods reach SmartLead untouched, whatever their body."""
    smartlead.add_account({"from_email": "old@example.com", "user_name": "old@example.com"})
    async with httpx.AsyncClient(transport=PreflightTransport()) as client:
        listing = await client.get(f"{smartlead.base_url}/email-accounts/", params=PARAMS)
        one = await client.get(f"{smartlead.base_url}/email-accounts/1/", params=PARAMS)
        get_save = await client.get(save_url(smartlead), params=PARAMS)
        elsewhere = await client.post(
            f"{smartlead.base_url}/email-accounts/save-all", params=PARAMS, content=b"junk"
        )
    assert (listing.status_code, one.status_code) == (200, 200)
    assert [a["from_email"] for a in listing.json()] == ["old@example.com"]
    assert get_save.status_code == 405  # SmartLead answered: the guard let it through
    assert elsewhere.status_code == 404
    assert [(r.method, r.path) for r in smartlead.received] == [
        ("GET", "/api/v1/email-accounts/"),
        ("GET", "/api/v1/email-accounts/1/"),
        ("GET", "/api/v1/email-accounts/save"),
        ("POST", "/api/v1/email-accounts/save-all"),
    ]
    for response in (listing, one, get_save, elsewhere):
        assert REPORT_EXTENSION not in response.extensions


def test_is_account_save_matches_only_save_posts() -> None:
    """Only POST .../email-accounts/save, with or without a trailing slash, is a save."""
    base = "https://server.smartlead.ai/api/v1/email-accounts"
    assert is_account_save(httpx.Request("POST", f"{base}/save?api_key=k"))
    assert is_account_save(httpx.Request("POST", f"{base}/save/"))
    assert not is_account_save(httpx.Request("GET", f"{base}/save"))
    assert not is_account_save(httpx.Request("POST", f"{base}/save-all"))
    assert not is_account_save(httpx.Request("POST", f"{base}/"))


def test_sync_transport_blocks_bad_and_forwards_good(
    stack: Stack, smartlead: SmartLeadServer
) -> None:
    """SyncPreflightTransport with httpx.Client: the same local 422, the same forwarding."""
    needs_postfix(stack)
    user, _ = stack.credentials()
    with httpx.Client(transport=SyncPreflightTransport(options=stack_options(stack))) as client:
        bad = client.post(save_url(smartlead), params=PARAMS, json=invalid_payload())
        wrong = client.post(
            save_url(smartlead, "/"), params=PARAMS, json=valid_payload(stack, password=CANARY)
        )
        assert smartlead.received == []
        good = client.post(save_url(smartlead), params=PARAMS, json=valid_payload(stack))
        listing = client.get(f"{smartlead.base_url}/email-accounts/", params=PARAMS)
    assert codes(assert_local_rejection(bad))["payload"] == "payload_invalid"
    assert codes(assert_local_rejection(wrong))["smtp"] == "auth_failed"
    assert CANARY not in bad.text + wrong.text
    assert good.status_code == 200, good.text
    assert good.extensions[REPORT_EXTENSION].ok is True
    assert smartlead.saves_of(user) == 1
    assert [a["from_email"] for a in listing.json()] == [user]


def test_sync_transport_works_in_a_thread_without_loop(
    stack: Stack, smartlead: SmartLeadServer
) -> None:
    """The sync transport checks on a loop of its own, in a worker thread too."""
    needs_postfix(stack)
    results: list[httpx.Response] = []
    errors: list[BaseException] = []
    with httpx.Client(transport=SyncPreflightTransport(options=stack_options(stack))) as client:

        def post(body: dict[str, Any]) -> None:
            try:
                results.append(client.post(save_url(smartlead), params=PARAMS, json=body))
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        threads = [
            threading.Thread(target=post, args=(valid_payload(stack, password=CANARY),)),
            threading.Thread(target=post, args=(valid_payload(stack),)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    assert sorted(r.status_code for r in results) == [200, 422]
    assert [r.from_email for r in smartlead.received] == [stack.credentials()[0]]


@pytest.mark.asyncio
async def test_sync_transport_refuses_inside_running_loop(smartlead: SmartLeadServer) -> None:
    """httpx.Client + SyncPreflightTransport inside a running loop: a clear error, nothing sent."""
    with (
        httpx.Client(transport=SyncPreflightTransport()) as client,
        pytest.raises(RuntimeError, match=r"use httpx\.AsyncClient with PreflightTransport"),
    ):
        client.post(save_url(smartlead), params=PARAMS, json=invalid_payload())
    assert smartlead.received == []
    # From a worker thread of the same program it works (that thread runs no loop).
    with httpx.Client(transport=SyncPreflightTransport()) as client:
        response = await asyncio.to_thread(
            client.post, save_url(smartlead), params=PARAMS, json=invalid_payload()
        )
    assert response.status_code == 422
    assert smartlead.received == []


@pytest.mark.asyncio
async def test_api_key_and_password_never_logged(
    stack: Stack, smartlead: SmartLeadServer, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, with httpx logging every URL, no record shows the API key or a password."""
    needs_postfix(stack)
    caplog.set_level(logging.DEBUG)
    _, password = stack.credentials()
    async with httpx.AsyncClient(
        transport=PreflightTransport(options=stack_options(stack))
    ) as client:
        responses = [
            await client.post(save_url(smartlead), params=PARAMS, json=invalid_payload()),
            await client.post(
                save_url(smartlead), params=PARAMS, json=valid_payload(stack, password=CANARY)
            ),
            await client.post(save_url(smartlead), params=PARAMS, json=valid_payload(stack)),
            await client.get(f"{smartlead.base_url}/email-accounts/", params=PARAMS),
        ]
    with httpx.Client(transport=SyncPreflightTransport()) as sync_client:
        # In a worker thread: the sync transport refuses to block this test's loop.
        responses.append(
            await asyncio.to_thread(
                sync_client.post, save_url(smartlead), params=PARAMS, json=invalid_payload()
            )
        )
    assert [r.status_code for r in responses] == [422, 422, 200, 200, 422]
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    # httpx did log the requests (so the filter was really exercised), masked.
    assert "api_key=********" in logged
    assert "preflight rejected" in logged
    for secret in (API_KEY, CANARY, password):
        assert secret not in logged
    for response in responses:
        if response.status_code == 422:
            shown = response.text + str(response.headers)
            assert API_KEY not in shown
            assert CANARY not in shown
            assert password not in shown
