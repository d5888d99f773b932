"""`preflight validate` end to end: formats, exit statuses, positions, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from preflight.cli import cli
from preflight.report import CHECK_NAMES

DATA = Path(__file__).parent / "data"
CANARY = "CANARY-pw-7f3a"


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["validate", *args], input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


BAD = {
    "from_name": "Bob",
    "from_email": "bob@@example",
    "password": CANARY,
    "smtp_host": "smtp.example.com",
    "smtp_port": 70000,
    "imap_host": "imap.example.com",
    "imap_port": 993,
    "warmup_enabled": True,
    "type": "YAHOO",
    "smtp_prot": 587,
}


def test_seed_example_exits_0() -> None:
    """The API page's example payload validates: exit 0, with a warning for its rampup
    of 2 (outside the warmup endpoint's 5-20)."""
    code, out, _ = run(str(DATA / "example.json"))
    assert code == 0
    assert "WARN  john@example.com" in out
    assert "outside 5-20" in out


def test_bad_payload_lists_every_problem(tmp_path: Path) -> None:
    """Missing field, bad address, port 70000, YAHOO and a typo: exit 1, all listed."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(BAD))
    code, out, err = run(str(path), "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    (account,) = report["accounts"]
    payload = account["checks"][0]
    assert (payload["name"], payload["status"], payload["code"]) == (
        "payload",
        "fail",
        "payload_invalid",
    )
    assert {e["field"] for e in payload["details"]["errors"]} == {
        "from_email",
        "user_name",
        "smtp_port",
        "type",
        "smtp_prot",
    }
    assert payload["hint"]
    assert CANARY not in out + err


def test_report_shape_follows_contract(tmp_path: Path) -> None:
    """Each account report has index, account, ok and the four checks in order."""
    code, out, _ = run(str(DATA / "example.json"), "--format", "jsonl")
    assert code == 0
    (line,) = out.splitlines()
    report = json.loads(line)
    assert report["index"] == 0
    assert report["account"] == "john@example.com"
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == list(CHECK_NAMES)
    others = len(CHECK_NAMES) - 1
    assert [c["status"] for c in report["checks"]] == ["warn"] + ["skip"] * others  # rampup 2
    assert [c["code"] for c in report["checks"]] == ["ok"] + ["skipped"] * others
    for check in report["checks"]:
        assert set(check) >= {"name", "status", "code", "message", "hint", "elapsed_ms", "details"}


def test_csv_one_bad_row_of_three() -> None:
    """A CSV with one bad row of three reports that row by index and line; the rest pass."""
    code, out, err = run(str(DATA / "three.csv"), "--format", "jsonl")
    assert code == 1
    reports = [json.loads(line) for line in out.splitlines()]
    assert [(r["index"], r["line"], r["ok"]) for r in reports] == [
        (0, 2, True),
        (1, 3, False),
        (2, 4, True),
    ]
    errors = reports[1]["checks"][0]["details"]["errors"]
    assert {e["field"] for e in errors} == {"smtp_port", "warmup_enabled"}
    assert CANARY not in out + err


def test_csv_text_output_points_at_row() -> None:
    """The text report names the failing row's index and line, and sums up by code."""
    code, out, _ = run(str(DATA / "three.csv"))
    assert code == 1
    assert "FAIL  bob@example.com  (#1, line 3)" in out
    assert "3 accounts: 2 passed, 1 failed" in out
    assert "1  payload_invalid" in out


def test_broken_json_exits_2(tmp_path: Path) -> None:
    """A JSON file that cannot be parsed is a usage error with its position; stdout empty."""
    path = tmp_path / "broken.json"
    path.write_text('[\n {"from_name": "A"},\n {"from_name": }\n]')
    for fmt in ("text", "json", "jsonl"):
        code, out, err = run(str(path), "--format", fmt)
        assert code == 2
        assert f"{path}, line 3: invalid JSON" in err
        assert "Traceback" not in err
        if fmt == "json":
            assert out == ""  # never half a JSON document


def test_missing_file_exits_2(tmp_path: Path) -> None:
    """A file that does not exist is a usage error naming it."""
    code, _, err = run(str(tmp_path / "nope.json"))
    assert code == 2
    assert "nope.json" in err
    assert "No such file" in err


def test_no_argument_is_usage_error() -> None:
    """validate without ACCOUNTS says how to give them."""
    code, _, err = run()
    assert code == 2
    assert "standard input" in err


def test_stdin_dash() -> None:
    """- reads the accounts from standard input."""
    code, out, _ = run("-", "--format", "jsonl", stdin=(DATA / "example.json").read_text())
    assert code == 0
    assert json.loads(out)["account"] == "john@example.com"


def test_warning_only_exits_0(tmp_path: Path) -> None:
    """Warnings alone keep exit 0, and show as WARN with the reason."""
    body = json.loads((DATA / "example.json").read_text())
    body["total_warmup_per_day"] = 45
    body["max_email_per_day"] = 100
    path = tmp_path / "warn.json"
    path.write_text(json.dumps(body))
    code, out, _ = run(str(path))
    assert code == 0
    assert "WARN  john@example.com" in out
    assert "far from the advised start" in out


def test_no_color_when_not_a_terminal(tmp_path: Path) -> None:
    """Output to a pipe has no escape sequences."""
    _, out, _ = run(str(DATA / "three.csv"))
    assert "\x1b[" not in out


def _subprocess(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_python_m_preflight_real_process(tmp_path: Path) -> None:
    """`python -m preflight validate` in a real process: exit status and streams."""
    path = tmp_path / "bad.jsonl"
    example = (DATA / "example.json").read_text().replace("\n", "")
    path.write_text(json.dumps(BAD) + "\n" + example + "\n")
    done = _subprocess("validate", str(path), "--format", "jsonl")
    assert done.returncode == 1
    assert [json.loads(line)["ok"] for line in done.stdout.splitlines()] == [False, True]
    assert done.stderr == ""
    assert CANARY not in done.stdout


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_teaches(flag: str) -> None:
    """--help describes the formats and the exit statuses."""
    result = CliRunner().invoke(cli, ["validate", flag])
    assert result.exit_code == 0
    assert "JSON Lines" in result.stdout
    assert "Examples" in result.stdout
    top = CliRunner().invoke(cli, [flag])
    assert "Exit status" in top.stdout


def test_help_imports_nothing_heavy() -> None:
    """`preflight --help` loads click only: no asyncio, ssl, email_validator or httpx."""
    code = (
        "import sys; from preflight.cli import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('asyncio', 'ssl', 'email_validator', 'httpx', 'dns', "
        "'aiosmtplib', 'aioimaplib') if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "HEAVY:"
