"""Hostile input through the CLI (issue 9): exit 2 with file, line and reason for an
unreadable file; one bad row fails alone where rows are separable; never a traceback;
bounded memory; a password in the wrong column is never printed nor sent to DNS."""

from __future__ import annotations

import csv
import io
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from preflight.cli import cli

SECRET = "Hunter2-canary-9q"
FORMATS = ("text", "json", "jsonl")


def account(**changes: Any) -> dict[str, Any]:
    """A valid payload, with ``changes``."""
    body: dict[str, Any] = {
        "from_name": "Ann",
        "from_email": "ann@example.com",
        "user_name": "ann@example.com",
        "password": SECRET,
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "imap_host": "imap.example.com",
        "imap_port": 993,
        "warmup_enabled": True,
    }
    body.update(changes)
    return body


def line_of(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode() + b"\n"


def invoke(*args: str) -> tuple[int, str, str]:
    """Run the CLI in process; any exception but SystemExit is a failure."""
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def reports(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def payload_messages(report: dict[str, Any]) -> list[str]:
    return [e["message"] for e in report["checks"][0]["details"].get("errors", [])]


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# --- 100,000 levels of "[" ---------------------------------------------------------

DEEP = "[" * 100_000


@pytest.mark.parametrize(
    ("name", "data", "line"),
    [
        ("deep.json", DEEP.encode(), 1),
        ("deep-object.json", b'\n{\n"token": ' + DEEP.encode(), 2),
        ("deep-array.json", b'[\n{"from_name": "A"},\n' + DEEP.encode(), 3),
    ],
)
def test_deep_json_document_exits_2_with_line(
    tmp_path: Path, name: str, data: bytes, line: int
) -> None:
    """A JSON document nested 100,000 deep is an input error at the account's line."""
    path = write(tmp_path, name, data)
    for fmt in FORMATS:
        code, out, err = invoke("validate", "--format", fmt, path)
        assert (2, f"Error: {path}, line {line}: an account is nested too deeply\n") == (
            code,
            err,
        )
        if fmt == "json":
            assert out == ""


def test_deep_jsonl_row_fails_alone(tmp_path: Path) -> None:
    """In JSON Lines a row nested 100,000 deep fails alone; the rows around it pass."""
    data = line_of(account()) + DEEP.encode() + b"\n" + line_of(account())
    code, out, _ = invoke("validate", "--format", "jsonl", write(tmp_path, "a.jsonl", data))
    got = reports(out)
    assert code == 1
    assert [r["ok"] for r in got] == [True, False, True]
    assert payload_messages(got[1]) == ["line 2 is nested too deeply to be an account"]


def test_deep_first_jsonl_row_fails_alone(tmp_path: Path) -> None:
    """A deep first line closed on that line is read as JSON Lines, not a document."""
    data = b'{"token": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n" + line_of(account())
    code, out, _ = invoke("validate", "--format", "jsonl", write(tmp_path, "a.json", data))
    assert (code, [r["ok"] for r in reports(out)]) == (1, [False, True])


def test_deep_csv_token_cell_fails_its_row(tmp_path: Path) -> None:
    """A CSV token cell nested 100,000 deep fails its row, as text that is not an object."""
    text = io.StringIO()
    rows = [account(token=DEEP), account()]
    writer = csv.DictWriter(text, fieldnames=[*account(), "token"])
    writer.writeheader()
    writer.writerows(rows)
    path = write(tmp_path, "a.csv", text.getvalue().encode())
    code, out, _ = invoke("validate", "--format", "jsonl", path)
    got = reports(out)
    assert (code, [r["ok"] for r in got]) == (1, [False, True])
    assert payload_messages(got[0]) == ["token must be an object (the OAuth token), not text"]


# --- integers of more than 4,300 digits ---------------------------------------------

BIG = "7" * 5_000


@pytest.mark.parametrize(
    ("name", "data", "line"),
    [
        ("object.json", b'{\n"smtp_port":\n' + BIG.encode() + b"}", 3),
        (
            "array.json",
            b'[\n{"from_name": "A"},\n{"a": 1,\n"smtp_port": ' + BIG.encode() + b"}]",
            4,
        ),
    ],
)
def test_huge_integer_in_json_document_exits_2(
    tmp_path: Path, name: str, data: bytes, line: int
) -> None:
    """A JSON number of 5,000 digits is an input error at its line, not a traceback."""
    path = write(tmp_path, name, data)
    code, out, err = invoke("validate", "--format", "json", path)
    assert (2, "", f"Error: {path}, line {line}: a number has more than 4300 digits\n") == (
        code,
        out,
        err,
    )


def test_huge_integer_jsonl_row_fails_alone(tmp_path: Path) -> None:
    """A JSON Lines row with a 5,000-digit number fails alone."""
    data = line_of(account()) + b'{"smtp_port": ' + BIG.encode() + b"}\n" + line_of(account())
    code, out, _ = invoke("validate", "--format", "jsonl", write(tmp_path, "a.jsonl", data))
    got = reports(out)
    assert (code, [r["ok"] for r in got]) == (1, [True, False, True])
    expected = "line 2 is not readable JSON: a number has more than 4300 digits"
    assert [expected] == payload_messages(got[1])


def test_huge_integer_csv_cell_is_a_field_error(tmp_path: Path) -> None:
    """A 5,000-digit CSV port fails its row with a field error that does not echo it."""
    text = "from_name,smtp_port\nA," + BIG + "\nB,587\n"
    code, out, _ = invoke("validate", "--format", "jsonl", write(tmp_path, "a.csv", text.encode()))
    got = reports(out)
    assert code == 1
    assert BIG[:100] not in out
    errors = got[0]["checks"][0]["details"]["errors"]
    assert {
        "field": "smtp_port",
        "message": "smtp_port must be a number, not one of 5000 digits",
    } in (errors)
    assert "smtp_port" not in {e["field"] for e in got[1]["checks"][0]["details"]["errors"]}


def test_4000_digit_integer_is_not_echoed_whole(tmp_path: Path) -> None:
    """A 4,000-digit port is refused by its size, not written out in the message."""
    big = "9" * 4_000
    data = b'{"smtp_port": ' + big.encode() + b"}"
    for fmt in FORMATS:
        code, out, _ = invoke("validate", "--format", fmt, write(tmp_path, "a.json", data))
        assert code == 1
        assert big[:100] not in out
        assert "smtp_port must be between 1 and 65535, got a number of 4000 digits" in out


# --- lone surrogates --------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("from_email", "a\ud800@example.com"),
        ("password", "pw\udfff"),
        ("smtp_host", "smtp.\ud800.com"),
        ("from_name", "\ud800"),
    ],
)
def test_lone_surrogate_value_fails_its_row(tmp_path: Path, field: str, value: str) -> None:
    """A \\ud800 escape in a value fails that account only, in every output format."""
    data = line_of(account()) + line_of(account(**{field: value})) + line_of(account())
    path = write(tmp_path, "a.jsonl", data)
    for fmt in FORMATS:
        code, _out, err = invoke("validate", "--format", fmt, path)
        assert (code, err) == (1, "")
    got = reports(invoke("validate", "--format", "jsonl", path)[1])
    assert [r["ok"] for r in got] == [True, False, True]
    message = (
        f"{field} contains a lone surrogate (half of a UTF-16 pair, e.g. a \\ud800 escape), "
        "which is not text any server can take; the value is not shown"
    )
    assert [{"field": field, "message": message}] == got[1]["checks"][0]["details"]["errors"]


def test_lone_surrogate_key_fails_its_row(tmp_path: Path) -> None:
    """A \\ud800 escape in a key is an unknown field, shown escaped; others still read."""
    data = line_of(account()) + line_of({**account(), "pass\ud800": 1}) + line_of(account())
    path = write(tmp_path, "a.jsonl", data)
    for fmt in FORMATS:
        code, _out, err = invoke("validate", "--format", fmt, path)
        assert (code, err) == (1, "")
    got = reports(invoke("validate", "--format", "jsonl", path)[1])
    assert [r["ok"] for r in got] == [True, False, True]
    expected = {
        "field": "pass\\ud800",
        "message": "'pass\\ud800' is not a field of the save-account API; did you mean 'password'?",
    }
    assert [expected] == got[1]["checks"][0]["details"]["errors"]


def test_surrogate_bytes_in_csv_fail_their_row(tmp_path: Path) -> None:
    """A surrogate encoded into CSV bytes is not UTF-8: that row fails with its line."""
    rows = [account(), account(password="pw\ud800x"), account()]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(account()), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = text.getvalue().encode("utf-8", "surrogatepass")
    code, out, _ = invoke("validate", "--format", "jsonl", write(tmp_path, "a.csv", data))
    got = reports(out)
    assert (code, [r["ok"] for r in got]) == (1, [True, False, True])
    assert got[1]["line"] == 3
    assert payload_messages(got[1]) == ["line 3 is not UTF-8 text (byte 0xed at column 39)"]


# --- invalid UTF-8 ------------------------------------------------------------------


def test_invalid_utf8_on_jsonl_line_3001_fails_that_row(tmp_path: Path) -> None:
    """Invalid UTF-8 on line 3,001 of JSON Lines fails that row alone, with its line."""
    good = line_of(account())
    data = good * 3000 + b'{"from_name": "\xff"}\n' + good * 5
    code, out, err = invoke("validate", "--format", "jsonl", write(tmp_path, "a.jsonl", data))
    got = reports(out)
    assert (code, err, len(got)) == (1, "", 3006)
    assert [r["line"] for r in got if not r["ok"]] == [3001]
    assert payload_messages(got[3000]) == ["line 3001 is not UTF-8 text (byte 0xff at column 16)"]


def test_invalid_utf8_in_json_document_exits_2_with_line(tmp_path: Path) -> None:
    """Invalid UTF-8 in a JSON array is an input error naming its line."""
    data = b'[\n{"from_name": "A"},\n{"from_name": "\xc3("}\n]'
    path = write(tmp_path, "a.json", data)
    code, out, err = invoke("validate", "--format", "json", path)
    assert (code, out) == (2, "")
    assert f"Error: {path}, line 3: not UTF-8 text (byte 0xc3 at column 16)\n" == err


# --- rows over the size limit ------------------------------------------------------

# The child's own peak (VmHWM belongs to its address space; ru_maxrss would carry
# the forking pytest process's over exec).
_PEAK = (
    "import atexit, sys\n"
    "def peak():\n"
    "    status = open('/proc/self/status').read()\n"
    "    kb = status.split('VmHWM:', 1)[1].split()[0]\n"
    "    sys.stderr.write(f'PEAK_KB {kb}\\n')\n"
    "atexit.register(peak)\n"
    "from preflight.cli import main\n"
    "main()\n"
)


def run_measured(*args: str) -> tuple[int, str, int]:
    """Run the CLI in a child process; its exit status, stdout and peak RSS in MB."""
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, *args], capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in proc.stderr
    peak = int(proc.stderr.rsplit("PEAK_KB ", 1)[1]) // 1024
    return proc.returncode, proc.stdout, peak


def test_50mb_jsonl_line_fails_alone_in_bounded_memory(tmp_path: Path) -> None:
    """A 50 MB JSON Lines line after the first fails alone; memory stays bounded."""
    path = tmp_path / "big.jsonl"
    with path.open("wb") as f:
        f.write(line_of(account()))
        f.write(b'{"from_name": "' + b"x" * (50 << 20) + b'"}\n')
        f.write(line_of(account()))
    code, out, peak = run_measured("validate", "--format", "jsonl", str(path))
    got = reports(out)
    assert (code, [r["ok"] for r in got]) == (1, [True, False, True])
    expected = "line 2 is longer than 1048576 bytes, the limit for one account"
    assert [expected] == payload_messages(got[1])
    assert peak < 80, f"peak RSS {peak} MB"


def test_10mb_csv_cell_fails_its_row(tmp_path: Path) -> None:
    """A 10 MB CSV cell fails its row, not the file; the next row is read."""
    header = ",".join(account()).encode()
    row = ",".join(str(v) for v in account().values()).encode()
    data = header + b"\n" + row + b"\n" + b'"' + b"y" * (10 << 20) + b'",x\n' + row + b"\n"
    code, out, peak = run_measured("validate", "--format", "jsonl", write(tmp_path, "a.csv", data))
    got = reports(out)
    assert (
        code,
        [r["ok"] for r in got],
        [r["line"] for r in got],
    ) == (1, [True, False, True], [2, 3, 4])
    expected = "line 3 is longer than 1048576 bytes, the limit for one account"
    assert [expected] == payload_messages(got[1])
    assert peak < 80, f"peak RSS {peak} MB"


# --- duplicated keys ---------------------------------------------------------------


def test_duplicated_key_is_a_payload_error(tmp_path: Path) -> None:
    """A second "password" in one object is an error naming the key, not the values."""
    text = json.dumps(account())[:-1] + ', "password": "Second-canary-77"}'
    path = write(tmp_path, "a.json", text.encode())
    for fmt in FORMATS:
        code, out, _ = invoke("validate", "--format", fmt, path)
        assert code == 1
        assert SECRET not in out
        assert "Second-canary-77" not in out
    got = reports(invoke("validate", "--format", "jsonl", path)[1])
    expected = {
        "field": "password",
        "message": "'password' is given more than once in the object; give it once "
        "(the values are not shown)",
    }
    assert [expected] == got[0]["checks"][0]["details"]["errors"]


# --- a password in the wrong column ---------------------------------------------------


@pytest.fixture
def dns_sink() -> Iterator[socket.socket]:
    """A UDP socket posing as the DNS server: a test asserts it received nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(sock.recv(4096))
        except BlockingIOError:
            return got


def swapped_csv(tmp_path: Path) -> str:
    """A CSV whose header swaps password and smtp_host."""
    body = account()
    names = list(body)
    values = [str(v) for v in body.values()]
    i, j = names.index("password"), names.index("smtp_host")
    names[i], names[j] = names[j], names[i]
    return write(tmp_path, "a.csv", (",".join(names) + "\n" + ",".join(values) + "\n").encode())


def test_swapped_password_and_host_columns_never_shown(tmp_path: Path) -> None:
    """Swapped password/smtp_host columns are reported as such; the password is never shown."""
    path = swapped_csv(tmp_path)
    for fmt in FORMATS:
        code, out, err = invoke("validate", "--format", fmt, path)
        assert code == 1
        assert SECRET not in out + err
    got = reports(invoke("validate", "--format", "jsonl", path)[1])
    expected = {
        "field": "smtp_host",
        "message": "smtp_host is not a host name but password is one: the password and "
        "smtp_host columns look swapped (neither value is shown)",
    }
    assert [expected] == got[0]["checks"][0]["details"]["errors"]


def test_check_contacts_nothing_for_swapped_columns(
    tmp_path: Path, dns_sink: socket.socket
) -> None:
    """check with swapped columns sends no DNS query and prints no password."""
    port = dns_sink.getsockname()[1]
    path = swapped_csv(tmp_path)
    for fmt in FORMATS:
        code, out, err = invoke(
            "check",
            "--format",
            fmt,
            "--dns-server",
            f"127.0.0.1:{port}",
            "--dns-for-hosts",
            "--timeout",
            "5",
            path,
        )
        assert code == 1
        assert SECRET not in out + err
    assert received(dns_sink) == []


@pytest.mark.parametrize("field", ["user_name", "from_name", "imap_host", "from_email"])
def test_other_field_equal_to_password_is_invalid(tmp_path: Path, field: str) -> None:
    """A field holding the password's value is invalid, named, and its value not shown."""
    path = write(tmp_path, "a.json", json.dumps(account(**{field: SECRET})).encode())
    for fmt in FORMATS:
        code, out, err = invoke("validate", "--format", fmt, path)
        assert code == 1
        assert SECRET not in out + err
    got = reports(invoke("validate", "--format", "jsonl", path)[1])
    expected = {
        "field": field,
        "message": f"{field} holds the same value as password: a password in the wrong field? "
        "(the value is not shown)",
    }
    assert [expected] == got[0]["checks"][0]["details"]["errors"]


def test_check_contacts_nothing_for_single_label_host(
    tmp_path: Path, dns_sink: socket.socket
) -> None:
    """A single-label imap_host is invalid, not shown, and never sent to a resolver."""
    path = write(tmp_path, "a.json", json.dumps(account(imap_host="S3cretWord")).encode())
    port = dns_sink.getsockname()[1]
    code, out, err = invoke(
        "check", "--format", "jsonl", "--dns-server", f"127.0.0.1:{port}", "--dns-for-hosts", path
    )
    assert (code, received(dns_sink)) == (1, [])
    assert "S3cretWord" not in out + err


# --- the same through `preflight check` ------------------------------------------------


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"[\n" + DEEP.encode(), 2, "an account is nested too deeply"),
        (b'[{"smtp_port":\n' + BIG.encode() + b"}]", 2, "a number has more than 4300 digits"),
        (b'[\n{"from_name": "\xff"}]', 2, "not UTF-8 text (byte 0xff at column 16)"),
    ],
)
def test_check_unreadable_file_exits_2(
    tmp_path: Path, dns_sink: socket.socket, data: bytes, line: int, reason: str
) -> None:
    """check on a JSON document that cannot be read: exit 2 with file, line and reason."""
    path = write(tmp_path, "a.json", data)
    port = dns_sink.getsockname()[1]
    for fmt in FORMATS:
        code, out, err = invoke("check", "--format", fmt, "--dns-server", f"127.0.0.1:{port}", path)
        assert (code, err) == (2, f"Error: {path}, line {line}: {reason}\n")
        if fmt == "json":
            assert out == ""
    assert received(dns_sink) == []


def test_check_bad_rows_fail_alone(tmp_path: Path, dns_sink: socket.socket) -> None:
    """check on JSON Lines: each hostile row fails alone with its line; nothing contacted."""
    rows = [
        DEEP.encode() + b"\n",
        b'{"smtp_port": ' + BIG.encode() + b"}\n",
        b'{"from_name": "\xff"}\n',
        line_of(account(from_email="a\ud800@example.com")),
        line_of(account(password="pw\udfff")),
        json.dumps(account())[:-1].encode() + b', "password": "x"}\n',
        line_of(account(smtp_host=SECRET)),
        line_of(account(warmup_enabled=None)),
    ]
    path = write(tmp_path, "a.jsonl", b"".join(rows))
    port = dns_sink.getsockname()[1]
    code, out, err = invoke(
        "check", "--format", "jsonl", "--dns-server", f"127.0.0.1:{port}", "--dns-for-hosts", path
    )
    got = sorted(reports(out), key=lambda r: r["index"])
    assert (code, err) == (1, "")
    assert [(r["line"], r["ok"]) for r in got] == [(n, False) for n in range(1, 9)]
    assert [r["checks"][0]["code"] for r in got] == ["payload_invalid"] * 8
    assert SECRET not in out
    assert received(dns_sink) == []
