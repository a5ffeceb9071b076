"""`logsense analyze` on an archive in bounded memory: one pass over the events in time order
(`Reader.iter_events`) feeds the VM timeline and the correlator together; each incident, once
final, goes to a temporary file as its JSON object, and only what the summary, the groups, the
filters and the order need stays in memory. The report then reads the incidents back one at a
time, in report order.

What `logsense analyze` reports: the correlator's incidents and the reboot incidents from the
timeline, downtime added to every incident, links between a reboot and the failed starts it
caused, most severe first then by time. `pairs` gives the same for events in memory (the
DataFrame API, a fleet's worker, `logsense vms`), with each incident's object beside its dict.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from logsense.correlator import DEFAULT_GAP, FinalIncidents, Incident
from logsense.lifecycle import DEFAULT_GRACE, Timeline, add_downtime, link_failed_starts, reboot_incidents, timeline
from logsense.model import SEVERITY_RANK, Event
from logsense.report import UnrecognisedCounter
from logsense.timeline_marks import TimelineMarks

# what summaries, groups, filters, --fail-on and the reboot search read of an incident
LIGHT_KEYS = ("id", "host", "hosts", "scope", "vm", "affected_vms", "category", "root_cause", "title", "severity",
              "first_seen", "last_seen", "recovered_at")


@dataclass
class Entry:
    light: dict[str, Any]  # LIGHT_KEYS of the incident
    first: datetime
    offset: int = -1  # where its JSON line is in the store; -1: `whole` holds it
    whole: dict[str, Any] | None = None


class IncidentStore:
    """Incident objects as JSON lines in an unnamed temporary file (gone when closed)."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Analysis.close

    def add(self, inc: dict[str, Any]) -> int:
        offset = self.file.tell()
        self.file.write(json.dumps(inc).encode() + b"\n")
        return offset

    def load(self, offset: int) -> dict[str, Any]:
        self.file.seek(offset)
        return json.loads(self.file.readline())

    def close(self) -> None:
        self.file.close()


@dataclass
class Analysis:
    """The incidents of a run, in report order, light in memory and whole on disk."""

    entries: list[Entry]
    timeline: Timeline
    store: IncidentStore
    unrecognised: list[dict[str, Any]]
    marks: TimelineMarks | None = None  # the HTML report's timeline marks, taken only when asked
    lang: str = "en"
    # what reboot incidents add to the failed starts on disk: id -> {"explanation": words, "related_incidents": ids}
    related: dict[str, dict[str, Any]] = field(default_factory=dict)

    def incidents(self, entries: list[Entry] | None = None) -> Iterator[dict[str, Any]]:
        """Each incident object whole, one at a time."""
        for e in self.entries if entries is None else entries:
            yield e.whole if e.whole is not None else self._load(e)

    def _load(self, e: Entry) -> dict[str, Any]:
        d = self.store.load(e.offset)
        add_downtime(self.timeline, d, self.lang)
        if (more := self.related.get(d["id"])) is not None and more.get("related_incidents"):
            d["explanation"] += more["explanation"]
            d.setdefault("related_incidents", []).extend(more["related_incidents"])
        return d

    def close(self) -> None:
        self.store.close()


def light(inc: dict[str, Any]) -> dict[str, Any]:
    return {k: inc[k] for k in LIGHT_KEYS if k in inc}


def analyse(events: Iterable[Event], gap: float = DEFAULT_GAP, grace: float = DEFAULT_GRACE, lang: str = "en",
            marks: bool = False, objects: dict[str, Incident] | None = None) -> Analysis:
    """The incidents of events in time order, in one pass and bounded memory; `marks`: take the
    HTML timeline's marks too (bounded as well); `objects`: filled with each incident's object by id."""
    final = FinalIncidents(gap)
    store = IncidentStore()
    entries: list[Entry] = []
    unrecognised = UnrecognisedCounter()
    taken = TimelineMarks() if marks else None

    def settle(incidents: list[Incident]) -> None:
        for inc in incidents:
            d = inc.to_dict(lang)
            entries.append(Entry(light(d), inc.first_seen, store.add(d)))
            if objects is not None:
                objects[d["id"]] = inc

    def tapped() -> Iterator[Event]:
        for ev in events:
            yield ev  # the timeline takes each event first, as when it was built before correlating
            unrecognised.add(ev)
            if taken is not None:
                taken.add(ev)
            settle(final.feed(ev))

    tl = timeline(tapped(), grace)
    settle(final.flush())
    entries.sort(key=lambda e: (-SEVERITY_RANK[e.light["severity"]], e.first, e.light["id"]))  # correlate's order
    found = Analysis(entries, tl, store, unrecognised.summary(), taken, lang)
    found.related = {e.light["id"]: {"explanation": ""} for e in entries}  # what a link adds, collected
    for inc in reboot_incidents(tl, [e.light for e in entries], grace):
        d = add_downtime(tl, inc.to_dict(lang), lang)
        link_failed_starts(inc, d, found.related, lang)
        entries.append(Entry(light(d), inc.first_seen, whole=d))
        if objects is not None:
            objects[d["id"]] = inc
    entries.sort(key=lambda e: (-SEVERITY_RANK[e.light["severity"]], e.light["first_seen"], e.light["id"]))
    return found


def pairs(events: Iterable[Event], gap: float = DEFAULT_GAP, grace: float = DEFAULT_GRACE, lang: str = "en"
          ) -> list[tuple[Incident, dict[str, Any]]]:
    """`analyse` for events in time order held in memory: each incident's object (the DataFrame API
    maps its evidence back to rows) and its dict as `analyze` reports it, in report order."""
    objects: dict[str, Incident] = {}
    found = analyse(events, gap, grace, lang, objects=objects)
    try:
        return [(objects[d["id"]], d) for d in found.incidents()]
    finally:
        found.close()
