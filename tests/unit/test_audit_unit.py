"""The audit's pure parts: payload from a fetched account, the platform's status, the
`audit` check's warnings (Microsoft password logins, certificates, reconnects)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from preflight.report import AccountReport, CheckResult, Code, Status, skipped
from preflight.smartlead._audit import (
    CERT_WARN_DAYS,
    AuditReport,
    Platform,
    audit_check,
    payload_from_platform,
)

TODAY = datetime.date(2026, 12, 2)


def fetched(**changes: Any) -> dict[str, Any]:
    """An account as GET /email-accounts/{id}/ returns it (names from the API notes)."""
    account: dict[str, Any] = {
        "id": 41,
        "from_name": "Ana",
        "from_email": "ana@example.com",
        "username": "ana@example.com",
        "password": "pw-CANARY-unit",
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "smtp_port_type": "STARTTLS",
        "imap_host": "imap.example.com",
        "imap_port": 993,
        "imap_username": "ana@example.com",
        "imap_password": "pw-CANARY-unit",
        "type": "SMTP",
        "client_id": None,
        "message_per_day": 40,
        "bcc_email": "",
        "is_smtp_success": True,
        "is_imap_success": False,
        "imap_failure_error": "NO [AUTHENTICATIONFAILED] pw-CANARY-unit rejected",
        "warmup_details": {
            "status": "ACTIVE",
            "warmup_reputation": "97%",
            "total_warmup_per_day": 15,
            "blocked_reason": None,
        },
    }
    account.update(changes)
    return account


def test_payload_from_platform_maps_the_listing_names() -> None:
    payload = payload_from_platform(fetched(imap_username="other@example.com"))
    assert payload == {
        "from_name": "Ana",
        "from_email": "ana@example.com",
        "user_name": "ana@example.com",
        "password": "pw-CANARY-unit",
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "imap_host": "imap.example.com",
        "imap_port": 993,
        "warmup_enabled": True,
        "imap_user_name": "other@example.com",
        "type": "SMTP",
        "max_email_per_day": 40,
        "total_warmup_per_day": 15,
    }


def test_the_tracking_domain_is_audited_too() -> None:
    """The listing's custom_tracking_domain becomes the payload's custom_tracking_url,
    so the tracking check runs on accounts already on the platform."""
    payload = payload_from_platform(fetched(custom_tracking_domain="track.example.com"))
    assert payload["custom_tracking_url"] == "track.example.com"
    assert "custom_tracking_url" not in payload_from_platform(fetched(custom_tracking_domain=""))


def test_platform_keeps_no_secret_and_says_its_status() -> None:
    platform = Platform.from_item(fetched(), ("pw-CANARY-unit",))
    assert platform.status == "imap_failing"
    assert platform.imap_failure_error == "NO [AUTHENTICATIONFAILED] ******** rejected"
    assert "pw-CANARY-unit" not in repr(platform) + str(platform.to_dict())
    assert (platform.warmup_status, platform.warmup_reputation) == ("ACTIVE", "97%")
    assert Platform(1).status == "unknown"
    assert Platform(1, False, False).status == "disconnected"
    assert Platform(1, False, True).status == "smtp_failing"
    assert Platform(1, True, True).status == "connected"


def passed(name: str, **details: Any) -> CheckResult:
    return CheckResult(name, Status.PASS, Code.OK, "ok", details=details)


def report(*checks: CheckResult) -> AccountReport:
    return AccountReport(0, "ana@example.com", checks)


def test_microsoft_password_login_warns_with_date_and_oauth() -> None:
    checks = report(passed("smtp", auth_mechanism="LOGIN"), passed("imap"))
    payload = {"type": "SMTP", "smtp_host": "smtp.office365.com"}
    result = audit_check(checks, Platform(1, True, True), payload, today=TODAY)
    assert (result.status, result.code) == (Status.WARN, Code.BASIC_AUTH_ENDING)
    assert "(29 days from now)" in result.message
    assert "save-oauth" in (result.hint or "")
    # By type alone (a custom host of an Outlook account), after the date too.
    later = audit_check(checks, Platform(1), {"type": "OUTLOOK"}, today=datetime.date(2027, 1, 5))
    assert "since the end of December 2026" in later.message


@pytest.mark.parametrize(
    ("smtp", "payload"),
    [
        # OAuth: nothing at risk.
        (passed("smtp", auth_mechanism="XOAUTH2"), {"type": "OUTLOOK"}),
        (passed("smtp"), {"type": "OUTLOOK", "token": {"access_token": "t"}}),
        # Already broken: the failure says so, not a warning.
        (
            CheckResult("smtp", Status.FAIL, Code.AUTH_BASIC_DISABLED, "off"),
            {"type": "OUTLOOK"},
        ),
        (skipped("smtp", "not run"), {"type": "OUTLOOK"}),
        # Not Microsoft.
        (passed("smtp", auth_mechanism="PLAIN"), {"smtp_host": "smtp.gmail.com"}),
    ],
)
def test_no_microsoft_warning(smtp: CheckResult, payload: dict[str, Any]) -> None:
    result = audit_check(report(smtp), Platform(1), payload, today=TODAY)
    assert result.code is not Code.BASIC_AUTH_ENDING


def test_certificate_expiring_and_reconnect_each_have_their_code() -> None:
    checks = report(
        passed("smtp", cert_days_left=CERT_WARN_DAYS - 1),
        passed("imap", cert_days_left=CERT_WARN_DAYS),
    )
    platform = Platform(
        1,
        False,
        True,
        disagreement=(
            {"protocol": "smtp", "platform": "failing", "message": "m"},
            {"protocol": "imap", "platform": "failing", "message": "m"},
        ),
    )
    result = audit_check(checks, platform, {"smtp_host": "mail.example.com"}, today=TODAY)
    assert [p["code"] for p in result.details["problems"]] == [
        "reconnect_needed",
        "cert_expiring",
    ]
    assert result.code is Code.RECONNECT_NEEDED
    assert result.message == "2 things at risk"
    assert "(mail.example.com) expires in 29 days" in result.details["problems"][1]["message"]
    assert result.details["problems"][0]["message"] == (
        "SmartLead shows SMTP and IMAP disconnected, but the logins work now"
    )
    quiet = audit_check(report(passed("smtp"), passed("imap")), Platform(1), {}, today=TODAY)
    assert (quiet.status, quiet.code) == (Status.PASS, Code.OK)


def test_audit_report_json_carries_platform() -> None:
    audited = AuditReport(3, "a@example.com", (passed("smtp"),), None, platform=Platform(9, True))
    data = audited.to_dict()
    assert data["platform"]["id"] == 9
    assert data["platform"]["status"] == "connected"
    assert list(data)[:5] == ["index", "account", "ok", "checks", "line"]


def test_domain_worse_than_baseline() -> None:
    """New SPF/DMARC/DKIM problems or a weaker DMARC policy since the baseline warn;
    the same state or a better one does not."""
    from preflight.smartlead._audit import DomainState, read_baseline

    earlier = {
        "checks": [
            {
                "name": "domain",
                "status": "warn",
                "details": {
                    "domain": "Example.com",
                    "dmarc_policy": "quarantine",
                    "problems": [{"code": "dkim_missing"}],
                },
            }
        ]
    }
    baseline = read_baseline([earlier, {"checks": "junk"}, "junk"])
    assert baseline == {
        "example.com": DomainState(frozenset({"dkim_missing"}), "quarantine"),
    }

    def domain(policy: str | None, *codes: str) -> CheckResult:
        details = {
            "domain": "example.com",
            "dmarc_policy": policy,
            "problems": [{"code": c} for c in codes],
        }
        return CheckResult("domain", Status.WARN, Code.OK, "m", details=details)

    def worse(check: CheckResult) -> list[str]:
        result = audit_check(report(check), Platform(1), {}, today=TODAY, baseline=baseline)
        return [p["code"] for p in result.details.get("problems", [])]

    assert worse(domain("quarantine", "dkim_missing")) == []
    assert worse(domain("reject")) == []
    assert worse(domain("none", "dkim_missing", "dmarc_policy_none")) == ["domain_worse"]
    assert worse(domain(None, "dmarc_missing")) == ["domain_worse"]
    assert worse(domain("quarantine", "spf_missing")) == ["domain_worse"]
    result = audit_check(
        report(domain(None, "dmarc_missing")), Platform(1), {}, today=TODAY, baseline=baseline
    )
    assert result.message == (
        "example.com got worse since the baseline: now dmarc_missing; "
        "DMARC p=quarantine before, none now"
    )
