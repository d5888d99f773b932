"""`--output FILE` and standard output: replaced whole at the end, 0600, never a crash."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

CANARY = "CANARY-out-9d2k"

# Invalid (a misspelt field): the check contacts nothing, so these runs are offline.
INVALID: dict[str, Any] = {
    "from_name": "Eve",
    "from_email": "eve@example.com",
    "user_name": "eve@example.com",
    "password": CANARY,
    "smtp_host": "smtp.example.com",
    "smtp_port": 587,
    "imap_host": "imap.example.com",
    "imap_port": 993,
    "warmup_enabled": False,
    "smtp_prot": 587,
}


def preflight(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args],
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        check=False,
    )


def leftovers(directory: Path, *keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def test_unreadable_input_leaves_existing_output_untouched(tmp_path: Path) -> None:
    """An input that cannot be read (exit 2) leaves FILE as it was, and no temp file."""
    out = tmp_path / "report.json"
    out.write_text("previous report\n")
    done = preflight("check", str(tmp_path / "missing.jsonl"), "-o", str(out), "--format", "json")
    assert done.returncode == 2, done.stderr
    assert out.read_text() == "previous report\n"
    assert leftovers(tmp_path, "report.json") == []


def test_broken_input_midway_leaves_existing_output_untouched(tmp_path: Path) -> None:
    """A JSON array that breaks after its first account (exit 2) leaves FILE as it was."""
    out = tmp_path / "report.jsonl"
    out.write_text("previous report\n")
    accounts = tmp_path / "a.json"
    accounts.write_text("[" + json.dumps(INVALID) + ", {broken")
    for fmt in ("text", "json", "jsonl"):
        done = preflight("check", str(accounts), "-o", str(out), "--format", fmt)
        assert done.returncode == 2, done.stderr
        assert out.read_text() == "previous report\n"
        assert leftovers(tmp_path, "report.jsonl", "a.json") == []


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl"])
def test_output_file_replaced_at_the_end_with_mode_0600(tmp_path: Path, fmt: str) -> None:
    """A finished run replaces FILE (even one that was 0644) with a 0600 file; no temp left."""
    out = tmp_path / "report.out"
    out.write_text("previous report\n")
    out.chmod(0o644)
    done = preflight("check", "-", "-o", str(out), "--format", fmt, stdin=json.dumps(INVALID))
    assert done.returncode == 1, done.stderr
    assert done.stdout == b""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    assert "payload_invalid" in text
    assert CANARY not in text
    if fmt == "json":
        assert json.loads(text)["ok"] is False
    assert leftovers(tmp_path, "report.out") == []


def test_new_output_file_is_created_0600(tmp_path: Path) -> None:
    """A FILE that did not exist is created mode 0600, whatever the umask."""
    out = tmp_path / "new.jsonl"
    command = ["check", "-", "-o", str(out), "--format", "jsonl"]
    done = subprocess.run(
        ["sh", "-c", 'umask 000 && exec "$@"', "sh", sys.executable, "-m", "preflight", *command],
        input=json.dumps(INVALID).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["ok"] is False


def test_output_to_a_fifo_is_written_in_place(tmp_path: Path) -> None:
    """A FILE that is not a regular file (a FIFO, /dev/null) is written, never replaced."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    done = preflight("check", "-", "-o", str(fifo), "--format", "jsonl", stdin=json.dumps(INVALID))
    reader.join(timeout=30)
    assert done.returncode == 1, done.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert json.loads(received[0])["ok"] is False
    assert leftovers(tmp_path, "pipe") == []


def test_output_directory_missing_is_usage_error(tmp_path: Path) -> None:
    """A FILE in a directory that does not exist: exit 2 with a message, no traceback."""
    done = preflight("check", "-", "-o", str(tmp_path / "no" / "r.json"), stdin="{}")
    assert done.returncode == 2
    assert b"cannot write the output file" in done.stderr
    assert b"Traceback" not in done.stderr


SURROGATE = {**INVALID, "from_email": "eve\udcff\x1b[2J@example.com"}


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl"])
@pytest.mark.parametrize("encoding", ["utf-8:strict", "ascii:strict", "latin-1:strict"])
def test_surrogates_on_a_strict_stdout_do_not_crash(fmt: str, encoding: str) -> None:
    """A report holding a lone surrogate prints on a strict UTF-8/ASCII/Latin-1 stdout."""
    body = json.dumps(SURROGATE)  # json escapes the surrogate: "\udcff" in the text
    for command in ("validate", "check"):
        done = preflight(
            command, "-", "--format", fmt, stdin=body, env={"PYTHONIOENCODING": encoding}
        )
        assert done.returncode == 1, done.stderr
        assert b"Traceback" not in done.stderr
        text = done.stdout.decode("ascii" if encoding.startswith("ascii") else "utf-8")
        if fmt == "text":
            assert "eve\\xff\\x1b[2J@example.com" in text
            assert "\x1b" not in text
        else:
            first = json.loads(text)
            report = first if fmt == "jsonl" else first["accounts"][0]
            assert report["account"] == SURROGATE["from_email"]


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl"])
def test_surrogates_in_output_file_do_not_crash(tmp_path: Path, fmt: str) -> None:
    """With -o FILE (strict UTF-8), a report holding a lone surrogate is written whole."""
    out = tmp_path / "r.out"
    done = preflight("check", "-", "-o", str(out), "--format", fmt, stdin=json.dumps(SURROGATE))
    assert done.returncode == 1, done.stderr
    text = out.read_text(encoding="utf-8")
    if fmt == "text":
        assert "eve\\xff\\x1b[2J@example.com" in text
    else:
        data = json.loads(text)
        report = data if fmt == "jsonl" else data["accounts"][0]
        assert report["account"] == SURROGATE["from_email"]
