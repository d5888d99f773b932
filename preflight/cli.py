"""The ``preflight`` command line: parse, call the library, render.

This module is imported for every run, ``--help`` included, so it imports click
and nothing heavy at the top; each command imports what it needs when it runs.
This is the only module that prints.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from preflight.render import Writer

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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
                 2 bad usage or unreadable input.
    """


_FORMAT_HELP = "Report format: a readable table, one JSON document, or one JSON line per account."
_INPUT_FORMAT_HELP = (
    "How to read ACCOUNTS. 'auto' tells a JSON object, JSON array, JSON Lines and CSV "
    "apart by content (and by a .csv/.jsonl suffix)."
)


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("accounts", metavar="ACCOUNTS", required=False)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "jsonl"]),
    default="text",
    show_default=True,
    help=_FORMAT_HELP,
)
@click.option(
    "--input-format",
    type=click.Choice(["auto", "json", "jsonl", "csv"]),
    default="auto",
    show_default=True,
    help=_INPUT_FORMAT_HELP,
)
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
    from preflight.reader import InputError, open_accounts, read_accounts
    from preflight.render import make_writer, use_color
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


def _abandon(writer: Writer) -> None:
    """The run cannot finish: keep what was streamed, never half a JSON document."""
    writer.discard()


def main() -> NoReturn:
    """The console script."""
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
    sys.exit(EXIT_OK)
