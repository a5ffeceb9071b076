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

from logsense.i18n import t, tn, word
from logsense.report_model import Group, format_span, format_ts, group_incidents, split_evidence, summarise, where
from logsense.text import one_line

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


def summary_md(incidents: list[dict], stats: dict, warnings: list[str] | None, tz: tzinfo | None,
               lang: str = "en") -> str:
    s = summarise(incidents, stats, warnings, lang)
    sep = t("list.sep", lang)
    parts = [f"# {t('md.title', lang, incidents=tn('summary.incidents', s.incidents, lang))}\n\n"]
    facts = [f"**{s.headline()}**"]
    if s.hosts:
        facts.append(f"{t('label.hosts_lc', lang)}: {md(', '.join(s.hosts))}")
    if s.vms:
        facts.append(f"{t('label.vms_hit_n', lang, n=len(s.vms))}: {md(', '.join(s.vms))}")
    if s.first_seen and s.last_seen:
        facts.append(f"{t('label.time_span_lc', lang)}: {format_span(s.first_seen, s.last_seen, tz)}")
    parts.append(" · ".join(facts) + "\n\n")
    if s.read:
        parts.append(f"- **{t('label.read', lang)}:** {md(sep.join(s.read))}\n")
    if s.not_read:
        parts.append(f"- **{t('label.not_read', lang)}:** {md(sep.join(s.not_read))}\n")
    parts += [f"- **{t('label.also', lang)}:** {md(x)}\n" for x in s.other_stats]
    if s.warnings:
        parts.append(f"- **{t('label.warnings_n', lang, n=len(s.warnings))}:**\n"
                     + "".join(f"  - {md(w)}\n" for w in s.warnings[:20]))
        if len(s.warnings) > 20:
            parts.append(f"  - {t('label.more', lang, n=len(s.warnings) - 20)}\n")
    return "".join(parts)


def groups_table(groups: list[Group], tz: tzinfo | None, lang: str = "en") -> str:
    rows = [t("md.groups_table", lang), "|---|---|---|---|---|---|"]
    for g in groups:
        inc = g.first
        vms = sorted({vm for i in g.incidents for vm in i["affected_vms"]})
        rows.append(f"| {word('severity', inc['severity'], lang)} | {format_ts(inc['first_seen'], tz)} | "
                    f"{word('scope', inc['scope'], lang)} | {md(', '.join(vms))} | {len(g.incidents)} | "
                    f"{md(g.title)} |")
    return "\n".join(rows) + "\n"


def group_md(g: Group, tz: tzinfo | None, lang: str = "en") -> str:
    inc = g.first
    vms = sorted({vm for i in g.incidents for vm in i["affected_vms"]})
    scope = t("scope.line", lang, scope=word("scope", inc["scope"], lang), host=md(inc["host"] or "-")) \
        + t("scope.vms", lang, vms=md(", ".join(vms) or "-"))
    out = [f"\n## {md(g.title)}\n\n",
           f"- **{t('label.severity', lang)}:** {word('severity', inc['severity'], lang)}\n",
           f"- **{t('label.when', lang)}:** {format_span(inc['first_seen'], inc['last_seen'], tz)}\n",
           f"- **{t('label.scope', lang)}:** {scope}\n",
           f"- **{t('label.root_cause', lang).capitalize()}:** "
           f"{md_code(inc['root_cause'] or t('label.unrecognised', lang))} ({inc['category']})\n"]
    if inc["recovered_at"]:
        out.append(f"- **{t('label.recovered', lang)}:** {format_ts(inc['recovered_at'], tz)}\n")
    out.append(f"\n**{t('label.why', lang)}:** {md(inc['explanation'])}\n\n")
    evidence, context = split_evidence(inc)
    out.append(f"**{t('label.evidence', lang)}**\n\n" + fenced([_event_line(e, tz) for e in evidence[:MAX_EVIDENCE]]))
    if context:
        out.append("\n" + t("md.context", lang, lines=tn("label.context_lines", len(context), lang)) + "\n\n"
                   + fenced([_event_line(e, tz) for e in context[:MAX_EVIDENCE]]))
    if inc["remediation"]:
        out.append(f"\n**{t('label.fix', lang)}**\n\n"
                   + "".join(f"{n}. {md(s)}\n" for n, s in enumerate(inc["remediation"], 1)))
    if inc["diagnostics"]:
        out.append(f"\n**{t('label.confirm', lang)}**\n\n" + fenced(inc["diagnostics"], "sh"))
    if g.others:
        out.append("\n" + t("md.same_on_head", lang, more=tn("more_incidents", len(g.others), lang)) + "\n\n")
        out += ["- " + t("md.same_on", lang, who=md(", ".join(o["affected_vms"]) or o["vm"] or "-"),
                         host=md(o["host"] or "-"), span=format_span(o["first_seen"], o["last_seen"], tz)) + "\n"
                for o in g.others]
    return "".join(out)


def write_markdown(out: TextIO, incidents: list[dict], stats: dict, unrecognised: list[dict],
                   warnings: list[str] | None = None, tz: tzinfo | None = None, lang: str = "en") -> None:
    groups = group_incidents(incidents, lang)
    out.write(summary_md(incidents, stats, warnings, tz, lang))
    if groups:
        out.write("\n" + groups_table(groups, tz, lang))
    for g in groups:
        out.write(group_md(g, tz, lang))
    if unrecognised:
        out.write(f"\n## {t('report.unrecognised', lang)}\n\n{t('md.unrecognised_table', lang)}\n|---|---|\n")
        for u in unrecognised:
            out.write(f"| {u['count']} | {md(u['shape'][:150])} |\n")


def fleet_summary_md(heading: str, shared: list[tuple[str, str, str, str, str]],
                     hosts: list[tuple[str, str, str]], lang: str = "en") -> str:
    """The fleet summary before the report (logsense/fleet.py `summary_rows`): its own heading,
    the fleet incidents, a table of the hosts."""
    lines = [f"# {md(heading)}", ""]
    lines += [f"- **{md(word_)}** {md(title)} ({md(names)})" for _, _, word_, title, names in shared]
    lines += ["", "| " + " | ".join(map(md, t("fleet.columns", lang).split("|"))) + " |", "|---|---|---|"]
    lines += [f"| {md(host)} | {md(state)} | {md(path)} |" for host, state, path in hosts]
    return "\n".join(lines) + "\n\n"
