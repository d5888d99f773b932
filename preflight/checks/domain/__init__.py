"""The ``domain`` check: will mail from the sender's domain be trusted? (SPF, DMARC,
DKIM; see :mod:`preflight.checks.domain._check`.)

One job per module: ``_spf`` (parse and evaluate), ``_dmarc``, ``_dkim``, ``_lookup``
(the TXT look-ups and what was found), ``_check`` (the probe and its report). What a
provider asks of a sending domain is in :mod:`preflight.providers`.
"""

from __future__ import annotations

from preflight.checks.domain._check import implied_provider, is_provider_domain, probe_domain
from preflight.checks.domain._dkim import dkim_key_state, dkim_selectors
from preflight.checks.domain._dmarc import DmarcRecord, is_dmarc, parse_dmarc
from preflight.checks.domain._spf import (
    MAX_SPF_LOOKUPS,
    Fetch,
    Finding,
    SpfEvaluation,
    SpfRecord,
    SpfTerm,
    TxtLookup,
    evaluate_spf,
    is_spf,
    parse_spf,
    spf_records,
)
from preflight.providers import Provider

__all__ = [
    "MAX_SPF_LOOKUPS",
    "DmarcRecord",
    "Fetch",
    "Finding",
    "Provider",
    "SpfEvaluation",
    "SpfRecord",
    "SpfTerm",
    "TxtLookup",
    "dkim_key_state",
    "dkim_selectors",
    "evaluate_spf",
    "implied_provider",
    "is_dmarc",
    "is_provider_domain",
    "is_spf",
    "parse_dmarc",
    "parse_spf",
    "probe_domain",
    "spf_records",
]
