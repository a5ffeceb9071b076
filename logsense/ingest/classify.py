"""Records to events, the same in both modes: learn the VM links a record carries, match the
catalogue, drop a message that arrived twice (libvirtd writes each message to its log file and
to the journal; rsyslog copies the journal into /var/log/messages), and resolve the VM.

Resolution is separate from classification because a link may come after the event that
needs it in reading order (a libvirtd error naming a disk, read before the QEMU log whose
command line names the disk's VM): batch resolves once everything is read, live when the
events leave its settle buffer.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from pathlib import Path

from logsense.attribution import EntityMap
from logsense.catalogue import Catalogue, message_shape
from logsense.model import SEVERITY_RANK, SOURCES, Event, Record

SAME_MESSAGE = timedelta(seconds=1)  # the journal's stamp and the file's differ by milliseconds
PER_MESSAGE_MAX = 32  # entries kept per (host, message): the newest, so a burst of repeats stays linear
SEEN_MAX = 20000  # messages remembered for the duplicate check (live: the oldest are forgotten)


def classify(rec: Record, cat: Catalogue, all_lines: bool = False) -> Event | None:
    """The event for a record: its best pattern; an unknown error-level line as an
    unrecognised event (role context); anything else only with `all_lines`."""
    m = cat.match(rec.message, rec.source) if rec.message else None
    if m is None and rec.message and rec.extra.get("pasted"):
        # pasted text: the source was guessed from the words, so every source's patterns may apply
        m = next((x for s in SOURCES if s != rec.source and (x := cat.match(rec.message, s)) is not None), None)
    if m is not None:
        p = m.pattern
        severity = p.severity
        if m.wrapper is not None and SEVERITY_RANK[m.wrapper.severity] > SEVERITY_RANK[severity]:
            severity = m.wrapper.severity  # the line also says what the cause did (the VM failed)
        role = "cause" if m.wrapper is not None else p.role  # what a failure wraps is its cause
        return Event(rec, p, m.fields, category=p.category, severity=severity, role=role)
    code = rec.extra.get("LIBVIRT_CODE")
    if code is not None and code.isdigit() and (known := cat.libvirt_codes.get(int(code))) is not None:
        # libvirt's journal entries carry their error code: it tells the category of an unknown message
        return Event(rec, category=known.category, severity=known.severity, role="context",
                     shape=message_shape(rec.message), fields={"libvirt_code": known.name})
    if rec.level == "error":
        return Event(rec, role="context", shape=message_shape(rec.message))
    if all_lines:
        return Event(rec)
    return None


class Duplicates:
    """A message seen once in a file and once in the journal is one event: same host, same
    text, stamps within SAME_MESSAGE, and the same pid where both are pids (libvirtd.log
    prints the thread id, the journal the process id, so those are not compared).

    Each message keeps its file copies and its journal copies apart: a copy pairs only with the
    other side, so a message repeated in a file with no journal read costs one look, not 32."""

    def __init__(self) -> None:
        # (host, message) -> (file copies, journal copies); a copy: [ts, pid, used, source]
        self.seen: OrderedDict[tuple[str | None, str], tuple[list[list], list[list]]] = OrderedDict()
        self.dropped = 0

    def is_copy(self, rec: Record) -> bool:
        key = (rec.host, rec.message)
        from_journal = rec.source == "journal"
        sides = self.seen.get(key)
        if sides is None:
            sides = self.seen[key] = ([], [])
            while len(self.seen) > SEEN_MAX:
                self.seen.popitem(last=False)
        else:
            self.seen.move_to_end(key)
            for entry in sides[not from_journal]:
                ts, pid, used, source = entry
                if used or abs(ts - rec.ts) > SAME_MESSAGE:
                    continue
                file_source = rec.source if not from_journal else source
                if file_source != "libvirtd" and pid is not None and rec.pid is not None and pid != rec.pid:
                    continue
                entry[2] = True
                self.dropped += 1
                return True
        mine = sides[from_journal]
        mine.append([rec.ts, rec.pid, False, rec.source])
        if len(mine) > PER_MESSAGE_MAX:  # a message repeated in a burst: only the recent copies can pair
            del mine[: len(mine) - PER_MESSAGE_MAX]
        return False


class Classifier:
    """learn → classify → drop duplicates; `resolve` gives an event its VM."""

    def __init__(self, cat: Catalogue, entities: EntityMap | None = None, all_lines: bool = False,
                 since: datetime | None = None, until: datetime | None = None) -> None:
        self.cat = cat
        self.entities = entities if entities is not None else EntityMap()
        self.all_lines = all_lines
        self.since, self.until = since, until
        self.duplicates = Duplicates()

    def learn_domain_xml(self, path: Path | str) -> None:
        self.entities.learn_domain_xml(Path(path))

    def take(self, rec: Record) -> Event | None:
        """The record's event, VM not yet resolved; None for a benign line, a line out of
        --since/--until, or a copy of a message already taken."""
        self.entities.learn(rec)
        ev = self.verdict(rec)
        return self.admit(ev) if ev is not None else None

    def verdict(self, rec: Record) -> Event | None:
        """The catalogue's event for a record in --since/--until: it depends on the record alone,
        so a worker process may give it (logsense/parallel.py)."""
        if not rec.untimed and (self.since is not None and rec.ts < self.since
                                or self.until is not None and rec.ts > self.until):
            return None  # pasted text without a time is kept whatever the range
        return classify(rec, self.cat, self.all_lines)

    def admit(self, ev: Event) -> Event | None:
        """The event unless it is a copy of one already taken; what it names is learnt. Both depend
        on every event before it in reading order."""
        if ev.role is not None and self.duplicates.is_copy(ev.record):
            return None
        self.entities.learn_events([ev])  # the VMs lines name, and where: before any is resolved
        return ev

    def resolve(self, ev: Event) -> Event:
        ev.vm, _ = self.entities.resolve(ev)
        return ev


class Settle:
    """Live: each event waits here `settle` seconds after it was read, then leaves with every
    held event stamped no later than it, VMs resolved, in time order. So an incident's first
    `open` already has the cause read a moment after its first symptom (the QEMU log read after
    libvirtd.log, the journal's entry after the file's line: a cause is stamped before its
    symptoms), and a link learnt in that moment (a command line, a domain XML) gives the event
    its VM, as batch would. Every event leaves within `settle` seconds."""

    def __init__(self, core: Classifier, settle: float) -> None:
        self.core = core
        self.settle = settle
        self.held: list[Event] = []
        self.arrived: list[float] = []  # monotonic, per held event (non-decreasing)

    def add(self, events: list[Event], now: float) -> None:
        self.held.extend(events)
        self.arrived.extend([now] * len(events))

    def due(self) -> float | None:
        """When (monotonic) the oldest held event is to leave."""
        return self.arrived[0] + self.settle if self.arrived else None

    def release(self, now: float, force: bool = False) -> list[Event]:
        """The events that are due (`force`: all, at the end of input), with those stamped no
        later than them, resolved and in time order."""
        if not self.held:
            return []
        ready = len(self.held) if force else sum(1 for t in self.arrived if t + self.settle <= now)
        if ready == 0:
            return []
        upto = max(ev.record.ts for ev in self.held[:ready])
        keep = [i for i in range(ready, len(self.held)) if self.held[i].record.ts > upto]
        out = [ev for i, ev in enumerate(self.held) if i < ready or self.held[i].record.ts <= upto]
        self.held, self.arrived = [self.held[i] for i in keep], [self.arrived[i] for i in keep]
        return sorted((self.core.resolve(ev) for ev in out), key=lambda e: e.record.ts)
