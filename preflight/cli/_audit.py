"""``preflight audit``: re-check the accounts already on SmartLead.

Registered by :mod:`preflight.cli` (its last lines); imports click and the CLI's
shared helpers only, the rest when the command runs.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from preflight.cli import (
    _CHECK_OPTIONS,
    _INPUT_FORMAT_OPTION,
    CONTEXT_SETTINGS,
    EXIT_FAILED,
    EXIT_OK,
    InputProblem,
    _abandon,
    _api_key,
    _emit,
    _finish,
    _interrupted,
    _options,
    _output,
    _platform_options,
    _shows_progress,
)

_AUDIT_HELP = """Re-check the accounts already on SmartLead, before they disconnect.

Lists the accounts (all, or those matching --esp, --client-id, --username,
--failing), fetches each one's settings, and checks it exactly as `preflight check`
does: payload, MX, SMTP and IMAP logins, sending domain (--roundtrip too). Each
report carries the platform's view of the account (`platform`: its id, connection
flags and failure errors, warmup status and reputation) and says where the two
disagree: SmartLead shows it disconnected but the login works now (a reconnect will
fix it), or connected but the login fails now (it will disconnect). An `audit`
check warns of what is at risk: a Microsoft 365 / Outlook account logging in with a
password (SMTP AUTH with passwords ends by default at the end of December 2026:
move it to OAuth), a server certificate expiring within 30 days, and with
--baseline, a sending domain whose SPF, DMARC or DKIM got worse since an earlier run.

The passwords SmartLead returns stay in memory: never on disk, in a report, a log
or a message. The API key comes from SMARTLEAD_API_KEY or --api-key-file. Every
call is within SmartLead's rate limits (--rate-per-minute, --burst; a 429's
Retry-After is waited out up to --max-retry-wait).

\b
Exit status: 0 every account passed (warnings allowed),
             1 an account failed a check or could not be fetched,
             2 bad usage, or SmartLead refused the key or could not list accounts.

\b
Examples:
  SMARTLEAD_API_KEY=... preflight audit
  preflight audit --failing --format html -o audit.html
  preflight audit --esp OUTLOOK --format csv > outlook.csv
  preflight audit --format json | jq '.accounts[] | select(.platform.disagreement != [])'
"""


def _audit_options(command: Any) -> Any:
    """check's options, but not --input-format (there is no input file)."""
    for option in reversed(_CHECK_OPTIONS):
        if option is not _INPUT_FORMAT_OPTION:
            command = option(command)
    return command


@click.command("audit", context_settings=CONTEXT_SETTINGS, help=_AUDIT_HELP)
@click.option(
    "--esp",
    type=click.Choice(["GMAIL", "OUTLOOK", "SMTP"], case_sensitive=False),
    help="Only accounts of this type.",
)
@click.option(
    "--client-id", type=click.IntRange(0), metavar="ID", help="Only the accounts of this client."
)
@click.option("--username", metavar="TEXT", help="Only accounts whose user name contains TEXT.")
@click.option(
    "--failing",
    is_flag=True,
    help="Only accounts SmartLead shows as failing SMTP (isSmtpSuccess=false).",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, exists=True),
    metavar="FILE",
    help="An earlier run's report (--format json or jsonl): warn of every sending "
    "domain whose SPF, DMARC or DKIM got worse since (domain_worse).",
)
@_platform_options
@_audit_options
def audit(**flags: Any) -> None:
    import asyncio

    from preflight.cli._progress import Progress
    from preflight.cli._render import make_writer, use_color
    from preflight.smartlead._audit import audit_many
    from preflight.smartlead._client import (
        LookupFailed,
        RateLimit,
        SmartLeadClient,
        Unauthorized,
        check_base_url,
    )

    options = _options(flags)
    try:
        base_url = check_base_url(flags["base_url"])
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    key = _api_key(flags["api_key_file"])
    filters: dict[str, str | int | bool] = {}
    if flags["esp"]:
        filters["esp"] = flags["esp"].upper()
    if flags["client_id"] is not None:
        filters["client_id"] = flags["client_id"]
    if flags["username"]:
        filters["username"] = flags["username"]
    if flags["failing"]:
        filters["isSmtpSuccess"] = False

    baseline = _baseline(flags["baseline"]) if flags["baseline"] else None
    progress: Any = Progress(sys.stderr) if _shows_progress(flags) else None
    all_ok = True
    emitted = 0
    total: int | None = None

    def notify(message: str) -> None:
        if progress is not None:
            progress.clear()
        click.echo(message, err=True)

    def listed(count: int) -> None:
        nonlocal total
        total = count
        if progress is not None:
            progress.total = count
        if count == 0:
            notify("SmartLead lists no account for these filters.")

    with _output(flags) as out:
        writer = make_writer(flags["output_format"], out, color=use_color(out), audit=True)

        async def run() -> None:
            nonlocal all_ok, emitted
            async with SmartLeadClient(
                key,
                base_url,
                rate_limit=RateLimit(flags["rate_per_minute"], flags["burst"]),
                max_retry_wait=flags["max_retry_wait"],
                notify=notify,
            ) as api:
                async for report in audit_many(
                    api,
                    options,
                    filters=filters,
                    concurrency=flags["concurrency"],
                    per_host=flags["per_host"],
                    ordered=flags["output_format"] != "jsonl",
                    on_listed=listed,
                    baseline=baseline,
                ):
                    _emit(writer, progress, report)
                    emitted += 1
                    all_ok = all_ok and report.ok

        try:
            asyncio.run(run())
        except (Unauthorized, LookupFailed) as exc:
            _abandon(writer, progress)
            if total is not None:
                raise InputProblem(
                    f"{exc}. The audit stopped: {emitted} of {total} accounts were reported."
                ) from None
            raise InputProblem(f"{exc}. Nothing was checked.") from None
        except KeyboardInterrupt:
            _interrupted(writer, progress)
        except BaseException:
            _abandon(writer, progress)
            raise
        _finish(writer, progress)
    sys.exit(EXIT_OK if all_ok else EXIT_FAILED)


def _baseline(path: str) -> Any:
    """The domains' states in an earlier report (a JSON document or JSON Lines)."""
    import json

    from preflight.smartlead._audit import read_baseline

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputProblem(f"{path}: cannot read the baseline ({reason})") from None
    try:
        document = json.loads(text)
        reports = document.get("accounts") if isinstance(document, dict) else None
        if not isinstance(reports, list):
            reports = [document]
    except ValueError:
        try:
            reports = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise InputProblem(
                f"{path}: the baseline is not a report of preflight (--format json or jsonl)"
            ) from None
    found = read_baseline(reports)
    if not found:
        raise InputProblem(f"{path}: the baseline holds no domain check to compare with")
    return found
