"""The one API-key log filter, installed by both the SmartLead client and the httpx
transports (issue 10: the two copies had diverged)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from preflight import _logfilter
from preflight.secret import MASK, Secret
from preflight.smartlead._client import SmartLeadClient
from preflight.smartlead._httpx_guard import PreflightTransport, SyncPreflightTransport

SECRET = "sk-live-1234567890"
URL = f"https://server.smartlead.ai/api/v1/email-accounts/save?api_key={SECRET}&x=1"


class Capture(logging.Handler):
    """Formats each record as a handler would, so a broken record raises here."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def handleError(self, record: logging.LogRecord) -> None:  # logging's own name
        raise AssertionError(f"the record could not be formatted: {record.msg!r}")


@pytest.fixture
def captured() -> Iterator[Capture]:
    logger = logging.getLogger("httpx")
    handler = Capture()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def install_both_ways() -> None:
    client = SmartLeadClient(Secret("k"), "https://example.invalid/api/v1")
    asyncio.run(client.aclose())
    PreflightTransport()
    SyncPreflightTransport()


def test_both_entry_points_install_one_filter() -> None:
    """The client and both transports install the same filter, once per logger."""
    install_both_ways()
    for name in ("httpx", "httpcore"):
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, _logfilter._MaskApiKey) for f in filters) == 1


def test_positional_named_and_object_messages_are_masked(captured: Capture) -> None:
    """Positional args, named args (a mapping) and a non-text message are masked and format."""
    install_both_ways()
    log = logging.getLogger("httpx")

    class Url:
        def __str__(self) -> str:
            return URL

    log.info('HTTP Request: %s %s "%s %d"', "POST", URL, "HTTP/1.1", 200)
    log.info(
        "HTTP Request: %(method)s %(url)s %(status)d", {"method": "POST", "url": URL, "status": 200}
    )
    log.info(Url())
    log.info(f"inline {URL}")
    assert len(captured.messages) == 4
    for message in captured.messages:
        assert SECRET not in message
        assert f"api_key={MASK}" in message
    assert captured.messages[0].endswith('"HTTP/1.1 200"')  # %d still gets a number
    assert captured.messages[1].endswith(" 200")


def test_records_without_a_key_are_left_alone(captured: Capture) -> None:
    """A record with nothing to mask keeps its arguments' types."""
    install_both_ways()
    logging.getLogger("httpx").info("%05.1f %r", 2.5, ("a", 1))
    assert captured.messages == ["002.5 ('a', 1)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("?api_key=abc&b=1", f"?api_key={MASK}&b=1"),
        ("?API-KEY=abc#frag", f"?API-KEY={MASK}#frag"),
        ("?apikey%3Dabc", f"?apikey%3D{MASK}"),
        ("no key here", "no key here"),
    ],
)
def test_mask_api_key_forms(text: str, expected: str) -> None:
    """Every spelling of the key parameter is masked up to its delimiter."""
    assert expected == _logfilter.mask_api_key(text)
