"""The roundtrip check's report of a folder the server named (no server needed)."""

from __future__ import annotations

import unicodedata

from preflight._tls import make_context
from preflight.checks._imap_client import Reply
from preflight.checks.roundtrip import _Found, _Roundtrip, _search_result
from preflight.options import CheckOptions
from preflight.payload import parse_account
from preflight.report import Code


def roundtrip() -> _Roundtrip:
    parsed = parse_account(
        {
            "from_name": "Test",
            "from_email": "alice@preflight.test",
            "user_name": "alice@preflight.test",
            "password": "CANARY-roundtrip-4k2p",
            "smtp_host": "mail.preflight.test",
            "smtp_port": 465,
            "imap_host": "mail.preflight.test",
            "imap_port": 993,
            "warmup_enabled": False,
        }
    )
    assert parsed.account is not None, parsed.errors
    return _Roundtrip(parsed.account, CheckOptions(), make_context(None, False))


def test_junk_folder_name_is_escaped() -> None:
    """A Junk folder whose name holds control sequences is reported escaped."""
    result = roundtrip().delivered(_Found("\x1b[2J\x9b/Junk", 7, 1500.0, junk=True))
    assert result.code is Code.ROUNDTRIP_JUNK
    assert result.details["folder"] == "\\x1b[2J\\x9b/Junk"
    assert "the \\x1b[2J\\x9b/Junk folder (spam)" in result.message
    shown = [result.message, *(v for v in result.details.values() if isinstance(v, str))]
    assert [c for text in shown for c in text if unicodedata.category(c) == "Cc"] == []


def test_search_result_takes_only_uids() -> None:
    """SEARCH words int() cannot take (a superscript, 5,000 digits) are skipped, not raised."""
    reply = Reply("OK", "done", (f"SEARCH 7 \u00b2 {'9' * 5000} 12",))
    assert _search_result(reply) == {7, 12}
