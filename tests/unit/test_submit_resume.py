"""Resuming: the address as given and the address as validated are one journal key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from preflight.options import CheckOptions
from preflight.payload import parse_account
from preflight.reader import RawAccount
from preflight.secret import Secret
from preflight.smartlead._client import SmartLeadClient
from preflight.smartlead._journal import Entry, Journal, account_key
from preflight.smartlead._submit import submit_many

BASE = "http://127.0.0.1:9/api/v1"  # never reached: nothing is sent


def body(email: str) -> dict[str, object]:
    return {
        "from_name": "Ana",
        "from_email": email,
        "user_name": "ana@example.test",
        "password": "pw-secret-1",
        "smtp_host": "127.0.0.1",
        "smtp_port": 9,
        "imap_host": "127.0.0.1",
        "imap_port": 9,
        "warmup_enabled": False,
    }


@pytest.mark.parametrize(
    "given",
    ["jos\u00e9@xn--bcher-kva.test", "Jose\u0301@Bu\u0308cher.TEST"],
    ids=["A-label domain", "non-NFC"],
)
def test_saved_account_is_skipped_whatever_its_spelling(tmp_path: Path, given: str) -> None:
    """An account saved under its validated address is skipped when given in another
    spelling: not checked (its servers do not exist), not sent."""
    validated = parse_account(body(given)).account
    assert validated is not None
    journal = Journal.open(tmp_path / "j.jsonl", base_url=BASE, api_key="k")
    # What a first run wrote after saving it: the key of the validated address.
    journal.append(Entry(account_key(validated.from_email), "saved", 7, 200))

    async def run() -> list[tuple[str, str]]:
        client = SmartLeadClient(Secret("k"), BASE)
        try:
            return [
                (record.verdict, record.message)
                async for record in submit_many(
                    [RawAccount(0, 1, body(given))], CheckOptions(timeout=2), client, journal
                )
            ]
        finally:
            await client.aclose()

    try:
        assert asyncio.run(run()) == [
            ("already_saved", "saved in an earlier run (journal); not sent again")
        ]
    finally:
        journal.close()
