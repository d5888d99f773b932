"""Masking secrets in server text (net.scrub) and making it fit a report (net.reportable)."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from preflight._net import REPLY_LIMIT, ProbeState, reportable, scrub
from preflight.report import Code
from preflight.secret import MASK

PASSWORD = 'Qz7"Wv\\  kX3!pL9-mR4#tY8'  # a quote, a backslash, two spaces
USER = "alice@preflight.test"


def b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def imap_quoted(secret: str) -> str:
    return secret.replace("\\", "\\\\").replace('"', '\\"')


def fragments(secret: str, size: int = 5) -> set[str]:
    """Every run of ``size`` characters of the secret and of its collapsed form."""
    found: set[str] = set()
    for form in (secret, " ".join(secret.split()), imap_quoted(secret)):
        found.update(form[i : i + size] for i in range(len(form) - size + 1))
    return found


def test_auth_plain_blob_is_masked() -> None:
    """An echoed AUTH PLAIN blob, base64 of \\0user\\0password, is masked."""
    blob = b64(f"\0{USER}\0{PASSWORD}")
    assert f"535 5.7.8 AUTH PLAIN {MASK} refused" == scrub(
        f"535 5.7.8 AUTH PLAIN {blob} refused", (PASSWORD,)
    )


def test_auth_plain_blob_with_authzid_is_masked() -> None:
    """The blob with an authorization identity (authzid\\0user\\0password) is masked too."""
    blob = b64(f"{USER}\0{USER}\0{PASSWORD}")
    assert f"NO {MASK}" == scrub(f"NO {blob}", (PASSWORD,))


def test_blob_run_into_other_base64_characters_is_masked() -> None:
    """A blob glued to letters (the run does not start where the encoding does) is masked."""
    blob = b64(f"\0{USER}\0{PASSWORD}").rstrip("=")
    for glue in ("x", "xy", "xyz", "wxyz"):
        assert scrub(glue + blob + glue, (PASSWORD,)) == MASK


def test_unpadded_and_urlsafe_base64_are_masked() -> None:
    """The password's base64 without padding, or in the URL-safe alphabet, is masked."""
    raw = PASSWORD.encode()
    shown = f"{base64.b64encode(raw).decode().rstrip('=')} {base64.urlsafe_b64encode(raw).decode()}"
    assert f"{MASK} {MASK}" == scrub(shown, (PASSWORD,))


def test_imap_quoted_form_is_masked() -> None:
    """The password as an IMAP quoted string (\\" and \\\\ escaped) is masked."""
    assert f'NO LOGIN "{USER}" "{MASK}" failed' == scrub(
        f'NO LOGIN "{USER}" "{imap_quoted(PASSWORD)}" failed', (PASSWORD,)
    )


def test_url_and_json_encoded_forms_are_masked() -> None:
    """The password URL-encoded (%xx and +) or JSON-escaped is masked."""
    forms = (
        urllib.parse.quote(PASSWORD, safe=""),
        urllib.parse.quote_plus(PASSWORD),
        json.dumps(PASSWORD)[1:-1],
    )
    assert f"{MASK} {MASK} {MASK}" == scrub(" ".join(forms), (PASSWORD,))


def test_respaced_password_is_masked() -> None:
    """A password echoed with its two spaces collapsed, or turned into a tab, is masked."""
    collapsed = " ".join(PASSWORD.split())
    tabbed = PASSWORD.replace("  ", "\t")
    assert f"{MASK} / {MASK}" == scrub(f"{collapsed} / {tabbed}", (PASSWORD,))


def test_eight_bit_password_read_as_latin1_is_masked() -> None:
    """A UTF-8 password echoed by a server that read its bytes as Latin-1 is masked."""
    password = "pässwörd-8bit"
    assert f"NO {MASK}" == scrub(f"NO {password.encode().decode('latin-1')}", (password,))


def test_short_secrets_are_not_masked() -> None:
    """A secret of one or two characters is not masked: it would mask ordinary words."""
    assert scrub("an ok reply", ("ok",)) == "an ok reply"


def test_reportable_scrubs_before_cutting() -> None:
    """A password straddling the cut is masked first: no part of it survives the cut."""
    text = "x" * 190 + PASSWORD + " tail"
    shown = reportable(text, (PASSWORD,), limit=200)
    assert len(shown) == 200
    assert set() == {part for part in fragments(PASSWORD) if part in shown}


def test_reportable_scrubs_before_collapsing() -> None:
    """A password with two spaces is masked before whitespace is collapsed."""
    assert f"NO {MASK} bad" == reportable(f"NO\r\n {PASSWORD}  bad", (PASSWORD,))


def test_reportable_escapes_what_is_not_printable() -> None:
    """Control sequences, C1 controls and undecodable bytes are shown as escapes."""
    text = "* OK \x1b[2J\x1b]0;title\x07 \x9b31m \udcff\udcfe caf\udce9 \u202eevil"
    assert (
        reportable(text)
    ) == "* OK \\x1b[2J\\x1b]0;title\\x07 \\x9b31m \\xff\\xfe caf\\xe9 \\u202eevil"


def test_reportable_bounds_a_huge_reply_quickly() -> None:
    """A 1 MB reply is scrubbed, escaped and cut well within a second."""
    text = ("A" * 1000 + "\x1b ") * 1000
    started = time.perf_counter()
    shown = reportable(text, (PASSWORD,))
    assert len(shown) == REPLY_LIMIT
    assert time.perf_counter() - started < 1.0


def test_probe_failure_masks_reply_and_message_before_cutting() -> None:
    """ProbeState.fail masks reply, message and details in full, then cuts them."""
    state = ProbeState("smtp", (PASSWORD,))
    state.details["greeting"] = f"220 {'y' * 300}{PASSWORD}"
    reply = "535 " + "z" * 995 + PASSWORD
    result = state.fail(Code.AUTH_FAILED, f"refused: {reply}", "hint", reply=reply)
    shown = json.dumps(result.to_dict(), ensure_ascii=False)
    assert set() == {part for part in fragments(PASSWORD) if part in shown}
    assert len(result.details["reply"]) == REPLY_LIMIT


# --- the property: no encoding of a secret survives, however it is then shown -------

ENCODINGS: dict[str, Callable[[str, str], str]] = {
    "itself": lambda secret, user: secret,
    "base64": lambda secret, user: b64(secret),
    "auth plain": lambda secret, user: b64(f"\0{user}\0{secret}"),
    "auth plain with authzid": lambda secret, user: b64(f"{user}\0{user}\0{secret}"),
    "imap quoted": lambda secret, user: f'"{imap_quoted(secret)}"',
    "imap literal": lambda secret, user: f"{{{len(secret.encode())}}}\r\n{secret}",
    "url": lambda secret, user: urllib.parse.quote(secret, safe=""),
}

# Printable surroundings: escaping a character that is not adds text of its own.
SURROUNDING = st.text(st.characters().filter(str.isprintable), max_size=40)


def forms(secret: str, user: str) -> list[str]:
    return [encode(secret, user) for encode in ENCODINGS.values()] + [
        imap_quoted(secret),
        " ".join(secret.split()),
    ]


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(st.characters(blacklist_categories=["Cs"]), min_size=3, max_size=24),
    user=st.text(st.characters(blacklist_categories=["Cs"]), max_size=16),
    encoding=st.sampled_from(sorted(ENCODINGS)),
    before=SURROUNDING,
    after=SURROUNDING,
    limit=st.integers(min_value=10, max_value=300),
)
def test_no_encoding_of_a_secret_survives(
    secret: str, user: str, encoding: str, before: str, after: str, limit: int
) -> None:
    """No encoding of any secret survives scrub, nor the collapse and cut after it."""
    # The mask is made of '*': a secret of them is indistinguishable from the mask.
    assume("*" not in secret and secret.strip())
    # Text around the secret that holds a form of it is no leak of the secret's.
    around = before + after
    assume(not any(len(f.strip()) >= 3 and f.strip() in around for f in forms(secret, user)))
    text = before + ENCODINGS[encoding](secret, user) + after
    scrubbed = scrub(text, (secret,))
    collapsed = " ".join(scrubbed.split())
    shown = reportable(text, (secret,), limit)
    for form in forms(secret, user):
        if len(form.strip()) < 3:
            continue
        assert form not in scrubbed
        assert form not in collapsed
    # The cut only takes a prefix of what was already clean.
    assert collapsed.startswith(shown.removesuffix("...")) or shown == collapsed
    assert secret not in shown


@pytest.mark.parametrize("secret", ["   ", "\t\t\t"])
def test_whitespace_secret_masks_only_itself(secret: str) -> None:
    """A secret of whitespace only masks that exact text, not every space in a reply."""
    assert f"a b{MASK}c" == scrub(f"a b{secret}c", (secret,))


def test_reply_keeps_its_lines_and_spaces() -> None:
    """details.reply quotes the server: line breaks and double spaces stay, CR and ESC do not."""
    state = ProbeState("smtp", (PASSWORD,))
    reply = (
        f"535-5.7.8 Username and Password not accepted.\r\n535 5.7.8  https://x \x1b[2J {PASSWORD}"
    )
    result = state.fail(Code.AUTH_FAILED, "refused", "hint", reply=reply)
    assert result.details["reply"] == (
        f"535-5.7.8 Username and Password not accepted.\n535 5.7.8  https://x \\x1b[2J {MASK}"
    )


def test_secret_with_a_lone_surrogate_is_masked() -> None:
    """A password holding a lone surrogate (JSON allows one) is masked, not an error."""
    assert scrub("x \ud800abc y", ("\ud800abc",)) == f"x {MASK} y"
