"""The SmartLead API client: save accounts, look them up, within the rate limits.

Outcomes of a save are *results*, not exceptions (:class:`SaveResult`), except a
refused API key (:class:`Unauthorized`), after which every further call would fail.
What matters most is whether a POST may have been applied:

- ``saved`` (200), ``rejected`` (400/422: SmartLead's own check or its validation);
- ``not_sent``: the connection failed before the request left (safe to send again);
- ``unknown``: a read timeout, a dropped connection after sending, a 5xx. The account
  may exist now; sending again blindly could create a duplicate, so the caller
  looks it up first (:meth:`SmartLeadClient.find_accounts`).

The API key travels in the query string (the API wants it there). httpx logs full
URLs at INFO, so a filter on the ``httpx`` logger masks it; no URL is ever put in a
message or exception here.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import httpx

from preflight.secret import MASK, Secret

__all__ = [
    "DEFAULT_BASE_URL",
    "RateLimit",
    "SaveOutcome",
    "SaveResult",
    "SmartLeadClient",
    "Unauthorized",
]

DEFAULT_BASE_URL: Final = "https://server.smartlead.ai/api/v1"
_KEY_IN_TEXT: Final = re.compile(r"(api_key=)[^&\s\"']*")


class _MaskApiKey(logging.Filter):
    """Masks ``api_key=...`` in records of the loggers it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(
                _KEY_IN_TEXT.sub(rf"\g<1>{MASK}", str(a)) if "api_key" in str(a) else a
                for a in args
            )
        if isinstance(record.msg, str) and "api_key" in record.msg:
            record.msg = _KEY_IN_TEXT.sub(rf"\g<1>{MASK}", record.msg)
        return True


_MASK_FILTER: Final = _MaskApiKey()


def _mask_loggers() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _MASK_FILTER not in logger.filters:
            logger.addFilter(_MASK_FILTER)


class Unauthorized(Exception):
    """The API key was refused (401): no further call can succeed."""


class SaveOutcome(StrEnum):
    SAVED = "saved"
    REJECTED = "rejected"
    NOT_SENT = "not_sent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SaveResult:
    outcome: SaveOutcome
    status: int | None
    message: str
    account_id: int | None = None
    is_smtp_success: bool | None = None
    is_imap_success: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "http_status": self.status,
            "message": self.message,
            "account_id": self.account_id,
            "is_smtp_success": self.is_smtp_success,
            "is_imap_success": self.is_imap_success,
        }


@dataclass(frozen=True)
class RateLimit:
    """Client-side limits, kept below SmartLead's documented ones (60/min, 10/s)."""

    per_minute: int = 60
    per_second: int = 10


#: The client's windows are this much longer than the server's, so that network
#: jitter (a request arriving later than an earlier one did) cannot make the
#: server count one request too many in its window.
_SLACK = 0.15


class _Limiter:
    """Sliding windows, like the server's: never more than the limits in any window."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.sent: collections.deque[float] = collections.deque()
        self.lock = asyncio.Lock()
        self.blocked_until = 0.0

    async def wait(self) -> None:
        second, minute = 1 + _SLACK, 60 + _SLACK
        async with self.lock:
            while True:
                now = time.monotonic()
                while self.sent and now - self.sent[0] >= minute:
                    self.sent.popleft()
                in_second = sum(1 for t in self.sent if now - t < second)
                delay = self.blocked_until - now
                if len(self.sent) >= self.limit.per_minute:
                    delay = minute - (now - self.sent[0])
                if in_second >= self.limit.per_second:
                    oldest = next(t for t in self.sent if now - t < second)
                    delay = max(delay, second - (now - oldest))
                if delay <= 0:
                    self.sent.append(now)
                    return
                await asyncio.sleep(delay + 0.01)

    def pause(self, seconds: float) -> None:
        """After a 429: nothing is sent, by any task, for ``seconds``."""
        self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)


def error_message(response: httpx.Response) -> str:
    """The platform's message from either documented error shape, or the status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            code = error.get("code")
            return f"{error['message']}" + (f" ({code})" if code else "")
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


def _retry_after(response: httpx.Response) -> float:
    header = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        error = response.json().get("error", {})
        return max(0.0, float(error.get("retry_after", 30)))
    except (ValueError, AttributeError, TypeError):
        return 30.0


class SmartLeadClient:
    """A small async client of SmartLead's email-account endpoints."""

    def __init__(
        self,
        api_key: Secret[str],
        base_url: str = DEFAULT_BASE_URL,
        *,
        rate_limit: RateLimit | None = None,
        timeout: float = 60.0,
        max_429_waits: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        _mask_loggers()
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self._limiter = _Limiter(rate_limit or RateLimit())
        self._max_429_waits = max_429_waits
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            headers={"User-Agent": "preflight"},
        )

    async def __aenter__(self) -> SmartLeadClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"SmartLeadClient(base_url={self.base_url!r}, api_key={MASK!r})"

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One request within the rate limit, waiting out 429s (``Retry-After``)."""
        query = {**(params or {}), "api_key": self._key.reveal()}
        for _ in range(self._max_429_waits + 1):
            await self._limiter.wait()
            response = await self._client.request(
                method, f"{self.base_url}{path}", params=query, json=json
            )
            if response.status_code == 401:
                raise Unauthorized(
                    f"SmartLead refused the API key (401): {error_message(response)}"
                )
            if response.status_code != 429:
                return response
            self._limiter.pause(_retry_after(response))  # the next wait() waits it out
        return response

    async def save(self, body: dict[str, Any]) -> SaveResult:
        """POST one account to ``/email-accounts/save``."""
        try:
            response = await self._request("POST", "/email-accounts/save", json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return SaveResult(
                SaveOutcome.NOT_SENT, None, f"could not connect to SmartLead ({type(exc).__name__})"
            )
        except httpx.TransportError as exc:
            # Sent, maybe applied: only a look-up can tell.
            return SaveResult(
                SaveOutcome.UNKNOWN,
                None,
                f"no answer after sending ({type(exc).__name__}); the account may exist",
            )
        status = response.status_code
        if status == 200:
            data = _data(response)
            return SaveResult(
                SaveOutcome.SAVED,
                status,
                _message(response, "saved"),
                _int(data.get("id")),
                _bool(data.get("is_smtp_success")),
                _bool(data.get("is_imap_success")),
            )
        if status in (400, 422):
            return SaveResult(SaveOutcome.REJECTED, status, error_message(response))
        if status == 429:
            return SaveResult(
                SaveOutcome.NOT_SENT, status, "still rate limited after waiting (429)"
            )
        if status >= 500:
            return SaveResult(
                SaveOutcome.UNKNOWN,
                status,
                f"server error ({error_message(response)}); the account may exist",
            )
        return SaveResult(SaveOutcome.REJECTED, status, error_message(response))

    async def find_accounts(self, email: str) -> list[dict[str, Any]]:
        """Stored accounts whose from_email or user name is ``email``, by paging
        through ``GET /email-accounts/`` (100 at a time)."""
        wanted = email.strip().lower()
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            response = await self._request(
                "GET", "/email-accounts/", params={"offset": offset, "limit": 100}
            )
            if response.status_code != 200:
                raise httpx.HTTPError(f"listing accounts failed: {error_message(response)}")
            page = response.json()
            if isinstance(page, dict):  # some deployments wrap the list
                page = page.get("data") or page.get("email_accounts") or []
            if not isinstance(page, list):
                raise httpx.HTTPError("listing accounts returned no list")
            for item in page:
                if not isinstance(item, dict):
                    continue
                names = {
                    str(item.get(k, "")).strip().lower()
                    for k in ("from_email", "username", "user_name")
                }
                if wanted in names:
                    found.append(item)
            if len(page) < 100:
                return found
            offset += 100


def _data(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def _message(response: httpx.Response, default: str) -> str:
    try:
        body = response.json()
    except ValueError:
        return default
    return str(body.get("message", default)) if isinstance(body, dict) else default


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None
