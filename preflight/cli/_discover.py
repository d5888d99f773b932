"""``preflight discover``: an address's SMTP and IMAP settings, as a good mail client
finds them (the table, autoconfig, SRV, Thunderbird's ISPDB, guessing); with
``--check`` the settings are then checked for real, with ``--input`` many addresses
become JSON Lines of payload skeletons.

Registered by :mod:`preflight.cli` (its last lines); imports click and the CLI's
shared helpers only, the rest when the command runs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

import click

from preflight.cli import (
    CONTEXT_SETTINGS,
    EXIT_FAILED,
    EXIT_OK,
    InputProblem,
    _password,
    _run_check,
)

if TYPE_CHECKING:
    from preflight.discover import Discovery
    from preflight.discover._ispdb import Ispdb

_DEFAULT_ISPDB_URL = "https://autoconfig.thunderbird.net/v1.1/"  # discover._ispdb
#: Addresses looked up at the same time with --input.
_CONCURRENCY = 8
#: Column names that hold the address in a CSV file, when --column is not given.
_ADDRESS_COLUMNS = ("email", "from_email", "email_address", "address", "e-mail", "mail")

_DISCOVER_HELP = """Find an address's SMTP and IMAP settings, as Thunderbird does, and more.

The order, first answer per protocol wins: the bundled table by the address's domain
(gmail.com: nothing else is asked); the domain's own autoconfig document (HTTPS); its
SRV records (RFC 6186); Thunderbird's ISPDB by the domain (--ispdb-url); the table by
the MX hosts (Google Workspace, Microsoft 365, ...) or the autodiscover CNAME; the
ISPDB by the MX host's registrable domain; the table by the SPF record; and failing
all of that, guessing host names (smtp., imap., mail.) probed on the standard ports:
connection, TLS and greeting only, never a login. --offline asks DNS only.

Prints where each setting came from; --format json gives {"payload": ..., "discovery":
...}, the payload a save-account body without from_name and password (fill them in,
then run preflight validate or check). With --check the settings found are checked
at once (the password from --password-env, --password-file or the prompt).

--input FILE reads many addresses (one a line, or a CSV column) and writes one payload
skeleton a line (JSON Lines), ready to complete for preflight check.

\b
Exit status: 0 SMTP and IMAP settings found (--check: and the check passed),
             1 either not found (--check: or the check failed), 2 bad usage.

\b
Examples:
  preflight discover alice@example.com
  preflight discover --format json alice@example.com | jq .payload
  preflight discover --offline --dns-server 127.0.0.1:5353 bob@example.test
  SMTP_PW=... preflight discover --check --password-env SMTP_PW alice@example.com
  preflight discover --input leads.csv --column email > skeletons.jsonl
"""


@click.command("discover", context_settings=CONTEXT_SETTINGS, help=_DISCOVER_HELP)
@click.argument("email", metavar="[EMAIL]", required=False)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="A readable summary, or one JSON document (payload skeleton and discovery). "
    "With --check: the check report's format. With --input: json writes each address's "
    "whole document (payload and discovery) a line instead of the payload alone.",
)
@click.option(
    "--dns-server",
    metavar="HOST[:PORT]",
    help="Resolver for every look-up (MX, SRV, TXT and host names) instead of the system's.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.5, 3600),
    default=20.0,
    show_default=True,
    metavar="SECONDS",
    help="Deadline for the whole search (per address; --check: also for the check).",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    metavar="PEM",
    help="Certificates to trust besides the system store (autoconfig, ISPDB and probes).",
)
@click.option(
    "--no-probe",
    is_flag=True,
    help="Never connect to a mail server: no guessing, only the table, DNS and HTTPS.",
)
@click.option(
    "--no-autoconfig", is_flag=True, help="Do not fetch the domain's autoconfig document."
)
@click.option(
    "--ispdb-url",
    metavar="URL",
    default=_DEFAULT_ISPDB_URL,
    show_default=True,
    envvar="PREFLIGHT_ISPDB_URL",
    help="Base URL of Thunderbird's ISPDB (or a mirror): DOMAIN is appended. https:// only. "
    "Also PREFLIGHT_ISPDB_URL.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Ask nothing but DNS: the bundled table, MX, SRV and SPF (no autoconfig, no "
    "ISPDB, no HTTP at all, no mail server).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Keep the ISPDB's answers in DIR for --cache-ttl seconds (each run asks each "
    "domain once anyway).",
)
@click.option(
    "--cache-ttl",
    type=click.FloatRange(0, 365 * 86400),
    default=86400.0,
    show_default=True,
    metavar="SECONDS",
    help="How long an answer in --cache-dir is used.",
)
@click.option(
    "--check",
    "run_check",
    is_flag=True,
    help="Then check the settings found for real (SMTP and IMAP logins, MX, domain), as "
    "preflight check does.",
)
@click.option(
    "--password-env",
    metavar="NAME",
    help="--check: read the password from the environment variable NAME.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="--check: read the password from the first line of PATH.",
)
@click.option(
    "--from-name", metavar="NAME", help="--check: the sender name (default: the address)."
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="A file of addresses (one a line, or CSV with a header; - for standard input): "
    "one payload skeleton per address, as JSON Lines.",
)
@click.option(
    "--column",
    metavar="NAME",
    help="--input CSV: the column that holds the address (default: email, from_email, ...).",
)
def discover_command(email: str | None, **flags: Any) -> None:
    from preflight.options import CheckOptions, parse_server

    if (email is None) == (flags["input_path"] is None):
        raise click.UsageError("give one EMAIL or --input FILE")
    if flags["input_path"] is not None and flags["run_check"]:
        raise click.UsageError("--check takes one EMAIL; check the file's skeletons with check")
    if flags["column"] and flags["input_path"] is None:
        raise click.UsageError("--column goes with --input")
    if not flags["run_check"]:
        given = [n for n in ("password_env", "password_file", "from_name") if flags[n]]
        if given:
            names = ", ".join("--" + n.replace("_", "-") for n in given)
            raise click.UsageError(f"{names}: only with --check")
    if flags["dns_server"]:
        try:
            parse_server(flags["dns_server"])
        except ValueError:
            raise click.BadParameter(
                "expected HOST or HOST:PORT", param_hint="--dns-server"
            ) from None
    ispdb = None if flags["offline"] else _ispdb(flags)
    options = CheckOptions(
        timeout=flags["timeout"], ca_file=flags["ca_file"], dns_server=flags["dns_server"]
    )
    if flags["input_path"] is not None:
        _many(flags["input_path"], options, ispdb, flags)
    assert email is not None
    password = _password(flags) if flags["run_check"] else None
    result = _discover_one(email, options, ispdb, flags)
    if flags["run_check"]:
        _then_check(result, password or "", flags)
    if flags["output_format"] == "json":
        from preflight._text import json_text
        from preflight.cli._render import ascii_only_stream

        ascii_only = ascii_only_stream(sys.stdout)
        click.echo(json_text(result.to_dict(), ascii_only=ascii_only, indent=2))
    else:
        from preflight.discover import render_text

        click.echo(render_text(result), nl=False)
    sys.exit(EXIT_OK if result.found else EXIT_FAILED)


def _ispdb(flags: dict[str, Any]) -> Ispdb:
    from preflight.discover._ispdb import Ispdb

    try:
        return Ispdb(
            flags["ispdb_url"],
            cache_dir=flags["cache_dir"],
            ttl=flags["cache_ttl"],
            timeout=min(5.0, flags["timeout"]),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ispdb-url") from None


def _search(email: str, options: Any, ispdb: Ispdb | None, flags: dict[str, Any]) -> Any:
    from preflight.discover import discover

    return discover(
        email,
        options,
        probe=not flags["no_probe"],
        autoconfig=not flags["no_autoconfig"],
        ispdb=ispdb,
        offline=flags["offline"],
    )


def _discover_one(
    email: str, options: Any, ispdb: Ispdb | None, flags: dict[str, Any]
) -> Discovery:
    import asyncio

    try:
        result: Discovery = asyncio.run(_search(email, options, ispdb, flags))
    except ValueError as exc:  # the only ValueError discover raises: a malformed address
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None
    return result


def _then_check(result: Discovery, password: str, flags: dict[str, Any]) -> None:
    """Print the discovery on standard error, then check the payload it gives (the
    report on standard output, exit status the check's)."""
    from preflight.discover import render_text
    from preflight.options import CheckOptions

    text = render_text(result)
    # The check follows: not the "Next: fill in ... then run preflight check" line.
    click.echo(
        "".join(line for line in text.splitlines(True) if not line.startswith("Next:")),
        nl=False,
        err=True,
    )
    if not result.found:
        click.echo("Nothing to check: the settings were not all found.", err=True)
        sys.exit(EXIT_FAILED)
    payload = {
        **result.skeleton(),
        "from_name": flags["from_name"] or result.email,
        "password": password,
    }
    dns_server = flags["dns_server"]
    options = CheckOptions(
        timeout=flags["timeout"],
        ca_file=flags["ca_file"],
        dns_server=dns_server,
        # One DNS view, as the search had: the hosts found resolve where they were found.
        resolve_hosts_with_dns_server=bool(dns_server),
    )
    check_flags = {
        "output_format": flags["output_format"],
        "output": None,
        "quiet": True,
        "concurrency": 1,
        "per_host": 5,
        "shard": None,
    }
    _run_check(None, [payload], options, check_flags)


# --- many addresses ------------------------------------------------------------------


def _many(path: str, options: Any, ispdb: Ispdb | None, flags: dict[str, Any]) -> None:
    """One skeleton per address, in the file's order, as JSON Lines on standard output;
    what is missing for an address is said on standard error."""
    import asyncio

    from preflight._text import json_text

    addresses = list(_read_addresses(path, flags["column"]))
    if not addresses:
        raise InputProblem(f"{path}: no addresses in it")
    failed = False

    async def run() -> list[Discovery | str]:
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def one(address: str) -> Discovery | str:
            async with gate:
                try:
                    found: Discovery = await _search(address, options, ispdb, flags)
                except ValueError as exc:
                    return str(exc)
                return found

        return list(await asyncio.gather(*(one(a) for _, a in addresses)))

    results = asyncio.run(run())
    for (line, address), result in zip(addresses, results, strict=True):
        if isinstance(result, str):
            failed = True
            click.echo(f"line {line}: {_printable(result)}: skipped", err=True)
            continue
        if flags["output_format"] == "json":
            click.echo(json_text(result.to_dict()))  # {"payload": ..., "discovery": ...}
        else:
            click.echo(json_text(result.skeleton()))
        if not result.found:
            failed = True
            missing = ", ".join(m for m in result.missing if m not in ("from_name", "password"))
            click.echo(f"line {line}: {_printable(address)}: not found: {missing}", err=True)
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


def _printable(text: str) -> str:
    from preflight._text import printable

    return printable(text)


def _read_addresses(path: str, column: str | None) -> Iterator[tuple[int, str]]:
    """(line number, address) of each address in the file: one a line (blank lines and
    ``#`` comments skipped), or a CSV file with a header (by its .csv suffix or a comma
    in the first line) whose address column is ``column`` or a usual name."""
    text = _read_text(path)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if not (path.lower().endswith(".csv") or "," in first or column):
        for number, line in enumerate(lines, 1):
            value = line.strip()
            if value and not value.startswith("#"):
                yield number, value
        return
    import csv
    import io

    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return
    names = [name.strip().lower() for name in header]
    wanted = [column.strip().lower()] if column else list(_ADDRESS_COLUMNS)
    index = next((names.index(name) for name in wanted if name in names), None)
    if index is None:
        what = f"no column {column!r}" if column else "no address column (email, from_email, ...)"
        raise InputProblem(f"{path}: {what} in the header; give --column NAME")
    for row in reader:
        number = reader.line_num
        if index < len(row) and row[index].strip():
            yield number, row[index].strip()


def _read_text(path: str) -> str:
    stream: TextIO
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8-sig") as stream:
            return stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputProblem(f"{path}: cannot read the addresses ({reason})") from None
