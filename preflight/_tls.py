"""TLS: the client context, what a session looks like, and what a failure means."""

from __future__ import annotations

import contextlib
import functools
import re
import ssl
import time
import warnings
from dataclasses import dataclass
from typing import Any, TypeVar

from preflight._text import shown
from preflight.report import Code

E = TypeVar("E", bound=BaseException)

__all__ = [
    "EXPIRY_WARN_DAYS",
    "HandshakeFailure",
    "classify_tls_error",
    "describe_der",
    "describe_session",
    "handshake_failure",
    "make_context",
    "offered_versions",
    "permissive_context",
]

#: A certificate expiring within this many days makes a passing check a warning.
EXPIRY_WARN_DAYS = 14

# OpenSSL's X509_V_ERR_* numbers (x509_vfy.h).
_EXPIRED = {9, 10}  # not yet valid, has expired
_HOSTNAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


@functools.lru_cache(maxsize=8)
def make_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """The client context: system store plus ``ca_file``; built once per setting.

    Verification of chain and host name is on unless ``insecure``.
    """
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _name(parts: Any) -> str:
    """'CN=..., O=...' from getpeercert()'s nested tuples."""
    items = [f"{key}={value}" for rdn in parts or () for key, value in rdn]
    return ", ".join(items)


def describe_session(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, Any]:
    """TLS version, cipher and, when verified, the certificate's names and expiry."""
    if ssl_object is None:
        return {}
    cipher = ssl_object.cipher()
    details: dict[str, Any] = {
        "tls_version": ssl_object.version(),
        "cipher": cipher[0] if cipher else None,
    }
    cert = ssl_object.getpeercert()
    if cert:  # empty when verification is off
        not_after = cert.get("notAfter")
        details["cert_subject"] = _name(cert.get("subject"))
        details["cert_issuer"] = _name(cert.get("issuer"))
        if isinstance(not_after, str):
            seconds = ssl.cert_time_to_seconds(not_after) - time.time()
            details["cert_days_left"] = int(seconds // 86400)
    return details


def expiry_warning(details: dict[str, Any]) -> str | None:
    """A warning when the certificate expires soon."""
    days = details.get("cert_days_left")
    if isinstance(days, int) and days < EXPIRY_WARN_DAYS:
        return f"the server's certificate expires in {days} days"
    return None


def classify_tls_error(exc: BaseException) -> tuple[Code, str]:
    """The contract code and a one-line message for a failed TLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        number = exc.verify_code
        message = exc.verify_message or "certificate verification failed"
        if number in _EXPIRED:
            return Code.TLS_EXPIRED, f"the certificate is not valid now: {message}"
        if number in _HOSTNAME_MISMATCH:
            return Code.TLS_HOSTNAME_MISMATCH, f"the certificate does not name this host: {message}"
        return Code.TLS_UNTRUSTED, f"the certificate chain is not trusted: {message}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE") or (
            "wrong version number" in str(exc)
        ):
            return Code.TLS_MODE_MISMATCH, "the server answered TLS with clear text"
        return Code.TLS_HANDSHAKE_FAILED, f"TLS handshake failed: {reason or exc}"
    return Code.TLS_HANDSHAKE_FAILED, f"TLS handshake failed: {exc}"


#: OpenSSL's reason for an alert the server sent: SSLV3_ALERT_HANDSHAKE_FAILURE,
#: TLSV1_ALERT_INTERNAL_ERROR, TLSV13_ALERT_CERTIFICATE_REQUIRED, TLSV1_UNRECOGNIZED_NAME.
_ALERT = re.compile(r"^(?:SSLV3|TLSV1|TLSV13)_(?:ALERT_)?([A-Z_]+)$")
#: Alerts that mean the two sides found no TLS version or cipher in common.
MISMATCH_ALERTS = frozenset({"handshake_failure", "insufficient_security", "protocol_version"})
#: OpenSSL's own reasons (no alert received) for a version or cipher the client refused.
_MISMATCH_REASONS = frozenset(
    {
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
        "NO_CIPHERS_AVAILABLE",
        "NO_SHARED_CIPHER",
        "WRONG_CIPHER_RETURNED",
        "WRONG_SSL_VERSION",
    }
)


@dataclass(frozen=True)
class HandshakeFailure:
    """What a failed handshake (not a certificate, not clear text) says about its cause."""

    #: The alert the server sent, by its RFC 8446 name ("internal_error"), or None.
    alert: str | None
    #: OpenSSL's reason ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_INTERNAL_ERROR"), or None.
    reason: str | None
    #: Whether it says "no version or cipher in common": worth a look at what the
    #: server speaks.
    mismatch: bool


def handshake_failure(exc: ssl.SSLError) -> HandshakeFailure:
    """The facts of a failed handshake that is a ``tls_handshake_failed``."""
    reason = exc.reason or None
    named = _ALERT.match(reason) if reason is not None else None
    alert = named[1].lower() if named is not None else None
    mismatch = alert in MISMATCH_ALERTS or reason in _MISMATCH_REASONS
    return HandshakeFailure(alert, reason, mismatch)


_VERSION_NAMES = {
    ssl.TLSVersion.SSLv3: "SSLv3",
    ssl.TLSVersion.TLSv1: "TLSv1",
    ssl.TLSVersion.TLSv1_1: "TLSv1.1",
    ssl.TLSVersion.TLSv1_2: "TLSv1.2",
    ssl.TLSVersion.TLSv1_3: "TLSv1.3",
}


def offered_versions(context: ssl.SSLContext) -> tuple[str, str]:
    """The lowest and highest TLS version ``context`` offers, named as
    ``SSLObject.version()`` names them ("TLSv1.2", "TLSv1.3")."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # reading TLSv1 is deprecated
        low, high = context.minimum_version, context.maximum_version
        if low is ssl.TLSVersion.MINIMUM_SUPPORTED:
            low = ssl.TLSVersion.TLSv1
        if high is ssl.TLSVersion.MAXIMUM_SUPPORTED:
            high = ssl.TLSVersion.TLSv1_3 if ssl.HAS_TLSv1_3 else ssl.TLSVersion.TLSv1_2
        return _VERSION_NAMES.get(low, low.name), _VERSION_NAMES.get(high, high.name)


@functools.lru_cache(maxsize=1)
def permissive_context() -> ssl.SSLContext:
    """A client context that takes whatever a server speaks (TLS 1.0 to 1.3, every
    cipher, no verification): only to learn what a server that failed the real
    handshake negotiates, never to log in."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 is, on purpose
        with contextlib.suppress(ValueError, ssl.SSLError):  # an OpenSSL without it
            context.minimum_version = ssl.TLSVersion.TLSv1
    try:
        context.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:  # pragma: no cover - an OpenSSL without security levels
        context.set_ciphers("ALL")
    return context


def find_cause(exc: BaseException | None, kind: type[E]) -> E | None:
    """``exc`` or the first exception of its chain (causes, contexts) that is a
    ``kind``: libraries wrap the ssl or socket error that says what happened."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


#: At most this many names of a certificate's SAN are reported.
_SAN_LIMIT = 20
#: Each string taken from a certificate is cut to this many characters.
_CERT_TEXT_LIMIT = 200


def describe_der(der: bytes) -> dict[str, Any] | None:
    """Subject, SANs, issuer and validity of a DER certificate, read without
    verifying it (a certificate that failed verification); None when unreadable.

    Parsed with ``cryptography`` (a runtime dependency for this): the stdlib reads a
    certificate's fields only after a verified handshake. Every string is outside
    text, made printable and bounded.
    """
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
        sans: list[str] = []
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            pass
        else:
            names = ext.value.get_values_for_type(x509.DNSName)
            addresses = [str(a) for a in ext.value.get_values_for_type(x509.IPAddress)]
            sans = [shown(str(n), _CERT_TEXT_LIMIT) for n in [*names, *addresses][:_SAN_LIMIT]]
        return {
            "subject": shown(cert.subject.rfc4514_string(), _CERT_TEXT_LIMIT),
            "san": sans,
            "issuer": shown(cert.issuer.rfc4514_string(), _CERT_TEXT_LIMIT),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
        }
    except (ValueError, TypeError):
        return None
