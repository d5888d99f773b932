"""A bug in preflight ends in one line and exit 70, never a traceback or a secret."""

from __future__ import annotations

import os
import subprocess
import sys

SECRET = "hunter2-very-secret"

# The check command's reader is replaced by one that fails as a bug would, with the
# password in its message (as a UnicodeEncodeError quotes the string it choked on).
PROGRAM = f"""
import preflight.reader as reader

def broken(*args, **kwargs):
    raise RuntimeError("boom {SECRET}")

reader.read_accounts = broken
import preflight.cli
preflight.cli.main()
"""


def _run(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFLIGHT_DEBUG"} | env_extra
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, "validate", "-"],
        input='{"from_email": "a@example.com"}',
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_internal_error_is_one_line_without_the_message() -> None:
    """An unexpected exception: exit 70, its type and place, not its message."""
    done = _run({})
    assert done.returncode == 70
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert "internal error (RuntimeError at <string>:" in done.stderr
    assert done.stdout == ""


def test_debug_shows_the_traceback() -> None:
    """PREFLIGHT_DEBUG=1 shows the traceback to whoever asks for it."""
    done = _run({"PREFLIGHT_DEBUG": "1"})
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "RuntimeError" in done.stderr
