"""The submit journal: every outcome appended as it happens, read back to resume.

One JSON object per line, written and flushed to disk (``fsync``) before the next
account goes out, so a Ctrl-C, a crash or a closed laptop loses nothing: running the
same command again reads the journal and does not send an account that was saved.
An entry never holds a password, token or API key: only the address, the outcome
and what the platform said.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["Entry", "Journal", "account_key"]


def account_key(from_email: str) -> str:
    """The journal's identity of an account: its address, case-folded."""
    return from_email.strip().lower()


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


class Journal:
    """An append-only JSONL file of outcomes, keyed by account address."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last: dict[str, Entry] = {}
        self.bad_lines = 0
        if path.exists():
            for entry in self._read():
                self.last[entry.key] = entry
        self._handle: IO[str] | None = None

    def _read(self) -> Iterator[Entry]:
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    data = json.loads(line)
                    yield Entry(
                        str(data["key"]),
                        str(data["event"]),
                        data.get("account_id"),
                        data.get("http_status"),
                        str(data.get("message", "")),
                    )
                except (ValueError, KeyError, TypeError):
                    # A line cut short by a crash mid-write: the entry before it stands.
                    self.bad_lines += 1

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
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.last[entry.key] = entry

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
