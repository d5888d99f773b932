"""What the SMTP and IMAP probes share: TCP connect, the TLS sniff, the result.

Both probes walk the same road (resolve, connect, maybe TLS, greeting, maybe
STARTTLS, log in) and fail on it in the same ways; the pieces that do not depend
on the protocol live here.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from preflight.options import Security
from preflight.report import CheckResult, Code, Status
from preflight.secret import MASK

__all__ = [
    "ConnectFailure",
    "Mode",
    "ProbeState",
    "ProbeStop",
    "bounded",
    "mode_for_port",
    "open_socket",
    "scrub",
    "tls_answers",
]

#: How a probe speaks to the port. "starttls?" upgrades when offered (port 25);
#: "detect" is for ports with no convention: clear-text greeting, else implicit TLS.
Mode = Literal["ssl", "starttls", "starttls?", "plain", "detect"]

_SMTP_PORTS: dict[int, Mode] = {465: "ssl", 587: "starttls", 25: "starttls?"}
_IMAP_PORTS: dict[int, Mode] = {993: "ssl", 143: "starttls"}


def mode_for_port(protocol: str, port: int, override: Security | None) -> Mode:
    """The security mode: the explicit override, else what the port number implies."""
    if override is not None:
        return override
    table = _SMTP_PORTS if protocol == "smtp" else _IMAP_PORTS
    return table.get(port, "detect")


class ProbeStop(Exception):
    """Ends a probe early with its failing result (a result, not an error)."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.code.value)
        self.result = result


class _Probe(Protocol):
    def timed_out(self) -> CheckResult: ...

    def close(self) -> None: ...


T = TypeVar("T")


async def bounded(
    probe: _Probe, work: Awaitable[T], deadline: float, *, keep_open: bool = False
) -> T | CheckResult:
    """Run a probe's ``work`` before the loop time ``deadline``.

    A :class:`ProbeStop` gives its result, the deadline the probe's ``timed_out()``
    result. The probe's connections are closed afterwards, except after success with
    ``keep_open`` (a session handed to a caller, who closes it).
    """
    succeeded = False
    try:
        async with asyncio.timeout_at(deadline):
            value = await work
    except ProbeStop as stop:
        return stop.result
    except TimeoutError:
        return probe.timed_out()
    else:
        succeeded = True
        return value
    finally:
        if not (succeeded and keep_open):
            probe.close()


class ConnectFailure(Exception):
    """No TCP connection could be made to any address of the host."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def open_socket(addresses: tuple[str, ...], port: int, timeout: float) -> socket.socket:
    """A connected non-blocking socket to the first address that answers."""
    loop = asyncio.get_running_loop()
    refused: list[str] = []
    timed_out: list[str] = []
    other: list[str] = []
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (address, port))
        except TimeoutError:
            sock.close()
            timed_out.append(address)
        except ConnectionRefusedError:
            sock.close()
            refused.append(address)
        except OSError as exc:
            sock.close()
            other.append(f"{address}: {exc.strerror or errno.errorcode.get(exc.errno or 0, exc)}")
        except BaseException:
            sock.close()
            raise
        else:
            return sock
    if refused:
        raise ConnectFailure(
            Code.CONNECT_REFUSED, f"connection to port {port} refused ({', '.join(refused)})"
        )
    if timed_out:
        raise ConnectFailure(
            Code.CONNECT_TIMEOUT,
            f"no TCP connection to port {port} within {timeout:g} s ({', '.join(timed_out)})",
        )
    raise ConnectFailure(Code.CONNECT_REFUSED, f"cannot connect to port {port}: {'; '.join(other)}")


async def tls_answers(address: str, port: int, timeout: float) -> bool:
    """Whether a TLS handshake completes on a fresh connection (certificate ignored).

    Used when a clear-text greeting does not come: a port that completes a TLS
    handshake speaks implicit TLS, and the account has the wrong port or mode.
    The handshake runs over memory buffers on a socket this function owns, so that
    cancelling it at any point closes the socket (asyncio's own TLS transports can
    leak theirs when cancelled mid-handshake).
    """
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (address, port))
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = context.wrap_bio(incoming, outgoing, server_side=False)
            while True:
                try:
                    tls.do_handshake()
                except ssl.SSLWantReadError:
                    pending = outgoing.read()
                    if pending:
                        await loop.sock_sendall(sock, pending)
                    chunk = await loop.sock_recv(sock, 65536)
                    if not chunk:
                        return False
                    incoming.write(chunk)
                else:
                    return True
    except (OSError, TimeoutError):  # ssl.SSLError is an OSError
        return False
    finally:
        sock.close()


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret (and its common encodings) masked."""
    import base64

    for secret in secrets:
        if len(secret) < 3:
            continue
        text = text.replace(secret, MASK)
        encoded = base64.b64encode(secret.encode()).decode()
        text = text.replace(encoded, MASK)
    return text


@dataclass
class ProbeState:
    """What a probe has done so far: the step it is in, and details for the report."""

    name: str
    secrets: tuple[str, ...] = ()
    step: str = "resolve"
    started: float = field(default_factory=time.perf_counter)
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def fail(self, code: Code, message: str, hint: str, reply: str | None = None) -> CheckResult:
        details = dict(self.details)
        details["step"] = self.step
        if reply is not None:
            details["reply"] = scrub(reply, self.secrets)
        return CheckResult(
            self.name,
            Status.FAIL,
            code,
            scrub(message, self.secrets),
            hint,
            self.elapsed_ms(),
            details,
        )

    def passed(self, message: str) -> CheckResult:
        """Success; a ``warn`` when the probe noted warnings, which go to
        ``details.warnings`` as ``{"message": ...}`` objects (the payload check's shape)."""
        if self.warnings:
            warnings = [{"message": warning} for warning in self.warnings]
            details = {**self.details, "warnings": warnings}
            first = self.warnings[0]
            return CheckResult(
                self.name,
                Status.WARN,
                Code.OK,
                f"{message}; " + "; ".join(self.warnings),
                first[:1].upper() + first[1:] + ".",
                self.elapsed_ms(),
                details,
            )
        return CheckResult(
            self.name, Status.PASS, Code.OK, message, None, self.elapsed_ms(), dict(self.details)
        )
