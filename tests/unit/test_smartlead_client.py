"""The SmartLead client's pure parts: error messages, Retry-After, the base URL."""

from __future__ import annotations

import asyncio
import email.utils
import math
import re
from typing import Any

import httpx
import pytest

from preflight.smartlead._client import (
    MAX_MESSAGE,
    RateLimit,
    _Limiter,
    check_base_url,
    error_message,
    parse_retry_after,
)


def response(status: int, body: Any = None, *, text: str | None = None) -> httpx.Response:
    if text is not None:
        return httpx.Response(status, text=text, headers={"content-type": "text/html"})
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"ok": False, "message": "SMTP connection failed", "error": "Invalid credentials"},
            "SMTP connection failed: Invalid credentials",
        ),
        (422, {"error": "from_name is required"}, "from_name is required"),
        (401, {"message": "Invalid API Key"}, "Invalid API Key"),
        (
            422,
            {
                "error": {
                    "code": "VALIDATION_ERROR",
                    "message": "Invalid request body",
                    "details": {"from_name": "is required"},
                }
            },
            "Invalid request body (VALIDATION_ERROR): from_name: is required",
        ),
        (429, {"error": {"code": "RATE_LIMIT_EXCEEDED"}}, "RATE_LIMIT_EXCEEDED"),
        (500, {"ok": False}, "HTTP 500 Internal Server Error"),
        (400, {"message": "same", "error": "same"}, "same"),
        (400, {"message": "two\r\nlines\x1b[31m"}, "two lines\\x1b[31m"),
    ],
)
def test_error_message_keeps_every_part(status: int, body: Any, expected: str) -> None:
    """Every documented error shape gives all its human-readable parts, on one line."""
    assert expected == error_message(response(status, body))


def test_error_message_of_html_is_the_status() -> None:
    """A proxy's HTML page is never shown: the status line is."""
    page = "<html><body>" + "x" * 5000 + "</body></html>"
    assert error_message(response(502, text=page)) == "HTTP 502 Bad Gateway"


def test_error_message_is_scrubbed_and_bounded() -> None:
    """Secrets and api_key= values are masked; the message is bounded."""
    body = {
        "message": "bad request GET /x?api_key=sl-KEY-1&limit=1 for pw-CANARY-22",
        "error": "y" * 1000,
    }
    text = error_message(response(400, body), ("pw-CANARY-22",))
    assert text.startswith("bad request GET /x?api_key=********&limit=1 for ********: yyy")
    assert len(text) == MAX_MESSAGE
    assert "sl-KEY-1" not in text
    assert "pw-CANARY-22" not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        ("0.5", 0.5),
        ("-5", 0.0),
        ("86400", 86400.0),
        ("inf", math.inf),
        ("Infinity", math.inf),
        ("nan", None),
        ("", None),
        (None, None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After numbers, dates, inf, nan, negative and garbage parse safely."""
    assert expected == parse_retry_after(value)


def test_parse_retry_after_date_in_the_future() -> None:
    """An HTTP-date gives the seconds until then."""
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after(date, now=now) == 90.0


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://[::1", "is not a valid URL"),
        ("http://127.0.0.1:99999/api/v1", "port 99999 is not between 1 and 65535"),
        ("127.0.0.1:8080/api/v1", "must start with https:// (or http://)"),
        ("server.smartlead.ai/api/v1", "must start with https:// (or http://)"),
        ("ftp://server.smartlead.ai/api/v1", "must start with https:// (or http://)"),
        ("http:///api/v1", "has no host name"),
        ("https://server.smartlead.ai/api/v1?api_key=x", "must not carry a query"),
    ],
)
def test_bad_base_urls_are_refused(url: str, problem: str) -> None:
    """An unusable --base-url is a clear ValueError, found before anything runs."""
    with pytest.raises(ValueError, match=re.escape(problem)):
        check_base_url(url)


def test_good_base_url_loses_its_trailing_slash() -> None:
    """A good base URL is kept, without a trailing slash."""
    assert check_base_url("http://127.0.0.1:8080/api/v1/") == "http://127.0.0.1:8080/api/v1"


@pytest.mark.asyncio
async def test_requests_in_flight_count_in_every_window() -> None:
    """A request still unanswered counts in the window however long ago it left: the
    server may count it on arrival, later than the client let it go."""
    import asyncio
    import time

    from preflight.smartlead._client import RateLimit, _Limiter

    limiter = _Limiter(RateLimit(per_minute=100, per_second=2))
    first = await limiter.wait()
    second = await limiter.wait()
    third = asyncio.ensure_future(limiter.wait())
    await asyncio.sleep(1.5)  # past the 1.15 s window; both still in flight
    assert not third.done()
    first.finish()
    answered = time.monotonic()
    slot = await asyncio.wait_for(third, 5)
    # The window counts from the answer, not from when the request was let go.
    assert time.monotonic() - answered >= 1.1
    second.finish()
    slot.finish()


class FakeClock:
    """The limiter's clock, advanced only by its own sleeps: windows of a minute in no time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await REAL_SLEEP(0)


REAL_SLEEP = asyncio.sleep


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("preflight.smartlead._client._now", fake.monotonic)
    monkeypatch.setattr("preflight.smartlead._client.asyncio.sleep", fake.sleep)
    return fake


async def answered(limiter: _Limiter, count: int) -> None:
    for _ in range(count):
        (await limiter.wait()).finish()


@pytest.mark.asyncio
async def test_per_minute_window_waits_for_the_oldest_answer(clock: FakeClock) -> None:
    """The request past the per-minute budget waits until the oldest answer is a minute
    (plus slack) old, then goes at once."""
    limiter = _Limiter(RateLimit(per_minute=3, per_second=100))
    start = clock.now
    await answered(limiter, 3)
    assert clock.slept == []  # within budget: no wait
    await answered(limiter, 1)
    assert clock.now - start >= 60.15
    assert clock.now - start < 60.5


@pytest.mark.asyncio
async def test_per_second_window_waits_about_a_second(clock: FakeClock) -> None:
    """The request past the per-second budget waits 1 s plus slack, not a minute."""
    limiter = _Limiter(RateLimit(per_minute=100, per_second=2))
    start = clock.now
    await answered(limiter, 3)
    assert 1.15 <= clock.now - start < 1.5


@pytest.mark.asyncio
async def test_pause_after_429_holds_every_request(clock: FakeClock) -> None:
    """After pause(seconds) (a 429's Retry-After), nothing goes before it ends; a shorter
    pause later does not cut it short."""
    limiter = _Limiter(RateLimit())
    start = clock.now
    limiter.pause(30)
    limiter.pause(5)
    await answered(limiter, 1)
    assert 30 <= clock.now - start < 30.5
    limiter.pause(0)  # already over: no wait
    before = clock.now
    await answered(limiter, 1)
    assert clock.now == before


@pytest.mark.asyncio
async def test_window_forgets_answers_older_than_a_minute(clock: FakeClock) -> None:
    """Answers older than the minute window leave it: a full budget is free again."""
    limiter = _Limiter(RateLimit(per_minute=2, per_second=100))
    await answered(limiter, 2)
    clock.now += 61
    before = clock.now
    await answered(limiter, 2)
    assert clock.now == before
    assert len(limiter.sent) == 2
