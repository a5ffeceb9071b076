"""Events in time order without holding them all: an external merge sort.

A batch run may only put events in time order once everything is read (files are read one
after the other, and a VM link read late resolves events read early). Up to `run_size` events
wait in memory; a full run is sorted (stably) and written to a temporary file; at the end the
runs are merged. `heapq.merge` takes equal stamps from earlier runs first, so the order is the
one a stable sort of the whole would give: ties keep reading order.

The run files are private to this process (a fresh 0700 directory, removed when the merge ends
or the object is closed); events go through pickle as plain tuples, patterns as their ids.
"""

from __future__ import annotations

import heapq
import itertools
import pickle
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from operator import attrgetter
from pathlib import Path
from typing import Any, BinaryIO

from logsense.model import Event, Record

RUN_SIZE = 20_000  # events held in memory before a run is written
CHUNK = 100  # events a pickle holds: the merge holds one chunk a run, so memory grows slowly with runs
MAX_RUNS = 256  # runs merged at once at most (open files): more, and the oldest are merged into one first
RECORD_FIELDS = attrgetter(*Record.__slots__)
EVENT_FIELDS = attrgetter("fields", "vm", "category", "severity", "role", "shape")


def _by_time(ev: Event):
    return ev.record.ts


def batched(items: Iterable[Any], n: int) -> Iterator[tuple[Any, ...]]:
    """Tuples of `n` items (itertools.batched, which Python 3.11 lacks)."""
    it = iter(items)
    while rows := tuple(itertools.islice(it, n)):
        yield rows


class SortedRuns:
    """`add` events in reading order; `merged()` gives them back in time order (stable)."""

    def __init__(self, run_size: int | None = None) -> None:
        self.run_size = run_size or RUN_SIZE
        self.buffer: list[Event] = []
        self.runs: list[Path] = []
        self.patterns: dict[str, Any] = {}
        self._dir: Path | None = None
        self._names = itertools.count()

    def add(self, ev: Event) -> None:
        self.buffer.append(ev)
        if len(self.buffer) >= self.run_size:
            self._spill()

    def merged(self) -> Iterator[Event]:
        """Every event added, in time order; the temporary files go when this ends."""
        self.buffer.sort(key=_by_time)
        try:
            if not self.runs:
                yield from self.buffer
                return
            yield from heapq.merge(*(self._read(p) for p in self.runs), self.buffer, key=_by_time)
        finally:
            self.close()

    def close(self) -> None:
        self.buffer = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _spill(self) -> None:
        self.buffer.sort(key=_by_time)
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="logsense-"))
        path = self._dir / f"run-{next(self._names):06d}"
        self._write_run(path, self.buffer)
        self.runs.append(path)
        self.buffer = []
        if len(self.runs) >= MAX_RUNS:  # one run in their place, in their order: ties still keep reading order
            merged = self._dir / f"run-{next(self._names):06d}"
            self._write_run(merged, heapq.merge(*(self._read(p) for p in self.runs), key=_by_time))
            for old in self.runs:
                old.unlink()
            self.runs = [merged]

    def _write_run(self, path: Path, events: Iterable[Event]) -> None:
        with path.open("wb") as f:
            for chunk in batched(events, CHUNK):
                self._write(f, chunk)

    def _write(self, f: BinaryIO, events: Iterable[Event]) -> None:
        rows = []
        for ev in events:
            pid = None
            if ev.pattern is not None:
                pid = ev.pattern.id
                self.patterns.setdefault(pid, ev.pattern)
            rows.append((RECORD_FIELDS(ev.record), pid, *EVENT_FIELDS(ev)))
        pickle.dump(rows, f, protocol=pickle.HIGHEST_PROTOCOL)

    def _read(self, path: Path) -> Iterator[Event]:
        patterns = self.patterns
        with path.open("rb") as f:
            while True:
                try:
                    rows = pickle.load(f)
                except EOFError:
                    return
                for rec, pid, fields, vm, category, severity, role, shape in rows:
                    yield Event(Record(*rec), patterns[pid] if pid is not None else None, fields, vm, category,
                                severity, role, shape)
