"""The SmartLead API client: save accounts, look them up, within the rate limits.

Outcomes of a save are *results*, not exceptions (:class:`SaveResult`), except a
refused API key (:class:`Unauthorized`), after which every further call would fail.
What matters most is whether a POST may have been applied:

- ``saved`` (200), ``rejected`` (400/422: SmartLead's own check or its validation);
- ``not_sent``: the connection failed before the request left, or a 429 asked for a
  wait longer than ``max_retry_wait`` (safe to send again);
- ``unknown``: a read timeout, a dropped connection after sending, a 5xx. The account
  may exist now; sending again blindly could create a duplicate, so the caller
  looks it up first (:meth:`SmartLeadClient.find_accounts`).

The API key travels in the query string (the API wants it there). httpx logs full
URLs at INFO, so a filter on the ``httpx`` logger masks it; no request URL and no
``str()`` of an httpx exception is ever put in a message or exception here. Text from
the platform (or a proxy) is scrubbed of the key, the posted account's secrets and
any ``api_key=`` value, made one line and bounded (:func:`error_message`).
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import httpx

from preflight._logfilter import install as install_log_filter
from preflight._logfilter import mask_api_key
from preflight._text import one_line, printable, shorten
from preflight.errors import PreflightError
from preflight.secret import MASK, Secret

__all__ = [
    "DEFAULT_BASE_URL",
    "PAGE_SIZE",
    "FetchFailed",
    "LookupFailed",
    "RateLimit",
    "SaveOutcome",
    "SaveResult",
    "SmartLeadClient",
    "Unauthorized",
    "check_base_url",
    "error_message",
    "parse_retry_after",
]

DEFAULT_BASE_URL: Final = "https://server.smartlead.ai/api/v1"
#: The most accounts one listing call returns (``limit``).
PAGE_SIZE: Final = 100


class Unauthorized(PreflightError):
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


class _Slot:
    """One request in the limiter's windows: in flight, then done at ``time``."""

    __slots__ = ("done", "time")

    def __init__(self, time: float) -> None:
        self.time = time
        self.done = False

    def finish(self) -> None:
        self.time = _now()
        self.done = True


def _now() -> float:
    return time.monotonic()


class _Limiter:
    """Sliding windows, like the server's: never more than the limits in any window.

    The server counts a request when it arrives, which the client cannot see: some
    time after it was let go, before its answer came back. So a request counts as
    in every window while it is in flight, and once answered, as of the moment its
    answer came: both at least as late as its arrival, so the client's count is
    never below the server's, however slow the loop or the network.
    """

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.sent: collections.deque[_Slot] = collections.deque()
        self.lock = asyncio.Lock()
        self.blocked_until = 0.0

    async def wait(self) -> _Slot:
        """Wait for room in both windows; the slot must be ``finish()``-ed when the
        request is answered (or has failed)."""
        second, minute = 1 + _SLACK, 60 + _SLACK
        async with self.lock:
            while True:
                now = _now()
                while self.sent and self.sent[0].done and now - self.sent[0].time >= minute:
                    self.sent.popleft()
                in_minute = [s for s in self.sent if not s.done or now - s.time < minute]
                in_second = [s for s in in_minute if not s.done or now - s.time < second]
                delay = self.blocked_until - now
                if len(in_minute) >= self.limit.per_minute:
                    delay = max(delay, _until(in_minute, now, minute))
                if len(in_second) >= self.limit.per_second:
                    delay = max(delay, _until(in_second, now, second))
                if delay <= 0:
                    slot = _Slot(now)
                    self.sent.append(slot)
                    return slot
                await asyncio.sleep(delay + 0.01)

    def pause(self, seconds: float) -> None:
        """After a 429: nothing is sent, by any task, for ``seconds``."""
        self.blocked_until = max(self.blocked_until, _now() + seconds)


def _until(window: list[_Slot], now: float, length: float) -> float:
    """How long until the earliest answered request leaves a window of ``length``
    (a short poll while every one is still in flight)."""
    answered = [s.time for s in window if s.done]
    return length - (now - min(answered)) if answered else 0.05


#: Longest platform message kept: enough for any documented one, not for a page.
MAX_MESSAGE: Final = 300


def _clean(text: str) -> str:
    """One line, shown inert (a terminal escape from a proxy is not obeyed)."""
    return printable(one_line(text))


def _bounded(text: str) -> str:
    return shorten(text, MAX_MESSAGE)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret and every ``api_key=...`` value masked."""
    from preflight._net import scrub as net_scrub

    return mask_api_key(net_scrub(text, secrets))


def _details(details: Any) -> str:
    if isinstance(details, dict):
        return "; ".join(
            f"{k}: {v}" if not isinstance(v, str) or v else str(k) for k, v in details.items()
        )
    if isinstance(details, list):
        return "; ".join(str(d) for d in details)
    return str(details) if details else ""


def error_message(response: httpx.Response, secrets: tuple[str, ...] = ()) -> str:
    """Every human-readable part of the platform's error body, or the status.

    Keeps ``message`` and ``error`` (a string, or an object with ``message``,
    ``code`` and ``details``): ``{"ok": false, "message": "SMTP connection failed",
    "error": "Invalid credentials"}`` gives "SMTP connection failed: Invalid
    credentials"; ``{"error": "from_name is required"}`` gives "from_name is
    required". A body that is not JSON (a proxy's HTML page) gives the status only.
    The result is one line, at most :data:`MAX_MESSAGE` characters, with
    ``secrets`` and any ``api_key=`` value masked.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    parts: list[str] = []
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str):
            parts.append(message)
        error = body.get("error")
        if isinstance(error, str):
            parts.append(error)
        elif isinstance(error, dict):
            text = str(error.get("message") or "")
            code = error.get("code")
            if code:
                text = f"{text} ({code})" if text else str(code)
            details = _details(error.get("details"))
            if details:
                text = f"{text}: {details}" if text else details
            parts.append(text)
        elif error not in (None, False, ""):
            parts.append(str(error))
    kept: list[str] = []
    for part in (_clean(scrub(p, secrets)) for p in parts):
        if part and part not in kept:
            kept.append(part)
    if not kept:
        return f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return _bounded(": ".join(kept))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: a number of seconds or an
    HTTP-date. ``inf`` stays infinite (a cap decides); negative or past means 0;
    ``nan``, empty or garbage give None (unknown)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _retry_after(response: httpx.Response) -> float:
    """How long a 429 asks to wait: the header, else the body's ``retry_after``, else 30 s."""
    seconds = parse_retry_after(response.headers.get("retry-after"))
    if seconds is not None:
        return seconds
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        value = error.get("retry_after") if isinstance(error, dict) else None
        seconds = parse_retry_after(str(value)) if isinstance(value, int | float | str) else None
    except ValueError:
        seconds = None
    return 30.0 if seconds is None else seconds


def describe_wait(seconds: float) -> str:
    return "forever" if math.isinf(seconds) else f"{math.ceil(seconds)} s"


def check_base_url(url: str) -> str:
    """``url`` without its trailing slash, or ValueError saying what is wrong with it.

    An http or https URL with a host and, if any, a port from 1 to 65535; no query
    or fragment (the client adds ``api_key`` to the query itself).
    """
    text = url.strip()
    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"--base-url {url!r} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(
            f"--base-url {url!r} must start with https:// (or http://), like {DEFAULT_BASE_URL}"
        )
    if not parsed.host:
        raise ValueError(f"--base-url {url!r} has no host name")
    port = parsed.port
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"--base-url {url!r}: port {port} is not between 1 and 65535")
    if parsed.query or parsed.fragment or parsed.userinfo:
        raise ValueError(
            f"--base-url {url!r} must not carry a query, fragment or user name "
            "(the API key comes from SMARTLEAD_API_KEY or --api-key-file)"
        )
    return text.rstrip("/")


class LookupFailed(PreflightError):
    """Looking accounts up failed; the message is safe to show (scrubbed, no URL)."""


class _WaitTooLong(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(describe_wait(seconds))
        self.seconds = seconds


class SmartLeadClient:
    """A small async client of SmartLead's email-account endpoints.

    Every text that comes from the platform (error bodies, status lines) is
    scrubbed of the API key, of the posted account's secrets and of any
    ``api_key=`` value before it is put in a result or an exception; no URL and no
    ``str()`` of an httpx exception is ever put in one.

    ``notify`` receives one-line notices the caller may show (a wait asked by
    ``Retry-After``); this module never prints.
    """

    def __init__(
        self,
        api_key: Secret[str],
        base_url: str = DEFAULT_BASE_URL,
        *,
        rate_limit: RateLimit | None = None,
        timeout: float = 60.0,
        max_429_waits: int = 5,
        max_retry_wait: float = 120.0,
        notify: Callable[[str], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        install_log_filter()
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self._limiter = _Limiter(rate_limit or RateLimit())
        self._max_429_waits = max_429_waits
        self.max_retry_wait = max_retry_wait
        self._notify = notify or (lambda message: None)
        #: Set at the first 401: no request is sent after it.
        self.refused: Unauthorized | None = None
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

    def _secrets(self, body: Any = None) -> tuple[str, ...]:
        found = [self._key.reveal()]
        if isinstance(body, dict):
            for name in ("password", "imap_password", "token"):
                found.extend(_strings(body.get(name)))
        return tuple(s for s in found if s)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One request within the rate limit, waiting out 429s (``Retry-After``) up
        to ``max_retry_wait`` each; a longer wait raises :class:`_WaitTooLong`."""
        if self.refused is not None:
            raise self.refused
        query = {**(params or {}), "api_key": self._key.reveal()}
        for _ in range(self._max_429_waits + 1):
            slot = await self._limiter.wait()
            try:
                if self.refused is not None:
                    raise self.refused
                response = await self._client.request(
                    method, f"{self.base_url}{path}", params=query, json=json
                )
            finally:
                slot.finish()
            if response.status_code == 401:
                await response.aread()
                if self.refused is None:
                    self.refused = Unauthorized(
                        "SmartLead refused the API key (401): "
                        + error_message(response, self._secrets(json))
                    )
                raise self.refused
            if response.status_code != 429:
                return response
            wait = _retry_after(response)
            if wait > self.max_retry_wait:
                raise _WaitTooLong(wait)
            self._notify(
                f"SmartLead asks to wait {describe_wait(wait)} (Retry-After); waiting before {what}"
            )
            self._limiter.pause(wait)  # the next wait() waits it out
        return response

    def _too_long(self, wait: _WaitTooLong, what: str) -> str:
        message = (
            f"SmartLead asks to wait {describe_wait(wait.seconds)} (Retry-After); more than "
            f"--max-retry-wait {describe_wait(self.max_retry_wait)}: not {what}"
        )
        self._notify(message)
        return message

    async def verify_key(self) -> None:
        """One cheap authenticated call (the account list, ``limit=1``).

        Raises :class:`Unauthorized` when the key is refused, :class:`LookupFailed`
        when the API cannot be reached or answers something else than a list.
        """
        try:
            response = await self._request(
                "GET",
                "/email-accounts/",
                what="checking the API key",
                params={"offset": 0, "limit": 1},
            )
        except _WaitTooLong as exc:
            raise LookupFailed(self._too_long(exc, "checking the API key")) from None
        except httpx.HTTPError as exc:
            raise LookupFailed(
                f"cannot reach SmartLead at {self.base_url} ({type(exc).__name__})"
            ) from None
        _listing(response, self._secrets())

    async def save(self, body: dict[str, Any]) -> SaveResult:
        """POST one account to ``/email-accounts/save``.

        Raises :class:`Unauthorized` on a 401 (the POST was not applied).
        """
        secrets = self._secrets(body)
        label = _clean(str(body.get("from_email", "the account")))
        try:
            response = await self._request(
                "POST", "/email-accounts/save", what=f"sending {label}", json=body
            )
        except _WaitTooLong as exc:
            return SaveResult(SaveOutcome.NOT_SENT, 429, self._too_long(exc, f"sending {label}"))
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.UnsupportedProtocol,
            httpx.LocalProtocolError,
            httpx.InvalidURL,
        ) as exc:
            return SaveResult(
                SaveOutcome.NOT_SENT, None, f"could not connect to SmartLead ({type(exc).__name__})"
            )
        except httpx.HTTPError as exc:
            # Sent, maybe applied: only a look-up can tell. (Never str(exc): an httpx
            # error's text can hold the URL, and the URL the key.)
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
                _bounded(_clean(scrub(_message(response, "saved"), secrets))),
                _int(data.get("id")),
                _bool(data.get("is_smtp_success")),
                _bool(data.get("is_imap_success")),
            )
        if status in (400, 422):
            return SaveResult(SaveOutcome.REJECTED, status, error_message(response, secrets))
        if status == 429:
            return SaveResult(
                SaveOutcome.NOT_SENT, status, "still rate limited after waiting (429)"
            )
        if status >= 500:
            return SaveResult(
                SaveOutcome.UNKNOWN,
                status,
                f"server error ({error_message(response, secrets)}); the account may exist",
            )
        return SaveResult(SaveOutcome.REJECTED, status, error_message(response, secrets))

    async def find_accounts(self, email: str, username: str | None = None) -> list[dict[str, Any]]:
        """Stored accounts whose from_email or user name is ``email``.

        Asks the listing with the ``username`` filter (a partial match on the
        platform's user name) set to ``username`` (the user name the account was
        saved with; else ``email``), so only the few accounts that match come back
        instead of every page of them; the exact match on ``email`` is made here.

        Raises :class:`LookupFailed` (a safe message) when the listing fails or is
        not a list, :class:`Unauthorized` on a 401.
        """
        from preflight.smartlead._journal import account_key

        wanted = account_key(email)
        found: list[dict[str, Any]] = []
        async for item in self.list_accounts(
            {"username": username or email}, what=f"looking up {_clean(email)}"
        ):
            names = {
                account_key(str(item.get(k) or "")) for k in ("from_email", "username", "user_name")
            }
            if wanted in names:
                found.append(item)
        return found

    async def list_accounts(
        self,
        filters: Mapping[str, str | int | bool] | None = None,
        *,
        page_size: int = PAGE_SIZE,
        what: str = "listing accounts",
    ) -> AsyncIterator[dict[str, Any]]:
        """Every account of ``GET /email-accounts/`` matching ``filters`` (``esp``,
        ``client_id``, ``username``, ``isSmtpSuccess``, ...), page after page of
        ``page_size`` (at most 100), within the rate limit.

        A listing item's password fields are placeholders: the items are yielded as
        they are, and must not be shown. Raises :class:`LookupFailed` (a safe
        message) when a page fails or is not a list, :class:`Unauthorized` on a 401.
        """
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {PAGE_SIZE}")
        query = {k: _query_value(v) for k, v in (filters or {}).items()}
        offset = 0
        while True:
            try:
                response = await self._request(
                    "GET",
                    "/email-accounts/",
                    what=what,
                    params={**query, "offset": offset, "limit": page_size},
                )
            except _WaitTooLong as exc:
                raise LookupFailed(self._too_long(exc, what)) from None
            except httpx.HTTPError as exc:
                raise LookupFailed(f"listing accounts failed ({type(exc).__name__})") from None
            page = _listing(response, self._secrets())
            for item in page:
                if isinstance(item, dict):
                    yield item
            if len(page) < page_size:
                return
            offset += page_size

    async def get_account(self, account_id: int) -> dict[str, Any]:
        """One account, ``GET /email-accounts/{id}/``, with its passwords **in plain
        text**: the caller keeps the result in memory only.

        Raises :class:`FetchFailed` (a safe message: never the body, which holds the
        passwords) when the account cannot be fetched, :class:`Unauthorized` on a 401.
        """
        what = f"fetching account {account_id}"
        try:
            response = await self._request("GET", f"/email-accounts/{int(account_id)}/", what=what)
        except _WaitTooLong as exc:
            raise FetchFailed(self._too_long(exc, what)) from None
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{what} failed ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise FetchFailed(
                f"{what} failed: HTTP {response.status_code}: "
                f"{error_message(response, self._secrets())}"
            )
        try:
            body = response.json()
        except ValueError:
            raise FetchFailed(f"{what} answered HTTP 200 with a body that is not JSON") from None
        if isinstance(body, dict) and isinstance(body.get("data"), dict) and "id" not in body:
            body = body["data"]  # some deployments wrap the object
        if not isinstance(body, dict):
            raise FetchFailed(f"{what} returned no account object")
        return body


class FetchFailed(LookupFailed):
    """One account could not be fetched; the message is safe to show."""


def _query_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _listing(response: httpx.Response, secrets: tuple[str, ...]) -> list[Any]:
    """The accounts of a listing answer, or :class:`LookupFailed`."""
    if response.status_code != 200:
        raise LookupFailed(
            f"listing accounts failed: HTTP {response.status_code}: "
            f"{error_message(response, secrets)}"
        )
    try:
        page = response.json()
    except ValueError:
        kind = _clean(response.headers.get("content-type", "").split(";")[0]) or "no type"
        raise LookupFailed(
            f"listing accounts answered HTTP 200 with a body that is not JSON ({kind}): "
            "a proxy or login page in the way?"
        ) from None
    if isinstance(page, dict):  # some deployments wrap the list
        page = page.get("data") or page.get("email_accounts") or []
    if not isinstance(page, list):
        raise LookupFailed("listing accounts returned no list")
    return page


def _strings(value: Any) -> list[str]:
    """Every string inside ``value`` (a token is an object of strings)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


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
