"""What every report for people shows, whatever its medium: the summary that comes first,
identical incidents grouped, evidence apart from context, and times and counts worded once.

Values here are plain (unescaped) text; each writer escapes for its medium.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from logsense.i18n import t, tn, word
from logsense.model import EPOCH, SEVERITIES
from logsense.text import one_line

EVIDENCE_ROLES = ("cause", "symptom")
TIMES_RE = re.compile(r" — \d+ times$| —— 共 \d+ 次$")  # logsense/i18n.py's title.times, every language
# stats keys worded in the "Read" and "Not read" lines; any other key is shown as it is
READ_STATS = {"files_read": ("file", None), "lines_read": ("line", None)}
NOT_READ_STATS = {"files_skipped": ("file skipped", "files skipped"),
                  "unparsed_lines": ("line not understood", "lines not understood"),
                  "long_lines": ("over-long line cut", "over-long lines cut")}
WORDED_STATS = {*READ_STATS, *NOT_READ_STATS, "events_matched", "unrecognised_errors", "seconds", "incidents",
                "sources_read", "sources_missing", "display_tz"}  # the last three: JSON's, or said elsewhere


@dataclass
class Group:
    """Incidents with the same root cause and the same title but for the VM or host: one story."""

    incidents: list[dict[str, Any]]
    title: str = ""

    @property
    def first(self) -> dict[str, Any]:
        return self.incidents[0]

    @property
    def others(self) -> list[dict[str, Any]]:
        return self.incidents[1:]


@dataclass
class Summary:
    """The top of every report: what happened and what was (and was not) looked at."""

    incidents: int
    groups: int
    by_severity: dict[str, int]
    hosts: list[str]
    vms: list[str]
    first_seen: str | None
    last_seen: str | None
    read: list[str]
    not_read: list[str]
    other_stats: list[str]
    warnings: list[str] = field(default_factory=list)
    lang: str = "en"

    def headline(self) -> str:
        """'5 incidents: 3 critical, 2 major' (or 'No incidents')."""
        lang = self.lang
        if not self.incidents:
            return t("summary.none", lang)
        counts = t("list.sep", lang).join(t("summary.count", lang, n=n, severity=word("severity", sev, lang))
                                          for sev, n in self.by_severity.items() if n)
        grouped = tn("summary.grouped", self.groups, lang) if self.groups != self.incidents else ""
        return t("summary.headline", lang, incidents=tn("summary.incidents", self.incidents, lang), grouped=grouped,
                 counts=counts)


def title_shape(inc: dict[str, Any]) -> str:
    """The title with its VMs and host masked and the repeat count dropped."""
    title = TIMES_RE.sub("", inc["title"])
    # only the names the title holds (an outage lists thousands of VMs, its title a few), in one pass
    names = sorted({n for n in (*inc.get("affected_vms", []), inc.get("vm")) if n and n in title},
                   key=len, reverse=True)
    if names:
        title = re.sub(rf"(?<![\w.-])(?:{'|'.join(map(re.escape, names))})(?![\w.-])", "{vm}", title)
    if inc.get("host"):
        title = re.sub(rf"(?<![\w.-]){re.escape(inc['host'])}(?![\w.-])", "{host}", title)
    return title


def group_incidents(incidents: list[dict[str, Any]], lang: str = "en") -> list[Group]:
    """Identical incidents (same root cause, category, severity, scope and title shape) as one
    group each, in the order of their first member; each group titled for all its members."""
    groups: dict[tuple, Group] = {}
    for inc in incidents:
        key = (inc["root_cause"], inc["category"], inc["severity"], inc["scope"], title_shape(inc))
        groups.setdefault(key, Group([])).incidents.append(inc)
    for g in groups.values():
        g.title = g.first["title"] if len(g.incidents) == 1 else group_title(g.incidents, lang)
    return list(groups.values())


def _names(values: list[str], what: str, lang: str = "en") -> str:
    return ", ".join(values) if len(values) <= 3 else t(what, lang, n=len(values))


def group_title(incidents: list[dict[str, Any]], lang: str = "en") -> str:
    shape = title_shape(incidents[0])
    vms = sorted({vm for i in incidents for vm in (i["affected_vms"] or ([i["vm"]] if i["vm"] else []))})
    hosts = sorted({i["host"] or "-" for i in incidents})
    title = shape.replace("{vm}", _names(vms, "group.vms", lang)).replace("{host}", _names(hosts, "group.hosts", lang))
    return t("group.title", lang, title=title, incidents=tn("summary.incidents", len(incidents), lang))


def split_evidence(inc: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """(evidence, context): the cause and symptom lines prove the incident; the rest (a normal
    start, a port going down, an error no pattern knows) is context around it."""
    evidence = [e for e in inc["evidence"] if e.get("role") in EVIDENCE_ROLES]
    context = [e for e in inc["evidence"] if e.get("role") not in EVIDENCE_ROLES]
    return evidence, context


def where(ev: dict[str, Any]) -> str:
    """file:line of an event, or its journal cursor."""
    if ev.get("file"):
        return f"{ev['file']}:{ev['line']}" if ev.get("line") is not None else str(ev["file"])
    return ev.get("cursor") or "journal"


def parse_ts(iso: str, tz: tzinfo | None = None) -> datetime:
    ts = datetime.fromisoformat(iso)
    return ts.astimezone(tz or UTC)


TIME_UNKNOWN = "time unknown (pasted text without timestamps)"


def untimed(iso: str) -> bool:
    """Pasted text without a time carries the epoch (Record.untimed; `time_known` false)."""
    return parse_ts(iso) == EPOCH


def format_ts(iso: str, tz: tzinfo | None = None, date: bool = True) -> str:
    """'2024-03-05 09:58:02' in `tz` (UTC by default); without the date when `date` is False."""
    if untimed(iso):
        return "time unknown"
    ts = parse_ts(iso, tz)
    return ts.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def format_span(first: str, last: str, tz: tzinfo | None = None) -> str:
    """'2024-03-05 09:58:02 → 10:40:19 UTC' (the date again only when it changes)."""
    if untimed(first) and untimed(last):
        return TIME_UNKNOWN
    a, b = parse_ts(first, tz), parse_ts(last, tz)
    end = format_ts(last, tz, date=a.date() != b.date())
    return f"{format_ts(first, tz)} → {end} {b.tzname()}"


def _stat_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_stat_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def summarise(incidents: list[dict[str, Any]], stats: dict[str, Any], warnings: list[str] | None = None,
              lang: str = "en") -> Summary:
    """The summary of a run: incidents by severity, hosts and VMs hit, the time span, what was
    read and what was not (skipped files, lines not understood, the run's warnings, and any
    stat a later stage adds, shown as it is)."""
    sev = Counter(i["severity"] for i in incidents)
    by_severity = {s: sev[s] for s in SEVERITIES if sev[s]}  # most severe first
    first = min((i["first_seen"] for i in incidents), default=None, key=lambda s: parse_ts(s))
    last = max((i["last_seen"] for i in incidents), default=None, key=lambda s: parse_ts(s))
    read = [tn(f"stat.{k}", int(stats[k]), lang) for k in READ_STATS if k in stats]
    if "events_matched" in stats:
        read.append(tn("stat.events_matched", int(stats["events_matched"]), lang))
    if stats.get("unrecognised_errors"):
        read.append(tn("stat.unrecognised_errors", int(stats["unrecognised_errors"]), lang))
    not_read = [tn(f"stat.{k}", int(stats[k]), lang) for k in NOT_READ_STATS if stats.get(k)]
    not_read += [one_line(str(m)) for m in stats.get("sources_missing") or []]  # names from logs: escaped
    other = [f"{k.replace('_', ' ')}: {_stat_value(v)}" for k, v in stats.items()
             if k not in WORDED_STATS and v not in (None, "", [], {})]
    return Summary(
        incidents=len(incidents), groups=len(group_incidents(incidents, lang)), by_severity=by_severity,
        hosts=sorted({i["host"] for i in incidents if i.get("host")}),
        vms=sorted({vm for i in incidents for vm in i.get("affected_vms", [])}),
        first_seen=first, last_seen=last, read=read, not_read=not_read, other_stats=other,
        warnings=list(warnings or []), lang=lang)
