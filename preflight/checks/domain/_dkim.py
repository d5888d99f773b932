"""DKIM: a key's state, the selectors to try, and the part of the domain check that
looks for keys on them."""

from __future__ import annotations

from typing import Final

from preflight.checks.domain._dmarc import parse_tags
from preflight.checks.domain._lookup import Found, TxtCache
from preflight.providers import Provider
from preflight.report import Code


def dkim_key_state(text: str) -> str | None:
    """``"key"`` for a DKIM key record, ``"revoked"`` for an empty ``p=``, else None."""
    tags = parse_tags(text)
    if "v" in tags and tags["v"].upper() != "DKIM1":
        return None
    if "p" not in tags:
        return None
    return "key" if "".join(tags["p"].split()) else "revoked"


#: Selectors tried for every domain, after the provider's own.
COMMON_DKIM_SELECTORS: Final = (
    "default",
    "dkim",
    "mail",
    "google",
    "selector1",
    "selector2",
    "k1",
    "k2",
    "s1",
    "s2",
    "smtp",
    "email",
)


def dkim_selectors(provider: Provider | None) -> tuple[str, ...]:
    """The selectors to look for: the provider's first, then the common ones."""
    own = provider.dkim_selectors if provider is not None else ()
    return tuple(dict.fromkeys((*own, *COMMON_DKIM_SELECTORS)))


async def check_dkim(found: Found, dns_: TxtCache) -> None:
    domain = found.domain
    selectors = dkim_selectors(found.provider)
    tasks = [dns_.txt(f"{selector}._domainkey.{domain}") for selector in selectors]
    keys: list[str] = []
    revoked: list[str] = []
    failed: set[Code] = set()
    for selector, task in zip(selectors, tasks, strict=True):
        answer = await task
        if answer.error is not None:
            failed.add(answer.error)
            continue
        states = {dkim_key_state(text) for text in answer.texts}
        if "key" in states:
            keys.append(selector)
        elif "revoked" in states:
            revoked.append(selector)
    found.details["dkim_selectors"] = keys
    found.details["dkim_revoked"] = revoked
    if keys:
        return
    if failed:  # the key may sit on a selector that did not answer
        for code in sorted(failed):
            found.dns_failed(code, "the DKIM keys")
        return
    provider = found.provider
    hint = (
        provider.dkim_hint.format(domain=domain)
        if provider is not None and provider.dkim_hint
        else "Turn DKIM signing on at the mail provider and publish the key it gives as a "
        f"TXT record at SELECTOR._domainkey.{domain}. If mail is already signed with a "
        "selector not listed in details.dkim_selectors_checked, ignore this warning."
    )
    found.problem(
        Code.DKIM_MISSING,
        f"no DKIM key found for {domain} on the usual selectors ({', '.join(selectors[:4])}, ...)",
        hint,
    )
