"""An httpx transport that checks every SmartLead account save before it is sent.

One line in a tool that already talks to SmartLead with httpx::

    client = httpx.AsyncClient(transport=PreflightTransport())
    client = httpx.Client(transport=SyncPreflightTransport())

Every ``POST`` whose path ends with ``/email-accounts/save`` (trailing slash or
not) has its JSON body checked with :func:`preflight.check_account` first:

- the account passes (warnings allowed): the request goes to the inner transport
  with its body bytes unchanged, and the answer comes back untouched;
- it fails: the transport answers **locally**, ``422`` with
  ``Content-Type: application/json`` and both of SmartLead's error shapes at once,
  so a client that parses either one sees a rejection::

      {"ok": false, "message": "preflight rejected bob@example.com: smtp auth_failed",
       "error": {"code": "PREFLIGHT_REJECTED", "message": "<the same line>",
                 "details": {"preflight": <the AccountReport, as preflight check writes it>}}}

  and the request never reaches the inner transport (nor SmartLead);
- the body is not a JSON object (not JSON, not UTF-8/16/32, compressed, a list):
  the same local 422, with a ``payload_invalid`` report. SmartLead would refuse such
  a save anyway; answering locally keeps the rule simple: *no save leaves unchecked*.

Every other request passes straight through. Both responses carry the report in
``response.extensions["preflight_report"]`` (an :class:`AccountReport`); the
local one also has the header ``X-Preflight: rejected``.

What it never does: log a URL (SmartLead's carries ``?api_key=``), or put the API
key or a password in the local answer (a report never holds a password: payload
messages never show secret fields, probe replies are scrubbed). Creating a
transport also attaches a filter to the ``httpx`` and ``httpcore`` loggers that
masks ``api_key=`` values, because httpx itself logs every request URL at INFO,
local answers included.

A check takes up to ``CheckOptions.timeout`` (30 s by default), outside httpx's
own timeouts. An exception inside the check propagates and nothing is sent.
Client settings such as ``verify``, ``proxy`` or ``http2`` belong to the inner
transport once a transport is given: ``PreflightTransport(httpx.AsyncHTTPTransport(
http2=True))``. A ``proxy=`` or ``mounts=`` given to the *client* installs
transports of its own, and what they route bypasses this one.

:class:`SyncPreflightTransport` runs the check on an event loop of its own, so it
works from any thread that has none running; from inside a running loop it
raises ``RuntimeError`` (the blocking client would stall that loop): use
``httpx.AsyncClient`` with :class:`PreflightTransport` there.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Final

import httpx

from preflight._logfilter import install as install_log_filter
from preflight._text import json_text
from preflight.options import CheckOptions
from preflight.reader import RawAccount, json_object
from preflight.report import AccountReport
from preflight.runner import check_account
from preflight.smartlead._guard import summary

__all__ = [
    "REJECTED_CODE",
    "REPORT_EXTENSION",
    "PreflightTransport",
    "SyncPreflightTransport",
    "is_account_save",
]

#: ``error.code`` of a local rejection.
REJECTED_CODE: Final = "PREFLIGHT_REJECTED"
#: The key of ``response.extensions`` holding the :class:`AccountReport`.
REPORT_EXTENSION: Final = "preflight_report"

_SAVE_SUFFIX: Final = "/email-accounts/save"
_log = logging.getLogger("preflight.httpx_guard")  # the name the README documents


def is_account_save(request: httpx.Request) -> bool:
    """Whether ``request`` is a ``POST .../email-accounts/save`` (slash optional)."""
    return request.method == "POST" and request.url.path.rstrip("/").endswith(_SAVE_SUFFIX)


def _raw_account(request: httpx.Request, body: bytes) -> RawAccount:
    """The save body as preflight reads an account; an ``error`` when it cannot be read."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return RawAccount(
            0, None, None, f"the request body is {encoding}-encoded; preflight checks plain JSON"
        )
    try:
        # Duplicated keys are remembered, as the reader does: a second password would
        # otherwise win silently.
        data: object = json.loads(body, object_pairs_hook=json_object)
    except json.JSONDecodeError as exc:
        # The decoder's message names a position, never the body's content.
        return RawAccount(0, None, None, f"the request body is not JSON ({exc.msg})")
    except UnicodeDecodeError:
        return RawAccount(0, None, None, "the request body is not JSON (not UTF-8/16/32 text)")
    except RecursionError:
        return RawAccount(0, None, None, "the request body is not JSON (nested too deeply)")
    except ValueError:  # a number too long for Python's int (more than 4300 digits)
        return RawAccount(
            0, None, None, "the request body is not JSON preflight can read (a number too long)"
        )
    # A JSON value that is not an object gets payload_invalid from the payload check.
    return RawAccount(0, None, data)


def _rejection(request: httpx.Request, report: AccountReport) -> httpx.Response:
    """The local 422: SmartLead's older and newer error shapes in one body."""
    line = summary(report)
    body: dict[str, Any] = {
        "ok": False,
        "message": line,
        "error": {
            "code": REJECTED_CODE,
            "message": line,
            "details": {"preflight": report.to_dict()},
        },
    }
    return httpx.Response(
        422,
        headers={"Content-Type": "application/json", "X-Preflight": "rejected"},
        content=json_text(body).encode("utf-8"),
        request=request,
        extensions={REPORT_EXTENSION: report},
    )


def _note(report: AccountReport) -> None:
    # The report's one-line summary only: no URL (it holds the API key), no body.
    if report.ok:
        _log.debug("%s; forwarding the save", summary(report))
    else:
        _log.info("%s; the save was answered locally with 422", summary(report))


class PreflightTransport(httpx.AsyncBaseTransport):
    """Checks SmartLead account saves before ``transport`` sends them (async).

    ``transport``: the transport that really sends, ``httpx.AsyncHTTPTransport()``
    by default. ``options``: how accounts are checked (deadline, trust, resolver),
    as for :func:`preflight.check_account`.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        options: CheckOptions | None = None,
    ) -> None:
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self.options = options
        install_log_filter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not is_account_save(request):
            return await self.transport.handle_async_request(request)
        body = await request.aread()  # a streamed body is kept, and sent as read
        report = await check_account(_raw_account(request, body), self.options)
        _note(report)
        if not report.ok:
            return _rejection(request, report)
        response = await self.transport.handle_async_request(request)
        response.extensions[REPORT_EXTENSION] = report
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()


class SyncPreflightTransport(httpx.BaseTransport):
    """:class:`PreflightTransport` for ``httpx.Client``.

    ``transport`` defaults to ``httpx.HTTPTransport()``. Each save is checked on a
    new event loop in the calling thread, which must not be running one.
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        options: CheckOptions | None = None,
    ) -> None:
        self.transport = transport if transport is not None else httpx.HTTPTransport()
        self.options = options
        install_log_filter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not is_account_save(request):
            return self.transport.handle_request(request)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "SyncPreflightTransport cannot check a save inside a running event loop "
                "(httpx.Client would block it): use httpx.AsyncClient with PreflightTransport"
            )
        body = request.read()
        report = asyncio.run(check_account(_raw_account(request, body), self.options))
        _note(report)
        if not report.ok:
            return _rejection(request, report)
        response = self.transport.handle_request(request)
        response.extensions[REPORT_EXTENSION] = report
        return response

    def close(self) -> None:
        self.transport.close()
