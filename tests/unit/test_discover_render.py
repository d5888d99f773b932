"""discover's output shows what servers and DNS said escaped, never obeyed."""

from __future__ import annotations

import json
import unicodedata

from preflight._text import json_text
from preflight.discover import Candidate, Discovery, Lookup, render_text
from preflight.payload import AccountType

HOSTILE = "\x1b[2J\x1b]0;owned\x07\x9b31m\udcff"


def _discovery() -> Discovery:
    smtp = Candidate(
        "smtp", "mail.example.test", 465, "ssl", "guess", answered=True,
        detail=f"greeting: 220 {HOSTILE}",
    )  # fmt: skip
    return Discovery(
        email="jane@example.test",
        domain="example.test",
        smtp=smtp,
        imap=None,
        type=AccountType.SMTP,
        user_name=f"jane{HOSTILE}",
        imap_user_name=None,
        provider=None,
        mx=(f"mx{HOSTILE}.example.test",),
        candidates=(smtp,),
        lookups=(Lookup("autoconfig", "autoconfig.example.test", "invalid", HOSTILE),),
        notes=(f"note {HOSTILE}",),
        elapsed_ms=1.0,
    )


def test_text_escapes_server_words() -> None:
    """Greetings, DNS names, autoconfig details and notes are printed escaped."""
    text = render_text(_discovery())
    controls = [c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cs")]
    assert controls == []
    assert "\\x1b[2J" in text
    assert "\\x9b" in text
    text.encode("utf-8")  # no lone surrogate left


def test_json_is_valid_utf8_with_the_same_data() -> None:
    """The JSON form encodes on a strict UTF-8 stream and reads back to the same data."""
    data = _discovery().to_dict()
    text = json_text(data, indent=2)
    text.encode("utf-8")
    assert data == json.loads(text)
