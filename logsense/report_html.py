"""The HTML report: one self-contained file (no script, nothing fetched) with a summary table,
a legend, a timeline whose marks link to their incidents, and one section per incident group.
Every string is HTML-escaped after control and bidi characters are made visible."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, TextIO

from logsense.i18n import t, tn, word
from logsense.model import CATEGORIES, Event
from logsense.report_model import (
    Group,
    format_span,
    format_ts,
    group_incidents,
    split_evidence,
    summarise,
    untimed,
    where,
)
from logsense.text import one_line
from logsense.timeline_marks import HOST_ROW, TimelineMarks, event_key

if TYPE_CHECKING:
    from logsense.lifecycle import Timeline

CATEGORY_COLOURS = {
    "memory": "#d62728", "cpu": "#9467bd", "permission": "#ff7f0e", "disk_image": "#8c564b",
    "storage": "#e377c2", "network": "#1f77b4", "config": "#7f7f7f", "virt_layer": "#bcbd22",
    "performance": "#17becf", "host": "#393b79", "guest": "#2ca02c", None: "#aaaaaa",
}
BAND_COLOUR = "#f6e3a1"
STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}
.sev{text-transform:uppercase;font-size:12px;padding:2px 6px;border-radius:4px;background:#ddd}
.critical .sev,.sev.critical{background:#d62728;color:#fff}.major .sev,.sev.major{background:#ff7f0e;color:#fff}
section.incident{border-top:2px solid #eee;margin-top:1.5em}code{font-size:12px}
.legend span{display:inline-block;margin-right:1em;font-size:12px}
.dot{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:3px}
.band{display:inline-block;width:18px;height:10px;margin-right:3px;background:""" + BAND_COLOUR + """}
.context{color:#666}"""


def _e(s: Any) -> str:
    return html.escape(one_line(str(s)))


def _events_table(evs: list[dict], css: str = "", lang: str = "en") -> str:
    rows = "".join(
        f"<tr><td>{_e(format_ts(ev['ts']))}</td><td>{_e(ev['vm'] or '')}</td><td>{_e(ev['pattern'] or '')}</td>"
        f"<td><code>{_e(ev['message'][:300])}</code></td><td>{_e(where(ev))}</td>"
        f"<td>{int(ev.get('count', 1))}</td></tr>" for ev in evs)
    heads = "".join(f"<th>{_e(h)}</th>" for h in t("html.columns", lang).split("|"))
    return f"<table{f' class={css!r}' if css else ''}><tr>{heads}</tr>{rows}</table>"


def incident_html(inc: dict, others: list[dict] | None = None, lang: str = "en") -> str:
    """One incident (with the others of its group, if any) as an HTML fragment; the report and
    notebooks' _repr_html_ share it."""
    evidence, context = split_evidence(inc)
    fix = "".join(f"<li>{_e(s)}</li>" for s in inc["remediation"])
    diag = "".join(f"<li><code>{_e(s)}</code></li>" for s in inc["diagnostics"])
    rec = (f"<p><b>{t('label.recovered', lang)}:</b> {_e(format_ts(inc['recovered_at']))}</p>"
           if inc["recovered_at"] else "")
    ctx = (f"<details><summary>{_e(t('html.context', lang, lines=tn('label.context_lines', len(context), lang)))}"
           f"</summary>{_events_table(context, 'context', lang)}</details>") if context else ""
    same = ""
    if others:
        more = tn("more_incidents", len(others), lang)
        same = (f"<h3>{_e(t('html.same_on_head', lang, more=more))}</h3><ul>"
                + "".join(f"<li id='inc-{_e(o['id'])}'>"
                          + _e(t("md.same_on", lang, who=", ".join(o["affected_vms"]) or o["vm"] or "-",
                                 host=o["host"] or "-", span=format_span(o["first_seen"], o["last_seen"])))
                          + "</li>" for o in others) + "</ul>")
    title = inc["title"] if not others else t("html.and_more", lang, title=inc["title"],
                                              more=tn("more_incidents", len(others), lang))
    return (f"<section class='incident {_e(inc['severity'])}' id='inc-{_e(inc['id'])}'>"
            f"<h2><span class='sev'>{_e(word('severity', inc['severity'], lang))}</span> {_e(title)}</h2>"
            f"<p><b>{t('label.when', lang)}:</b> {_e(format_span(inc['first_seen'], inc['last_seen']))} · "
            f"<b>{t('label.scope', lang)}:</b> {_e(word('scope', inc['scope'], lang))}"
            f" · <b>{t('label.host', lang).capitalize()}:</b> {_e(inc['host'] or '-')} · "
            f"<b>{t('label.vms', lang)}:</b> {_e(', '.join(inc['affected_vms']) or '-')}"
            f" · <b>{t('label.root_cause', lang).capitalize()}:</b> "
            f"<code>{_e(inc['root_cause'] or t('label.unrecognised', lang))}</code> ({_e(inc['category'])})</p>"
            f"<p>{_e(inc['explanation'])}</p>{rec}<h3>{t('label.evidence', lang)}</h3>"
            f"{_events_table(evidence, '', lang)}{ctx}"
            f"<h3>{t('label.fix', lang)}</h3><ol>{fix}</ol><h3>{t('label.confirm', lang)}</h3><ul>{diag}</ul>"
            f"{same}</section>")


def _ts_label(ts: datetime) -> str:
    """A mark's time on the timeline; pasted text without a time has none to show."""
    return "time unknown" if untimed(ts.isoformat()) else ts.isoformat(timespec="seconds")


def timeline_svg(marks: TimelineMarks, incidents: list[dict]) -> str:
    """Events per VM over time, coloured by category, incidents shaded; each mark links to the
    incident it belongs to (a mark may stand for many events: logsense/timeline_marks.py)."""
    if not marks.events or marks.first is None or marks.last is None:
        return "<p>No events.</p>"
    owner = {event_key(ev["file"], ev["line"], ev.get("cursor")): inc["id"]
             for inc in incidents for ev in inc["evidence"]}
    t0, t1 = marks.first.timestamp(), marks.last.timestamp()
    span = max(t1 - t0, 1.0)
    rows = sorted(marks.rows)
    row_of = {vm: i for i, vm in enumerate(rows)}
    width, left, row_h = 900, 160, 22
    height = row_h * len(rows) + 30

    def x(ts: float) -> float:
        return left + (ts - t0) / span * (width - left - 10)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' class='timeline'>"]
    for inc in incidents:
        a = datetime.fromisoformat(inc["first_seen"]).timestamp()
        b = datetime.fromisoformat(inc["last_seen"]).timestamp()
        for vm in inc["affected_vms"] or [HOST_ROW]:
            if vm in row_of:
                y = row_of[vm] * row_h + 2
                parts.append(f"<a href='#inc-{_e(inc['id'])}'><rect x='{x(a) - 3:.1f}' y='{y}' "
                             f"width='{max(x(b) - x(a), 0) + 6:.1f}' height='{row_h - 4}' fill='{BAND_COLOUR}' "
                             f"opacity='0.6'><title>{_e(inc['title'])}</title></rect></a>")
    for i, vm in enumerate(rows):
        y = i * row_h + row_h / 2 + 4
        parts.append(f"<text x='4' y='{y}' font-size='12'>{_e(vm[:22])}</text>")
    for m in marks.all():
        y = row_of[m.row] * row_h + row_h / 2
        colour = CATEGORY_COLOURS.get(m.category, "#aaaaaa")
        more = f" (\u00d7{m.count})" if m.count > 1 else ""
        mark = (f"<circle cx='{x(m.ts.timestamp()):.1f}' cy='{y}' r='4' fill='{colour}'>"
                f"<title>{_e(_ts_label(m.ts))} {_e(m.pattern_id or 'unrecognised')}: "
                f"{_e(m.message)}{more}</title></circle>")
        inc_id = owner.get(m.key)
        parts.append(f"<a href='#inc-{_e(inc_id)}'>{mark}</a>" if inc_id else mark)
    parts.append(f"<text x='{left}' y='{height - 6}' font-size='11'>{_e(_ts_label(marks.first))}"
                 f"</text><text x='{width - 200}' y='{height - 6}' font-size='11'>"
                 f"{_e(_ts_label(marks.last))}</text></svg>")
    return "".join(parts)


def legend_html(lang: str = "en") -> str:
    dots = "".join(f"<span><i class='dot' style='background:{CATEGORY_COLOURS[c]}'></i>{_e(c)}</span>"
                   for c in CATEGORIES)
    unknown, band = t("html.legend", lang).split("|")
    sev = {s: _e(word("severity", s, lang)) for s in ("critical", "major", "minor")}
    return (f"<div class='legend'>{dots}<span><i class='dot' style='background:{CATEGORY_COLOURS[None]}'></i>"
            f"{_e(unknown)}</span><span><i class='band'></i>{_e(band)}</span>"
            f"<span><b class='sev critical'>{sev['critical']}</b> <b class='sev major'>{sev['major']}</b> "
            f"<b class='sev'>{sev['minor']}</b></span></div>")


def summary_html(incidents: list[dict], stats: dict, warnings: list[str] | None, groups: list[Group],
                 tz: tzinfo | None, lang: str = "en") -> str:
    s = summarise(incidents, stats, warnings, lang)
    sep = t("list.sep", lang)
    facts = []
    if s.hosts:
        facts.append(f"<li><b>{t('label.hosts', lang)}:</b> {_e(', '.join(s.hosts))}</li>")
    if s.vms:
        facts.append(f"<li><b>{t('label.vms_hit_n', lang, n=len(s.vms))}:</b> {_e(', '.join(s.vms))}</li>")
    if s.first_seen and s.last_seen:
        facts.append(f"<li><b>{t('label.time_span', lang)}:</b> {_e(format_span(s.first_seen, s.last_seen, tz))}</li>")
    if s.read:
        facts.append(f"<li><b>{t('label.read', lang)}:</b> {_e(sep.join(s.read))}</li>")
    if s.not_read:
        facts.append(f"<li><b>{t('label.not_read', lang)}:</b> {_e(sep.join(s.not_read))}</li>")
    facts += [f"<li><b>{t('label.also', lang)}:</b> {_e(x)}</li>" for x in s.other_stats]
    if s.warnings:
        facts.append(f"<li><b>{_e(tn('warnings', len(s.warnings), lang).rstrip(':：'))}:</b><ul>"
                     + "".join(f"<li>{_e(w)}</li>" for w in s.warnings[:50]) + "</ul></li>")
    table = ""
    if groups:
        rows = "".join(
            f"<tr class='{_e(g.first['severity'])}'><td><span class='sev'>"
            f"{_e(word('severity', g.first['severity'], lang))}</span></td>"
            f"<td>{_e(format_ts(g.first['first_seen'], tz))}</td><td>{_e(word('scope', g.first['scope'], lang))}</td>"
            f"<td>{_e(', '.join(sorted({v for i in g.incidents for v in i['affected_vms']})))}</td>"
            f"<td>{len(g.incidents)}</td><td><a href='#inc-{_e(g.first['id'])}'>{_e(g.title)}</a></td></tr>"
            for g in groups)
        heads = "".join(f"<th>{_e(h)}</th>" for h in t("html.summary_columns", lang).split("|"))
        table = f"<table class='summary'><tr>{heads}</tr>{rows}</table>"
    return f"<p><b>{_e(s.headline())}</b></p><ul>{''.join(facts)}</ul>{table}"


def write_html(out: TextIO, incidents: list[dict], stats: dict, unrecognised: list[dict],
               events: Iterable[Event] | TimelineMarks | None, warnings: list[str] | None = None,
               tz: tzinfo | None = None, lang: str = "en", timeline: Timeline | None = None, preface: str = "") -> None:
    """The page. `events`: the run's events, or their marks taken as they streamed by (None: no
    timeline, as for a fleet, whose events stay with the workers); `timeline`: the VMs' lifecycle,
    when already built (else built from `events`); `preface`: HTML put first (the fleet summary)."""
    if events is not None and not isinstance(events, TimelineMarks):
        from logsense.lifecycle import timeline as lifecycle_timeline  # the reports sit below the analysis

        events = list(events)
        timeline = timeline if timeline is not None else lifecycle_timeline(events)
        events = TimelineMarks.of(events)
    elif events is not None and timeline is None:
        raise ValueError("write_html: marks need the timeline they were taken with")
    groups = group_incidents(incidents, lang)
    unrec = "".join(f"<tr><td>{u['count']}</td><td><code>{_e(u['shape'])}</code></td></tr>" for u in unrecognised)
    heading = t("md.title", lang, incidents=tn("summary.incidents", len(incidents), lang))
    html_lang = "" if lang == "en" else f" lang='{_e(lang)}'"
    out.write(f"<!DOCTYPE html><html{html_lang}><head><meta charset='utf-8'><title>{_e(t('html.title', lang))}"
              f"</title><style>{STYLE}</style></head><body><h1>{_e(heading)}</h1>")
    out.write(preface + summary_html(incidents, stats, warnings, groups, tz, lang))
    if events is not None and timeline is not None:
        out.write(f"<h2>{t('html.timeline', lang)}</h2>" + legend_html(lang) + timeline_svg(events, incidents))
        from logsense.vms_report import lifecycle_section  # the VMs' running bars, as `logsense vms` draws them
        out.write(lifecycle_section(timeline, incidents, lang))
    for g in groups:
        out.write(incident_html(g.first, g.others, lang))
    if unrec:
        heads = "".join(f"<th>{_e(h)}</th>" for h in t("html.unrecognised_columns", lang).split("|"))
        out.write(f"<h2>{t('report.unrecognised', lang)}</h2><table><tr>{heads}</tr>{unrec}</table>")
    out.write("</body></html>\n")


def fleet_summary_html(heading: str, shared: list[tuple[str, str, str, str, str]],
                       hosts: list[tuple[str, str, str]], lang: str = "en") -> str:
    """The fleet summary first on the page (logsense/fleet.py `summary_rows`): each fleet incident
    (id, severity, its word, title, hosts) linked to its section, and each host's state."""
    items = "".join(f"<li><b class='sev {_e(sev)}'>{_e(word_)}</b> <a href='#inc-{_e(inc_id)}'>{_e(title)}</a> "
                    f"({_e(names)})</li>" for inc_id, sev, word_, title, names in shared)
    rows = "".join(f"<tr><td>{_e(h)}</td><td>{_e(st)}</td><td><code>{_e(p)}</code></td></tr>" for h, st, p in hosts)
    heads = "".join(f"<th>{_e(h)}</th>" for h in t("fleet.columns", lang).split("|"))
    return (f"<section class='fleet'><h2>{_e(heading)}</h2><ul>{items}</ul>"
            f"<table><tr>{heads}</tr>{rows}</table></section>")
