"""Render the VMs' lifecycle (logsense/lifecycle.py) for `logsense vms`: text, json, markdown,
html; and the running-bars picture the HTML report shows.

Log text is untrusted: every string is escaped for its medium, as in report.py.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any, TextIO

from logsense.i18n import t, word
from logsense.lifecycle import Timeline, duration, mark_rows, run_rows, summary
from logsense.text import safe

BAR_COLOURS = {"running": "#2ca02c", "failed": "#d62728", "crashed": "#ff7f0e", "host-down": "#393b79"}


def _short(ts: str | None) -> str:
    return ts[:19].replace("T", " ") if ts else "-"


def _row_cells(r: dict[str, Any], lang: str = "en") -> list[str]:
    start = f"{_short(r['last_start'])} ({word('reason', r['last_start_reason'], lang)})" if r["last_start"] else "-"
    stop = f"{_short(r['last_stop'])} ({word('reason', r['last_stop_reason'], lang)})" if r["last_stop"] else "-"
    return [r["vm"], r["host"] or "-", word("state", r["state"], lang), start, stop, str(r["crashes"]),
            str(r["failed_starts"]), duration(r["downtime_seconds"], lang)]


def heads(lang: str = "en") -> list[str]:
    return t("vms.heads", lang).split("|")


def write_text(out: TextIO, tl: Timeline, lang: str = "en") -> None:
    from rich.cells import cell_len  # terminal cells: a CJK character takes two

    rows = [[safe(c) for c in _row_cells(r, lang)] for r in summary(tl)]
    if not rows:
        out.write(t("vms.none", lang) + "\n")
        return
    names = heads(lang)
    widths = [max(cell_len(h), *(cell_len(r[i]) for r in rows)) for i, h in enumerate(names)]
    for cells in [names, *rows]:
        out.write("  ".join(c + " " * (w - cell_len(c)) for c, w in zip(cells, widths, strict=True)).rstrip() + "\n")
    for m in mark_rows(tl):
        out.write(t("vms.mark", lang, host=safe(m["host"] or "-"), kind=word("mark", m["kind"], lang),
                    at=_short(m["ts"]), message=safe(m["message"][:100])) + "\n")
    out.write(t("vms.footer", lang, n=len(rows), first=_short(_iso(tl.first)), last=_short(_iso(tl.last))) + "\n")


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat(timespec="microseconds") if ts is not None else None


def as_dict(tl: Timeline) -> dict[str, Any]:
    return {"vms": summary(tl), "runs": run_rows(tl), "host_events": mark_rows(tl),
            "window": {"first": _iso(tl.first), "last": _iso(tl.last)}}


def write_json(out: TextIO, tl: Timeline) -> None:
    json.dump(as_dict(tl), out, indent=2)
    out.write("\n")


def _md(s: Any) -> str:
    return safe(str(s)).replace("|", "\\|").replace("`", "'")


def write_markdown(out: TextIO, tl: Timeline, lang: str = "en") -> None:
    rows = summary(tl)
    names = heads(lang)
    out.write(f"# {t('vms.md_heading', lang, n=len(rows))}\n\n| {' | '.join(h.lower() for h in names)} |\n"
              f"|{'---|' * len(names)}\n")
    for r in rows:
        out.write("| " + " | ".join(_md(c) for c in _row_cells(r, lang)) + " |\n")
    marks = mark_rows(tl)
    if marks:
        out.write(f"\n## {t('vms.md_marks', lang)}\n\n")
        for m in marks:
            out.write("- " + t("vms.md_mark", lang, host=_md(m["host"] or "-"), kind=word("mark", m["kind"], lang),
                               at=_short(m["ts"]), message=f"`{_md(m['message'][:100])}`") + "\n")


def _e(s: Any) -> str:
    return html.escape(safe(str(s)))


def lifecycle_svg(tl: Timeline, incidents: list[dict] | None = None, width: int = 900) -> str:
    """One row per VM: a bar for each run (green running, its end coloured by how it ended),
    host boots and shutdowns as vertical lines, incidents as red marks on their VMs' rows."""
    if tl.first is None or tl.last is None or not tl.runs:
        return "<p>No VM starts or stops.</p>"
    t0, t1 = tl.first.timestamp(), tl.last.timestamp()
    span = max(t1 - t0, 1.0)
    rows = sorted({(r.host or "", r.vm) for r in tl.runs})
    many = len({h for h, _ in rows}) > 1
    label = {k: (f"{k[0]} {k[1]}" if many else k[1]) for k in rows}
    left, row_h = 170, 16
    height = row_h * len(rows) + 30

    def x(ts: float) -> float:
        return left + (ts - t0) / span * (width - left - 10)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' class='lifecycle'>"]
    for m in tl.marks:
        colour = "#393b79" if m.kind == "boot" else "#999999"
        parts.append(f"<line x1='{x(m.ts.timestamp()):.1f}' x2='{x(m.ts.timestamp()):.1f}' y1='0' "
                     f"y2='{height - 20}' stroke='{colour}' stroke-dasharray='4 2'><title>host "
                     f"{_e(m.host or '')} {m.kind} {_e(m.ts.isoformat(timespec='seconds'))}</title></line>")
    for i, key in enumerate(rows):
        y = i * row_h
        parts.append(f"<text x='4' y='{y + row_h - 4}' font-size='11'>{_e(label[key][:26])}</text>")
    for r in tl.runs:
        y = rows.index((r.host or "", r.vm)) * row_h + 3
        a = (r.start or tl.first).timestamp()
        b = (r.end or tl.last).timestamp()
        colour = BAR_COLOURS["running"] if r.ran else BAR_COLOURS["failed"]
        w = max(x(b) - x(a), 2.0)
        tip = (f"{r.vm}: {r.start.isoformat(timespec='seconds') if r.start else 'before the logs'} "
               f"({r.start_reason}) → {r.end.isoformat(timespec='seconds') if r.end else 'still running'} "
               f"({r.end_reason})")
        parts.append(f"<rect x='{x(a):.1f}' y='{y}' width='{w:.1f}' height='{row_h - 6}' fill='{colour}' "
                     f"opacity='0.75'><title>{_e(tip)}</title></rect>")
        if r.end is not None and r.end_reason in BAR_COLOURS:
            parts.append(f"<rect x='{x(b) - 2:.1f}' y='{y}' width='4' height='{row_h - 6}' "
                         f"fill='{BAR_COLOURS[r.end_reason]}'/>")
    for inc in incidents or []:
        at = datetime.fromisoformat(inc["first_seen"]).timestamp()
        for vm in inc.get("affected_vms") or ([inc["vm"]] if inc.get("vm") else []):
            key = (inc.get("host") or "", vm)
            if key in rows:
                y = rows.index(key) * row_h + row_h / 2
                parts.append(f"<circle cx='{x(at):.1f}' cy='{y}' r='4' fill='#d62728' stroke='black'>"
                             f"<title>{_e(inc['title'][:200])}</title></circle>")
    parts.append(f"<text x='{left}' y='{height - 6}' font-size='11'>{_e(tl.first.isoformat(timespec='seconds'))}"
                 f"</text><text x='{width - 200}' y='{height - 6}' font-size='11'>"
                 f"{_e(tl.last.isoformat(timespec='seconds'))}</text></svg>")
    return "".join(parts)


def lifecycle_section(tl: Timeline, incidents: list[dict], lang: str = "en") -> str:
    """The HTML report's "VM lifecycle" section (empty when the logs show no start or stop)."""
    if not tl.runs:
        return ""
    return f"<h2>{t('html.lifecycle', lang)}</h2>" + lifecycle_svg(tl, incidents)


def write_html(out: TextIO, tl: Timeline, incidents: list[dict] | None = None, lang: str = "en") -> None:
    from logsense.report import STYLE

    rows = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in _row_cells(r, lang)) + "</tr>"
                   for r in summary(tl))
    head_cells = "".join(f"<th>{_e(h.lower())}</th>" for h in heads(lang))
    title = t("vms.html_title", lang)
    html_lang = "" if lang == "en" else f" lang='{_e(lang)}'"
    out.write(f"<!DOCTYPE html><html{html_lang}><head><meta charset='utf-8'><title>logsense: {title}</title>"
              f"<style>{STYLE}</style></head><body><h1>{title}</h1>{lifecycle_svg(tl, incidents)}"
              f"<table><tr>{head_cells}</tr>{rows}</table></body></html>\n")
