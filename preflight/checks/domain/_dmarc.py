"""DMARC (RFC 7489): the parser, and the part of the domain check that looks it up
(at the domain, else its parents: the DMARCbis tree walk)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from preflight._text import shorten
from preflight.checks.domain._lookup import TXT_SHOWN, Found, TxtCache
from preflight.report import Code

_DMARC_VERSION = re.compile(r"v\s*=\s*DMARC1\s*(?:;|$)", re.IGNORECASE)
_POLICIES: Final = ("none", "quarantine", "reject")


def parse_tags(text: str) -> dict[str, str]:
    """``k=v; k=v`` tag lists (DMARC, DKIM): keys lower case, values stripped."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


def is_dmarc(text: str) -> bool:
    """Whether a TXT record's text is a DMARC record (its first tag is ``v=DMARC1``)."""
    return _DMARC_VERSION.match(text.lstrip()) is not None


@dataclass(frozen=True)
class DmarcRecord:
    """A ``v=DMARC1`` record's tags."""

    text: str
    tags: Mapping[str, str]

    @property
    def policy(self) -> str | None:
        """``p``, when it is one of none, quarantine, reject."""
        value = self.tags.get("p", "").lower()
        return value if value in _POLICIES else None

    @property
    def subdomain_policy(self) -> str | None:
        """``sp`` when valid, else ``p``: the policy for names below the record's."""
        value = self.tags.get("sp", "").lower()
        return value if value in _POLICIES else self.policy


def parse_dmarc(text: str) -> DmarcRecord:
    return DmarcRecord(text, MappingProxyType(parse_tags(text)))


def _dmarc_candidates(domain: str) -> tuple[str, ...]:
    """The domain and its parents with two labels or more (the DMARCbis tree walk)."""
    labels = domain.split(".")
    names = [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]
    # DMARCbis walks at most a few labels up; keep the closest and the shortest.
    return tuple(names) if len(names) <= 5 else (*names[:4], names[-1])


async def check_dmarc(found: Found, dns_: TxtCache, *, strict: bool = False) -> None:
    """Look the DMARC record up. ``p=none`` is no problem on its own (it is what Google's
    and Yahoo's bulk-sender rules ask as a minimum, and what a warming domain should
    start with): it is a note, and with ``strict`` a warning (``dmarc_policy_none``)."""
    domain = found.domain
    hint_missing = (
        f'Publish a TXT record at _dmarc.{domain}: "v=DMARC1; p=none; '
        f'rua=mailto:dmarc@{domain}" to start, then move to p=quarantine. Gmail and Yahoo '
        "require DMARC from bulk senders."
    )
    candidates = _dmarc_candidates(domain)
    answers = [dns_.txt(f"_dmarc.{name}") for name in candidates]  # all asked at once
    for name, task in zip(candidates, answers, strict=True):
        answer = await task
        if answer.error is not None:
            found.dns_failed(answer.error, "the DMARC record")
            return
        records = [t for t in answer.texts if is_dmarc(t)]
        if not records:
            continue
        shown = [shorten(r, TXT_SHOWN) for r in records]  # a TXT record may be 64 KB
        found.details["dmarc"] = shown[0] if len(shown) == 1 else shown
        found.details["dmarc_domain"] = name
        if len(records) > 1:
            found.problem(
                Code.DMARC_MISSING,
                f"_dmarc.{name} has {len(records)} DMARC records; receivers ignore them all",
                f"Keep one v=DMARC1 record at _dmarc.{name} and delete the others.",
            )
            return
        record = parse_dmarc(records[0])
        policy = record.policy if name == domain else record.subdomain_policy
        found.details["dmarc_policy"] = policy
        found.details["dmarc_rua"] = (
            shorten(record.tags["rua"], 300) if record.tags.get("rua") else None
        )
        if policy is not None and not record.tags.get("rua"):
            found.details["notes"].append(
                f"the DMARC record at _dmarc.{name} has no rua=: no aggregate reports come "
                "back, so nobody sees which mail fails SPF or DKIM (add "
                f"rua=mailto:dmarc@{name})"
            )
        if policy is None:
            found.problem(
                Code.DMARC_MISSING,
                f"the DMARC record at _dmarc.{name} has no valid policy (p=none, quarantine "
                "or reject); receivers ignore it",
                f'Give the record a policy, e.g. "v=DMARC1; p=quarantine; '
                f'rua=mailto:dmarc@{name}".',
            )
        elif policy == "none":
            where = "" if name == domain else f" (from _dmarc.{name})"
            if not strict:
                found.details["notes"].append(
                    f"the DMARC policy of {domain} is p=none{where}: it only monitors, which "
                    "meets Google's and Yahoo's bulk-sender rules; move to p=quarantine once "
                    "the reports show SPF and DKIM passing"
                )
                return
            found.problem(
                Code.DMARC_POLICY_NONE,
                f"the DMARC policy of {domain} is p=none{where}: it only monitors",
                "p=none asks receivers for nothing, and they trust the domain less for it. "
                "Once the DMARC reports show SPF and DKIM passing, move to p=quarantine, "
                "then p=reject.",
            )
        return
    found.problem(Code.DMARC_MISSING, f"{domain} has no DMARC record", hint_missing)
