"""The baseline: checking accounts with the standard library, as people script it.

    python bench/stdlib_check.py ACCOUNTS.jsonl --ca-file CA [--threads 8]

For each account (JSON Lines of save-account payloads): ``smtplib`` with STARTTLS
whatever the port (EHLO, STARTTLS, EHLO, one AUTH PLAIN, QUIT), then ``imaplib``
with implicit TLS (TLS, CAPABILITY, LOGIN, EXAMINE INBOX, LOGOUT), one after the
other, in a ``ThreadPoolExecutor`` of ``--threads`` workers (8, like the bulk checkers
people share), with a 10 s socket timeout.
Prints one JSON line per account (``{"index", "smtp", "imap"}``: ``ok`` or what went
wrong) and a summary on standard error.

Where it is kinder to itself than a typical script, on purpose (the comparison
should not flatter preflight):

- one AUTH attempt: ``SMTP.login()`` would try PLAIN and then LOGIN after a wrong
  password, two failures (two of Dovecot's ~0.5 s failure delays);
- host names are resolved once per run and remembered (as with a caching stub
  resolver), with the system's resolver, as preflight's are;
- no MX check (the standard library has no DNS client).
"""

from __future__ import annotations

import argparse
import imaplib
import json
import smtplib
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["Resolver", "check_account", "check_imap", "check_smtp"]

TIMEOUT = 10.0


class Resolver:
    """The system's resolver (``getaddrinfo``), each answer remembered for the run."""

    def __init__(self) -> None:
        self.cache: dict[str, str | None] = {}
        self.lock = threading.Lock()

    def address(self, host: str) -> str:
        with self.lock:
            known = host in self.cache
            found = self.cache.get(host)
        if not known:
            try:
                infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except socket.gaierror:
                found = None
            else:
                found = str(infos[0][4][0])
            with self.lock:
                self.cache[host] = found
        if found is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} does not resolve")
        return found


def _error(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPAuthenticationError | imaplib.IMAP4.error):
        return "auth_failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connect_refused"
    if isinstance(exc, socket.gaierror):
        return "host_not_found"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return "tls_error"
    return type(exc).__name__


class _SMTP(smtplib.SMTP):
    """smtplib, connecting to an address of our resolver's choosing."""

    resolver: Resolver

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self.resolver.address(host), port), timeout)


class _IMAP4_SSL(imaplib.IMAP4_SSL):
    resolver: Resolver

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock = socket.create_connection((self.resolver.address(self.host), self.port), timeout)
        context: ssl.SSLContext = self.ssl_context
        return context.wrap_socket(sock, server_hostname=self.host)


def check_smtp(account: dict[str, Any], context: ssl.SSLContext, resolver: Resolver) -> str:
    """STARTTLS submission (587): the case the benchmarks measure."""
    host, port = account["smtp_host"], int(account["smtp_port"])
    try:
        _SMTP.resolver = resolver
        smtp = _SMTP(host, port, timeout=TIMEOUT)
        try:
            smtp.ehlo()
            smtp.starttls(context=context)
            smtp.ehlo()
            smtp.user, smtp.password = account["user_name"], account["password"]
            smtp.auth("PLAIN", smtp.auth_plain)  # one attempt, see the docstring
            smtp.quit()
        finally:
            smtp.close()
    except Exception as exc:
        return _error(exc)
    return "ok"


def check_imap(account: dict[str, Any], context: ssl.SSLContext, resolver: Resolver) -> str:
    host, port = account["imap_host"], int(account["imap_port"])
    user = account.get("imap_user_name") or account["user_name"]
    password = account.get("imap_password") or account["password"]
    try:
        _IMAP4_SSL.resolver = resolver
        imap = _IMAP4_SSL(host, port, ssl_context=context, timeout=TIMEOUT)
        try:
            imap.login(user, password)
            status, _ = imap.select("INBOX", readonly=True)  # EXAMINE
        except BaseException:
            imap.shutdown()
            raise
        imap.logout()
        if status != "OK":
            return "no_inbox"
    except Exception as exc:
        return _error(exc)
    return "ok"


def check_account(
    account: dict[str, Any], context: ssl.SSLContext, resolver: Resolver
) -> tuple[str, str]:
    """SMTP, then IMAP: what a person's script does."""
    return check_smtp(account, context, resolver), check_imap(account, context, resolver)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("accounts")
    parser.add_argument("--ca-file")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    context = ssl.create_default_context()
    if args.ca_file:
        context.load_verify_locations(args.ca_file)
    resolver = Resolver()
    with open(args.accounts) as lines:
        accounts = [json.loads(line) for line in lines if line.strip()]
    started = time.perf_counter()
    counts: Counter[str] = Counter()

    def one(item: tuple[int, dict[str, Any]]) -> str:
        index, account = item
        smtp, imap = check_account(account, context, resolver)
        return json.dumps({"index": index, "smtp": smtp, "imap": imap})

    with ThreadPoolExecutor(args.threads) as pool:
        for line in pool.map(one, enumerate(accounts)):
            record = json.loads(line)
            counts[f"smtp {record['smtp']}"] += 1
            counts[f"imap {record['imap']}"] += 1
            print(line, flush=False)
    sys.stdout.flush()
    wall = time.perf_counter() - started
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    print(f"{len(accounts)} accounts in {wall:.1f} s ({summary})", file=sys.stderr)


if __name__ == "__main__":
    main()
