"""Hints: what the user should do next, for failures that do not depend on a reply."""

from __future__ import annotations

from collections.abc import Sequence

from preflight.report import Code

__all__ = ["hint_for"]


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
            f"the provider's TLS port ({'465' if protocol == 'smtp' else '993'})."
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
            "TLS could not be negotiated: the server may only offer old protocol versions or "
            "ciphers. Check the port and security mode."
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
