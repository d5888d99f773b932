"""Writing reports as text, JSON, JSON Lines, CSV or HTML.

Writers take reports one at a time, as accounts finish, and a final ``close``:

- ``jsonl`` writes each report as it comes (a script can read them live);
- ``json`` writes one document, ``{"ok": ..., "accounts": [...]}``, and only at the
  end: until then the reports wait in a spool file (flat memory), so an
  interrupted run never leaves half a JSON document on standard output;
- ``text`` writes a few lines per account and a summary with counts per code;
- ``csv`` writes one row per account (address, provider, platform status, verdict,
  code, hint), each cell safe for a spreadsheet (no formula) and a terminal;
- ``html`` writes one self-contained page at the end, failing accounts first,
  sortable by column, every value escaped.

Nothing here sees a secret: reports never hold one. Everything else in a report may
come from the input or from a server (an address, a reply), so the text writers pass
every such string through ``preflight._text.printable`` (no terminal control sequence
reaches the terminal), and the JSON writers through ``json_text`` (no lone surrogate,
which aiosmtplib keeps for a reply's non-UTF-8 bytes, reaches a strict UTF-8 stream).
"""

from __future__ import annotations

import codecs
import os
from collections import Counter
from typing import TYPE_CHECKING, Any, Final, Protocol, TextIO

from preflight._text import json_text, printable
from preflight.report import AccountReport, CheckResult, Code, Status

if TYPE_CHECKING:
    from preflight.smartlead._submit import SubmitRecord

__all__ = [
    "AuditTextWriter",
    "CsvWriter",
    "HtmlWriter",
    "JsonLinesWriter",
    "JsonWriter",
    "TextWriter",
    "Writer",
    "ascii_only_stream",
    "make_writer",
    "safe_cell",
    "share_row",
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
        import tempfile  # only for the json document: not on every command's path

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
        self.out.write("\n".join(self._lines(report)) + "\n")
        self.out.flush()

    def _lines(self, report: AccountReport) -> list[str]:
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
        return lines

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


class AuditTextWriter(TextWriter):
    """``check``'s text, with the platform's view of each account, and a summary by
    code and by platform status."""

    def __init__(self, out: TextIO, *, color: bool = False) -> None:
        super().__init__(out, color=color)
        self.statuses: Counter[str] = Counter()
        self.disagreements: Counter[str] = Counter()

    def _lines(self, report: AccountReport) -> list[str]:
        lines = super()._lines(report)
        if report.checks and all(c.status is Status.SKIP for c in report.checks):
            # Nothing was checked (an OAuth account): not a pass.
            word = self._style("SKIP", Status.SKIP, bold=True)
            label = lines[0].split("  ", 1)[1]
            reason = next((c.message for c in report.checks if c.name == "fetch"), "")
            lines[0] = f"{word}  {label}  {printable(reason)}"
        platform = getattr(report, "platform", None)
        if platform is None:
            return lines
        self.statuses[platform.status] += 1
        for check in report.checks:
            problems = check.details.get("problems") if check.name == "audit" else None
            if isinstance(problems, list):
                for problem in problems[1:]:  # the first is the check's own code
                    if isinstance(problem, dict) and problem.get("code"):
                        self.codes[str(problem["code"])] += 1
        said = [
            f"{name} error: {printable(error)}"
            for name, error in (
                ("smtp", platform.smtp_failure_error),
                ("imap", platform.imap_failure_error),
            )
            if error
        ]
        warmup = ", ".join(
            printable(part) for part in (platform.warmup_status, platform.warmup_reputation) if part
        )
        where = f"id {platform.id}" if platform.id is not None else "no id"
        head = f"  platform  {platform.status} ({where}"
        head += f"; warmup {warmup})" if warmup else ")"
        lines.append("; ".join([head, *said]))
        kinds = set()
        for item in platform.disagreement:
            kinds.add("reconnect" if item.get("platform") == "failing" else "will disconnect")
            lines.append(f"      ! {printable(item.get('message', ''))}")
        self.disagreements.update(kinds)
        return lines

    def _check_lines(self, check: CheckResult) -> list[str]:
        problems = check.details.get("problems") if check.name == "audit" else None
        if not isinstance(problems, list) or len(problems) < 2:
            return super()._check_lines(check)
        status = self._style(f"{check.status.value:<4}", check.status)
        lines = [f"  {'audit':<9} {status}  {printable(check.message)}"]
        for problem in problems:
            if isinstance(problem, dict):
                code = printable(problem.get("code", ""))
                lines.append(f"      ~ {code}: {printable(problem.get('message', ''))}")
                if problem.get("hint"):
                    lines.append(f"        hint: {printable(problem['hint'])}")
        return lines

    def close(self, *, interrupted: bool = False) -> None:
        super().close(interrupted=interrupted)
        if self.statuses:
            parts = ", ".join(f"{count} {status}" for status, count in self.statuses.most_common())
            self.out.write(f"on the platform: {parts}\n")
        if self.disagreements:
            fix = self.disagreements["reconnect"]
            will = self.disagreements["will disconnect"]
            self.out.write(
                f"accounts where preflight and the platform disagree: {fix} a reconnect "
                f"will fix, {will} will disconnect\n"
            )
        self.out.flush()


# --- Reports to share: CSV and HTML -------------------------------------------------

#: One row per account: the columns a spreadsheet user wants.
CSV_COLUMNS: Final = (
    "index",
    "address",
    "provider",
    "platform_status",
    "verdict",
    "code",
    "check",
    "hint",
    "problems",
)

#: Characters that make a spreadsheet read a cell as a formula (CSV injection),
#: and the tab and carriage return that can hide one.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def safe_cell(value: object) -> str:
    """A cell that no spreadsheet runs and no terminal obeys: control characters,
    terminal escapes, lone surrogates and NUL escaped (``printable``); a cell that
    starts (after spaces) with ``= + - @`` prefixed with ``'``."""
    text = printable("" if value is None else value)
    if text.lstrip(" ").startswith(_FORMULA_START) or text.startswith(_FORMULA_START):
        return "'" + text
    return text


_VERDICT_RANK: Final = {"fail": 0, "not checked": 1, "warn": 2, "skipped": 3, "pass": 4}


def _provider(report: AccountReport | None, platform: Any) -> str:
    account = report.validated if report is not None else None
    if account is not None:
        from preflight.providers import by_domain, by_server_host

        provider = by_server_host(account.smtp_host) or by_domain(account.email_domain)
        if provider is not None:
            return provider.name
        return account.type.value if account.type else "SMTP"
    esp = getattr(platform, "esp", None)
    return str(esp) if esp else ""


def share_row(item: Any) -> dict[str, str]:
    """The row of one account report (or submit record) for the CSV and HTML reports:
    its worst check's code and hint, every problem, the platform's status."""
    report: AccountReport | None = item if isinstance(item, AccountReport) else None
    if report is None:
        report = getattr(item, "report", None)
    platform = getattr(item, "platform", None)
    status = str(getattr(platform, "status", "") or "")
    checks = report.checks if report is not None else ()
    failing = [c for c in checks if c.status is Status.FAIL]
    # The audit's own warnings (what is about to break) before the others.
    warning = sorted(
        (c for c in checks if c.status is Status.WARN), key=lambda c: c.name != "audit"
    )
    main: CheckResult | None = (failing or warning)[0] if failing or warning else None
    if isinstance(getattr(item, "verdict", None), str):
        verdict = str(item.verdict)
    elif any(c.name == "fetch" for c in failing):
        verdict = "not checked"
    elif checks and all(c.status is Status.SKIP for c in checks):
        verdict = "skipped"
    else:
        verdict = "fail" if failing else "warn" if warning else "pass"
    problems: list[str] = []
    codes: list[str] = []
    for c in (*failing, *warning):
        listed = c.details.get("problems") if c.name == "audit" else None
        if isinstance(listed, list) and listed:
            found = [str(p.get("code")) for p in listed if isinstance(p, dict)]
            problems.extend(f"audit: {code}" for code in found)
            codes.extend(found)
        else:
            problems.append(f"{c.name}: {c.code.value}")
            if c.code is not Code.OK:
                codes.append(c.code.value)
    for item_ in getattr(platform, "disagreement", ()) or ():
        problems.append(str(item_.get("message", "")))
    return {
        "index": str(getattr(item, "index", "")),
        "address": "" if item.account is None else str(item.account),
        "provider": _provider(report, platform),
        "platform_status": status,
        "verdict": verdict,
        "code": main.code.value if main is not None else "ok",
        "check": main.name if main is not None else "",
        "hint": (main.hint or main.message) if main is not None else "",
        "problems": "; ".join(problems),
        # Not a column: every code, for the HTML page's count by code.
        "codes": " ".join(codes),
    }


class CsvWriter:
    """One row per account (``CSV_COLUMNS``), written as each report comes;
    every cell made safe for spreadsheets (:func:`safe_cell`)."""

    def __init__(self, out: TextIO) -> None:
        import csv

        self.out = out
        self.ok = True
        self._csv = csv.writer(out, lineterminator="\r\n")
        self._csv.writerow(CSV_COLUMNS)

    def write(self, item: Reportable) -> None:
        row = share_row(item)
        self.ok = self.ok and item.ok
        self._csv.writerow([safe_cell(row[name]) for name in CSV_COLUMNS])
        self.out.flush()

    def close(self, *, interrupted: bool = False) -> None:
        self.out.flush()

    def discard(self) -> None:
        self.out.flush()


_HTML_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("index", "#"),
    ("address", "Address"),
    ("provider", "Provider"),
    ("platform_status", "Platform"),
    ("verdict", "Verdict"),
    ("code", "Code"),
    ("check", "Check"),
    ("hint", "Hint"),
    ("problems", "All problems"),
)

_HTML_STYLE: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.fail td.verdict,tr.not-checked td.verdict{background:#fdd;font-weight:bold}
tr.warn td.verdict{background:#ffc}tr.pass td.verdict{background:#dfd}
td{overflow-wrap:anywhere}.summary span{margin-right:1.2em}
td.index,td.address,td.provider,td.platform_status,td.verdict,td.code,td.check{white-space:nowrap}
"""

# Sorts the table by a column when its header is clicked (again: the other way);
# #sort=COLUMN or #sort=-COLUMN in the address sorts it on load (a link keeps the
# order). Cells sort by data-sort when they have one (the verdict's rank, the index).
_HTML_SCRIPT: Final = """
(function(){
var table=document.getElementById("accounts"),body=table.tBodies[0];
var heads=table.tHead.rows[0].cells;
function key(row,i){var c=row.cells[i];return c.hasAttribute("data-sort")?
 Number(c.getAttribute("data-sort")):c.textContent.toLowerCase();}
function sortBy(name,desc){var i=-1;for(var j=0;j<heads.length;j++){
 heads[j].removeAttribute("aria-sort");if(heads[j].getAttribute("data-key")===name)i=j;}
 if(i<0)return;var rows=Array.prototype.slice.call(body.rows);
 rows.sort(function(a,b){var x=key(a,i),y=key(b,i);var r=x<y?-1:x>y?1:
  Number(a.getAttribute("data-index"))-Number(b.getAttribute("data-index"));return desc?-r:r;});
 rows.forEach(function(r){body.appendChild(r);});
 heads[i].setAttribute("aria-sort",desc?"descending":"ascending");
 table.setAttribute("data-sorted",(desc?"-":"")+name);}
for(var j=0;j<heads.length;j++){heads[j].addEventListener("click",function(){
 var name=this.getAttribute("data-key");
 var desc=this.getAttribute("aria-sort")==="ascending";sortBy(name,desc);
 if(history.replaceState)history.replaceState(null,"","#sort="+(desc?"-":"")+name);});}
var m=/^#sort=(-?)([a-z_]+)$/.exec(location.hash);if(m)sortBy(m[2],m[1]==="-");
})();
"""


class HtmlWriter:
    """One self-contained page (no external assets; a Content-Security-Policy that
    forbids loading any), a table with one row per account, failing first, sortable
    by column with a little inline script; every value escaped."""

    def __init__(self, out: TextIO, *, title: str = "preflight report") -> None:
        self.out = out
        self.title = title
        self.ok = True
        self.rows: list[dict[str, str]] = []

    def write(self, item: Reportable) -> None:
        self.rows.append(share_row(item))
        self.ok = self.ok and item.ok

    def discard(self) -> None:
        self.rows.clear()

    def close(self, *, interrupted: bool = False) -> None:
        import datetime
        import html

        def esc(value: object) -> str:
            return html.escape(printable(value), quote=True)

        rows = sorted(
            self.rows,
            key=lambda r: (_VERDICT_RANK.get(r["verdict"], 1), int(r["index"] or 0)),
        )
        verdicts = Counter(r["verdict"] for r in rows)
        codes = Counter(code for r in rows for code in r["codes"].split())
        statuses = Counter(r["platform_status"] for r in rows if r["platform_status"])
        headers = [h for h in _HTML_HEADERS if h[0] != "platform_status" or statuses]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        out: list[str] = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(self.title)}</title><style>{_HTML_STYLE}</style></head><body>",
            f"<h1>{esc(self.title)}</h1>",
            f"<p>{len(rows)} accounts, {esc(now)}"
            + (" &mdash; <strong>interrupted</strong>" if interrupted else "")
            + "</p>",
            '<p class="summary">'
            + "".join(
                f"<span>{esc(v)}: {n}</span>"
                for v, n in sorted(verdicts.items(), key=lambda kv: _VERDICT_RANK.get(kv[0], 1))
            )
            + "</p>",
        ]
        if codes:
            out.append(
                '<p class="summary">By code: '
                + "".join(f"<span>{esc(c)}: {n}</span>" for c, n in codes.most_common())
                + "</p>"
            )
        if statuses:
            out.append(
                '<p class="summary">On the platform: '
                + "".join(f"<span>{esc(s)}: {n}</span>" for s, n in statuses.most_common())
                + "</p>"
            )
        out.append('<table id="accounts"><thead><tr>')
        out.extend(f'<th data-key="{key}" title="Sort">{esc(label)}</th>' for key, label in headers)
        out.append("</tr></thead><tbody>")
        for row in rows:
            css = row["verdict"].replace(" ", "-")
            cells = []
            for key, _ in headers:
                attrs = f' class="{key}"'
                if key == "verdict":
                    attrs += f' data-sort="{_VERDICT_RANK.get(row["verdict"], 1)}"'
                elif key == "index":
                    attrs += f' data-sort="{esc(row["index"])}"'
                cells.append(f"<td{attrs}>{esc(row[key])}</td>")
            out.append(
                f'<tr class="{esc(css)}" data-index="{esc(row["index"])}">'
                + "".join(cells)
                + "</tr>"
            )
        out.append("</tbody></table>")
        out.append(f"<script>{_HTML_SCRIPT}</script></body></html>")
        self.out.write("\n".join(out) + "\n")
        self.out.flush()
        self.rows.clear()


def make_writer(
    fmt: str, out: TextIO, *, color: bool = False, submit: bool = False, audit: bool = False
) -> Writer:
    """The writer for an output format name."""
    if fmt == "json":
        return JsonWriter(out)
    if fmt == "jsonl":
        return JsonLinesWriter(out)
    if fmt == "csv":
        return CsvWriter(out)
    if fmt == "html":
        title = "preflight audit" if audit else "preflight submit" if submit else "preflight check"
        return HtmlWriter(out, title=title)
    if fmt == "text":
        if audit:
            return AuditTextWriter(out, color=color)
        return SubmitTextWriter(out, color=color) if submit else TextWriter(out, color=color)
    raise ValueError(f"unknown output format {fmt!r}")
