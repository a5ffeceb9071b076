"""The HTML timeline's marks, taken one event at a time in bounded memory.

Each event is a mark on its VM's row until the marks number more than MAX_MARKS; from then on a
row holds one mark per time bin, the bins as wide as needed to keep under the limit (doubling,
whole seconds). A timeline 740 pixels wide cannot show more marks than that apart anyway, and
the page stays small enough for a browser at millions of events. A mark stands for its bin's
most severe event (the first among equals) and says how many it stands for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from logsense.model import SEVERITY_RANK, Event

MAX_MARKS = 20_000
HOST_ROW = "(host)"


@dataclass
class Mark:
    ts: datetime
    row: str
    category: str | None
    pattern_id: str | None
    message: str  # the first 200 characters
    key: tuple  # (file, line) or (None, cursor): finds the incident holding the event
    rank: int  # severity rank: the most severe event of a bin stands for it
    count: int = 1


def event_key(file: object, line: object, cursor: object) -> tuple:
    return (file, line) if file else (None, cursor)


class TimelineMarks:
    """The marks of the events fed in time order (`add`), at most about MAX_MARKS of them."""

    def __init__(self, max_marks: int = MAX_MARKS) -> None:
        self.max_marks = max_marks
        self.width = 0  # seconds a bin spans; 0: every event is its own mark
        self.rows: dict[str, dict[int, Mark]] = {}
        self.marks = 0
        self.events = 0
        self.first: datetime | None = None  # the first and last event's time (the axis)
        self.last: datetime | None = None
        self._seq = 0  # a bin number for each event while width is 0

    @classmethod
    def of(cls, events: Iterable[Event]) -> TimelineMarks:
        marks = cls()
        for ev in events:
            marks.add(ev)
        return marks

    def add(self, ev: Event) -> None:
        if ev.pattern is None and ev.shape is None:
            return  # the lines only --all keeps are not drawn
        self.events += 1
        if self.first is None or ev.ts < self.first:
            self.first = ev.ts
        if self.last is None or ev.ts > self.last:
            self.last = ev.ts
        rec = ev.record
        mark = Mark(ev.ts, ev.vm or HOST_ROW, ev.category, ev.pattern_id, rec.message[:200],
                    event_key(rec.file, rec.line, rec.cursor), SEVERITY_RANK.get(ev.severity or "", 0))
        self._put(mark)
        if self.marks > self.max_marks:
            self._widen()

    def _bin(self, mark: Mark) -> int:
        if self.width == 0:
            self._seq += 1
            return self._seq
        return math.floor(mark.ts.timestamp() / self.width)

    def _put(self, mark: Mark) -> None:
        row = self.rows.setdefault(mark.row, {})
        b = self._bin(mark)
        held = row.get(b)
        if held is None:
            row[b] = mark
            self.marks += 1
        elif mark.rank > held.rank:
            mark.count += held.count
            row[b] = mark
        else:
            held.count += mark.count

    def _widen(self) -> None:
        """Bins twice as wide (the first: as wide as the time seen so far over the limit) until
        the marks fit under the limit again."""
        every = [m for row in self.rows.values() for m in row.values()]
        seen = max(m.ts for m in every).timestamp() - min(m.ts for m in every).timestamp()
        width = max(self.width * 2, 2 ** max(0, math.ceil(math.log2(max(seen, 1.0) / self.max_marks))))
        while True:
            self.width, self.rows, self.marks = width, {}, 0
            for m in sorted(every, key=lambda m: m.ts):
                self._put(replace(m))  # a copy: a bin merges into the marks it holds
            if self.marks <= self.max_marks // 2:  # room to grow before the next widening
                return
            width *= 2

    def all(self) -> list[Mark]:
        """Every mark, in time order."""
        return sorted((m for row in self.rows.values() for m in row.values()), key=lambda m: m.ts)
