"""Render incidents for people and scripts: text (rich), json, jsonl, markdown, html.

Diagnosis is done before this module: it only lays out the incident dicts of CONTRACT.md.
Log text is untrusted, so every string is escaped for its medium (control characters for the
terminal, markup for rich and HTML, pipes for markdown tables).
"""

from __future__ import annotations

import html
import json
from collections import Counter
from typing import Any, TextIO

from logsense.i18n import t, word
from logsense.model import Event
from logsense.text import safe

CATEGORY_COLOURS = {
    "memory": "#d62728", "cpu": "#9467bd", "permission": "#ff7f0e", "disk_image": "#8c564b",
    "storage": "#e377c2", "network": "#1f77b4", "config": "#7f7f7f", "virt_layer": "#bcbd22",
    "performance": "#17becf", "host": "#393b79", "guest": "#2ca02c", None: "#aaaaaa",
}
SEVERITY_STYLE = {"critical": "bold red", "major": "yellow", "minor": "cyan"}


def unrecognised_summary(events: list[Event], limit: int = 20) -> list[dict[str, Any]]:
    """Error-level lines no pattern knows, grouped by message shape, most frequent first."""
    counts: Counter[str] = Counter()
    example: dict[str, Event] = {}
    for e in events:
        if e.shape is not None:
            counts[e.shape] += 1
            example.setdefault(e.shape, e)
    return [{"shape": s, "count": n, "example": example[s].record.message[:300],
             "source": example[s].record.source,
             "first": f"{example[s].record.file}:{example[s].record.line}"}
            for s, n in counts.most_common(limit)]


def write_json(out: TextIO, incidents: list[dict], stats: dict, unrecognised: list[dict]) -> None:
    json.dump({"incidents": incidents, "stats": stats, "unrecognised_errors": unrecognised}, out, indent=2)
    out.write("\n")


def write_jsonl(out: TextIO, incidents: list[dict]) -> None:
    for inc in incidents:
        out.write(json.dumps(inc) + "\n")


def _where(ev: dict) -> str:
    if ev.get("file"):
        return f"{ev['file']}:{ev['line']}"
    return ev.get("cursor") or "journal"


def write_text(out: TextIO, incidents: list[dict], stats: dict, unrecognised: list[dict],
               color: bool | None = None, lang: str = "en", width: int = 120) -> None:
    from rich.cells import cell_len
    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel

    con = Console(file=out, force_terminal=color, highlight=False, soft_wrap=False, width=width)

    def esc(s: Any) -> str:
        return escape(safe(str(s)))

    def head(key: str) -> str:  # a bold label padded to 10 terminal cells (CJK counts 2)
        label = t(key, lang)
        return f"[b]{label}[/b]" + " " * max(1, 10 - cell_len(label))

    if not incidents:
        con.print(t("report.none", lang))
    for inc in incidents:
        style = SEVERITY_STYLE.get(inc["severity"], "")
        lines = [
            f"{head('label.when')}{esc(inc['first_seen'])} → {esc(inc['last_seen'])}",
            f"{head('label.scope')}{esc(word('scope', inc['scope'], lang))}  {t('label.host', lang)} "
            f"{esc(inc['host'] or '-')}"
            + (f"  {t('label.vms', lang)}: {esc(', '.join(inc['affected_vms']))}" if inc["affected_vms"] else ""),
            f"{head('label.category')}{esc(inc['category'])}   {t('label.root_cause', lang)}: "
            f"{esc(inc['root_cause'] or t('label.unrecognised', lang))}",
            f"{head('label.why')}{esc(inc['explanation'])}",
        ]
        if inc["recovered_at"]:
            lines.append(f"{head('label.recovered')}{esc(inc['recovered_at'])}")
        lines.append(f"[b]{t('label.evidence', lang)}[/b]")
        for ev in inc["evidence"][:12]:
            count = f" (×{ev['count']})" if ev.get("count", 1) > 1 else ""
            lines.append(f"  {esc(ev['ts'][:19])} {esc(ev['message'][:160])}{count}  [dim]{esc(_where(ev))}[/dim]")
        if len(inc["evidence"]) > 12:
            lines.append(f"  {t('label.more', lang, n=len(inc['evidence']) - 12)}")
        if inc["remediation"]:
            lines.append(f"[b]{t('label.fix', lang)}[/b]")
            lines += [f"  {n}. {esc(s)}" for n, s in enumerate(inc["remediation"], 1)]
        if inc["diagnostics"]:
            lines.append(f"[b]{t('label.confirm', lang)}[/b]")
            lines += [f"  $ {esc(s)}" for s in inc["diagnostics"]]
        sev = inc["severity"].upper() if lang == "en" else word("severity", inc["severity"], lang)
        con.print(Panel("\n".join(lines), title=f"[{style}]{sev}[/] {esc(inc['title'])}",
                        title_align="left", border_style=style or "white"))
    if unrecognised:
        con.print(f"[b]{t('report.unrecognised', lang)}[/b] {t('report.unrecognised_hint', lang)}")
        for u in unrecognised:
            con.print(f"  {u['count']:>5} × {esc(u['shape'][:150])}")
    con.print("[dim]" + t("report.stats", lang, files=int(stats.get("files_read", 0)),
                          lines=int(stats.get("lines_read", 0)), events=int(stats.get("events_matched", 0)),
                          incidents=len(incidents), seconds=f"{stats.get('seconds', 0):.2f}") + "[/dim]")


def _md(s: Any) -> str:
    return safe(str(s)).replace("|", "\\|").replace("`", "'")


def write_markdown(out: TextIO, incidents: list[dict], stats: dict, unrecognised: list[dict],
                   lang: str = "en") -> None:
    out.write(f"# {t('md.heading', lang, n=len(incidents))}\n\n")
    if incidents:
        out.write(t("md.table", lang) + "\n|---|---|---|---|---|\n")
        for inc in incidents:
            out.write(f"| {word('severity', inc['severity'], lang)} | {inc['first_seen'][:19]} | "
                      f"{word('scope', inc['scope'], lang)} | "
                      f"{_md(', '.join(inc['affected_vms']))} | {_md(inc['title'])} |\n")
    for inc in incidents:
        out.write(f"\n## {_md(inc['title'])}\n\n")
        out.write(f"- **{t('label.severity', lang)}:** {word('severity', inc['severity'], lang)}  \n"
                  f"- **{t('label.when', lang)}:** {inc['first_seen']} → {inc['last_seen']}\n")
        scope = t("md.scope", lang, scope=word("scope", inc["scope"], lang), host=_md(inc["host"] or "-"),
                  vms=_md(", ".join(inc["affected_vms"]) or "-"))
        out.write(f"- **{t('label.scope', lang)}:** {scope}\n")
        out.write(f"- **{t('label.root_cause', lang)}:** `{inc['root_cause'] or t('label.unrecognised', lang)}` "
                  f"({inc['category']})\n")
        if inc["recovered_at"]:
            out.write(f"- **{t('label.recovered', lang)}:** {inc['recovered_at']}\n")
        out.write(f"\n{_md(inc['explanation'])}\n\n**{t('label.evidence', lang)}**\n\n```\n")
        for ev in inc["evidence"][:20]:
            line = safe(f"{ev['ts'][:19]} {ev['message'][:200]}  ({_where(ev)})").replace("```", "'''")
            out.write(line + (f"  x{ev['count']}" if ev.get("count", 1) > 1 else "") + "\n")
        out.write("```\n")
        if inc["remediation"]:
            out.write(f"\n**{t('label.fix', lang)}**\n\n"
                      + "".join(f"{n}. {_md(s)}\n" for n, s in enumerate(inc["remediation"], 1)))
        if inc["diagnostics"]:
            out.write(f"\n**{t('label.confirm', lang)}**\n\n```sh\n"
                      + "".join(f"{safe(s)}\n" for s in inc["diagnostics"]) + "```\n")
    if unrecognised:
        out.write(f"\n## {t('report.unrecognised', lang)}\n\n{t('md.unrecognised_table', lang)}\n|---|---|\n")
        for u in unrecognised:
            out.write(f"| {u['count']} | {_md(u['shape'][:150])} |\n")
    out.write("\n_" + t("report.stats_short", lang, files=int(stats.get("files_read", 0)),
                         lines=int(stats.get("lines_read", 0)), events=int(stats.get("events_matched", 0))) + "_\n")


def _e(s: Any) -> str:
    return html.escape(safe(str(s)))


def incident_html(inc: dict, lang: str = "en") -> str:
    """One incident as an HTML fragment (the report and notebooks' _repr_html_ share it)."""
    ev_rows = "".join(
        f"<tr><td>{_e(ev['ts'][:19])}</td><td>{_e(ev['vm'] or '')}</td><td>{_e(ev['pattern'] or '')}</td>"
        f"<td><code>{_e(ev['message'][:300])}</code></td><td>{_e(_where(ev))}</td>"
        f"<td>{ev.get('count', 1)}</td></tr>" for ev in inc["evidence"])
    fix = "".join(f"<li>{_e(s)}</li>" for s in inc["remediation"])
    diag = "".join(f"<li><code>{_e(s)}</code></li>" for s in inc["diagnostics"])
    rec = f"<p><b>{t('label.recovered', lang)}:</b> {_e(inc['recovered_at'])}</p>" if inc["recovered_at"] else ""
    heads = "".join(f"<th>{_e(h)}</th>" for h in t("html.columns", lang).split("|"))
    return (f"<section class='incident {_e(inc['severity'])}' id='inc-{_e(inc['id'])}'>"
            f"<h2><span class='sev'>{_e(word('severity', inc['severity'], lang))}</span> {_e(inc['title'])}</h2>"
            f"<p><b>{t('label.when', lang)}:</b> {_e(inc['first_seen'])} → {_e(inc['last_seen'])} · "
            f"<b>{t('label.scope', lang)}:</b> {_e(word('scope', inc['scope'], lang))}"
            f" · <b>{t('label.host', lang)}:</b> {_e(inc['host'] or '-')} · "
            f"<b>{t('label.vms', lang)}:</b> {_e(', '.join(inc['affected_vms']) or '-')}"
            f" · <b>{t('label.root_cause', lang)}:</b> <code>{_e(inc['root_cause'] or t('label.unrecognised', lang))}"
            f"</code> ({_e(inc['category'])})</p>"
            f"<p>{_e(inc['explanation'])}</p>{rec}"
            f"<table><tr>{heads}</tr>{ev_rows}</table>"
            f"<h3>{t('label.fix', lang)}</h3><ol>{fix}</ol>"
            f"<h3>{t('label.confirm', lang)}</h3><ul>{diag}</ul></section>")


def timeline_svg(events: list[Event], incidents: list[dict]) -> str:
    """Events per VM over time, coloured by category, incidents shaded."""
    evs = [e for e in events if e.pattern is not None or e.shape is not None]
    if not evs:
        return "<p>No events.</p>"
    t0 = min(e.ts for e in evs).timestamp()
    t1 = max(e.ts for e in evs).timestamp()
    span = max(t1 - t0, 1.0)
    rows = sorted({e.vm or "(host)" for e in evs})
    width, left, row_h = 900, 160, 22
    height = row_h * len(rows) + 30

    def x(ts: float) -> float:
        return left + (ts - t0) / span * (width - left - 10)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' class='timeline'>"]
    for inc in incidents:
        from datetime import datetime
        a = datetime.fromisoformat(inc["first_seen"]).timestamp()
        b = datetime.fromisoformat(inc["last_seen"]).timestamp()
        for vm in inc["affected_vms"] or ["(host)"]:
            if vm in rows:
                y = rows.index(vm) * row_h + 2
                parts.append(f"<rect x='{x(a) - 3:.1f}' y='{y}' width='{max(x(b) - x(a), 0) + 6:.1f}' "
                             f"height='{row_h - 4}' fill='#f6e3a1' opacity='0.6'/>")
    for i, vm in enumerate(rows):
        y = i * row_h + row_h / 2 + 4
        parts.append(f"<text x='4' y='{y}' font-size='12'>{_e(vm[:22])}</text>")
    for e in evs:
        y = rows.index(e.vm or "(host)") * row_h + row_h / 2
        colour = CATEGORY_COLOURS.get(e.category, "#aaaaaa")
        parts.append(f"<circle cx='{x(e.ts.timestamp()):.1f}' cy='{y}' r='4' fill='{colour}'>"
                     f"<title>{_e(e.ts.isoformat(timespec='seconds'))} {_e(e.pattern_id or 'unrecognised')}: "
                     f"{_e(e.record.message[:200])}</title></circle>")
    parts.append(f"<text x='{left}' y='{height - 6}' font-size='11'>{_e(evs[0].ts.isoformat(timespec='seconds'))}"
                 f"</text><text x='{width - 200}' y='{height - 6}' font-size='11'>"
                 f"{_e(evs[-1].ts.isoformat(timespec='seconds'))}</text></svg>")
    return "".join(parts)


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}
.sev{text-transform:uppercase;font-size:12px;padding:2px 6px;border-radius:4px;background:#ddd}
.critical .sev{background:#d62728;color:#fff}.major .sev{background:#ff7f0e;color:#fff}
section.incident{border-top:2px solid #eee;margin-top:1.5em}code{font-size:12px}"""


def write_html(out: TextIO, incidents: list[dict], stats: dict, unrecognised: list[dict],
               events: list[Event], lang: str = "en") -> None:
    unrec = "".join(f"<tr><td>{u['count']}</td><td><code>{_e(u['shape'])}</code></td></tr>" for u in unrecognised)
    stats_line = t("report.stats_short", lang, files=int(stats.get("files_read", 0)),
                   lines=int(stats.get("lines_read", 0)), events=int(stats.get("events_matched", 0)))
    out.write(f"<!DOCTYPE html><html lang='{_e(lang)}'><head><meta charset='utf-8'><title>{t('html.title', lang)}"
              f"</title><style>{STYLE}</style></head><body><h1>{t('html.heading', lang, n=len(incidents))}</h1>"
              f"<p>{stats_line}</p><h2>{t('html.timeline', lang)}</h2>")
    out.write(timeline_svg(events, incidents))
    from logsense.vms_report import lifecycle_section  # the VMs' running bars, as `logsense vms` draws them
    out.write(lifecycle_section(events, incidents, lang))
    for inc in incidents:
        out.write(incident_html(inc, lang))
    if unrec:
        heads = "".join(f"<th>{_e(h)}</th>" for h in t("html.unrecognised_columns", lang).split("|"))
        out.write(f"<h2>{t('report.unrecognised', lang)}</h2><table><tr>{heads}</tr>{unrec}</table>")
    out.write("</body></html>\n")
