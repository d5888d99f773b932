"""Every public entry point takes the save-account body as a plain mapping (issue 10)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest

import preflight

VALID: dict[str, Any] = {
    "from_name": "Ana",
    "from_email": "ana@example.com",
    "user_name": "ana@example.com",
    "password": "pw-entry-points-1",
    "smtp_host": "smtp.example.com",
    "smtp_port": 587,
    "imap_host": "imap.example.com",
    "imap_port": 993,
    "warmup_enabled": False,
}
#: Fails the payload check alone, so the network entry points contact nothing.
INVALID: dict[str, Any] = {**VALID, "smtp_port": 70000}

MAPPINGS = [pytest.param(dict, id="dict"), pytest.param(MappingProxyType, id="mapping")]


def assert_payload_invalid(report: preflight.AccountReport) -> None:
    payload = report.check("payload")
    assert (payload.status, payload.code) == (preflight.Status.FAIL, preflight.Code.PAYLOAD_INVALID)
    assert report.account == "ana@example.com"
    assert "smtp_port" in str(payload.details["errors"])


@pytest.mark.parametrize("kind", MAPPINGS)
def test_validate_takes_a_mapping(kind: type[Mapping[str, Any]]) -> None:
    """`preflight.validate` reads a plain mapping (it raised AttributeError on a dict)."""
    report = preflight.validate(kind(VALID))  # type: ignore[call-arg]
    assert report.ok
    assert report.account == "ana@example.com"
    assert report.check("payload").status == preflight.Status.PASS
    assert_payload_invalid(preflight.validate(kind(INVALID)))  # type: ignore[call-arg]


@pytest.mark.parametrize("kind", MAPPINGS)
def test_check_entry_points_take_a_mapping(kind: type[Mapping[str, Any]]) -> None:
    """`check_sync`, `check_account` and `check_many` read a plain mapping."""
    body: Mapping[str, Any] = kind(INVALID)  # type: ignore[call-arg]
    assert_payload_invalid(preflight.check_sync(body))
    assert_payload_invalid(asyncio.run(preflight.check_account(body)))

    async def many() -> list[preflight.AccountReport]:
        return [report async for report in preflight.check_many([body, body])]

    reports = asyncio.run(many())
    assert sorted(report.index for report in reports) == [0, 1]
    for report in reports:
        assert_payload_invalid(report)


@pytest.mark.parametrize("kind", MAPPINGS)
def test_guards_take_a_mapping(kind: type[Mapping[str, Any]]) -> None:
    """`guard` and `guard_sync` read a plain mapping and reject with the report."""
    body: Mapping[str, Any] = kind(INVALID)  # type: ignore[call-arg]
    with pytest.raises(preflight.AccountRejected) as sync:
        preflight.guard_sync(body)
    assert_payload_invalid(sync.value.report)
    with pytest.raises(preflight.AccountRejected) as async_:
        asyncio.run(preflight.guard(body))
    assert_payload_invalid(async_.value.report)


def test_shared_is_exported_and_accepted() -> None:
    """`check_account(shared=...)` takes the exported `preflight.Shared`."""

    async def run() -> preflight.AccountReport:
        shared = preflight.Shared(preflight.CheckOptions(), per_host=2)
        try:
            return await preflight.check_account(INVALID, shared=shared, index=7)
        finally:
            shared.close()

    report = asyncio.run(run())
    assert report.index == 7
    assert_payload_invalid(report)


def test_guard_stays_the_function_once_its_module_is_loaded() -> None:
    """`preflight.guard` is the function, the same one `preflight.smartlead` exports."""
    import preflight.smartlead._httpx_guard
    from preflight.smartlead import guard

    assert guard is preflight.guard
