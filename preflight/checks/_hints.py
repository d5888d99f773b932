"""Hints: what the user should do next, for failures that do not depend on a reply."""

from __future__ import annotations

from collections.abc import Sequence

from preflight.report import Code

__all__ = [
    "handshake_failure_text",
    "hint_for",
    "starttls_broken_hint",
    "starttls_refused_hint",
    "user_name_hint",
]


def hint_for(
    code: Code,
    protocol: str,
    host: str,
    port: int,
    *,
    spoke: str = "",
    names: Sequence[str] = (),
    starttls: bool | None = None,
) -> str:
    """A one- or two-sentence hint for a failure of ``protocol`` at ``host:port``.

    ``spoke`` is the mode the probe used ("ssl" or "plain"), for a mode mismatch;
    ``names`` the presented certificate's SANs, for a host name mismatch; ``starttls``
    whether a clear-text port met with implicit TLS offers STARTTLS (None: not seen).
    """
    field = f"{protocol}_host"
    if code is Code.HOST_NOT_FOUND:
        return (
            f"Check the spelling of {field} ({host}); the provider's help pages give its "
            f"{protocol.upper()} server name."
        )
    if code is Code.DNS_SERVFAIL:
        return (
            f"The DNS server could not answer for {host} (SERVFAIL/REFUSED): the name's DNS "
            "may be broken, or the resolver refuses it. Retry, or try another resolver "
            "(--dns-server with --dns-for-hosts)."
        )
    if code is Code.DNS_TIMEOUT:
        return (
            f"The DNS server did not answer for {host} in time: retry, or try another "
            "resolver (--dns-server with --dns-for-hosts)."
        )
    if code is Code.CONNECT_REFUSED:
        return (
            f"Nothing accepts connections on {host}:{port}: check {protocol}_port (usually "
            f"{'587 or 465' if protocol == 'smtp' else '993 or 143'}) and {field}."
        )
    if code is Code.CONNECT_TIMEOUT:
        return (
            f"{host}:{port} did not answer: a firewall or the ISP may block the port (465 and 25 "
            "often are). Try 587 with STARTTLS for SMTP, or check the host name."
        )
    if code is Code.GREETING_TIMEOUT:
        return (
            f"{host}:{port} accepted the connection but never spoke: check the port and "
            "security mode the provider documents."
        )
    if code is Code.TLS_MODE_MISMATCH:
        tls_port, starttls_port = ("465", "587") if protocol == "smtp" else ("993", "143")
        if spoke == "ssl" and starttls is False:
            return (
                f"Port {port} speaks clear text and offers no STARTTLS, so no login there "
                f"would be encrypted: it is not a TLS port of this server. Check {field} and "
                f"{protocol}_port against the provider's settings (implicit TLS is usual on "
                f"{tls_port}, STARTTLS on {starttls_port})."
            )
        if spoke == "ssl":
            return (
                f"Port {port} speaks clear text first, not implicit TLS: use STARTTLS on it "
                f"(usual on {starttls_port}), or the provider's implicit-TLS port ({tls_port})."
            )
        return (
            f"Port {port} speaks implicit TLS (SSL) from the first byte, not clear text or "
            f"STARTTLS: use SSL on it (usual on {tls_port}), or the provider's STARTTLS port "
            f"({starttls_port})."
        )
    if code is Code.STARTTLS_UNSUPPORTED:
        return (
            f"{host}:{port} does not offer STARTTLS, so the login would be in clear text: use "
            f"implicit TLS ({'465' if protocol == 'smtp' else '993'}) if the provider offers "
            "it; a server without TLS cannot be used safely."
        )
    if code is Code.TLS_UNTRUSTED:
        return (
            "The server's certificate is not signed by a trusted authority: if it is your own "
            "CA, pass it with --ca-file; otherwise the host name may be wrong."
        )
    if code is Code.TLS_HOSTNAME_MISMATCH:
        exact = [name for name in names if not name.startswith("*.")]
        if exact:
            listed = exact[:3]
            return (
                f"The certificate does not name {host}; it is for {', '.join(listed)}: use "
                f"{'that' if len(listed) == 1 else 'one of those'} as {field} "
                "(details.certificate lists its names)."
            )
        if names:
            return (
                f"The certificate does not name {host}; it is for {', '.join(names[:3])}: use "
                f"a host name it covers as {field} (details.certificate lists its names)."
            )
        return (
            f"The certificate does not name {host}: shared hosting often uses the hosting "
            "provider's server name; use the name on the certificate (see details)."
        )
    if code is Code.TLS_EXPIRED:
        return "The server's certificate has expired: the mail provider must renew it."
    if code is Code.TLS_HANDSHAKE_FAILED:
        return (
            "TLS could not be negotiated with the server: check the port and security mode; "
            "if they are right, the server's TLS setup is at fault: tell the mail provider."
        )
    if code is Code.PROTOCOL_ERROR:
        return (
            f"The server at {host}:{port} did not speak {protocol.upper()} as expected: check "
            "that the host and port are the mail server's."
        )
    if code is Code.AUTH_UNSUPPORTED:
        if protocol == "imap":
            return (
                "The IMAP server offers no login mechanism preflight can use: check that IMAP "
                "access is enabled for the account, and the port the provider documents."
            )
        return (
            "The server offers no login mechanism preflight can use: on port 25 servers often "
            "take no logins at all; use the submission port (587) the provider documents."
        )
    if code is Code.AUTH_PLAINTEXT_REFUSED:
        return (
            "The connection is not encrypted, so the password was not sent: use a TLS port "
            "(SMTP 465 or 587, IMAP 993 or 143), or pass --allow-plaintext-auth if you accept "
            "the risk."
        )
    if code is Code.SERVER_UNAVAILABLE:
        return (
            f"{host} had a temporary failure on its side: retry later, and tell the mail "
            "provider if it lasts."
        )
    if code is Code.TIMEOUT:
        return (
            f"{host}:{port} answered too slowly to finish within the deadline: retry, or raise "
            "--timeout."
        )
    return "See details for the server's reply."


#: The TLS versions in the order they came, as ``SSLObject.version()`` names them.
_VERSION_ORDER = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
#: Alerts whose meaning a hint can say in a few words (others are named as they are).
_ALERT_MEANING = {
    "unrecognized_name": "the server does not know the host name preflight asked for (SNI)",
    "certificate_required": "the server wants a client certificate, which a mail login "
    "does not use",
    "access_denied": "the server refuses this client",
}


def _span(offered: tuple[str, str]) -> str:
    low, high = offered
    return low if low == high else f"{low} to {high}"


def handshake_failure_text(
    *,
    alert: str | None,
    reason: str | None,
    mismatch: bool,
    offered: tuple[str, str],
    server_version: str | None,
    server_cipher: str | None,
    looked: bool,
    host: str,
    protocol: str,
    cipher_refused: bool = True,
) -> tuple[str, str]:
    """The message and hint of a ``tls_handshake_failed``, from what is known of it.

    ``alert`` is the alert the server sent (by name), ``reason`` OpenSSL's reason,
    ``offered`` the lowest and highest version preflight offered, ``server_version``
    and ``server_cipher`` what the server negotiated on a second handshake that
    allowed everything (None: not learnt; ``looked`` says whether that handshake was
    tried); ``cipher_refused`` whether preflight's own settings refuse that cipher.
    """
    said = f" (the server sent a {alert} alert)" if alert else ""
    cause = alert or reason or "unknown reason"
    if alert == "internal_error":
        return (
            "the server broke off the TLS handshake with an internal_error alert",
            f"{host} reported an internal error during the TLS handshake: a fault on the "
            "provider's side (its TLS setup or certificate store), not in the account. Retry "
            "later; if it lasts, tell the mail provider.",
        )
    if mismatch and server_version is not None:
        if server_version in _VERSION_ORDER and offered[0] in _VERSION_ORDER:
            older = _VERSION_ORDER.index(server_version) < _VERSION_ORDER.index(offered[0])
        else:
            older = False
        if older:
            return (
                f"no TLS version in common: preflight offers {_span(offered)}, the server "
                f"speaks {server_version}{said}",
                f"{host} speaks only {server_version}, which preflight (like current mail "
                f"clients) no longer accepts: it needs {offered[0]} or later. The provider "
                f"must enable {offered[0]} on the server; if it documents another "
                f"{protocol.upper()} host or port, use that.",
            )
        if not cipher_refused:
            return (
                f"the server refused the TLS handshake{said}, yet completed a second one "
                f"({server_version}, {server_cipher}) that preflight's settings allow too",
                f"{host} refused preflight's TLS handshake but completed one with a version "
                f"and cipher preflight also accepts ({server_version}, {server_cipher}), sent "
                "without a host name (SNI): the cause is not the TLS version or cipher; check "
                f"{protocol}_host, retry, and tell the provider if it lasts.",
            )
        chosen = (
            f" (it chose {server_cipher} when every cipher was allowed)" if server_cipher else ""
        )
        return (
            f"no cipher in common: the server speaks {server_version}, but only with "
            f"ciphers preflight refuses as weak{said}",
            f"{host} speaks {server_version} but offers only ciphers that preflight's TLS "
            f"settings refuse as weak{chosen}: the provider must enable current ciphers "
            "(ECDHE with AES-GCM or ChaCha20).",
        )
    if mismatch:
        second = (
            "; a second handshake allowing TLS 1.0 and every cipher did not complete either"
            if looked
            else ""
        )
        return (
            f"no TLS version or cipher in common with the server: preflight offers "
            f"{_span(offered)}{said or f' ({cause})'}",
            f"{host} and preflight found no TLS version or cipher in common (preflight offers "
            f"{_span(offered)} with current ciphers{second}): check the port and security "
            "mode, then ask the provider which TLS versions and ciphers the server supports.",
        )
    if alert is not None:
        meaning = _ALERT_MEANING.get(alert)
        return (
            f"the server broke off the TLS handshake with a {alert} alert",
            (f"The TLS handshake failed: {meaning}. " if meaning else "")
            + "Check the host, port and security mode; if they are right, tell the mail "
            f"provider that {host} answers the TLS handshake with a {alert} alert.",
        )
    return (
        f"TLS handshake failed: {cause}",
        "TLS could not be negotiated with the server: check the port and security mode; "
        "if they are right, the server's TLS setup is at fault: tell the mail provider.",
    )


def starttls_refused_hint(protocol: str, reply: str) -> str:
    """The hint for a server that advertised STARTTLS, then refused it with ``reply``."""
    tls_port = "465" if protocol == "smtp" else "993"
    if protocol == "smtp" and reply.startswith("4"):  # RFC 3207: 454, a temporary reason
        return (
            "The server offers STARTTLS but refused it for a temporary reason on its side "
            "(often its certificate or TLS setup): retry later, or use implicit TLS on "
            f"{tls_port} if the provider offers it; tell the provider if it lasts."
        )
    return (
        "The server offers STARTTLS but refused to start it (see details.reply): its TLS is "
        f"not set up or not working. Use implicit TLS on {tls_port} if the provider offers "
        "it; otherwise tell the provider."
    )


def starttls_broken_hint(protocol: str) -> str:
    """The hint for a server that accepted STARTTLS, then did not start TLS."""
    tls_port = "465" if protocol == "smtp" else "993"
    return (
        "The server's STARTTLS is broken on its side (it agreed, then could not start TLS): "
        f"use implicit TLS on {tls_port} if the provider offers it; otherwise tell the "
        "provider."
    )


def user_name_hint(protocol: str, host: str, user: str, hint: str = "") -> str:
    """``hint`` for a refused login, with the user-name advice in front when ``user``
    is a full address of the provider of ``host`` and the bundled table says it wants
    the part before the @ for ``protocol`` (iCloud's IMAP, WEB.DE, Free): no network."""
    from preflight.providers import by_domain, by_server_host

    local, at, domain = user.rpartition("@")
    provider = by_server_host(host)
    # Only for the provider's own addresses: a custom domain hosted there (iCloud+)
    # may log in with another account's name.
    if provider is None or not at or not local or by_domain(domain) is not provider:
        return hint
    if provider.login_name(protocol, user) == user:
        return hint
    name = provider.name.split(" (")[0]
    advice = (
        f"{name}'s {protocol.upper()} user name is the part before the @: set "
        f"{'imap_user_name' if protocol == 'imap' else 'user_name'} to {local!r}, not the "
        "full address."
    )
    return f"{advice} {hint}" if hint else advice
