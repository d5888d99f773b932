"""Secret values never show; the public API is what it says."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest

import preflight
from preflight.secret import Secret


def test_secret_hides_value_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    """repr, str, format, f-strings and logging all show a mask."""
    secret = Secret("CANARY-123")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("t").debug("value %s %r", secret, secret)
    shown = [
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!r}",
        format(secret, ">20"),
        repr([secret]),
        repr({"p": secret}),
        caplog.text,
    ]
    assert not any("CANARY" in text for text in shown)
    assert secret.reveal() == "CANARY-123"


def test_secret_refuses_pickle() -> None:
    """A secret cannot be pickled into a cache or another process."""
    with pytest.raises(TypeError):
        pickle.dumps(Secret("x"))


def test_secret_copies_and_compares() -> None:
    """Copies keep the value; equality compares values without showing them."""
    secret = Secret("x")
    assert copy.deepcopy(secret).reveal() == "x"
    assert secret == Secret("x")
    assert secret != Secret("y")


def test_public_api_is_pinned() -> None:
    """The names exported by `preflight` are exactly these, and all resolve."""
    assert sorted(preflight.__all__) == sorted(
        [
            "FIELDS",
            "Account",
            "AccountRejected",
            "AccountReport",
            "AccountType",
            "CheckOptions",
            "CheckResult",
            "Code",
            "InputError",
            "Parsed",
            "PreflightError",
            "PreflightTransport",
            "Problem",
            "RawAccount",
            "Secret",
            "Shared",
            "Status",
            "SyncPreflightTransport",
            "Timeouts",
            "check_account",
            "check_many",
            "check_sync",
            "guard",
            "guard_sync",
            "parse_account",
            "read_accounts",
            "validate",
        ]
    )
    for name in preflight.__all__:
        assert getattr(preflight, name) is not None
    with pytest.raises(AttributeError):
        preflight.nope  # noqa: B018


def test_every_exported_exception_is_a_preflight_error() -> None:
    """Each exception class `preflight` exports subclasses `preflight.PreflightError`."""
    exported = [getattr(preflight, name) for name in preflight.__all__]
    exceptions = [e for e in exported if isinstance(e, type) and issubclass(e, BaseException)]
    assert {"AccountRejected", "InputError", "PreflightError"} == {e.__name__ for e in exceptions}
    for exc in exceptions:
        assert issubclass(exc, preflight.PreflightError)
    assert issubclass(preflight.AccountRejected, ValueError)  # kept for existing callers


def test_library_exceptions_share_the_base() -> None:
    """The exceptions of the journal, SmartLead client and discover are PreflightErrors."""
    from preflight.discover import AutoconfigError
    from preflight.smartlead import JournalBusy, JournalError, LookupFailed, Unauthorized

    for exc in (JournalBusy, JournalError, LookupFailed, Unauthorized, AutoconfigError):
        assert issubclass(exc, preflight.PreflightError)
    assert issubclass(AutoconfigError, ValueError)  # kept for existing callers


def test_codes_are_the_contracts() -> None:
    """The Code enum holds the contract's codes, and the domain check's additions."""
    expected = {
        "ok",
        "skipped",
        "payload_invalid",
        "dns_nxdomain",
        "dns_no_mx",
        "dns_null_mx",
        "dns_timeout",
        "dns_servfail",
        "host_not_found",
        "connect_refused",
        "connect_timeout",
        "greeting_timeout",
        "tls_mode_mismatch",
        "starttls_unsupported",
        "tls_untrusted",
        "tls_hostname_mismatch",
        "tls_expired",
        "tls_handshake_failed",
        "protocol_error",
        "auth_failed",
        "auth_app_password_required",
        "auth_web_login_required",
        "auth_basic_disabled",
        "auth_throttled",
        "server_unavailable",
        "auth_unsupported",
        "auth_plaintext_refused",
        "timeout",
    }
    domain = {
        "spf_missing",
        "spf_invalid",
        "spf_too_many_lookups",
        "spf_not_covering",
        "dmarc_missing",
        "dmarc_policy_none",
        "dkim_missing",
        "dkim_not_enabled",
        "roundtrip_send_refused",
        "roundtrip_not_delivered",
        "roundtrip_junk",
    }
    audit = {
        "reconnect_needed",
        "basic_auth_ending",
        "cert_expiring",
        "domain_worse",
        "fetch_failed",
    }
    tracking = {
        "tracking_not_found",
        "tracking_cname_mismatch",
        "tracking_not_https",
        "tracking_unreachable",
        "tracking_tls_untrusted",
        "tracking_tls_hostname_mismatch",
        "tracking_tls_expired",
        "tracking_tls_failed",
    }
    assert {code.value for code in preflight.Code} == expected | domain | audit | tracking


def test_smartlead_exports_resolve() -> None:
    """Every name `preflight.smartlead` exports resolves; the hooks are `preflight`'s own."""
    import preflight.smartlead

    for name in preflight.smartlead.__all__:
        assert getattr(preflight.smartlead, name) is not None
    for name in ("AccountRejected", "guard", "guard_sync", "PreflightTransport"):
        assert getattr(preflight.smartlead, name) is getattr(preflight, name)
    with pytest.raises(AttributeError):
        preflight.smartlead.nope  # noqa: B018
