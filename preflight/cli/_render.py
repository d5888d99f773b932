"""Writing reports as text, JSON or JSON Lines.

Writers take reports one at a time, as accounts finish, and a final ``close``:

- ``jsonl`` writes each report as it comes (a script can read them live);
- ``json`` writes one document, ``{"ok": ..., "accounts": [...]}``, and only at the
  end: until then the reports wait in a spool file (flat memory), so an
  interrupted run never leaves half a JSON document on standard output;
- ``text`` writes a few lines per account and a summary with counts per code.

Nothing here sees a secret: reports never hold one. Everything else in a report may
come from the input or from a server (an address, a reply), so the text writers pass
every such string through ``preflight._text.printable`` (no terminal control sequence
reaches the terminal), and the JSON writers through ``json_text`` (no lone surrogate,
which aiosmtplib keeps for a reply's non-UTF-8 bytes, reaches a strict UTF-8 stream).
"""

from __future__ import annotations

import codecs
import os
import tempfile
from collections import Counter
from typing import TYPE_CHECKING, Any, Final, Protocol, TextIO

from preflight._text import json_text, printable
from preflight.report import AccountReport, CheckResult, Code, Status

if TYPE_CHECKING:
    from preflight.smartlead._submit import SubmitRecord

__all__ = [
    "JsonLinesWriter",
    "JsonWriter",
    "TextWriter",
    "Writer",
    "ascii_only_stream",
    "use_color",
]


class Reportable(Protocol):
    """What the JSON writers need: an account report, or a submit record."""

    @property
    def ok(self) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...


class Writer(Protocol):
    def write(self, report: Any) -> None: ...

    def close(self, *, interrupted: bool = False) -> None: ...

    def discard(self) -> None: ...


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def ascii_only_stream(out: TextIO) -> bool:
    """Whether ``out`` cannot take any Unicode text (an ASCII or Latin-1 standard output)."""
    encoding = getattr(out, "encoding", None) or "utf-8"
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return True
    return not name.startswith("utf")


def _dumps(report: Reportable, *, ascii_only: bool = False) -> str:
    return json_text(report.to_dict(), ascii_only=ascii_only, separators=(",", ":"))


class JsonLinesWriter:
    """One report per line, flushed as it is written."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.ascii_only = ascii_only_stream(out)

    def write(self, report: Reportable) -> None:
        self.out.write(_dumps(report, ascii_only=self.ascii_only) + "\n")
        self.out.flush()

    def close(self, *, interrupted: bool = False) -> None:
        self.out.flush()

    def discard(self) -> None:
        """Every line written so far is a whole report: keep them."""
        self.out.flush()


class JsonWriter:
    """One JSON document, written whole at the end."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.ascii_only = ascii_only_stream(out)
        self.ok = True
        self.count = 0
        self._spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=8 << 20, mode="w+", encoding="utf-8"
        )

    def write(self, report: Reportable) -> None:
        if self.count:
            self._spool.write(",\n")
        self._spool.write(_dumps(report, ascii_only=self.ascii_only))
        self.ok = self.ok and report.ok
        self.count += 1

    def close(self, *, interrupted: bool = False) -> None:
        """Write the document. When ``interrupted``, it holds the accounts finished so
        far and says ``"interrupted": true`` (and ``ok`` is false)."""
        self._spool.seek(0)
        ok = "true" if self.ok and not interrupted else "false"
        extra = ', "interrupted": true' if interrupted else ""
        self.out.write('{"ok": ' + ok + extra + ', "accounts": [\n')
        while chunk := self._spool.read(1 << 16):
            self.out.write(chunk)
        self.out.write("\n]}\n")
        self.out.flush()
        self._spool.close()

    def discard(self) -> None:
        """Drop what was spooled (the run ended without a complete result)."""
        self._spool.close()


_STATUS_COLORS: Final = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "red",
    Status.SKIP: "bright_black",
}


class TextWriter:
    """A few readable lines per account, and a summary at the end."""

    def __init__(self, out: TextIO, *, color: bool = False, summary: bool = True) -> None:
        self.out = out
        self.color = color
        self.summary = summary
        self.total = 0
        self.failed = 0
        self.warned = 0
        self.codes: Counter[str] = Counter()

    def _style(self, text: str, status: Status, *, bold: bool = False) -> str:
        if not self.color:
            return text
        import click

        return click.style(text, fg=_STATUS_COLORS[status], bold=bold)

    def write(self, report: AccountReport) -> None:
        self.total += 1
        worst = _worst(report)
        if worst is Status.FAIL:
            self.failed += 1
        elif worst is Status.WARN:
            self.warned += 1
        label = printable(report.account) if report.account is not None else "(no from_email)"
        where = f"#{report.index}" + (f", line {report.line}" if report.line is not None else "")
        word = {Status.FAIL: "FAIL", Status.WARN: "WARN"}.get(worst, "PASS")
        lines = [f"{self._style(word, worst, bold=True)}  {label}  ({where})"]
        for check in report.checks:
            if check.status in (Status.FAIL, Status.WARN):
                key = check.code.value
                if check.status is Status.WARN and check.code is Code.OK:
                    key = f"{printable(check.name)} warning"
                self.codes[key] += 1
                lines.extend(self._check_lines(check))
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def _check_lines(self, check: CheckResult) -> list[str]:
        status = self._style(f"{check.status.value:<4}", check.status)
        code = "" if check.code is Code.OK else f"  {check.code.value}"
        lines = [f"  {printable(check.name):<9} {status}{code}  {printable(check.message)}"]
        shown = {check.message}
        for key, mark in (("errors", "-"), ("warnings", "~")):
            messages = _messages(check.details.get(key))
            if len(messages) > 1 or (messages and messages[0] != check.message):
                lines.extend(f"      {mark} {printable(message)}" for message in messages)
            shown.update(messages)
        if check.hint and check.hint not in shown:
            lines.append(f"      hint: {printable(check.hint)}")
        return lines

    def discard(self) -> None:
        """The run ended without a complete result: no summary of a part."""
        self.out.flush()

    def close(self, *, interrupted: bool = False) -> None:
        if interrupted:
            self.out.write(f"\ninterrupted: {self.total} accounts finished before the stop\n")
        if self.summary:
            passed = self.total - self.failed
            noun = "account" if self.total == 1 else "accounts"
            parts = [f"{passed} passed"]
            if self.warned:
                parts[0] += f" ({self.warned} with warnings)"
            parts.append(f"{self.failed} failed")
            self.out.write(f"\n{self.total} {noun}: {', '.join(parts)}\n")
            for code, count in self.codes.most_common():
                self.out.write(f"  {count:>6}  {code}\n")
        self.out.flush()


def _messages(problems: object) -> list[str]:
    """The messages of ``details.errors`` or ``details.warnings``.

    Each is ``{"field": ..., "message": ...}`` (``field`` optional); anything else
    (a plain string, an object without a message) is shown as it is, never a crash.
    """
    if not problems:
        return []
    if not isinstance(problems, list | tuple):
        problems = [problems]
    messages = []
    for problem in problems:
        if isinstance(problem, dict) and "message" in problem:
            messages.append(str(problem["message"]))
        elif isinstance(problem, str):
            messages.append(problem)
        else:
            messages.append(json_text(problem))
    return messages


def _worst(report: AccountReport) -> Status:
    statuses = {check.status for check in report.checks}
    for status in (Status.FAIL, Status.WARN):
        if status in statuses:
            return status
    return Status.PASS


class SubmitTextWriter:
    """One line per account submitted (more for failures), and a summary."""

    _WORDS: Final = {
        "saved": ("SAVED", Status.PASS),
        "already_saved": ("DONE", Status.PASS),
        "dry_run": ("READY", Status.PASS),
        "failed_check": ("HELD", Status.FAIL),
        "rejected": ("REJECTED", Status.FAIL),
        "unknown": ("UNKNOWN", Status.WARN),
        "not_sent": ("NOT SENT", Status.FAIL),
    }

    def __init__(self, out: TextIO, *, color: bool = False) -> None:
        self.out = out
        self.color = color
        self.counts: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.checks = TextWriter(out, color=color, summary=False)

    def write(self, record: SubmitRecord) -> None:
        self.counts[record.verdict] += 1
        word, status = self._WORDS.get(record.verdict, (record.verdict.upper(), Status.WARN))
        label = printable(record.account) if record.account is not None else "(no from_email)"
        where = f"#{record.index}" + (f", line {record.line}" if record.line is not None else "")
        styled = self.checks._style(f"{printable(word):<8}", status, bold=True)
        lines = [f"{styled}  {label}  ({where})  {printable(record.message)}"]
        lines.extend(f"          ! {printable(text)}" for text in record.disagreement)
        if record.verdict == "failed_check" and record.report is not None:
            for check in record.report.checks:
                if check.status is Status.FAIL:
                    self.codes[check.code.value] += 1
                    lines.extend("  " + line for line in self.checks._check_lines(check))
        if record.payload is not None:
            lines.append("          " + printable(json_text(record.payload)))
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def discard(self) -> None:
        self.close()

    def close(self, *, interrupted: bool = False) -> None:
        if interrupted:
            self.out.write("\ninterrupted: the journal holds every outcome so far\n")
        total = sum(self.counts.values())
        parts = [
            f"{self.counts[v]} {v.replace('_', ' ')}" for v in _VERDICT_ORDER if self.counts[v]
        ]
        noun = "account" if total == 1 else "accounts"
        self.out.write(f"\n{total} {noun}: {', '.join(parts) or 'none'}\n")
        for code, count in self.codes.most_common():
            self.out.write(f"  {count:>6}  {code}\n")
        self.out.flush()


_VERDICT_ORDER: Final = (
    "saved",
    "already_saved",
    "dry_run",
    "failed_check",
    "rejected",
    "unknown",
    "not_sent",
)


def make_writer(fmt: str, out: TextIO, *, color: bool = False, submit: bool = False) -> Writer:
    """The writer for an output format name."""
    if fmt == "json":
        return JsonWriter(out)
    if fmt == "jsonl":
        return JsonLinesWriter(out)
    if fmt == "text":
        return SubmitTextWriter(out, color=color) if submit else TextWriter(out, color=color)
    raise ValueError(f"unknown output format {fmt!r}")
