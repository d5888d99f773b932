"""DKIM: a key's state, the selectors to try, and the part of the domain check that
looks for keys on them."""

from __future__ import annotations

from collections.abc import Sequence
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


def dkim_selectors(provider: Provider | None, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The selectors to look for: ``extra`` (``--dkim-selector``) first, then the
    provider's, then the common ones."""
    own = provider.dkim_selectors if provider is not None else ()
    wanted = (s.lower().strip(".") for s in (*extra, *own, *COMMON_DKIM_SELECTORS))
    return tuple(dict.fromkeys(s for s in wanted if s))


#: Where Microsoft 365's selector CNAMEs point (selector1-example-com._domainkey.
#: TENANT.onmicrosoft.com; newer tenants: ...TENANT.<region>.dkim.mail.microsoft).
_MICROSOFT_TARGETS: Final = (".onmicrosoft.com", ".dkim.mail.microsoft")


def _microsoft(target: str) -> bool:
    return target.endswith(_MICROSOFT_TARGETS)


async def check_dkim(found: Found, dns_: TxtCache, extra: Sequence[str] = ()) -> None:
    domain = found.domain
    selectors = dkim_selectors(found.provider, extra)
    tasks = [dns_.txt(f"{selector}._domainkey.{domain}") for selector in selectors]
    keys: list[str] = []
    revoked: list[str] = []
    aliases: dict[str, str] = {}
    dangling: list[str] = []
    failed: set[Code] = set()
    for selector, task in zip(selectors, tasks, strict=True):
        answer = await task
        if answer.error is not None:
            failed.add(answer.error)
            continue
        if answer.canonical is not None:
            aliases[selector] = answer.canonical
        states = {dkim_key_state(text) for text in answer.texts}
        if "key" in states:
            keys.append(selector)
        elif "revoked" in states:
            revoked.append(selector)
        elif answer.canonical is not None:
            dangling.append(selector)  # a CNAME to a name without a key
    found.details["dkim_selectors"] = keys
    found.details["dkim_revoked"] = revoked
    found.details["dkim_cnames"] = aliases
    found.details["dkim_dangling"] = dangling
    if keys:
        return
    if dangling:
        _not_enabled(found, dangling, aliases)
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


def _not_enabled(found: Found, dangling: list[str], aliases: dict[str, str]) -> None:
    """DKIM selectors that are CNAMEs to names without a key: signing was set up in DNS
    but never turned on where the CNAMEs point (Microsoft 365's usual state)."""
    domain = found.domain
    selector = dangling[0]
    target = aliases[selector]
    names = ", ".join(f"{s}._domainkey.{domain} -> {aliases[s]}" for s in dangling)
    if _microsoft(target):
        found.problem(
            Code.DKIM_NOT_ENABLED,
            f"DKIM is not enabled in the Microsoft 365 tenant: {names} point to no key",
            f"Turn DKIM signing on for {domain} in the Microsoft Defender portal (Email & "
            "collaboration > Policies & rules > Threat policies > Email authentication "
            f"settings > DKIM), or Set-DkimSigningConfig -Identity {domain} -Enabled $true; "
            "the CNAMEs then lead to its keys.",
        )
        return
    found.problem(
        Code.DKIM_NOT_ENABLED,
        f"the DKIM record {selector}._domainkey.{domain} is a CNAME to {target}, which has no "
        f"key: DKIM signing is not enabled where it points ({names})",
        f"Turn DKIM signing on for {domain} at the service {target} belongs to, or correct the "
        "CNAME's target as that service's setup page gives it.",
    )
