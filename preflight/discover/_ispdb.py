"""Thunderbird's ISPDB (``https://autoconfig.thunderbird.net/v1.1/<domain>``): the
look-up by the address's domain and by the registrable domain of its MX host, with a
per-run memory cache and an optional disk cache.

The documents are clientConfig 1.1, parsed by the same DTD-refusing parser as the
domain's own autoconfig document, downloaded over verified TLS only, size-capped and
time-bounded (:func:`preflight.discover._autoconfig.download`). Nothing of the ISPDB
is shipped with preflight: it is asked at run time (it is published under the Mozilla
Public License 2.0).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from preflight.discover._model import HOST_RE, AutoconfigError, Lookup, Source

if TYPE_CHECKING:
    from preflight.discover._run import Run

__all__ = ["DEFAULT_CACHE_TTL", "DEFAULT_ISPDB_URL", "Ispdb", "IspdbAnswer", "registrable_domain"]

DEFAULT_ISPDB_URL: Final = "https://autoconfig.thunderbird.net/v1.1/"
#: How long an answer kept on disk is used (a day: the ISPDB changes slowly).
DEFAULT_CACHE_TTL: Final = 24 * 3600.0
_CACHE_VERSION: Final = 1
#: Answers worth keeping beyond the run: a document, or "the ISPDB has no entry".
_KEPT: Final = ("found", "none")


@dataclass(frozen=True)
class IspdbAnswer:
    """What the ISPDB said for one domain: ``result`` is a :class:`Lookup` result."""

    domain: str
    url: str
    result: str
    document: bytes = b""
    detail: str = ""
    cached: bool = False

    def lookup(self) -> Lookup:
        detail = self.detail
        if self.cached:
            detail = f"{detail} (cached)" if detail else "(cached)"
        return Lookup("ispdb", self.url, self.result, detail)


def parse_base_url(url: str) -> tuple[str, int, str]:
    """(host, port, path ending in /) of an ISPDB base URL; ValueError when it is not
    an ``https://`` URL with a host (the ISPDB is only ever asked over verified TLS)."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"{url!r} is not a URL: {exc}") from None
    if parsed.scheme != "https":
        raise ValueError(f"{url!r}: the ISPDB is asked over https:// only")
    if not parsed.host or parsed.query or parsed.fragment or parsed.userinfo:
        raise ValueError(f"{url!r}: expected https://HOST[:PORT]/PATH/")
    path = parsed.path if parsed.path.endswith("/") else parsed.path + "/"
    return parsed.host, parsed.port or 443, path


_PSL: Any = None


def registrable_domain(host: str) -> str | None:
    """The registrable domain of a host name (``mx01.mail.icloud.com`` ->
    ``icloud.com``, ``mx.a.co.uk`` -> ``a.co.uk``), by the Public Suffix List that the
    ``publicsuffixlist`` package bundles (it never fetches one at run time)."""
    global _PSL
    from publicsuffixlist import PublicSuffixList

    host = host.strip().rstrip(".").lower()
    if not host or not HOST_RE.match(host):
        return None
    if _PSL is None:
        _PSL = PublicSuffixList()
    found = _PSL.privatesuffix(host)
    return str(found) if found else None


class Ispdb:
    """An ISPDB client: where it is, and the answers it has already given.

    One instance serves a whole run (many addresses): each domain is asked once,
    concurrent look-ups of one domain share the request. With ``cache_dir`` the
    answers (a document, or "no entry") are also kept on disk for ``ttl`` seconds,
    written atomically; a cache file that cannot be read or makes no sense is ignored.
    ``requests`` counts the HTTP requests made.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_ISPDB_URL,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        ttl: float = DEFAULT_CACHE_TTL,
        timeout: float = 5.0,
        max_document_bytes: int = 256 * 1024,
    ) -> None:
        self.host, self.port, self.path = parse_base_url(base_url)
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.ttl = ttl
        self.timeout = timeout
        self.cap = max_document_bytes
        self.requests = 0
        self._answers: dict[str, IspdbAnswer] = {}
        self._pending: dict[str, asyncio.Future[IspdbAnswer]] = {}

    def url_for(self, domain: str) -> str:
        return self.base_url + domain

    async def get(self, run: Run, domain: str) -> IspdbAnswer:
        """The ISPDB's answer for ``domain``: from this run, the disk, or the ISPDB."""
        domain = domain.lower().rstrip(".")
        known = self._answers.get(domain)
        if known is not None:
            return known if known.cached else _as_cached(known)
        pending = self._pending.get(domain)
        if pending is not None and not pending.done():
            try:
                return _as_cached(await asyncio.shield(pending))
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                # The look-up that asked gave up (its own deadline): ask for this one.
        future: asyncio.Future[IspdbAnswer] = asyncio.get_running_loop().create_future()
        self._pending[domain] = future
        try:
            answer = self._read_cache(domain)
            if answer is None:
                answer = await self._fetch(run, domain)
                if answer.result in _KEPT:
                    self._write_cache(answer)
        except BaseException as exc:
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning
            else:
                future.cancel()
            raise
        finally:
            self._pending.pop(domain, None)
        self._answers[domain] = answer
        future.set_result(answer)
        return answer

    async def _fetch(self, run: Run, domain: str) -> IspdbAnswer:
        import httpx

        from preflight.discover._autoconfig import download

        url = self.url_for(domain)
        self.requests += 1
        try:
            async with asyncio.timeout(self.timeout):
                async with httpx.AsyncClient(
                    verify=run.context,
                    trust_env=False,  # never a proxy from the environment
                    follow_redirects=False,
                    timeout=httpx.Timeout(self.timeout),
                ) as client:
                    data = await download(
                        run, client, self.host, self.port, self.path + domain, {}, self.cap
                    )
        except AutoconfigError as exc:
            return IspdbAnswer(domain, url, exc.reason, detail=str(exc))
        except TimeoutError:
            return IspdbAnswer(
                domain, url, "timeout", detail=f"no complete answer in {self.timeout:g} s"
            )
        return IspdbAnswer(domain, url, "found", document=data)

    # --- the disk cache ----------------------------------------------------------

    def _cache_file(self, domain: str) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(f"{self.base_url}\n{domain}".encode()).hexdigest()[:32]
        return self.cache_dir / f"ispdb-{key}.json"

    def _read_cache(self, domain: str) -> IspdbAnswer | None:
        path = self._cache_file(domain)
        if path is None:
            return None
        try:
            with open(path, "rb") as handle:
                raw = handle.read(self.cap * 2 + 4096)
            entry = json.loads(raw)
            if not isinstance(entry, dict) or entry.get("version") != _CACHE_VERSION:
                return None
            fetched, result = entry.get("fetched_at"), entry.get("result")
            if entry.get("url") != self.url_for(domain) or result not in _KEPT:
                return None
            if not isinstance(fetched, int | float) or isinstance(fetched, bool):
                return None
            age = time.time() - float(fetched)
            if not 0 - 300 <= age <= self.ttl:  # expired, or from the future
                return None
            document = base64.b64decode(str(entry.get("document", "")), validate=True)
            if len(document) > self.cap or (result == "found") != bool(document):
                return None
            detail = entry.get("detail", "")
            return IspdbAnswer(
                domain,
                self.url_for(domain),
                str(result),
                document=document,
                detail=detail if isinstance(detail, str) else "",
                cached=True,
            )
        except (OSError, ValueError, TypeError, RecursionError):
            return None  # no file, unreadable, or not what this module writes

    def _write_cache(self, answer: IspdbAnswer) -> None:
        path = self._cache_file(answer.domain)
        if path is None:
            return
        entry = {
            "version": _CACHE_VERSION,
            "url": answer.url,
            "fetched_at": time.time(),
            "result": answer.result,
            "detail": answer.detail,
            "document": base64.b64encode(answer.document).decode("ascii"),
        }
        temp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".ispdb-", suffix=".tmp", dir=path.parent)
            with open(fd, "w", encoding="ascii") as handle:
                json.dump(entry, handle)
            os.replace(temp, path)
            temp = None
        except OSError:
            pass  # a cache that cannot be written is only a slower next run
        finally:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)


def _as_cached(answer: IspdbAnswer) -> IspdbAnswer:
    """An answer given again within the run (no new request)."""
    return IspdbAnswer(
        answer.domain, answer.url, answer.result, answer.document, answer.detail, cached=True
    )


async def ask_ispdb(run: Run, ispdb: Ispdb, mx: asyncio.Task[None]) -> None:
    """Thunderbird's steps 2 and 3: the ISPDB by the address's domain; when it has no
    entry, by the domain of the most preferred MX host: the host name less its first
    label, then its registrable domain (as Thunderbird does, so that
    ``mail.protection.outlook.com`` can differ from ``outlook.com``). Not by MX when
    the bundled table already knows that MX: the table comes first for its providers."""
    from preflight.providers import by_mx

    answer = await ispdb.get(run, run.domain)
    if _use(run, answer, "ispdb", ""):
        return
    await asyncio.wait({mx})
    if not run.mx:
        return
    host = run.mx[0]
    names = mx_domains(host)
    known = by_mx(run.mx)
    if known is not None:
        run.lookups.append(
            Lookup(
                "ispdb",
                ispdb.url_for(names[-1] if names else host),
                "skipped",
                f"the bundled table knows MX {known[1]} ({known[0].name})",
            )
        )
        return
    for name in names:
        if name == run.domain:
            continue
        answer = await ispdb.get(run, name)
        if _use(run, answer, "ispdb-mx", f"by MX {host}"):
            return


def mx_domains(host: str) -> list[str]:
    """The names the ISPDB is asked for an MX host: the host less its first label
    (when that is below the registrable domain), then the registrable domain."""
    base = registrable_domain(host)
    if base is None:
        return []
    parent = host.strip().rstrip(".").lower().partition(".")[2]
    names = [parent] if parent != base and parent.endswith("." + base) else []
    return [*names, base]


def _use(run: Run, answer: IspdbAnswer, source: Source, why: str) -> bool:
    """Record an answer; True when it held a usable document."""
    from preflight.discover._autoconfig import describe, note_pop3, parse_config

    lookup = answer.lookup()
    if answer.result != "found":
        run.lookups.append(_with(lookup, why))
        return False
    try:
        config = parse_config(answer.document, run.email, run.domain, source)
    except AutoconfigError as exc:
        run.lookups.append(
            _with(Lookup("ispdb", lookup.target, exc.reason, str(exc)), why, answer.cached)
        )
        return False
    if source == "ispdb":
        run.ispdb = list(config.candidates)
    else:
        run.ispdb_mx = list(config.candidates)
    run.lookups.append(
        _with(Lookup("ispdb", lookup.target, "found", describe(config)), why, answer.cached)
    )
    note_pop3(run, config, "Thunderbird's ISPDB")
    return True


def _with(lookup: Lookup, why: str, cached: bool = False) -> Lookup:
    parts = [p for p in (why, lookup.detail, "(cached)" if cached else "") if p]
    return Lookup(lookup.step, lookup.target, lookup.result, "; ".join(parts).replace("; (", " ("))
