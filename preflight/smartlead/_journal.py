"""The submit journal: every outcome appended as it happens, read back to resume.

Format (JSON Lines, UTF-8, created 0600):

- line 1, the header, binds the journal to one platform:
  ``{"journal": 1, "base_url": "https://server.smartlead.ai/api/v1",
  "key_fingerprint": "<16 hex>"}``. The fingerprint is an HMAC-SHA256 of the API
  key under a fixed label, cut to 16 hex digits: enough to tell two keys apart,
  never the key. A journal bound to another base URL or key is refused
  (:class:`JournalError`): its "saved" entries say nothing about this platform.
  A journal from before the header existed is adopted by the first run that opens
  it: a header line is appended, and from then on it is bound.
- then one entry per line: ``{"time", "key", "event", "account_id",
  "http_status", "message"}``. ``key`` is :func:`account_key` of the address.

Each entry is written with one ``os.write`` of the whole line on an ``O_APPEND``
descriptor, then ``fsync``: a crash can tear at most the line being written. On
open, a last line without its newline (a torn tail) is repaired: completed with a
newline when it is a whole entry, else cut off; either way it is reported. Lines
that cannot be read (not UTF-8, not JSON, not an entry) are skipped and reported
by number (:attr:`Journal.bad_lines`).

One run at a time: :meth:`Journal.open` takes an exclusive ``flock`` on a sidecar
``JOURNAL.lock`` (which holds the owner's pid) for as long as the journal is open;
a second run on the same journal gets :class:`JournalBusy`.

An entry never holds a password, token or API key: only the address, the outcome
and what the platform said (scrubbed by the client before it gets here).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import os
import stat
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from preflight.errors import PreflightError

__all__ = [
    "FORMAT_VERSION",
    "Entry",
    "Journal",
    "JournalBusy",
    "JournalError",
    "account_key",
    "key_fingerprint",
]

FORMAT_VERSION: Final = 1
_FINGERPRINT_LABEL: Final = b"preflight journal key fingerprint v1"


def account_key(from_email: str) -> str:
    """The journal's identity of an account, the same for every spelling of it.

    NFC, case-folded local part; the domain in its ASCII (IDNA A-label) form,
    lower case. ``Jose\\u0301@Bu\\u0308cher.test``, ``josé@bücher.test`` and
    ``josé@xn--bcher-kva.test`` are one account. Used both for the addresses as
    given in the input (to skip saved accounts) and for the validated ones (the
    entries written): one function, so the two can never disagree. Text that is
    not a valid address falls back to NFC, stripped, case-folded.
    """
    text = unicodedata.normalize("NFC", from_email.strip())
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(text, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return unicodedata.normalize("NFC", text.casefold())
    local = unicodedata.normalize("NFC", unicodedata.normalize("NFC", valid.local_part).casefold())
    return f"{local}@{valid.ascii_domain.lower()}"


def key_fingerprint(api_key: str) -> str:
    """16 hex digits that tell API keys apart without revealing them."""
    digest = hmac.new(_FINGERPRINT_LABEL, api_key.encode(), hashlib.sha256).hexdigest()
    return digest[:16]


def _same_base_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


class JournalError(PreflightError):
    """The journal cannot be used; the message says why, for the user."""


class JournalBusy(JournalError):
    """Another run holds the journal's lock."""


@dataclass(frozen=True)
class Entry:
    key: str
    #: "sending" (written before the POST), then "saved", "rejected", "unknown" or
    #: "not_sent"; "found" when a look-up proved an earlier POST was applied.
    event: str
    account_id: int | None = None
    http_status: int | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "key": self.key,
            "event": self.event,
            "account_id": self.account_id,
            "http_status": self.http_status,
            "message": self.message,
        }


@dataclass
class Journal:
    """An append-only JSONL file of outcomes, keyed by :func:`account_key`.

    Build it with :meth:`open` (locks, checks, repairs) or :meth:`memory` (dry runs
    and tests: nothing on disk).
    """

    path: Path | None
    last: dict[str, Entry] = field(default_factory=dict)
    #: Line numbers (1-based) of the lines skipped on open: not UTF-8, not JSON, not
    #: a JSON object, or an object without ``key`` and ``event`` (not an entry).
    #: Blank lines are not counted; a torn last line is in ``repaired`` instead.
    #: ``preflight submit`` prints them on stderr before it starts.
    bad_lines: list[int] = field(default_factory=list)
    #: What was done to a torn last line, for the user ("" when there was none).
    repaired: str = ""
    #: True when an old journal without a header was adopted for this platform.
    adopted: bool = False
    _fd: int | None = field(default=None, repr=False)
    _lock_fd: int | None = field(default=None, repr=False)

    @classmethod
    def memory(cls) -> Journal:
        """A journal that keeps entries in memory only."""
        return cls(None)

    @classmethod
    def open(cls, path: Path, *, base_url: str, api_key: str) -> Journal:
        """Lock, read, repair and bind the journal at ``path``; create it if absent.

        Raises :class:`JournalBusy` when another run holds it, :class:`JournalError`
        when it cannot be used (a directory, not writable, bound to another base
        URL or key). Nothing is sent before this succeeds.
        """
        journal = cls(path)
        try:
            journal._open(base_url, key_fingerprint(api_key))
        except BaseException:
            journal.close()
            raise
        return journal

    def _open(self, base_url: str, fingerprint: str) -> None:
        path = self.path
        assert path is not None
        if path.is_dir():
            raise JournalError(f"{path}: the journal is a directory; give a file with --journal")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"{path}: cannot create the journal's directory ({exc.strerror})"
            ) from None
        self._lock(path)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        existed = path.exists()
        try:
            self._fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise JournalError(f"{path}: cannot write the journal ({exc.strerror})") from None
        if not existed:
            _fsync_dir(path.parent)
        info = os.fstat(self._fd)
        if not stat.S_ISREG(info.st_mode):
            raise JournalError(f"{path}: the journal is not a regular file")
        if info.st_mode & 0o077:
            with contextlib.suppress(OSError):  # not ours to change: leave it
                os.fchmod(self._fd, 0o600)
        data = self._read_all()
        header = self._load(data)
        if header is None:
            self.adopted = bool(self.last) or bool(self.bad_lines)
            self._write_line(
                {"journal": FORMAT_VERSION, "base_url": base_url, "key_fingerprint": fingerprint}
            )
            return
        if header.get("journal") != FORMAT_VERSION:
            raise JournalError(
                f"{path}: journal format {header.get('journal')!r}, not {FORMAT_VERSION}: "
                "written by another version of preflight. Give another --journal"
            )
        bound_url = str(header.get("base_url", ""))
        bound_key = str(header.get("key_fingerprint", ""))
        if not _same_base_url(bound_url, base_url):
            raise JournalError(
                f"{path}: this journal records saves to {bound_url}, not to {base_url}; "
                "its entries say nothing about this platform. Give another --journal"
            )
        if bound_key != fingerprint:
            raise JournalError(
                f"{path}: this journal was written with another API key (fingerprint "
                f"{bound_key}, this key's is {fingerprint}); its entries may be about "
                "another SmartLead account. Give another --journal"
            )

    def _lock(self, path: Path) -> None:
        lock_path = path.with_name(path.name + ".lock")
        try:
            self._lock_fd = os.open(
                lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600
            )
        except OSError as exc:
            raise JournalError(
                f"{lock_path}: cannot create the journal's lock file ({exc.strerror})"
            ) from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise JournalError(f"{lock_path}: cannot lock ({exc.strerror})") from None
            try:
                owner = os.pread(self._lock_fd, 32, 0).decode("ascii", "replace").strip()
            except OSError:
                owner = ""
            who = f" (pid {owner})" if owner.isdigit() else ""
            raise JournalBusy(
                f"another preflight submit is using {path}{who}; wait for it to finish, "
                "or give another --journal"
            ) from None
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f"{os.getpid()}\n".encode(), 0)

    def _read_all(self) -> bytes:
        assert self._fd is not None
        chunks = []
        offset = 0
        while chunk := os.pread(self._fd, 1 << 20, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def _load(self, data: bytes) -> dict[str, Any] | None:
        """Read the entries; repair a torn tail; return the header, if any."""
        assert self._fd is not None
        lines = data.split(b"\n")
        tail = lines.pop()  # what follows the last newline: b"" unless torn
        if tail:
            number = len(lines) + 1
            if self._parse(tail) is not None:
                self._append_bytes(b"\n")
                self.repaired = f"line {number} had no newline (a write cut short); completed"
                lines.append(tail)
            else:
                os.ftruncate(self._fd, len(data) - len(tail))
                os.fsync(self._fd)
                self.repaired = (
                    f"line {number} was cut short (a crash mid-write): {len(tail)} bytes removed"
                )
        header: dict[str, Any] | None = None
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            data_ = self._parse(raw)
            if data_ is None:
                self.bad_lines.append(number)
            elif "journal" in data_:
                header = data_
            else:
                entry = _entry(data_)
                if entry is None:
                    self.bad_lines.append(number)
                else:
                    self.last[entry.key] = entry
        return header

    @staticmethod
    def _parse(raw: bytes) -> dict[str, Any] | None:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def saved(self, key: str) -> Entry | None:
        """The entry proving the account was saved, if there is one."""
        entry = self.last.get(key)
        return entry if entry is not None and entry.event in ("saved", "found") else None

    def uncertain(self, key: str) -> bool:
        """Whether a POST for this account may have been applied without our knowing."""
        entry = self.last.get(key)
        # SmartLead may create an account whose connection check failed (400).
        return entry is not None and (
            entry.event in ("sending", "unknown")
            or (entry.event == "rejected" and entry.http_status == 400)
        )

    def append(self, entry: Entry) -> None:
        """Write ``entry`` durably (one write, then fsync) before returning."""
        if self._fd is not None:
            self._write_line(entry.to_dict())
        self.last[entry.key] = entry

    def _write_line(self, data: dict[str, Any]) -> None:
        line = json.dumps(data, ensure_ascii=False) + "\n"
        self._append_bytes(line.encode("utf-8"))

    def _append_bytes(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:  # one write for a regular file; the loop is for the odd short write
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the journal and release its lock (the lock file stays)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        lock_fd, self._lock_fd = self._lock_fd, None
        if lock_fd is not None:
            os.close(lock_fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync_dir(directory: Path) -> None:
    """Make a new file's name durable too (its directory entry)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _entry(data: dict[str, Any]) -> Entry | None:
    try:
        account_id = data.get("account_id")
        status = data.get("http_status")
        return Entry(
            # Re-keyed: entries written before account_key normalized IDNA and NFC
            # then match the addresses they were written for.
            account_key(str(data["key"])),
            str(data["event"]),
            account_id if isinstance(account_id, int) else None,
            status if isinstance(status, int) else None,
            str(data.get("message", "")),
        )
    except KeyError:
        return None
