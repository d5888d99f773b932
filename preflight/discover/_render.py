"""The text rendering of a discovery (the CLI prints it)."""

from __future__ import annotations

from preflight.discover._model import SECURITY_LABEL, Discovery


def render_text(result: Discovery) -> str:
    """The discovery as a user reads it on a terminal."""
    from preflight._text import printable

    # Greetings, autoconfig documents and DNS answers are the servers' words:
    # shown escaped, never obeyed by the terminal.
    lines = [printable(result.email)]

    def row(label: str, value: str) -> None:
        lines.append(f"  {label:<10}{printable(value)}")

    if result.provider is not None:
        entry = result.provider.provider
        how = {
            "domain": "by the address's domain",
            "mx": f"MX {result.provider.evidence}",
            "spf": f"SPF include:{result.provider.evidence}",
            "autodiscover": f"autodiscover CNAME {result.provider.evidence}",
        }[result.provider.via]
        row("provider", f"{entry.name} ({how})")
    for name, candidate in (("SMTP", result.smtp), ("IMAP", result.imap)):
        if candidate is None:
            row(name, "not found")
            continue
        where = {
            "table": "from the provider table",
            "srv": "from the domain's SRV record",
            "autoconfig": "from the domain's autoconfig document",
            "ispdb": "from Thunderbird's ISPDB (by domain)",
            "ispdb-mx": "from Thunderbird's ISPDB (by MX domain)",
            "guess": "guessed; it answered",
        }[candidate.source]
        setting = f"{candidate.host}:{candidate.port}"
        row(name, f"{setting:<34} {SECURITY_LABEL[candidate.security]:<9}  {where}")
        if candidate.source == "guess" and candidate.detail:
            row("", candidate.detail)
        others = [
            c
            for c in result.candidates
            if c.protocol == candidate.protocol and c.answered and c != candidate
        ]
        if others:
            row("", "also answered: " + ", ".join(c.label() for c in others))
        listed = [
            c
            for c in result.candidates
            if c.protocol == candidate.protocol
            and c.source == candidate.source
            and c.answered is None
            and c != candidate
            and c.source != "table"
        ]
        if listed:
            row("", "also listed: " + ", ".join(c.label() for c in listed))
    row("type", result.type.value)
    row("user", result.user_name)
    if result.imap_user_name:
        row("IMAP user", result.imap_user_name)
    if result.provider is not None:
        row("source", result.provider.provider.source)
    if result.mx and (result.provider is None or result.provider.via != "mx"):
        row("MX", ", ".join(result.mx))
    for lookup in result.lookups:
        if lookup.step == "autoconfig" and lookup.result not in ("found", "does_not_resolve"):
            row("tried", f"{lookup.target}: {lookup.result} ({lookup.detail})")
        elif lookup.step == "ispdb" and lookup.result not in ("none", "skipped"):
            detail = f" ({lookup.detail})" if lookup.detail else ""
            row("ISPDB", f"{lookup.target}: {lookup.result}{detail}")
        elif lookup.step == "guess" and lookup.result != "found":
            row("tried", f"guessing {lookup.target}: {lookup.detail}")
    for note in result.notes:
        row("note", note)
    if result.found:
        lines.append(
            "Next: fill in from_name and password (--format json gives the payload), "
            "then run preflight check."
        )
    else:
        missing = [p for p, c in (("SMTP", result.smtp), ("IMAP", result.imap)) if c is None]
        lines.append(
            f"No {' or '.join(missing)} settings found: ask the mail provider, or look in "
            "its help pages."
        )
    return "\n".join(lines) + "\n"
