"""preflight.smartlead._guard: guard / guard_sync against the real local mail servers."""

from __future__ import annotations

import json
import pickle

import pytest

from fixtures.accounts import valid_payload
from fixtures.stack import Stack
from preflight.options import CheckOptions
from preflight.report import Code
from preflight.smartlead._guard import AccountRejected, guard, guard_sync

CANARY = "PW-CANARY-guard-4kz8"


def needs_postfix(stack: Stack) -> None:
    if "postfix" in stack.unavailable:
        pytest.skip(stack.unavailable["postfix"])


def options(stack: Stack) -> CheckOptions:
    host, port = stack.dns
    return CheckOptions(
        ca_file=str(stack.ca_file) if stack.ca_file else None,
        dns_server=f"{host}:{port}",
        resolve_hosts_with_dns_server=True,
    )


def test_guard_sync_returns_report_of_good_account(stack: Stack) -> None:
    """guard_sync returns the passing report of a good account."""
    needs_postfix(stack)
    report = guard_sync(valid_payload(stack), options(stack))
    assert report.ok is True
    for name in ("payload", "mx", "smtp", "imap", "domain"):
        assert report.check(name).code is Code.OK, name
    assert report.check("tracking").code is Code.SKIPPED  # no custom_tracking_url


@pytest.mark.asyncio
async def test_guard_returns_report_of_good_account(stack: Stack) -> None:
    """await guard(...) returns the passing report of a good account."""
    needs_postfix(stack)
    report = await guard(valid_payload(stack), options(stack))
    assert report.ok is True
    assert report.account == stack.credentials()[0]


def test_guard_sync_rejects_wrong_password(stack: Stack) -> None:
    """A wrong password raises AccountRejected carrying the report; str() names the codes."""
    needs_postfix(stack)
    with pytest.raises(AccountRejected) as caught:
        guard_sync(valid_payload(stack, password=CANARY), options(stack))
    exc = caught.value
    user = stack.credentials()[0]
    assert str(exc) == f"preflight rejected {user}: smtp auth_failed, imap auth_failed"
    assert exc.codes == {"smtp": Code.AUTH_FAILED, "imap": Code.AUTH_FAILED}
    assert exc.report.check("smtp").code is Code.AUTH_FAILED
    assert exc.report.ok is False
    shown = str(exc) + repr(exc) + repr(exc.report) + json.dumps(exc.report.to_dict())
    assert CANARY not in shown


@pytest.mark.asyncio
async def test_guard_rejects_invalid_payload_as_value_error() -> None:
    """An invalid payload raises AccountRejected, which is a ValueError, with payload_invalid."""
    body = {"from_email": "bob@example.com", "password": CANARY, "pasword": CANARY}
    with pytest.raises(ValueError, match="payload payload_invalid") as caught:
        await guard(body)
    assert isinstance(caught.value, AccountRejected)
    assert str(caught.value) == "preflight rejected bob@example.com: payload payload_invalid"
    assert caught.value.codes == {"payload": Code.PAYLOAD_INVALID}
    assert CANARY not in str(caught.value) + json.dumps(caught.value.report.to_dict())


def test_rejection_message_is_one_line() -> None:
    """A from_email with line breaks still gives a one-line message."""
    with pytest.raises(AccountRejected) as caught:
        guard_sync({"from_email": "a\nb@example.com\r\n", "password": CANARY})
    message = str(caught.value)
    assert "\n" not in message
    assert "\r" not in message
    assert message.startswith("preflight rejected a\\nb@example.com\\r\\n: payload payload_invalid")


def test_rejection_pickles_without_password(stack: Stack) -> None:
    """AccountRejected survives pickling (a worker process) and the bytes hold no password."""
    needs_postfix(stack)
    with pytest.raises(AccountRejected) as caught:
        guard_sync(valid_payload(stack, password=CANARY), options(stack))
    data = pickle.dumps(caught.value)
    assert CANARY.encode() not in data
    copy = pickle.loads(data)  # noqa: S301 - our own bytes, just made
    assert isinstance(copy, AccountRejected)
    assert str(copy) == str(caught.value)
    assert copy.codes == caught.value.codes


@pytest.mark.asyncio
async def test_guard_sync_refuses_inside_a_loop() -> None:
    """guard_sync inside a running loop says to await guard instead."""
    with pytest.raises(RuntimeError, match=r"await guard\(payload\)"):
        guard_sync({})


def test_rejection_message_escapes_terminal_sequences() -> None:
    """A from_email with ESC[2J, an OSC title or a lone surrogate is shown escaped, inert."""
    with pytest.raises(AccountRejected) as caught:
        guard_sync({"from_email": "a\x1b[2J\x1b]0;t\x07\x9b\udcff@example.com", "password": CANARY})
    message = str(caught.value)
    assert message.isprintable()
    assert message.startswith("preflight rejected a\\x1b[2J\\x1b]0;t\\x07\\x9b\\xff@example.com:")
    message.encode("utf-8")  # no lone surrogate left to break a strict stream
