"""The one log filter that masks the SmartLead API key.

The API wants the key in the query string, and httpx logs every request's full URL
at INFO ("HTTP Request: POST https://...?api_key=... "), so the ``httpx`` and
``httpcore`` loggers get this filter before preflight sends anything: the
SmartLead client and the httpx transports install it, idempotently.

It masks the key in the message and in its arguments, whichever formatting the
call uses: positional (``log("%s", url)``), named (``log("%(url)s", {"url": url})``:
``record.args`` is then the mapping itself) and a non-text message (an object
formatted with ``str()``). It never changes a record it has nothing to mask, so a
``%d`` argument stays a number.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Final

from preflight.secret import MASK

__all__ = ["install", "mask_api_key"]

#: ``api_key=``, ``apikey=``, ``api-key=`` and their URL-encoded ``%3D`` form.
_KEY_IN_TEXT: Final = re.compile(r"(?i)(api[_-]?key(?:=|%3D))[^&#\s\"'<>]*")

#: The loggers that print request URLs.
_LOGGERS: Final = ("httpx", "httpcore")


def mask_api_key(text: str) -> str:
    """``text`` with every ``api_key=...`` value replaced by the mask."""
    return _KEY_IN_TEXT.sub(rf"\g<1>{MASK}", text)


def _masked(value: object) -> object:
    """``value`` as it is, or its text masked when that text holds a key."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # a broken __str__ is for logging to report, not this filter
        return value
    return mask_api_key(text) if _KEY_IN_TEXT.search(text) else value


class _MaskApiKey(logging.Filter):
    """Masks ``api_key=...`` in the records of the loggers it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _masked(record.msg)
        if isinstance(record.args, Mapping):  # "%(name)s" formatting: keep the mapping
            record.args = {key: _masked(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(_masked(value) for value in record.args)
        return True


_FILTER: Final = _MaskApiKey()


def install() -> None:
    """Attach the filter to the ``httpx`` and ``httpcore`` loggers, once."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
