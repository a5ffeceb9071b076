"""Render incidents for people and scripts: text, json, jsonl, markdown, html.

Diagnosis is done before this module: it only lays out the incident dicts of CONTRACT.md.
Log text is untrusted, so every string is escaped for its medium (control and bidi characters
for the terminal, markup for Markdown and HTML). One module a medium; this one holds the
machine formats and is the one place callers import writers from.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from logsense.model import Event
from logsense.report_html import CATEGORY_COLOURS, STYLE, fleet_summary_html, incident_html, timeline_svg, write_html
from logsense.report_markdown import fleet_summary_md, write_markdown
from logsense.report_model import summarise
from logsense.report_text import SEVERITY_STYLE, write_text

__all__ = ["CATEGORY_COLOURS", "SEVERITY_STYLE", "STYLE", "UnrecognisedCounter", "fleet_summary_html",
           "fleet_summary_md", "incident_html", "timeline_svg",
           "unrecognised_summary",
           "summary_json", "write_html", "write_json", "write_json_object", "write_jsonl", "write_markdown",
           "write_text"]


class UnrecognisedCounter:
    """Error-level lines no pattern knows, counted by message shape as events pass."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.example: dict[str, Event] = {}

    def add(self, e: Event) -> None:
        if e.shape is not None:
            self.counts[e.shape] += 1
            self.example.setdefault(e.shape, e)

    def summary(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most frequent shapes first, each with its first line."""
        example = self.example
        return [{"shape": s, "count": n, "example": example[s].record.message[:300],
                 "source": example[s].record.source,
                 "first": f"{example[s].record.file}:{example[s].record.line}"}
                for s, n in self.counts.most_common(limit)]


def unrecognised_summary(events: Iterable[Event], limit: int = 20) -> list[dict[str, Any]]:
    """Error-level lines no pattern knows, grouped by message shape, most frequent first."""
    counter = UnrecognisedCounter()
    for e in events:
        counter.add(e)
    return counter.summary(limit)


def summary_json(incidents: list[dict], stats: dict, warnings: list[str] | None = None) -> dict[str, Any]:
    """The summary people see first, as data: counts by severity, groups of identical incidents,
    hosts and VMs hit, the time span and the run's warnings."""
    s = summarise(incidents, stats, warnings)
    return {"incidents": s.incidents, "groups": s.groups, "by_severity": s.by_severity, "hosts": s.hosts,
            "vms_hit": s.vms, "first_seen": s.first_seen, "last_seen": s.last_seen, "warnings": s.warnings}


def write_json(out: TextIO, incidents: list[dict], stats: dict, unrecognised: list[dict],
               warnings: list[str] | None = None, whole: Iterator[dict] | None = None) -> None:
    """The JSON report. `whole`: the incident objects written, one at a time, when `incidents`
    hold only what the summary reads of them (logsense/batch.py)."""
    write_json_object(out, {"summary": summary_json(incidents, stats, warnings),
                            "incidents": whole if whole is not None else incidents, "stats": stats,
                            "unrecognised_errors": unrecognised})


def write_json_object(out: TextIO, parts: dict[str, Any]) -> None:
    """`json.dump(parts, out, indent=2)` and a newline, byte for byte, except that an iterator
    among the values is written item by item as a list, never held whole."""
    out.write("{")
    for n, (key, value) in enumerate(parts.items()):
        out.write(("," if n else "") + "\n  " + json.dumps(key) + ": ")
        if not isinstance(value, Iterator):
            out.write(json.dumps(value, indent=2).replace("\n", "\n  "))
            continue
        empty = True
        for item in value:
            out.write(("[\n    " if empty else ",\n    ") + json.dumps(item, indent=2).replace("\n", "\n    "))
            empty = False
        out.write("[]" if empty else "\n  ]")
    out.write("\n}\n" if parts else "}\n")


def write_jsonl(out: TextIO, incidents: Iterable[dict]) -> None:
    for inc in incidents:
        out.write(json.dumps(inc) + "\n")
