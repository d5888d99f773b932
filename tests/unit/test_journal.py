"""The submit journal: one key function, a header binding it, a lock, torn tails, 0600."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from preflight.payload import parse_account
from preflight.smartlead._journal import (
    Entry,
    Journal,
    JournalBusy,
    JournalError,
    account_key,
    key_fingerprint,
)

BASE = "https://server.smartlead.ai/api/v1"
KEY = "sl-unit-key-CANARY-91"


def body(email: str) -> dict[str, object]:
    return {
        "from_name": "Ana",
        "from_email": email,
        "user_name": "ana@example.test",
        "password": "pw-secret-1",
        "smtp_host": "mail.example.test",
        "smtp_port": 587,
        "imap_host": "mail.example.test",
        "imap_port": 993,
        "warmup_enabled": False,
    }


def opened(path: Path, base_url: str = BASE, key: str = KEY) -> Journal:
    return Journal.open(path, base_url=base_url, api_key=key)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    "given",
    [
        "Jose\u0301@Bu\u0308cher.TEST",  # non-NFC local part and domain, upper case
        "jos\u00e9@xn--bcher-kva.test",  # the domain as an IDNA A-label
        "JOS\u00c9@B\u00fccher.test",
    ],
)
def test_account_key_is_one_for_every_spelling(given: str) -> None:
    """The key of the address as given equals the key of the validated address."""
    validated = parse_account(body(given)).account
    assert validated is not None
    assert account_key(given) == "jos\u00e9@xn--bcher-kva.test"
    assert account_key(given) == account_key(validated.from_email)


def test_account_key_of_invalid_text_falls_back() -> None:
    """Text that is no address still gets a stable NFC, case-folded key."""
    assert "not an addre\u0301ss".replace("e\u0301", "\u00e9") == account_key(
        " Not an Addre\u0301ss"
    )


def test_new_journal_has_header_and_is_0600(tmp_path: Path) -> None:
    """A new journal is created 0600 and starts with its binding header, never the key."""
    path = tmp_path / "j.jsonl"
    with opened(path) as journal:
        journal.append(Entry("a@example.test", "sending"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    header, entry = lines(path)
    assert {"journal": 1, "base_url": BASE, "key_fingerprint": key_fingerprint(KEY)} == header
    assert (entry["key"], entry["event"]) == ("a@example.test", "sending")
    assert KEY not in path.read_text()
    assert len(key_fingerprint(KEY)) == 16


def test_existing_journal_is_made_0600(tmp_path: Path) -> None:
    """An existing journal readable by others is tightened to 0600."""
    path = tmp_path / "j.jsonl"
    path.write_text("")
    path.chmod(0o644)
    opened(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_second_open_is_refused_while_locked(tmp_path: Path) -> None:
    """A second run on the same journal is refused with the holder's pid."""
    path = tmp_path / "j.jsonl"
    with opened(path), pytest.raises(JournalBusy) as busy:
        opened(path)
    assert (
        f"another preflight submit is using {path} (pid {os.getpid()}); wait for it to "
        "finish, or give another --journal"
    ) == str(busy.value)
    opened(path).close()  # released on close


def test_journal_for_another_base_url_is_refused(tmp_path: Path) -> None:
    """A journal written against another --base-url is refused, not trusted."""
    path = tmp_path / "j.jsonl"
    with opened(path, base_url="http://127.0.0.1:9/api/v1") as journal:
        journal.append(Entry("a@example.test", "saved", 7, 200))
    with pytest.raises(JournalError) as refused:
        opened(path)
    assert "records saves to http://127.0.0.1:9/api/v1, not to " + BASE in str(refused.value)


def test_journal_for_another_key_is_refused(tmp_path: Path) -> None:
    """A journal written with another API key is refused; neither key is shown."""
    path = tmp_path / "j.jsonl"
    opened(path, key="other-key-CANARY").close()
    with pytest.raises(JournalError) as refused:
        opened(path)
    assert "written with another API key" in str(refused.value)
    assert [k for k in (KEY, "other-key-CANARY") if k in str(refused.value)] == []


def test_old_journal_without_header_is_adopted(tmp_path: Path) -> None:
    """A journal from before the header: its entries count, and it is bound from now on."""
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps({"key": "A@Example.test", "event": "saved"}) + "\n")
    with opened(path) as journal:
        assert (journal.adopted, journal.last["a@example.test"].event) == (True, "saved")
    with pytest.raises(JournalError):
        opened(path, base_url="http://127.0.0.1:9/api/v1")


def test_torn_tail_is_cut_and_does_not_swallow_the_next_entry(tmp_path: Path) -> None:
    """A last line cut short by a crash is removed; the next entry is a line of its own."""
    path = tmp_path / "j.jsonl"
    with opened(path) as journal:
        journal.append(Entry("a@example.test", "saved", 1, 200))
    with path.open("a") as handle:
        handle.write('{"key": "b@example.test", "ev')
    with opened(path) as journal:
        assert journal.repaired == "line 3 was cut short (a crash mid-write): 29 bytes removed"
        journal.append(Entry("c@example.test", "saved", 3, 200))
    with opened(path) as journal:
        assert (journal.repaired, journal.bad_lines) == ("", [])
        assert sorted(journal.last) == ["a@example.test", "c@example.test"]


def test_torn_tail_that_is_a_whole_entry_is_kept(tmp_path: Path) -> None:
    """A whole entry missing only its newline is kept and completed."""
    path = tmp_path / "j.jsonl"
    opened(path).close()
    with path.open("a") as handle:
        handle.write(json.dumps({"key": "b@example.test", "event": "sending"}))
    with opened(path) as journal:
        assert journal.repaired == "line 2 had no newline (a write cut short); completed"
        assert journal.uncertain("b@example.test")
    assert path.read_text().endswith("\n")


def test_unreadable_lines_are_reported_by_number(tmp_path: Path) -> None:
    """A line that is not UTF-8 (or not an entry) is skipped and named by its number."""
    path = tmp_path / "j.jsonl"
    with opened(path) as journal:
        journal.append(Entry("a@example.test", "saved", 1, 200))
    with path.open("ab") as handle:
        handle.write(b'{"key": "\xff\xfe", "event": "saved"}\n[1, 2]\n')
        handle.write(json.dumps({"key": "b@example.test", "event": "saved"}).encode() + b"\n")
    with opened(path) as journal:
        assert journal.bad_lines == [3, 4]
        assert sorted(journal.last) == ["a@example.test", "b@example.test"]


def test_directory_is_refused(tmp_path: Path) -> None:
    """A journal path that is a directory is a clear error, not a traceback."""
    with pytest.raises(JournalError) as refused:
        opened(tmp_path)
    assert f"{tmp_path}: the journal is a directory; give a file with --journal" == str(
        refused.value
    )


def test_unwritable_place_is_refused(tmp_path: Path) -> None:
    """A journal that cannot be created (its directory is a file) is a clear error."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(JournalError) as refused:
        opened(blocker / "j.jsonl")
    assert str(refused.value).startswith(f"{blocker / 'j.jsonl'}: cannot")


def test_read_only_journal_is_refused(tmp_path: Path) -> None:
    """A journal without write permission is a clear error (as root: checked as nobody)."""
    if os.geteuid() != 0:
        path = tmp_path / "j.jsonl"
        opened(path).close()
        path.chmod(0o400)
        with pytest.raises(JournalError) as refused:
            opened(path)
        assert f"{path}: cannot write the journal (Permission denied)" == str(refused.value)
        return
    # Root may write anything: open the journal in a forked child that has become
    # nobody; the directory is open to all (the lock file goes beside the journal).
    import shutil
    import tempfile

    place = Path(tempfile.mkdtemp(prefix="preflight-ro-"))
    try:
        place.chmod(0o777)
        path = place / "j.jsonl"
        opened(path).close()
        path.chmod(0o444)
        Path(f"{path}.lock").unlink()  # root's own lock file, which nobody may not open
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what opening said, then leave at once
            message = b"opened"
            try:
                os.setgid(65534)
                os.setuid(65534)
                opened(path).close()
            except JournalError as exc:
                message = str(exc).encode()
            except BaseException as exc:  # anything else is the test's failure
                message = repr(exc).encode()
            os.write(writer, message)
            os._exit(0)
        os.close(writer)
        with os.fdopen(reader, "rb") as answer:
            said = answer.read().decode()
        os.waitpid(pid, 0)
        assert f"{path}: cannot write the journal (Permission denied)" == said
    finally:
        shutil.rmtree(place)


def test_each_entry_is_one_complete_line(tmp_path: Path) -> None:
    """Entries are whole lines, each ending in a newline, messages kept as given."""
    path = tmp_path / "j.jsonl"
    with opened(path) as journal:
        journal.append(Entry("a@example.test", "rejected", None, 400, "line\nbreak"))
    text = path.read_text()
    assert text.endswith("\n")
    assert lines(path)[1]["message"] == "line\nbreak"


def test_memory_journal_writes_nothing(tmp_path: Path) -> None:
    """The dry-run journal keeps entries in memory only."""
    journal = Journal.memory()
    journal.append(Entry("a@example.test", "saved"))
    assert (journal.path, journal.last["a@example.test"].event) == (None, "saved")
    assert list(tmp_path.iterdir()) == []


def test_journal_of_another_format_is_refused(tmp_path: Path) -> None:
    """A journal whose header names another format version is refused, not misread."""
    path = tmp_path / "j.jsonl"
    header = {"journal": 2, "base_url": BASE, "key_fingerprint": key_fingerprint(KEY)}
    path.write_text(json.dumps(header) + "\n")
    with pytest.raises(JournalError, match="journal format 2, not 1"):
        opened(path)


# --- the resume rules: what an account's last entry says about the next run ---------

#: (last event, HTTP status) -> (saved() finds it, uncertain()).
RESUME_RULES = [
    pytest.param("saved", 200, True, False, id="saved"),
    pytest.param("found", None, True, False, id="found-by-look-up"),
    pytest.param("sending", None, False, True, id="sending-then-crash"),
    pytest.param("unknown", 500, False, True, id="unknown-5xx"),
    pytest.param("unknown", None, False, True, id="unknown-timeout"),
    pytest.param("rejected", 400, False, True, id="rejected-400-may-exist"),
    pytest.param("rejected", 422, False, False, id="rejected-422-validation"),
    pytest.param("not_sent", None, False, False, id="not-sent"),
]


@pytest.mark.parametrize(("event", "status", "is_saved", "is_uncertain"), RESUME_RULES)
def test_resume_rule_of_each_last_event(
    event: str, status: int | None, is_saved: bool, is_uncertain: bool
) -> None:
    """saved/found skip the account; sending, unknown and a 400 (SmartLead may have
    created it) call for a look-up first; a 422 and not_sent are safe to send again."""
    journal = Journal.memory()
    journal.append(Entry("a@example.test", event, 7 if is_saved else None, status))
    found = journal.saved("a@example.test")
    assert is_saved == (found is not None)
    if found is not None:
        assert (found.event, found.account_id) == (event, 7)
    assert is_uncertain == journal.uncertain("a@example.test")


def test_account_without_entries_is_neither_saved_nor_uncertain() -> None:
    """An account the journal never saw is sent without a look-up."""
    journal = Journal.memory()
    journal.append(Entry("a@example.test", "saved", 1, 200))
    assert journal.saved("b@example.test") is None
    assert not journal.uncertain("b@example.test")


def test_last_entry_decides(tmp_path: Path) -> None:
    """Only the last entry of an account counts, also when read back from the file."""
    path = tmp_path / "j.jsonl"
    with opened(path) as journal:
        journal.append(Entry("a@example.test", "sending"))
        journal.append(Entry("a@example.test", "saved", 5, 200))
        journal.append(Entry("b@example.test", "saved", 6, 200))
        journal.append(Entry("b@example.test", "sending"))
    with opened(path) as journal:
        saved = journal.saved("a@example.test")
        assert saved is not None
        assert (saved.event, saved.account_id, saved.http_status) == ("saved", 5, 200)
        assert not journal.uncertain("a@example.test")
        assert journal.saved("b@example.test") is None  # a later POST may have replaced it
        assert journal.uncertain("b@example.test")


def test_entry_of_another_spelling_counts_after_reopening(tmp_path: Path) -> None:
    """An entry written under an older key form is re-keyed on read: it still matches."""
    path = tmp_path / "j.jsonl"
    with opened(path):
        pass
    with path.open("a", encoding="utf-8") as handle:
        entry = {"key": "ANA@Example.TEST", "event": "found", "account_id": 3}
        handle.write(json.dumps(entry) + "\n")
    with opened(path) as journal:
        found = journal.saved(account_key("ana@example.test"))
        assert found is not None
        assert found.account_id == 3
