"""The Markdown report, for a ticket or a wiki: summary first, one section per incident group.

Everything taken from logs is untrusted: in prose it is escaped (no raw HTML such as
`<img onerror=...>` or `<source file=...>`, no emphasis, links or table breaks) and kept on one
line (a newline in a journal MESSAGE cannot start a heading); log lines and commands go in code
fences longer than any run of backticks inside them, so nothing can close the fence early.
"""

from __future__ import annotations

import re
from datetime import tzinfo
from typing import Any, TextIO

from logsense.report_model import Group, format_span, format_ts, group_incidents, split_evidence, summarise, where
from logsense.text import one_line, plural

MD_SPECIAL_RE = re.compile(r"([\\`*_\[\]<>#|~&!])")
BACKTICKS_RE = re.compile(r"`+")
MAX_EVIDENCE = 20
MESSAGE_CHARS = 300


def md(text: Any) -> str:
    """Log or catalogue text as inert Markdown prose on one line."""
    return MD_SPECIAL_RE.sub(r"\\\1", one_line(text))


def md_code(text: Any) -> str:
    """An inline code span that no backtick inside can end."""
    text = one_line(text)
    ticks = "`" * (max((len(m) for m in BACKTICKS_RE.findall(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fenced(lines: list[str], info: str = "") -> str:
    """A code block of one-line strings, fenced with more backticks than any run inside."""
    lines = [one_line(s) for s in lines]
    longest = max((len(m) for s in lines for m in BACKTICKS_RE.findall(s)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n" + "".join(f"{s}\n" for s in lines) + f"{fence}\n"


def _event_line(ev: dict[str, Any], tz: tzinfo | None) -> str:
    message = one_line(ev["message"])
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS - 1] + "…"
    count = f"  x{ev['count']}" if ev.get("count", 1) > 1 else ""
    return f"{format_ts(ev['ts'], tz)} {message}  ({where(ev)}){count}"


def summary_md(incidents: list[dict], stats: dict, warnings: list[str] | None, tz: tzinfo | None) -> str:
    s = summarise(incidents, stats, warnings)
    parts = [f"# logsense report: {plural(s.incidents, 'incident')}\n\n"]
    facts = [f"**{s.headline()}**"]
    if s.hosts:
        facts.append(f"hosts: {md(', '.join(s.hosts))}")
    if s.vms:
        facts.append(f"VMs hit ({len(s.vms)}): {md(', '.join(s.vms))}")
    if s.first_seen and s.last_seen:
        facts.append(f"time span: {format_span(s.first_seen, s.last_seen, tz)}")
    parts.append(" · ".join(facts) + "\n\n")
    if s.read:
        parts.append(f"- **Read:** {md(', '.join(s.read))}\n")
    if s.not_read:
        parts.append(f"- **Not read:** {md(', '.join(s.not_read))}\n")
    parts += [f"- **Also:** {md(x)}\n" for x in s.other_stats]
    if s.warnings:
        parts.append(f"- **Warnings ({len(s.warnings)}):**\n" + "".join(f"  - {md(w)}\n" for w in s.warnings[:20]))
        if len(s.warnings) > 20:
            parts.append(f"  - … {len(s.warnings) - 20} more\n")
    return "".join(parts)


def groups_table(groups: list[Group], tz: tzinfo | None) -> str:
    rows = ["| severity | first seen | scope | VMs | incidents | title |", "|---|---|---|---|---|---|"]
    for g in groups:
        inc = g.first
        vms = sorted({vm for i in g.incidents for vm in i["affected_vms"]})
        rows.append(f"| {inc['severity']} | {format_ts(inc['first_seen'], tz)} | {inc['scope']} | "
                    f"{md(', '.join(vms))} | {len(g.incidents)} | {md(g.title)} |")
    return "\n".join(rows) + "\n"


def group_md(g: Group, tz: tzinfo | None) -> str:
    inc = g.first
    vms = sorted({vm for i in g.incidents for vm in i["affected_vms"]})
    out = [f"\n## {md(g.title)}\n\n",
           f"- **Severity:** {inc['severity']}\n",
           f"- **When:** {format_span(inc['first_seen'], inc['last_seen'], tz)}\n",
           f"- **Scope:** {inc['scope']} on host {md(inc['host'] or '-')}; VMs: {md(', '.join(vms) or '-')}\n",
           f"- **Root cause:** {md_code(inc['root_cause'] or 'unrecognised')} ({inc['category']})\n"]
    if inc["recovered_at"]:
        out.append(f"- **Recovered:** {format_ts(inc['recovered_at'], tz)}\n")
    out.append(f"\n**Why:** {md(inc['explanation'])}\n\n")
    evidence, context = split_evidence(inc)
    out.append("**Evidence**\n\n" + fenced([_event_line(e, tz) for e in evidence[:MAX_EVIDENCE]]))
    if context:
        out.append(f"\n**Context** ({plural(len(context), 'line')} around it, not evidence)\n\n"
                   + fenced([_event_line(e, tz) for e in context[:MAX_EVIDENCE]]))
    if inc["remediation"]:
        out.append("\n**Fix**\n\n" + "".join(f"{n}. {md(s)}\n" for n, s in enumerate(inc["remediation"], 1)))
    if inc["diagnostics"]:
        out.append("\n**Confirm**\n\n" + fenced(inc["diagnostics"], "sh"))
    if g.others:
        out.append(f"\n**Same on** ({plural(len(g.others), 'more incident')})\n\n")
        out += [f"- {md(', '.join(o['affected_vms']) or o['vm'] or '-')} on {md(o['host'] or '-')}, "
                f"{format_span(o['first_seen'], o['last_seen'], tz)}\n" for o in g.others]
    return "".join(out)


def write_markdown(out: TextIO, incidents: list[dict], stats: dict, unrecognised: list[dict],
                   warnings: list[str] | None = None, tz: tzinfo | None = None) -> None:
    groups = group_incidents(incidents)
    out.write(summary_md(incidents, stats, warnings, tz))
    if groups:
        out.write("\n" + groups_table(groups, tz))
    for g in groups:
        out.write(group_md(g, tz))
    if unrecognised:
        out.write("\n## Unrecognised errors\n\n| count | message shape |\n|---|---|\n")
        for u in unrecognised:
            out.write(f"| {u['count']} | {md(u['shape'][:150])} |\n")
