"""The ``preflight`` command line: parse, call the library, render.

The commands are here; :mod:`._render` writes reports (text, JSON, JSON Lines) and
:mod:`._progress` the progress line on standard error. This module is imported for
every run, ``--help`` included, so it imports click and nothing heavy at the top;
each command imports what it needs when it runs. This package is the only one that
prints.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import click

if TYPE_CHECKING:
    from preflight.cli._render import Writer

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: A bug in preflight (an exception nothing expected): BSD's EX_SOFTWARE.
EXIT_INTERNAL = 70


class InputProblem(click.ClickException):
    """The input cannot be read or parsed at all."""

    exit_code = EXIT_USAGE


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="preflight", message="%(prog)s %(version)s")
def cli() -> None:
    """Catch bad email accounts before they are submitted.

    preflight checks SmartLead save-account payloads: the payload against the
    documented schema, the sender domain's MX records, and real SMTP and IMAP
    logins. Every problem comes back with a stable code and a hint.

    \b
    Exit status: 0 every account passed (warnings allowed),
                 1 at least one account failed,
                 2 bad usage or unreadable input,
                 70 a bug in preflight (PREFLIGHT_DEBUG=1 shows the traceback).
    """


_FORMAT_HELP = (
    "Report format: a readable table, one JSON document, one JSON line per account, "
    "CSV (one row per account) or one self-contained HTML page."
)
_INPUT_FORMAT_HELP = (
    "How to read ACCOUNTS. 'auto' tells a JSON object, JSON array, JSON Lines and CSV "
    "apart by content (and by a .csv/.jsonl suffix)."
)


_FORMAT_OPTION = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "jsonl", "csv", "html"]),
    default="text",
    show_default=True,
    help=_FORMAT_HELP,
)
_INPUT_FORMAT_OPTION = click.option(
    "--input-format",
    type=click.Choice(["auto", "json", "jsonl", "csv"]),
    default="auto",
    show_default=True,
    help=_INPUT_FORMAT_HELP,
)


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("accounts", metavar="ACCOUNTS", required=False)
@_FORMAT_OPTION
@_INPUT_FORMAT_OPTION
def validate(accounts: str | None, output_format: str, input_format: str) -> None:
    """Check payloads against the save-account schema, offline.

    ACCOUNTS is a file of accounts: one JSON object, a JSON array, JSON Lines, or
    CSV with the payload's field names as its header. Use - for standard input.
    Every problem of every account is reported at once; nothing is contacted.

    \b
    Examples:
      preflight validate accounts.csv
      preflight validate --format jsonl accounts.json | jq 'select(.ok | not)'
      cat account.json | preflight validate -
    """
    if accounts is None:
        raise click.UsageError("give a file of accounts, or - to read standard input")
    from preflight.cli._render import make_writer, use_color
    from preflight.reader import InputError, open_accounts, read_accounts
    from preflight.runner import validate_all

    out = sys.stdout
    writer = make_writer(output_format, out, color=use_color(out))
    failed = False
    try:
        with open_accounts(accounts) as stream:
            source = "<stdin>" if accounts == "-" else accounts
            for report in validate_all(read_accounts(stream, source=source, fmt=input_format)):
                writer.write(report)
                failed = failed or not report.ok
    except InputError as exc:
        _abandon(writer)
        raise InputProblem(str(exc)) from None
    writer.close()
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


_CHECK_OPTIONS = [
    click.option(
        "--per-host",
        type=click.IntRange(1, 10_000),
        default=5,
        show_default=True,
        help="Connections open at once to one server host (500 accounts on one provider "
        "must not look like an attack). The most: a host that answers 'too many login "
        "attempts' gets half as many, then slowly more again.",
    ),
    click.option(
        "--throttle-retry",
        type=click.FloatRange(0, 3600),
        default=2.0,
        show_default=True,
        metavar="SECONDS",
        help="A login the server refused as throttling is tried once more after one to "
        "two times this pause; 0: report auth_throttled at once.",
    ),
    click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="Write the reports to FILE instead of standard output: to a new file beside "
        "it (mode 0600), which replaces FILE at the end (also after Ctrl-C); an "
        "unreadable input leaves FILE as it was.",
    ),
    click.option("--quiet", "-q", is_flag=True, help="No progress line on the terminal."),
    click.option(
        "--strict",
        is_flag=True,
        help="Deliverability problems fail the account instead of warning: SPF, DMARC and "
        "DKIM (domain; DMARC p=none becomes a warning), blocklist listings and reverse DNS "
        "(blocklist), the tracking domain (tracking). A list that could not be asked stays "
        "a warning.",
    ),
    click.option(
        "--roundtrip",
        is_flag=True,
        help="After the logins, send a tagged test message from the account to itself, "
        "find it over IMAP (INBOX or Junk), report the delivery time, and delete it.",
    ),
    click.option(
        "--no-domain-check",
        is_flag=True,
        help="Skip the sending-domain check (SPF, DMARC, DKIM).",
    ),
    # --- The blocklist check (issue 14) ---
    click.option(
        "--no-blocklist-check",
        is_flag=True,
        help="Skip the blocklist check (the domain and an own SMTP server on DNS "
        "blocklists, and the server's reverse DNS).",
    ),
    click.option(
        "--domain-blocklist",
        "domain_blocklists",
        multiple=True,
        metavar="ZONE",
        help="A domain blocklist to look the sending domain up in (repeatable; replaces "
        "the defaults dbl.spamhaus.org and multi.surbl.org).",
    ),
    click.option(
        "--ip-blocklist",
        "ip_blocklists",
        multiple=True,
        metavar="ZONE",
        help="An IP blocklist to look an own SMTP server's addresses up in (repeatable; "
        "replaces the defaults zen.spamhaus.org, b.barracudacentral.org and bl.spamcop.net).",
    ),
    _FORMAT_OPTION,
    _INPUT_FORMAT_OPTION,
    click.option(
        "--ca-file",
        type=click.Path(exists=True, dir_okay=False),
        metavar="PEM",
        help="Certificates to trust besides the system store.",
    ),
    click.option(
        "--insecure", is_flag=True, help="Do not verify certificates (the report says so)."
    ),
    click.option(
        "--dns-server",
        metavar="HOST[:PORT]",
        help="Resolver for the DNS checks (MX, SPF/DMARC/DKIM, blocklists, reverse DNS, the "
        "tracking domain) instead of the system's. Spamhaus refuses queries that come "
        "through public resolvers: use your own resolver for the blocklist check.",
    ),
    click.option(
        "--dns-for-hosts",
        is_flag=True,
        help="Resolve the SMTP and IMAP host names with --dns-server too.",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(0.5, 3600),
        default=30.0,
        show_default=True,
        metavar="SECONDS",
        help="Deadline for one account's whole check.",
    ),
    click.option(
        "--allow-plaintext-auth",
        is_flag=True,
        help="Permit sending credentials over an unencrypted connection.",
    ),
    click.option(
        "--smtp-security",
        type=click.Choice(["ssl", "starttls", "plain"]),
        help="SMTP security mode, instead of the port's convention.",
    ),
    click.option(
        "--imap-security",
        type=click.Choice(["ssl", "starttls", "plain"]),
        help="IMAP security mode, instead of the port's convention.",
    ),
    click.option(
        "--concurrency",
        type=click.IntRange(1, 10_000),
        default=100,
        show_default=True,
        help="Accounts checked at the same time, at most (--per-host bounds each server "
        "host: this bound matters when the accounts are spread over many hosts).",
    ),
]


# --- Issue 14: the tracking domain and the DKIM selectors (check, submit, audit) ------


def _tracking_cname_flag(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """--tracking-cname: a host name (not a URL), lower case, no trailing dot."""
    if value is None:
        return None
    from preflight.payload import tracking_url_parts

    try:
        scheme, host = tracking_url_parts(value)
    except ValueError:
        scheme, host = None, ""
    if scheme is not None or not host:
        raise click.BadParameter(
            f"{value!r}: expected a host name, e.g. open.sleadtrack.com",
            param_hint="--tracking-cname",
        )
    return host


_SELECTOR = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"


def _dkim_selector_flag(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    """--dkim-selector: DNS labels (RFC 6376's selector: sub-domains joined by dots)."""
    import re

    for selector in value:
        if not re.fullmatch(rf"{_SELECTOR}(?:\.{_SELECTOR})*", selector) or len(selector) > 200:
            raise click.BadParameter(
                f"{selector!r}: a DKIM selector is one or more DNS labels, e.g. s2048 or "
                "k1.mail (the part before ._domainkey.)",
                param_hint="--dkim-selector",
            )
    if len(value) > 50:
        raise click.BadParameter("at most 50 selectors", param_hint="--dkim-selector")
    return tuple(dict.fromkeys(selector.lower() for selector in value))


_CHECK_OPTIONS += [
    click.option(
        "--no-tracking-check",
        is_flag=True,
        help="Skip the tracking-domain check (the payload's custom_tracking_url).",
    ),
    click.option(
        "--tracking-cname",
        metavar="TARGET",
        callback=_tracking_cname_flag,
        help="The host the tracking domain's CNAME must point to (SmartLead's custom "
        "domain settings give it); without it any CNAME or address will do.",
    ),
    click.option(
        "--dkim-selector",
        "dkim_selectors",
        metavar="NAME",
        multiple=True,
        callback=_dkim_selector_flag,
        help="A DKIM selector to look for first (repeatable), for providers whose "
        "selectors cannot be guessed; details.dkim_selectors_checked lists those tried.",
    ),
]


def _issue14_options(flags: dict[str, Any]) -> dict[str, Any]:
    """CheckOptions fields of the tracking and DKIM selector flags."""
    return {
        "check_tracking": not flags["no_tracking_check"],
        "tracking_cname": flags["tracking_cname"],
        "dkim_selectors": flags["dkim_selectors"],
    }


def _check_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options every command that checks accounts shares."""
    for option in reversed(_CHECK_OPTIONS):
        command = option(command)
    return command


#: How a command reaches SmartLead (submit, audit): the key, the URL, the rate limits.
_PLATFORM_OPTIONS = [
    click.option(
        "--api-key-file",
        type=click.Path(dir_okay=False),
        metavar="PATH",
        help="Read the API key from the first line of PATH (else SMARTLEAD_API_KEY).",
    ),
    click.option(
        "--base-url",
        default="https://server.smartlead.ai/api/v1",
        show_default=True,
        metavar="URL",
        help="The API's base URL (a proxy, or a test server): http:// or https://.",
    ),
    click.option(
        "--rate-per-minute",
        type=click.IntRange(1, 100_000),
        default=60,
        show_default=True,
        help="API calls per minute at most.",
    ),
    click.option(
        "--burst",
        type=click.IntRange(1, 10_000),
        default=10,
        show_default=True,
        help="API calls per second at most.",
    ),
    click.option(
        "--max-retry-wait",
        type=click.FloatRange(0, 86_400),
        default=120.0,
        show_default=True,
        metavar="SECONDS",
        help="Longest wait a 429's Retry-After may impose; beyond it the call is given up "
        "(submit: the account is not sent).",
    ),
]


def _platform_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options every command that calls SmartLead shares."""
    for option in reversed(_PLATFORM_OPTIONS):
        command = option(command)
    return command


_CHECK_HELP = """Check accounts for real: payload, MX records, SMTP and IMAP logins.

ACCOUNTS is a file of accounts (JSON object, JSON array, JSON Lines or CSV with
the payload's field names; - for standard input). Without it, one account is built
from the flags; its other payload fields take defaults, and with no --imap-host the
IMAP check is skipped.

For each account the DNS, SMTP and IMAP checks run side by side, and the whole check
ends within --timeout seconds. SMTP uses the port's convention (465 implicit TLS,
587 STARTTLS required, 25 STARTTLS when offered) and exactly one AUTH attempt; IMAP
likewise (993 implicit TLS, 143 STARTTLS). Credentials are never sent in clear text
unless --allow-plaintext-auth is given.

The password never goes on the command line: give --password-env NAME (the name of
an environment variable), --password-file PATH, or type it at the hidden prompt.

\b
Examples:
  preflight check accounts.csv
  SMTP_PW=... preflight check --host smtp.gmail.com --port 587 \\
      --imap-host imap.gmail.com --user me@gmail.com --password-env SMTP_PW
  preflight check - < account.json && echo "safe to submit"
  preflight check --format jsonl accounts.jsonl | jq -c 'select(.ok | not)'
  preflight check --format jsonl --shard 2/4 accounts.jsonl > part-2.jsonl
"""


@cli.command(context_settings=CONTEXT_SETTINGS, help=_CHECK_HELP)
@click.argument("accounts", metavar="[ACCOUNTS]", required=False)
@click.option("--host", "--smtp-host", "smtp_host", metavar="HOST", help="SMTP server host name.")
@click.option(
    "--port",
    "--smtp-port",
    "smtp_port",
    type=click.IntRange(1, 65535),
    default=587,
    show_default=True,
    help="SMTP port.",
)
@click.option("--imap-host", metavar="HOST", help="IMAP server host name (none: IMAP skipped).")
@click.option(
    "--imap-port", type=click.IntRange(1, 65535), default=993, show_default=True, help="IMAP port."
)
@click.option("--user", metavar="NAME", help="Login user name (the payload's user_name).")
@click.option("--from-email", metavar="ADDRESS", help="Sending address (default: --user).")
@click.option("--imap-user", metavar="NAME", help="IMAP user name, if not --user.")
@click.option(
    "--password-env", metavar="NAME", help="Read the password from the environment variable NAME."
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Read the password from the first line of PATH.",
)
@click.option(
    "--shard",
    metavar="K/N",
    callback=lambda ctx, param, value: _parse_shard(value),
    help="Check only the K-th of N shares of ACCOUNTS (every N-th account, by its "
    "position in the input, from the K-th): run K=1..N on N machines; their jsonl "
    "outputs, concatenated, are one report.",
)
@_check_options
def check(accounts: str | None, **flags: Any) -> None:
    if accounts is not None:
        given = [name for name in _ACCOUNT_FLAGS if flags.get(name)]
        if given:
            names = ", ".join("--" + name.replace("_", "-") for name in given)
            raise click.UsageError(f"{names}: give account flags or ACCOUNTS, not both")
    elif flags["shard"]:
        raise click.UsageError("--shard: give a file of accounts (or -) to share out")
    options = _options(flags, check_imap=accounts is not None or bool(flags["imap_host"]))
    if accounts is None:
        payload = _payload_from_flags(flags)
        _run_check(None, [payload], options, flags)
    else:
        _run_check(accounts, None, options, flags)


def _parse_shard(value: str | None) -> tuple[int, int] | None:
    """``K/N`` -> (K, N), 1 <= K <= N; None when not given."""
    if value is None:
        return None
    k, slash, n = value.partition("/")
    try:
        shard = (int(k), int(n)) if slash else None
    except ValueError:
        shard = None
    if shard is None or not 1 <= shard[0] <= shard[1]:
        raise click.BadParameter(
            f"{value!r}: expected K/N with 1 <= K <= N, e.g. 2/4", param_hint="--shard"
        )
    return shard


def _options(flags: dict[str, Any], *, check_imap: bool = True) -> Any:
    """The library's CheckOptions from the shared flags."""
    from preflight.options import CheckOptions, parse_server

    if flags["dns_server"]:
        try:
            parse_server(flags["dns_server"])
        except ValueError:
            raise click.BadParameter(
                "expected HOST or HOST:PORT", param_hint="--dns-server"
            ) from None
    return CheckOptions(
        timeout=flags["timeout"],
        ca_file=flags["ca_file"],
        insecure=flags["insecure"],
        dns_server=flags["dns_server"],
        resolve_hosts_with_dns_server=flags["dns_for_hosts"],
        allow_plaintext_auth=flags["allow_plaintext_auth"],
        smtp_security=flags["smtp_security"],
        imap_security=flags["imap_security"],
        check_imap=check_imap,
        check_domain=not flags["no_domain_check"],
        strict=flags["strict"],
        roundtrip=flags["roundtrip"],
        throttle_retry=flags["throttle_retry"] or None,
        **_blocklist_options(flags),
        **_issue14_options(flags),
    )


def _blocklist_options(flags: dict[str, Any]) -> dict[str, Any]:
    """The blocklist check's CheckOptions fields from its flags (zones checked: exit 2)."""
    values: dict[str, Any] = {"check_blocklist": not flags.get("no_blocklist_check", False)}
    for name, flag in (
        ("domain_blocklists", "--domain-blocklist"),
        ("ip_blocklists", "--ip-blocklist"),
    ):
        given = flags.get(name) or ()
        if not given:
            continue
        from preflight.checks._zones import valid_zone

        try:
            values[name] = tuple(dict.fromkeys(valid_zone(zone) for zone in given))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=flag) from None
    return values


_ACCOUNT_FLAGS = (
    "smtp_host",
    "imap_host",
    "user",
    "from_email",
    "imap_user",
    "password_env",
    "password_file",
)


def _payload_from_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """One account from the flags; fields no flag gives take defaults."""
    if not flags["smtp_host"]:
        raise click.UsageError("give a file of accounts, - for standard input, or --host")
    if not flags["user"]:
        raise click.UsageError("--user is required to check an account from flags")
    password = _password(flags)
    from_email = flags["from_email"] or flags["user"]
    payload: dict[str, Any] = {
        "from_name": from_email,
        "from_email": from_email,
        "user_name": flags["user"],
        "password": password,
        "smtp_host": flags["smtp_host"],
        "smtp_port": flags["smtp_port"],
        # Without --imap-host the IMAP check is skipped; the payload still needs the
        # fields, so they repeat the SMTP host (never contacted as IMAP).
        "imap_host": flags["imap_host"] or flags["smtp_host"],
        "imap_port": flags["imap_port"],
        "warmup_enabled": False,
    }
    if flags["imap_user"]:
        payload["imap_user_name"] = flags["imap_user"]
    return payload


def _password(flags: dict[str, Any]) -> str:
    """The password from the environment, a file, or a hidden prompt; never a flag value."""
    import os

    if flags["password_env"] and flags["password_file"]:
        raise click.UsageError("give --password-env or --password-file, not both")
    if flags["password_env"]:
        name = flags["password_env"]
        value = os.environ.get(name)
        if value is None:
            raise click.UsageError(f"the environment variable {name} is not set (--password-env)")
        return value
    if flags["password_file"]:
        path = flags["password_file"]
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputProblem(f"{path}: cannot read the password file ({exc})") from None
    if sys.stdin.isatty():
        value = click.prompt("Password", hide_input=True, err=True)
        return str(value)
    raise click.UsageError(
        "no password: give --password-env NAME, --password-file PATH, or run on a terminal "
        "to be prompted"
    )


def _run_check(
    accounts: str | None,
    payloads: list[dict[str, Any]] | None,
    options: Any,
    flags: dict[str, Any],
) -> None:
    from preflight.reader import InputError, open_accounts, read_accounts

    output_format = flags["output_format"]
    with _output(flags) as out, contextlib.ExitStack() as inputs:
        writer: Writer | None = None
        progress: Any = None
        failed = False

        async def run(items: Any) -> None:
            nonlocal failed
            from preflight.runner import check_many

            assert writer is not None
            async for report in check_many(
                items,
                options,
                concurrency=flags["concurrency"],
                per_host=flags["per_host"],
                # jsonl streams each report as it is done; text and json keep input order.
                ordered=output_format != "jsonl",
            ):
                _emit(writer, progress, report)
                failed = failed or not report.ok

        try:
            if accounts is None:
                items: Iterator[Any] = iter(payloads or ())
            else:
                stream = inputs.enter_context(open_accounts(accounts))
                source = "<stdin>" if accounts == "-" else accounts
                items = read_accounts(stream, source=source, fmt=flags["input_format"])
                if flags.get("shard"):
                    k, n = flags["shard"]
                    items = (item for item in items if item.index % n == k - 1)
            # The first account's network gets under way before the writer and the
            # rest load (preflight._early).
            items = _early_start(items, options)
            writer, progress = _writer_and_progress(flags, out, accounts)
            _asyncio_run(run(items))
        except InputError as exc:
            if writer is not None:
                _abandon(writer, progress)
            raise InputProblem(str(exc)) from None
        except KeyboardInterrupt:
            # No new work was started after the signal; the checks in flight were
            # cancelled and their connections closed. Keep what is done.
            if writer is None:
                writer, progress = _writer_and_progress(flags, out, accounts)
            _interrupted(writer, progress)
        except BaseException:
            if writer is not None:
                _abandon(writer, progress)
            raise
        _finish(writer, progress)
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


def _asyncio_run(main: Any) -> None:
    import asyncio

    asyncio.run(main)


def _early_start(items: Iterator[Any], options: Any) -> Iterator[Any]:
    """The accounts, after starting the first one's address look-ups and connections
    (preflight._early) when it is valid: the network is then under way while asyncio,
    TLS and the protocol libraries load. Not with --dns-for-hosts (the probes then
    resolve through the DNS server)."""
    first = next(items, None)
    if first is None:
        return items
    if not (options.dns_server and options.resolve_hosts_with_dns_server):
        from preflight import _early
        from preflight.payload import parse_account

        data = first.data if hasattr(first, "data") else first
        account = parse_account(data).account
        if account is not None:
            timeouts = options.timeouts
            connect = timeouts.connect
            # STARTTLS on SMTP (587, the usual submission port): the early thread also
            # says EHLO and STARTTLS, the probe begins at the TLS handshake.
            starttls = options.smtp_security == "starttls" or (
                options.smtp_security is None and account.smtp_port == 587
            )
            prelude = (
                (options.local_hostname, timeouts.sniff_after, timeouts.command)
                if starttls
                else None
            )
            _early.start(account.smtp_host, account.smtp_port, connect, prelude=prelude)
            if options.check_imap:
                _early.start(account.imap_host, account.imap_port, connect)
    return itertools.chain((first,), items)


def _emit(writer: Writer, progress: Any, item: Any) -> None:
    """Write one report (or submit record), keeping the progress line out of its way."""
    if progress is not None:
        progress.clear()
    writer.write(item)
    if progress is not None:
        progress.update(item.ok)


def _finish(writer: Writer, progress: Any) -> None:
    if progress is not None:
        progress.clear()
    writer.close()


@contextlib.contextmanager
def _output(flags: dict[str, Any]) -> Iterator[TextIO]:
    """Standard output, or the --output file.

    The reports go to a new file beside FILE, created mode 0600 (reports name
    mailboxes and may carry platform messages), which replaces FILE when the run
    ends with a report, complete or interrupted (the ``SystemExit`` of Ctrl-C). A run
    that stops on an error (unreadable input: exit 2) leaves FILE as it was. A FILE
    that is not a regular file (``/dev/null``, a FIFO) is written in place.
    """
    path = flags.get("output")
    if not path:
        yield sys.stdout
        return
    import stat
    import tempfile

    failed = f"{path}: cannot write the output file"
    try:
        mode: int | None = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise InputProblem(f"{failed} ({exc.strerror})") from None
    if mode is not None and not stat.S_ISREG(mode):
        try:
            handle = open(path, "w", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        except OSError as exc:
            raise InputProblem(f"{failed} ({exc.strerror})") from None
        with handle:
            yield handle
        return
    if mode is not None and not os.access(path, os.W_OK):
        raise InputProblem(f"{failed} (Permission denied)")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temp = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
        )
    except OSError as exc:
        raise InputProblem(f"{failed} ({exc.strerror})") from None
    keep = False
    try:
        with open(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
            try:
                yield handle
            except SystemExit:  # Ctrl-C: the writer closed its "interrupted" report
                keep = True
                raise
            keep = True
    finally:
        try:
            if keep:
                os.replace(temp, path)
        except OSError as exc:
            raise InputProblem(f"{failed} ({exc.strerror})") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


def _writer_and_progress(
    flags: dict[str, Any], out: TextIO, accounts: str | None, *, submit: bool = False
) -> tuple[Writer, Any]:
    from preflight.cli._progress import Progress
    from preflight.cli._render import make_writer, use_color

    writer = make_writer(flags["output_format"], out, color=use_color(out), submit=submit)
    if not _shows_progress(flags):
        return writer, None
    total = _count_accounts(accounts)
    if total is not None and flags.get("shard"):
        k, n = flags["shard"]
        total = max(0, total - (k - 1) + n - 1) // n  # the indices k-1, k-1+n, ...
    return writer, Progress(sys.stderr, total)


def _shows_progress(flags: dict[str, Any]) -> bool:
    """A progress line on standard error: a terminal, no --quiet, no NO_COLOR."""
    return not flags.get("quiet") and sys.stderr.isatty() and not os.environ.get("NO_COLOR")


def _count_accounts(accounts: str | None) -> int | None:
    """How many accounts a JSON Lines or CSV file holds (its non-blank lines), for
    the progress line's ETA; None when it cannot be known cheaply."""
    if accounts is None or accounts == "-":
        return None
    suffix = os.path.splitext(accounts)[1].lower()
    if suffix not in (".jsonl", ".ndjson", ".csv"):
        return None
    try:
        with open(accounts, "rb") as handle:
            lines = sum(1 for line in handle if line.strip())
    except OSError:
        return None
    return lines - 1 if suffix == ".csv" else lines


def _interrupted(writer: Writer, progress: Any) -> NoReturn:
    if progress is not None:
        progress.clear()
    writer.close(interrupted=True)
    click.echo("Interrupted: the reports of finished accounts were written.", err=True)
    sys.exit(EXIT_INTERRUPTED)


_SUBMIT_HELP = """Check accounts, then save only the verified ones to SmartLead.

ACCOUNTS is a file of accounts, as for check (- for standard input). Every account
is checked exactly as `preflight check` does; those that pass are POSTed to
/email-accounts/save, within SmartLead's rate limits; the others are listed with
their codes and hints and are not sent.

Before any account is checked, the run makes sure it can finish: --base-url is a
valid http(s) URL, the journal is usable and belongs to this base URL and API key,
no other run is using it, and SmartLead accepts the key (one listing call, limit=1).
Any of these failing exits 2 at once, before a mailbox is contacted.

Every outcome is appended to a journal (--journal; by default ACCOUNTS with
.journal.jsonl added; created 0600, locked for the run). Interrupt the run at any
point and run the same command again: accounts already saved are not sent again,
and an account whose earlier POST had an unknown outcome (timeout, dropped
connection, 5xx) is looked up on the platform before it is sent, so no account is
created twice.

A 429 is waited out as Retry-After asks, up to --max-retry-wait seconds (said on
standard error); a longer wait is not made: that account is recorded as not sent.

The API key comes from the SMARTLEAD_API_KEY environment variable or
--api-key-file; it never goes on the command line, and is never printed. What the
platform says is shown and journaled with the key and the account's secrets masked.

\b
Exit status: 0 every account was verified and saved (or had been),
             1 some account failed its check or was not saved,
             2 bad usage, unreadable input, an unusable or busy journal,
               or the API key was refused.

\b
Examples:
  SMARTLEAD_API_KEY=... preflight submit accounts.csv
  preflight submit --dry-run accounts.csv
  preflight submit --api-key-file ~/.smartlead-key --format jsonl accounts.jsonl
"""


@cli.command(context_settings=CONTEXT_SETTINGS, help=_SUBMIT_HELP)
@click.argument("accounts", metavar="ACCOUNTS")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check, and show what would be sent (secrets masked); send nothing, "
    "no key or journal needed.",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(),
    metavar="PATH",
    help="The journal of outcomes, for resuming.  [default: ACCOUNTS.journal.jsonl]",
)
@_platform_options
@_check_options
def submit(accounts: str, **flags: Any) -> None:
    import asyncio
    from pathlib import Path

    from preflight.reader import InputError, open_accounts, read_accounts
    from preflight.smartlead._client import (
        LookupFailed,
        RateLimit,
        SmartLeadClient,
        Unauthorized,
        check_base_url,
    )
    from preflight.smartlead._journal import Journal, JournalError
    from preflight.smartlead._submit import submit_many

    options = _options(flags)
    dry_run = flags["dry_run"]
    try:
        base_url = check_base_url(flags["base_url"])
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    key = None if dry_run else _api_key(flags["api_key_file"])
    if flags["journal_path"]:
        journal_path = Path(flags["journal_path"])
    elif accounts == "-":
        journal_path = Path("preflight-submit.journal.jsonl")
    else:
        journal_path = Path(accounts + ".journal.jsonl")
    progress: Any = None

    def notify(message: str) -> None:
        if progress is not None:
            progress.clear()
        click.echo(message, err=True)

    def client() -> SmartLeadClient:
        from preflight.secret import Secret

        return SmartLeadClient(
            key or Secret(""),
            base_url,
            rate_limit=RateLimit(flags["rate_per_minute"], flags["burst"]),
            max_retry_wait=flags["max_retry_wait"],
            notify=notify,
        )

    class NotStarted(Exception):
        """The key check failed: nothing was checked or sent."""

    if dry_run:
        journal = Journal.memory()  # a dry run neither reads nor writes the journal
    else:
        assert key is not None
        try:
            journal = Journal.open(journal_path, base_url=base_url, api_key=key.reveal())
        except JournalError as exc:
            raise InputProblem(str(exc)) from None
    try:
        if journal.repaired:
            click.echo(f"{journal_path}: {journal.repaired}", err=True)
        if journal.bad_lines:
            shown = ", ".join(map(str, journal.bad_lines[:20]))
            more = f" and {len(journal.bad_lines) - 20} more" if len(journal.bad_lines) > 20 else ""
            click.echo(
                f"{journal_path}: skipped unreadable line(s) {shown}{more} "
                "(not UTF-8 or not a journal entry)",
                err=True,
            )
        if journal.adopted:
            click.echo(
                f"{journal_path}: a journal without a header; adopted for {base_url}", err=True
            )
        with _output(flags) as out:
            writer, progress = _writer_and_progress(flags, out, accounts, submit=True)
            all_ok = True

            async def run(items: Any) -> None:
                nonlocal all_ok
                api = client()
                try:
                    if not dry_run:
                        # One cheap authenticated call before any account is read,
                        # with the client (and rate limiter) the saves use.
                        try:
                            await api.verify_key()
                        except (Unauthorized, LookupFailed) as exc:
                            raise NotStarted(str(exc)) from None
                    async for record in submit_many(
                        items,
                        options,
                        api,
                        journal,
                        concurrency=flags["concurrency"],
                        per_host=flags["per_host"],
                        dry_run=dry_run,
                    ):
                        _emit(writer, progress, record)
                        all_ok = all_ok and record.ok
                finally:
                    await api.aclose()

            try:
                with open_accounts(accounts) as stream:
                    source = "<stdin>" if accounts == "-" else accounts
                    items = read_accounts(stream, source=source, fmt=flags["input_format"])
                    if flags.get("shard"):
                        k, n = flags["shard"]
                        items = (item for item in items if item.index % n == k - 1)
                    asyncio.run(run(items))
            except InputError as exc:
                _abandon(writer, progress)
                raise InputProblem(str(exc)) from None
            except NotStarted as exc:
                # Nothing was read or written: no summary of nothing on stdout.
                if progress is not None:
                    progress.clear()
                raise InputProblem(f"{exc}. Nothing was checked or sent.") from None
            except Unauthorized as exc:
                _abandon(writer, progress)
                raise InputProblem(
                    f"{exc}. Nothing more was sent; the journal keeps what was done."
                ) from None
            except KeyboardInterrupt:
                _interrupted(writer, progress)
            except BaseException:
                _abandon(writer, progress)
                raise
            _finish(writer, progress)
    finally:
        journal.close()
    sys.exit(EXIT_OK if all_ok else EXIT_FAILED)


def _api_key(path: str | None) -> Any:
    """The API key, from a file or SMARTLEAD_API_KEY; never from a flag value."""
    import os

    from preflight.secret import Secret

    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                value = handle.readline().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise InputProblem(f"{path}: cannot read the API key file ({reason})") from None
        if not value:
            raise InputProblem(f"{path}: the API key file is empty")
        return Secret(value)
    value = os.environ.get("SMARTLEAD_API_KEY", "").strip()
    if not value:
        raise click.UsageError(
            "no API key: set SMARTLEAD_API_KEY or give --api-key-file PATH (or use --dry-run)"
        )
    return Secret(value)


def _abandon(writer: Writer, progress: Any = None) -> None:
    """The run cannot finish: keep what was streamed, never half a JSON document."""
    if progress is not None:
        progress.clear()
    writer.discard()


from preflight.cli._audit import audit as _audit  # noqa: E402 - uses the helpers above

cli.add_command(_audit)

from preflight.cli._discover import discover_command as _discover  # noqa: E402 - as above

cli.add_command(_discover)


def _safe_standard_streams() -> None:
    """Standard output and error never fail on what their encoding cannot take.

    A report can carry a server reply's non-UTF-8 bytes (kept as lone surrogates)
    and any Unicode text; on a strict UTF-8, ASCII or Latin-1 stream (LC_ALL=C,
    PYTHONIOENCODING) those are written as backslash escapes instead of raising.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def main() -> NoReturn:
    """The console script."""
    _safe_standard_streams()
    try:
        cli.main(prog_name="preflight", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`preflight ... | head`): not an error of ours.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_FAILED)
    except Exception as exc:  # the last line of defence: see _internal_error
        _internal_error(exc)
    sys.exit(EXIT_OK)


def _internal_error(exc: Exception) -> NoReturn:
    """A bug, not the user's mistake: one line on stderr and exit 70, no traceback.

    The exception's message is not shown: it may quote a value that holds a password
    (a ``UnicodeEncodeError`` quotes its whole string). The type and the place are
    enough to report the bug; ``PREFLIGHT_DEBUG=1`` shows the traceback to whoever
    asks for it, on their own terminal.
    """
    if os.environ.get("PREFLIGHT_DEBUG"):
        raise exc
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    click.echo(
        f"preflight: internal error ({type(exc).__name__}{where}). This is a bug in "
        "preflight, not in your input: please report it with the command you ran "
        "(PREFLIGHT_DEBUG=1 shows the traceback; it may quote your data).",
        err=True,
    )
    sys.exit(EXIT_INTERNAL)
