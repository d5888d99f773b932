"""The ``roundtrip`` check (``--roundtrip``): a real message from the account to itself.

A login proves a password, not that mail gets through. This check sends one
uniquely tagged message from ``from_email`` to ``from_email`` over SMTP (a real
MAIL, RCPT and DATA), looks for it over IMAP in INBOX and in the Junk folder until
it arrives or the deadline passes, reports how long delivery took and where the
message landed, and deletes it. That catches what a login cannot:

- a From address the server will not send as: ``roundtrip_send_refused``
  (Microsoft's ``554 5.2.252 SendAsDenied`` comes only at the end of DATA);
- SMTP and IMAP credentials of different mailboxes, or mail that does not arrive:
  ``roundtrip_not_delivered``;
- mail filed as spam: ``roundtrip_junk``, a warning.

The steps, all before one deadline (the event loop's time):

1. IMAP: log in exactly as the ``imap`` check does
   (:func:`~preflight.checks.imap.open_imap_session`), ask CAPABILITY, and find the
   Junk folder: ``LIST (SPECIAL-USE)`` (else a plain ``LIST``) for ``\\Junk``, else
   a folder named Junk, Spam, Junk E-mail, Bulk Mail, ``[Gmail]/Spam``...
2. SMTP: log in exactly as the ``smtp`` check does
   (:func:`~preflight.checks.smtp.open_smtp_session`), send the message, QUIT.
3. IMAP: ``EXAMINE`` (read-only) INBOX, then the Junk folder, and ``UID SEARCH`` each
   for the tag, again after 0.1 s, 0.16 s, ... at most 3 s apart, until found.
   ``delivery_ms`` is the time from the server's acceptance of DATA to the search
   that found the message: at most one wait longer than the delivery itself.
4. Found: ``SELECT`` that folder, ``UID STORE +FLAGS.SILENT (\\Deleted)`` and ``UID
   EXPUNGE`` (UIDPLUS). Without UIDPLUS a plain ``EXPUNGE`` would also erase what
   the user had marked deleted, so it is used only when no other message of the
   folder is; otherwise the test message stays, flagged ``\\Deleted``. ``LOGOUT``.

The search stops a little before the deadline (a tenth of the time left after
sending, at most 1 s), which is kept for the deletion and the goodbyes. The copy a
provider keeps in the Sent folder (Gmail, Microsoft 365) is not looked for or deleted.

Failures of the sessions' own commands are translated by the probes
(:meth:`SmtpSession.failure <preflight.checks.smtp.SmtpSession.failure>`,
:meth:`ImapSession.failure <preflight.checks.imap.ImapSession.failure>`); a refusal
of the message is this check's result, classified in :meth:`_Roundtrip.refused`.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import re
import ssl
import uuid
from dataclasses import dataclass, replace
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, Final

import aiosmtplib

from preflight._net import SHORT_LIMIT, ProbeState, ProbeStop, reportable
from preflight._resolver import HostLookup
from preflight.checks._imap_client import ImapError, Reply, capabilities_of, quote
from preflight.checks.imap import ImapSession, open_imap_session
from preflight.checks.smtp import SmtpSession, open_smtp_session
from preflight.options import CheckOptions
from preflight.payload import Account
from preflight.report import CheckResult, Code, Status

__all__ = ["TAG_HEADER", "probe_roundtrip"]

#: The header that carries the message's unique tag (also in its Subject).
TAG_HEADER: Final = "X-Preflight-Roundtrip"

#: Seconds between two searches: the first, the factor, the most.
_FIRST_WAIT, _BACKOFF, _LONGEST_WAIT = 0.1, 1.6, 3.0
#: The share of the time left after sending, at most this many seconds, kept back
#: at the end of the search for deleting the message and saying goodbye.
_CLEANUP_SHARE, _CLEANUP_MOST = 0.1, 1.0
#: LOGOUT and QUIT are courtesies: a server slow to say goodbye holds nothing.
_GOODBYE_TIMEOUT = 2.0

#: Junk folder names (the last part of the name, lower case), for servers that do
#: not mark the folder ``\\Junk``: Dovecot and most hosts, Outlook, Yahoo, Gmail.
_JUNK_NAMES: Final = ("junk", "spam", "junk e-mail", "junk email", "bulk mail", "bulk")

_LIST = re.compile(r'^LIST \(([^)]*)\) (NIL|"(?:[^"\\]|\\.)*") ?(.*)$', re.IGNORECASE)
_LITERAL = re.compile(r"^\{(\d+)\+?\}$")
#: A UID int() takes: ASCII digits (isdigit() also passes "²"), not thousands of them.
_UID = re.compile(r"[0-9]{1,18}")

# Replies that mean "this mailbox may not send as that From address".
_SEND_AS = re.compile(
    r"SendAsDenied|5\.2\.252|not allowed to send as|send as this sender|5\.7\.60\b"
    r"|not owned by user|Relaying disallowed as|Sender address rejected",
    re.IGNORECASE,
)

_SEND_AS_HINT = (
    "The server refuses to send as from_email ({address}): use the mailbox's own address "
    "as from_email, or grant the signed-in user Send As permission for it (Microsoft 365: "
    "the mailbox's delegation settings in the Exchange admin center)."
)
_RECIPIENT_HINT = (
    "The server does not take mail for from_email ({address}) from this account: check "
    "its spelling, and that it is this mailbox's own address; see details.reply."
)
_REFUSED_HINT = (
    "The login works, but the server refused the message (details.reply): check that "
    "from_email ({address}) is the mailbox's own address or an alias it may send as, and "
    "that the account may send (not suspended, not over its sending limit)."
)
_TEMPORARY_HINT = (
    "The server refused the message for now (a 4xx reply, details.reply): it may be "
    "throttling this account; run the check again later."
)
_NOT_DELIVERED_HINT = (
    "The server accepted the message, but it did not arrive in the IMAP mailbox within "
    "{seconds:g} s: the SMTP and IMAP credentials may belong to different mailboxes "
    "(check imap_user_name), from_email may forward elsewhere, or delivery is delayed "
    "(try a longer --timeout)."
)
_JUNK_HINT = (
    "Mail from the account to itself was filed as spam: warm the account up before "
    "sending campaigns, and fix the sending domain's SPF, DKIM and DMARC records."
)
_UTF8_HINT = (
    "from_email has non-ASCII characters, which need the SMTPUTF8 extension this server "
    "does not offer: use an ASCII address."
)
_BODY = """\
This message was sent by preflight to check that mail sent from this account
arrives in its own mailbox (preflight check --roundtrip). preflight deletes it
once found; if you can read this, that clean-up did not finish, and you may
delete this message.
"""


@dataclass(frozen=True)
class _Found:
    folder: str
    uid: int
    delivery_ms: float
    junk: bool


async def probe_roundtrip(
    account: Account,
    smtp_host: asyncio.Future[HostLookup],
    imap_host: asyncio.Future[HostLookup],
    options: CheckOptions,
    context: ssl.SSLContext,
    deadline: float,
) -> CheckResult:
    """Send a tagged message from the account to itself and find it over IMAP, before
    the loop time ``deadline``; delete it. Run it after the smtp and imap checks passed.
    """
    trip = _Roundtrip(account, options, context)
    try:
        return await trip.run(smtp_host, imap_host, deadline)
    except ProbeStop as stop:
        return stop.result
    except TimeoutError:
        return trip.timed_out()
    finally:
        trip.close()


class _Roundtrip:
    def __init__(self, account: Account, options: CheckOptions, context: ssl.SSLContext) -> None:
        self.account = account
        self.options = options
        self.context = context
        secrets = [account.password.reveal(), account.imap_secret.reveal()]
        secrets.append(account.access_token or "")
        self.state = ProbeState("roundtrip", tuple(s for s in secrets if s))
        self.address = account.from_email
        self.tag = uuid.uuid4().hex
        self.message_id = email.utils.make_msgid(
            "preflight", domain=account.email_domain or "preflight.invalid"
        )
        self.imap: ImapSession | None = None
        self.smtp: SmtpSession | None = None
        self.folders: list[str] = ["INBOX"]
        self.junk_folder: str | None = None
        self.uidplus = False
        self.sent_at: float | None = None
        self.search_seconds = 0.0
        self.found: _Found | None = None
        self.deleted = False
        #: The verdict, once known: a timeout during the clean-up does not change it.
        self.outcome: CheckResult | None = None
        details = self.state.details
        details.update(sent_as=self.address, message_id=self.message_id)
        details.update(folder=None, delivery_ms=None, deleted=False)

    # --- results ---------------------------------------------------------------

    def fail(
        self, code: Code, message: str, hint: str, reply: str | None = None, **details: Any
    ) -> ProbeStop:
        self.state.details.update(details)
        return ProbeStop(self.state.fail(code, message, hint, reply))

    def session_failed(self, result: CheckResult, protocol: str) -> ProbeStop:
        """A session that could not be opened: the probe's result, as this check's."""
        details = {**self.state.details, **result.details, "session": protocol}
        message = f"{protocol.upper()}: {result.message}"
        elapsed = self.state.elapsed_ms()
        return ProbeStop(
            replace(result, name="roundtrip", message=message, elapsed_ms=elapsed, details=details)
        )

    def delivered(self, found: _Found, note: str = "") -> CheckResult:
        details = self.state.details
        folder = reportable(found.folder, limit=SHORT_LIMIT)  # a name the server chose
        details.update(folder=folder, delivery_ms=round(found.delivery_ms, 1))
        details["deleted"] = self.deleted
        seconds = found.delivery_ms / 1000
        where = f"the {folder} folder (spam)" if found.junk else folder
        message = f"sent as {self.address}; arrived in {where} after {seconds:.1f} s"
        message += "; " + (note or ("deleted" if self.deleted else "not deleted"))
        if found.junk:
            return CheckResult(
                "roundtrip",
                Status.WARN,
                Code.ROUNDTRIP_JUNK,
                message,
                _JUNK_HINT,
                self.state.elapsed_ms(),
                dict(details),
            )
        return self.state.passed(message)

    def not_delivered(self) -> CheckResult:
        seconds = round(self.search_seconds, 1)
        folders = " and ".join(self.folders)
        self.state.details["searched"] = list(self.folders)
        self.state.details["waited_ms"] = round(self.search_seconds * 1000, 1)
        return self.state.fail(
            Code.ROUNDTRIP_NOT_DELIVERED,
            f"sent as {self.address}, but not found in {folders} within {seconds:g} s",
            _NOT_DELIVERED_HINT.format(seconds=seconds),
        )

    def timed_out(self) -> CheckResult:
        if self.outcome is not None:
            return self.outcome
        if self.found is not None:
            return self.delivered(self.found, "the deadline came before it was deleted")
        if self.sent_at is not None:  # sent, and not found by the deadline
            self.search_seconds = self.waited()
            return self.not_delivered()
        step = self.state.step
        return self.state.fail(
            Code.TIMEOUT,
            f"no answer within the deadline (during {step})",
            "The server did not answer in time; run the check again, with a longer "
            "--timeout if the server is slow.",
        )

    def waited(self) -> float:
        if self.sent_at is None:
            return 0.0
        return asyncio.get_running_loop().time() - self.sent_at

    def close(self) -> None:
        """Close hard whatever is still open."""
        for session in (self.smtp, self.imap):
            if session is not None:
                session.close()
        self.smtp = self.imap = None

    # --- the steps ---------------------------------------------------------------

    async def run(
        self,
        smtp_host: asyncio.Future[HostLookup],
        imap_host: asyncio.Future[HostLookup],
        deadline: float,
    ) -> CheckResult:
        # The probes' code opens the sessions and keeps the deadline itself, so that a
        # timeout there is reported as the smtp or imap check would (which step).
        self.state.step = "imap_login"
        imap = await open_imap_session(
            self.account, imap_host, self.options, self.context, deadline
        )
        if isinstance(imap, CheckResult):
            raise self.session_failed(imap, "imap")
        self.imap = imap
        async with asyncio.timeout_at(deadline):
            await self.find_junk_folder()
        self.state.step = "smtp_login"
        smtp = await open_smtp_session(
            self.account, smtp_host, self.options, self.context, deadline
        )
        if isinstance(smtp, CheckResult):
            raise self.session_failed(smtp, "smtp")
        self.smtp = smtp
        async with asyncio.timeout_at(deadline):
            await self.send(smtp)
            found = await self.search(deadline)
            if found is None:
                self.outcome = self.not_delivered()
            else:
                self.found = found
                await self.delete(found)
                self.outcome = self.delivered(found)
            await self.goodbye()
        return self.outcome

    # --- IMAP ----------------------------------------------------------------------

    async def imap_command(self, step: str, name: str, *args: str) -> Reply:
        """One IMAP command; a lost connection or confusion ends the check."""
        assert self.imap is not None
        self.state.step = step
        try:
            async with asyncio.timeout(self.options.timeouts.command):
                return await self.imap.client.command(name, *args)
        except (ImapError, OSError, ssl.SSLError) as exc:
            result = self.imap.failure(exc, step)
            raise self.fail(result.code, f"IMAP: {result.message}", result.hint or "") from None

    def imap_refused(self, step: str, reply: Reply) -> ProbeStop:
        return self.fail(
            Code.PROTOCOL_ERROR,
            f"IMAP: the server refused {step}: {reply.line}",
            "The IMAP server refused a command the check needs; see details.reply.",
            reply=reply.line,
        )

    async def find_junk_folder(self) -> None:
        """The folder marked ``\\Junk``, else one with a usual spam folder name."""
        # Asked again: servers add some (UIDPLUS, SPECIAL-USE) only after the login.
        reply = await self.imap_command("capability", "CAPABILITY")
        capabilities = {word.upper() for word in capabilities_of(reply)}
        self.uidplus = "UIDPLUS" in capabilities
        listed: list[tuple[str, set[str]]] = []
        if "SPECIAL-USE" in capabilities:
            reply = await self.imap_command("list", "LIST", "(SPECIAL-USE)", '""', '"*"')
            if reply.ok:
                listed = _parse_list(reply.untagged)
        if not any("\\JUNK" in flags for _, flags in listed):
            reply = await self.imap_command("list", "LIST", '""', '"*"')
            listed = _parse_list(reply.untagged) if reply.ok else []
        usable = [
            (name, flags) for name, flags in listed if not flags & _UNSELECTABLE and _quotable(name)
        ]
        marked = [name for name, flags in usable if "\\JUNK" in flags]
        named = sorted(
            (name for name, _ in usable if _last_part(name).lower() in _JUNK_NAMES),
            key=lambda name: (name.count("/") + name.count("."), len(name)),
        )
        candidates = [name for name in (*marked, *named) if name.upper() != "INBOX"]
        if candidates:
            self.junk_folder = candidates[0]
            self.folders.append(candidates[0])
        self.state.details["junk_folder"] = (
            None if self.junk_folder is None else reportable(self.junk_folder, limit=SHORT_LIMIT)
        )

    async def search(self, deadline: float) -> _Found | None:
        """Look for the message in every folder, again and again, until the deadline
        (less a little, kept for the clean-up)."""
        loop = asyncio.get_running_loop()
        assert self.sent_at is not None
        keep = min(_CLEANUP_MOST, _CLEANUP_SHARE * max(deadline - self.sent_at, 0.0))
        until = deadline - keep
        wait = _FIRST_WAIT
        while True:
            self.state.step = "search"
            for folder in self.folders:
                uid = await self.search_folder(folder)
                if uid is not None:
                    delivery = (loop.time() - self.sent_at) * 1000
                    return _Found(folder, uid, delivery, junk=folder == self.junk_folder)
            now = loop.time()
            self.search_seconds = now - self.sent_at
            if now >= until:
                return None
            await asyncio.sleep(min(wait, until - now))
            wait = min(wait * _BACKOFF, _LONGEST_WAIT)

    async def search_folder(self, folder: str) -> int | None:
        """The UID of the tagged message in ``folder``, opened read-only; or None."""
        reply = await self.imap_command("search", "EXAMINE", quote(folder))
        if not reply.ok:
            if folder == "INBOX":
                raise self.imap_refused("EXAMINE INBOX", reply)
            return None  # a Junk folder that cannot be opened holds nothing we can see
        tag = quote(self.tag)
        # The header, or the Subject for servers that do not search custom headers.
        reply = await self.imap_command(
            "search", "UID", "SEARCH", "OR", "HEADER", TAG_HEADER, tag, "SUBJECT", tag
        )
        if not reply.ok:
            reply = await self.imap_command("search", "UID", "SEARCH", "SUBJECT", tag)
        if not reply.ok:
            raise self.imap_refused("UID SEARCH", reply)
        uids = _search_result(reply)
        return min(uids) if uids else None

    async def delete(self, found: _Found) -> None:
        """Delete the message: flag it, and expunge it (only it)."""
        reply = await self.imap_command("delete", "SELECT", quote(found.folder))
        if not reply.ok:
            return
        uid = str(found.uid)
        reply = await self.imap_command(
            "delete", "UID", "STORE", uid, "+FLAGS.SILENT", r"(\Deleted)"
        )
        if not reply.ok:
            return
        if self.uidplus:
            reply = await self.imap_command("delete", "UID", "EXPUNGE", uid)
            self.deleted = reply.ok
            return
        # A plain EXPUNGE erases every message flagged \Deleted: only when ours is alone.
        reply = await self.imap_command("delete", "UID", "SEARCH", "DELETED")
        if reply.ok and _search_result(reply) == {found.uid}:
            reply = await self.imap_command("delete", "EXPUNGE")
            self.deleted = reply.ok

    async def goodbye(self) -> None:
        self.state.step = "logout"
        if self.imap is not None:
            await self.imap.logout()

    # --- SMTP ----------------------------------------------------------------------

    def message(self, utf8: bool) -> bytes:
        message = EmailMessage(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
        sender = Address(display_name=self.account.from_name, addr_spec=self.address)
        message["From"] = sender
        message["To"] = Address(addr_spec=self.address)
        message["Subject"] = f"preflight round-trip test {self.tag}"
        message["Date"] = email.utils.format_datetime(email.utils.localtime())
        message["Message-ID"] = self.message_id
        message[TAG_HEADER] = self.tag
        # No vacation or other automatic replies to this one (RFC 3834).
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(_BODY)
        return message.as_bytes()

    async def send(self, smtp: SmtpSession) -> None:
        """Send the message from the account to itself, then QUIT."""
        client = smtp.smtp
        utf8 = not self.address.isascii()
        options: list[str] = []
        if utf8:
            if not client.supports_extension("smtputf8"):
                raise self.fail(
                    Code.ROUNDTRIP_SEND_REFUSED,
                    "the server does not offer SMTPUTF8, which from_email needs",
                    _UTF8_HINT,
                )
            options.append("SMTPUTF8")
        encoding = "utf-8" if utf8 else "ascii"
        try:
            self.state.step = "mail"
            await client.mail(self.address, options=options, encoding=encoding)
            self.state.step = "rcpt"
            await client.rcpt(self.address, encoding=encoding)
            self.state.step = "data"
            response = await client.data(self.message(utf8))
        except aiosmtplib.SMTPResponseException as exc:
            raise self.refused(exc.code, exc.message) from None
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            result = smtp.failure(exc, self.state.step)
            raise self.fail(result.code, f"SMTP: {result.message}", result.hint or "") from None
        self.sent_at = asyncio.get_running_loop().time()
        reply = f"{response.code} {response.message}"
        self.state.details["smtp_reply"] = reportable(reply, self.state.secrets)
        self.state.step = "quit"
        await smtp.quit()
        smtp.close()
        self.smtp = None

    def refused(self, code: int, text: str) -> ProbeStop:
        """The server's refusal of MAIL, RCPT or DATA, classified on its meaning."""
        reply = f"{code} {text}"
        step = self.state.step.upper()
        address = self.address
        if _SEND_AS.search(reply):
            hint = _SEND_AS_HINT.format(address=address)
            what = f"the server refuses to send as {address} (at {step})"
        elif 400 <= code < 500:
            hint = _TEMPORARY_HINT
            what = f"the server refused the message for now at {step}"
        elif step == "RCPT":
            hint = _RECIPIENT_HINT.format(address=address)
            what = f"the server refused {address} as the recipient"
        else:
            hint = _REFUSED_HINT.format(address=address)
            what = f"the server refused the message at {step}"
        first = text.splitlines()[0] if text else ""
        return self.fail(Code.ROUNDTRIP_SEND_REFUSED, f"{what}: {code} {first}", hint, reply)


_UNSELECTABLE: Final = frozenset({"\\NOSELECT", "\\NONEXISTENT"})


def _quotable(name: str) -> bool:
    """Whether a mailbox name can go back to the server as a quoted string."""
    try:
        quote(name)
    except ValueError:
        return False
    return True


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _parse_list(lines: tuple[str, ...]) -> list[tuple[str, set[str]]]:
    """``(name, upper-case flags)`` of each ``LIST`` line (a literal name follows its line)."""
    found: list[tuple[str, set[str]]] = []
    for index, line in enumerate(lines):
        match = _LIST.match(line)
        if match is None:
            continue
        flags = {flag.upper() for flag in match[1].split()}
        name = match[3].strip()
        if _LITERAL.match(name) and index + 1 < len(lines):
            name = lines[index + 1]
        found.append((_unquote(name), flags))
    return found


def _last_part(name: str) -> str:
    return re.split(r"[/.]", name)[-1]


def _search_result(reply: Reply) -> set[int]:
    uids: set[int] = set()
    for line in reply.untagged:
        words = line.split()
        if words and words[0].upper() == "SEARCH":
            uids.update(int(word) for word in words[1:] if _UID.fullmatch(word))
    return uids
