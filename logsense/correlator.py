"""Group events into explained incidents, incrementally, on event time.

Events arrive in time order (batch sorts them; the daemon feeds them behind a watermark).
Each host has one window per VM and one host-wide window; a window closes when the watermark
passes its last event by more than the gap. Only open windows are held, so memory follows the
window, not the archive; the daemon and `analyze` use this very object, so a replayed archive
gives the incidents the daemon would have emitted live.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import itertools
import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from logsense.catalogue import Knowledge, Outcome, load_knowledge, render, render_advice
from logsense.i18n import t
from logsense.model import ROLE_RANK, SEVERITY_RANK, Event

SEVERITY_NAMES = {rank: name for name, rank in SEVERITY_RANK.items()}

MAX_WINDOW = 7 * 86400.0  # seconds: a longer window is a typo, and its arithmetic overflows dates
DEFAULT_GAP = 120.0  # seconds without events that close an incident
ATTACH_SECONDS = 3.0  # an error naming no VM this close to one VM's failure belongs to it
MAX_EVIDENCE = 50
RECOVERY_HOLD = timedelta(seconds=10)  # a restart that fails within this is no recovery
RECOVERY_HORIZON = timedelta(hours=1)  # a restart this long after an incident still recovers it
HOST_KEY = ""  # the window key of host-wide incidents
# How events are saved and restored is the caller's business (the daemon re-links them to the
# loaded catalogue); the correlator saves everything else about its windows itself.
EventToJson = Callable[[Event], dict[str, Any]]
EventFromJson = Callable[[dict[str, Any]], Event | None]  # None: the event cannot be restored

STARTED_RE = re.compile(r"starting up libvirt version")


@functools.cache
def knowledge() -> Knowledge:
    """Outcomes and known chains: catalogue data (patterns/outcomes.toml), not code."""
    return load_knowledge()


def outcome_of(events: Iterable[Event]) -> Outcome | None:
    """What the operator saw happen to the VM, from the cause and symptom lines."""
    return knowledge().outcome([e.record.message for e in events if e.role != "context"])


def evidence_key(ev: Event) -> tuple:
    """Lines with the same key are one piece of evidence, counted."""
    return (ev.pattern_id, ev.shape or ev.record.message[:200], ev.vm)


def is_start(ev: Event) -> bool:
    """A VM being started: QEMU's log header, or libvirt's debug line for the start job."""
    return bool(STARTED_RE.search(ev.record.message)) or (ev.pattern is not None and ev.pattern.starts_vm)


FAILED_RE = re.compile(r"shutting down, reason=(failed|crashed)")


def _has_cause(inc: Incident) -> bool:
    return inc.has_cause


def _rank(e: Event) -> tuple:
    """Root-cause rank: cause over symptom over context, then catalogue priority, severity, and time."""
    prio = e.pattern.priority if e.pattern is not None else 0
    return (ROLE_RANK.get(e.role or "context", 0), e.pattern is not None, prio,
            SEVERITY_RANK.get(e.severity or "minor", 0), -e.ts.timestamp())


def _event_ts(e: Event) -> datetime:
    return e.record.ts


def stable_id(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


def iso_or_none(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def datetime_or_none(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass
class Incident:
    id: str
    host: str | None
    scope: str
    vm: str | None
    events: list[Event] = field(default_factory=list)
    counts: dict[tuple, int] = field(default_factory=dict)  # evidence key -> occurrences
    affected: set[str] = field(default_factory=set)
    failures: int = 0  # failed starts / crashes counted for flapping
    recovered_at: datetime | None = None
    started_at: datetime | None = None  # a later start, recovery once it has held a while
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    version: int = 0
    status: str = "open"
    closed: bool = False

    def __post_init__(self) -> None:
        # Kept as events arrive, so no event costs a pass over the incident: the root cause and
        # its rank (ties keep the earlier event, as max() over the list would), the worst
        # severity, whether a cause or a symptom is in, and whether `events` is in time order.
        # Derived from `events`, so not fields: the state saves the fields and rebuilds these.
        self._root: Event | None = None
        self._root_rank: tuple = ()
        self._severity_rank = 0
        self.has_cause = False
        self._significant = False
        self._in_order = True
        events, self.events = self.events, []
        for ev in events:
            self._append(ev)

    def _append(self, ev: Event) -> None:
        """List an event and update what is kept about the list."""
        if self.events and ev.record.ts < self.events[-1].record.ts:
            self._in_order = False
        self.events.append(ev)
        self._note(ev)

    def _note(self, ev: Event) -> None:
        rank = _rank(ev)
        if self._root is None or rank > self._root_rank:
            self._root, self._root_rank = ev, rank
        if ev.role != "context":
            self._severity_rank = max(self._severity_rank, SEVERITY_RANK[ev.severity or "minor"])
        if ev.role == "cause":
            self.has_cause = True
        if ev.role in ("cause", "symptom"):
            self._significant = True

    def add_in_time_order(self, ev: Event) -> bool:
        """Add an event where its time puts it (after events of the same time), as appending and
        a stable sort by time would; True when it was listed (not only counted)."""
        if not self._in_order:
            listed = self.add(ev)
            self.events.sort(key=_event_ts)
            self._in_order = True
            return listed
        key = evidence_key(ev)
        if key in self.counts:
            return self.add(ev)  # counted: the list does not change
        self._update_times_and_counts(ev, key)
        insort(self.events, ev, key=_event_ts)
        self._note(ev)
        self._note_effects(ev)
        return True

    @property
    def first_seen(self) -> datetime:
        return self.first_ts or self.events[0].ts

    @property
    def last_seen(self) -> datetime:
        return self.last_ts or self.events[-1].ts

    def add(self, ev: Event) -> bool:
        """Count the event, and list it when it is new evidence (True then)."""
        key = evidence_key(ev)
        new = key not in self.counts
        self._update_times_and_counts(ev, key)
        if new:
            self._append(ev)
        self._note_effects(ev)
        return new

    def _update_times_and_counts(self, ev: Event, key: tuple) -> None:
        ts = ev.record.ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts  # windows merged into a host incident may bring earlier events
        self.counts[key] = self.counts.get(key, 0) + 1  # repeated: counted, not listed again

    def _note_effects(self, ev: Event) -> None:
        if ev.vm and ev.role != "context":
            self.affected.add(ev.vm)
        if ev.role != "context" and FAILED_RE.search(ev.record.message):
            self.failures += 1

    @property
    def root(self) -> Event:
        """Cause over symptom over context, then catalogue priority, severity, and time."""
        assert self._root is not None, "an incident has at least one event"
        return self._root

    def significant(self) -> bool:
        """A window of context lines alone (a normal start, a lease) or of unrecognised errors
        alone (reported apart, by shape) is not an incident."""
        return self._significant

    def severity(self) -> str:
        return SEVERITY_NAMES.get(self._severity_rank, "minor")

    def fingerprint(self) -> tuple:
        """What, when it changes, makes the daemon emit an update. VMs only join an incident, so
        their number says whether the set changed (no sort of thousands of names per event)."""
        return (self.root.pattern_id, self.root.shape, len(self.affected), self.severity(),
                self.recovered_at, self.closed, self.failures)

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        """The CONTRACT.md incident object, its words in `lang` (logsense/i18n.py, patterns/<lang>/)."""
        root = self.root
        p = root.pattern
        values = {**root.fields, "vm": self.vm or root.vm or ""}
        what = outcome_of(self.events)
        if p is not None:
            category, cause_title = p.category, p.text("title", lang)
            cause_text = render(p.text("cause", lang), values)
            remediation, diagnostics = render_advice(p.text("remediation", lang), p.diagnostics, values, lang)
        else:
            category, cause_title = "virt_layer", t("unrecognised.title", lang)
            cause_text = t("unrecognised.cause", lang, message=root.record.message[:200])
            remediation, diagnostics = [], []
        unexplained = root.role != "cause"
        if self.scope == "host":
            subject = f"{self.host or t('title.host_default', lang)}"
            title = t("title.host", lang, host=subject, cause=cause_title)
            if p is not None and p.scope == "vm" and not self.affected:
                title += t("title.no_vm_line", lang)
            if self.affected:
                title += t("title.affects", lang, vms=", ".join(sorted(self.affected)))
        else:
            subject = self.vm or t("title.unknown_vm", lang)
            verb = what.text(lang) if what else t("outcome.errors", lang)
            if unexplained and p is not None and root.role == "symptom":
                title = t("title.vm_unexplained", lang, vm=subject, what=verb, cause=cause_title)
            else:
                title = t("title.vm", lang, vm=subject, what=verb, cause=cause_title)
        if self.failures > 1:
            title += t("title.times", lang, n=self.failures)
        if unexplained:
            fix_more, confirm_more = unexplained_advice(lang)
            more_fix, more_confirm = render_advice(fix_more, confirm_more, {"vm": self.vm or ""}, lang)
            remediation += [s for s in more_fix if s not in remediation]
            diagnostics += [d for d in more_confirm if d not in diagnostics]
        return {
            "id": self.id,
            "host": self.host,
            "scope": self.scope,
            "vm": self.vm if self.scope == "vm" else None,
            "affected_vms": sorted(self.affected),
            "category": category,
            "root_cause": root.pattern_id,
            "title": title,
            "explanation": explain(self, root, cause_text, what, lang),
            "severity": self.severity(),
            "first_seen": self.first_seen.isoformat(timespec="microseconds"),
            "last_seen": self.last_seen.isoformat(timespec="microseconds"),
            "recovered_at": self.recovered_at.isoformat(timespec="microseconds") if self.recovered_at else None,
            "evidence": self.evidence(),
            "remediation": remediation,
            "diagnostics": diagnostics,
            "status": self.status,
            "version": self.version,
            "occurrences": sum(self.counts.values()),
            "time_known": self.time_known(),
        }

    def time_known(self) -> bool:
        """False when every line of it was pasted text without a time: first_seen and last_seen
        then hold the epoch (CONTRACT.md makes them strings) and reports say the time is unknown."""
        return not all(e.record.untimed for e in self.events)

    # -- state ---------------------------------------------------------------------------
    def to_state(self, event_to_json: EventToJson) -> dict[str, Any]:
        """Plain JSON values, everything needed to go on growing it after a restart."""
        return {
            "id": self.id, "host": self.host, "scope": self.scope, "vm": self.vm,
            "events": [event_to_json(e) for e in self.events],
            "counts": [[list(k), n] for k, n in self.counts.items()],
            "affected": sorted(self.affected), "failures": self.failures,
            "recovered_at": iso_or_none(self.recovered_at), "started_at": iso_or_none(self.started_at),
            "first_ts": iso_or_none(self.first_ts), "last_ts": iso_or_none(self.last_ts),
            "version": self.version, "status": self.status, "closed": self.closed,
        }

    @classmethod
    def from_state(cls, d: dict[str, Any], event_from_json: EventFromJson) -> Incident | None:
        """The incident `to_state` saved; None when none of its events could be restored."""
        events = [e for e in (event_from_json(x) for x in d.get("events", [])) if e is not None]
        if not events:
            return None
        return cls(id=str(d["id"]), host=d.get("host"), scope=str(d["scope"]), vm=d.get("vm"), events=events,
                   counts={tuple(k): int(n) for k, n in d.get("counts", [])}, affected=set(d.get("affected", [])),
                   failures=int(d.get("failures", 0)), recovered_at=datetime_or_none(d.get("recovered_at")),
                   started_at=datetime_or_none(d.get("started_at")),
                   first_ts=datetime_or_none(d.get("first_ts")) or min(e.ts for e in events),
                   last_ts=datetime_or_none(d.get("last_ts")),
                   version=int(d.get("version", 0)), status=str(d.get("status", "open")),
                   closed=bool(d.get("closed", False)))

    def evidence_events(self) -> list[tuple[Event, int]]:
        """The evidence, cause first and then in time order, each with how often it occurred."""
        root = self.root
        rest = sorted((e for e in self.events if e is not root), key=lambda e: e.ts)
        return [(e, self.counts.get(evidence_key(e), 1)) for e in [root, *rest]]

    def evidence(self) -> list[dict[str, Any]]:
        return [{**e.to_dict(), "count": n} for e, n in self.evidence_events()[:MAX_EVIDENCE]]


def unexplained_advice(lang: str = "en") -> tuple[list[str], list[str]]:
    """(remediation, diagnostics) when no line names the cause, `{vm}` to fill."""
    return ([t("fix.log_level", lang)],
            [t("diag.start_vm", lang), "journalctl -u libvirtd -u virtqemud --since -1h",
             "less /var/log/libvirt/qemu/{vm}.log"])


def where_the_cause_is(inc: Incident, lang: str = "en") -> str:
    """For a failure whose cause no line names: which log (or level) would have shown it."""
    sources = {e.record.source for e in inc.events}
    if "qemu" not in sources:
        return t("explain.cause_in_qemu_log", lang, vm=inc.vm or "VM")
    return t("explain.cause_at_debug_level", lang)


# Categories of host-wide causes known to lead one to the other (OOM kills QEMU or the daemon, a
# full or failing disk breaks images and pauses guests, a security denial makes QEMU, a helper or a
# socket fail); host faults (panic, MCE) reach everything.
RELATED_CATEGORIES = {frozenset(p) for p in (("memory", "virt_layer"), ("storage", "disk_image"),
                                              ("storage", "guest"), ("storage", "virt_layer"),
                                              ("permission", "virt_layer"), ("permission", "network"))}


def unrelated_cause(inc: Incident, ev: Event) -> bool:
    """Whether a host-wide cause has nothing to do with an open host incident's causes: a different
    category and no known chain between them (two failures seconds apart stay two incidents)."""
    if ev.role != "cause" or ev.category is None or ev.category == "host":
        return False
    causes = {e.category for e in inc.events if e.role == "cause" and e.category}
    return bool(causes) and "host" not in causes and all(
        c != ev.category and frozenset((c, ev.category)) not in RELATED_CATEGORIES for c in causes)


UNEXPLAINED_REMEDIATION, UNEXPLAINED_DIAGNOSTICS = unexplained_advice()


def explain(inc: Incident, root: Event, cause_text: str, what: Outcome | None, lang: str = "en") -> str:
    """The chain from cause to symptoms, in plain words (`what`: what happened to the VM)."""
    parts = []
    if root.role == "cause":
        parts.append(cause_text)
    else:
        parts.append(t("explain.no_cause", lang, text=cause_text))
        parts.append(where_the_cause_is(inc, lang))
    seen_titles = []
    for e in inc.events:
        if e is root or e.pattern is None or e.role == "context":
            continue
        if (title := e.pattern.text("title", lang)) not in seen_titles:
            seen_titles.append(title)
    if seen_titles:
        parts.append(t("explain.then", lang, titles=t("explain.sep", lang).join(seen_titles[:6])))
    if sentence := knowledge().chain([e.record.message for e in inc.events], root.category, lang):
        parts.append(sentence)
    if inc.scope == "host" and inc.affected:
        parts.append(t("explain.vms_hit", lang, vms=", ".join(sorted(inc.affected))))
    elif what:
        parts.append(t("explain.result", lang, vm=inc.vm, what=what.text(lang)) if inc.vm
                     else t("explain.result_unnamed", lang, what=what.text(lang)))
    if inc.failures > 1:
        parts.append(t("explain.loop", lang, n=inc.failures))
    return join_sentences(parts)


def join_sentences(parts: list[str]) -> str:
    """Sentences one after another: a space after English (or log text), none after a full-width stop."""
    out = ""
    for part in parts:
        out += ("" if not out or out.endswith(FULL_WIDTH_STOPS) else " ") + part
    return out


FULL_WIDTH_STOPS = ("。", "！", "？", "）")


class Correlator:
    """Feed events in time order; get incidents as they open, change and close.

    Each event costs work for what it touches only: windows close from a heap ordered by their
    last event, pending events wait in a heap ordered by time, and only incidents changed since
    the last call are fingerprinted."""

    def __init__(self, gap: float = DEFAULT_GAP) -> None:
        self.set_gap(gap)
        self.open: dict[tuple[str | None, str], Incident] = {}
        # events naming no VM, waiting to be attached by time: a heap of (time, arrival, event)
        self.pending: list[tuple[datetime, int, Event]] = []
        self.watermark: datetime | None = None
        self.recent: list[Incident] = []  # closed incidents a later start or service may still recover
        self.done: list[Incident] = []
        self._emitted: dict[str, tuple] = {}
        self._seq = itertools.count()  # arrival order of pending events and of windows opened
        self._opened: dict[int, int] = {}  # id(open incident) -> when it opened (the order of `open`)
        self._quiet: list[tuple[datetime, int, Incident]] = []  # (last event then, opened, incident)
        self._starting: list[tuple[datetime, int, Incident]] = []  # (started_at then, opened, incident)
        self._touched: dict[int, Incident] = {}  # open incidents changed since the last _changes
        self._recent_oldest: datetime | None = None  # no recent incident ended before this
        # per host, in time order: (time, arrival, event, incident) for each failure or start listed
        # in an incident while open: what a pending event attaches to, what a host cause hits
        self._anchors: dict[str | None, list[tuple[datetime, int, Event, Incident]]] = {}
        self._absorbable: dict[str | None, dict[int, Incident]] = {}  # VM windows: symptoms, no cause

    def set_gap(self, gap: float) -> None:
        """The window length (seconds of quiet that close an incident); the daemon's reload sets it."""
        self.gap = timedelta(seconds=gap)
        self.attach = timedelta(seconds=min(ATTACH_SECONDS, gap / 2))  # placed before its window closes

    # -- input -----------------------------------------------------------------------------
    def feed(self, ev: Event) -> list[Incident]:
        """Take one event; return the incidents that opened or changed."""
        self._advance(ev.ts)
        if ev.pattern is not None and ev.pattern.is_recovery:
            self._recover(ev)
        elif ev.pattern is not None and ev.pattern.scope == "host":
            if (hinc := self.open.get((ev.record.host, HOST_KEY))) is not None and unrelated_cause(hinc, ev):
                self._close((ev.record.host, HOST_KEY), hinc)  # another cause: its own incident
            inc = self._window(ev.record.host, HOST_KEY, "host", ev)
            self._add(inc, ev)
            if ev.role == "cause":
                inc.affected |= self._starting_vms(ev)
            self._absorb_vm_windows(inc)
        elif ev.vm:
            self._to_vm(ev)
        else:
            heapq.heappush(self.pending, (ev.ts, next(self._seq), ev))
        return self._changes()

    def advance(self, now: datetime) -> list[Incident]:
        """Move the watermark (the daemon's clock tick on idle logs); return what changed."""
        self._advance(now)
        return self._changes()

    def _advance(self, now: datetime) -> None:
        """Attach or place pending events, confirm restarts, close quiet windows."""
        if self.watermark is None or now > self.watermark:
            self.watermark = now
        wm = self.watermark
        due: list[tuple[datetime, int, Event]] = []
        while self.pending and wm - self.pending[0][0] >= self.attach:
            due.append(heapq.heappop(self.pending))
        for _, _, ev in sorted(due, key=lambda x: x[1]):  # in arrival order
            self._place_pending(ev)
        if self._recent_oldest is not None and wm - self._recent_oldest > RECOVERY_HORIZON:
            self.recent = [i for i in self.recent if wm - i.last_seen <= RECOVERY_HORIZON]
            self._recent_oldest = min((i.last_seen for i in self.recent), default=None)
        while self._starting and wm - self._starting[0][0] >= RECOVERY_HOLD:
            started, _, inc = heapq.heappop(self._starting)
            if inc.started_at == started and self._is_open(inc):
                inc.recovered_at, inc.started_at = inc.started_at, None
                self._touch(inc)
        closing: list[tuple[int, Incident]] = []
        while self._quiet and wm - self._quiet[0][0] > self.gap:
            _, opened, inc = heapq.heappop(self._quiet)
            if not self._is_open(inc):
                continue
            if wm - inc.last_seen > self.gap:
                closing.append((opened, inc))
            else:  # it had events since: wait for its new last one
                heapq.heappush(self._quiet, (inc.last_seen, opened, inc))
        for _, inc in sorted(closing, key=lambda x: x[0]):  # in the order they opened
            self._close(self._key(inc), inc)

    def flush(self) -> list[Incident]:
        """End of input: place what is pending, close every window."""
        for _, _, ev in sorted(self.pending, key=lambda x: x[1]):
            self._place_pending(ev)
        self.pending = []
        for key, inc in list(self.open.items()):
            self._close(key, inc)
        return self._changes()

    # -- bookkeeping -------------------------------------------------------------------------
    @staticmethod
    def _key(inc: Incident) -> tuple[str | None, str]:
        return (inc.host, inc.vm or HOST_KEY)

    def _is_open(self, inc: Incident) -> bool:
        return self.open.get(self._key(inc)) is inc

    def _touch(self, inc: Incident) -> None:
        self._touched[id(inc)] = inc

    def _add(self, inc: Incident, ev: Event, in_time_order: bool = False) -> None:
        """Add an event to an incident and keep the indexes over open incidents up to date."""
        listed = inc.add_in_time_order(ev) if in_time_order else inc.add(ev)
        self._touch(inc)
        if listed and (ev.role != "context" or is_start(ev)):
            anchors = self._anchors.setdefault(inc.host, [])
            entry = (ev.record.ts, next(self._seq), ev, inc)
            if anchors and entry[0] < anchors[-1][0]:
                insort(anchors, entry, key=lambda a: a[0])
            else:
                anchors.append(entry)
        if inc.vm is not None and not inc.has_cause and inc.significant():
            self._absorbable.setdefault(inc.host, {})[id(inc)] = inc

    def _prune_anchors(self, anchors: list, ts: datetime) -> None:
        """Events come in time order, so a later question goes back at most `attach` before
        this one: anchors older than that and a window can never matter again."""
        horizon = ts - self.gap - 2 * self.attach
        if anchors[0][0] < horizon:
            del anchors[:bisect_left(anchors, horizon, key=lambda a: a[0])]

    def _anchors_near(self, host: str | None, ts: datetime) -> list[tuple[Event, Incident]]:
        """Failures and starts listed in open incidents of `host` within `attach` of `ts`."""
        anchors = self._anchors.get(host)
        if not anchors:
            return []
        self._prune_anchors(anchors, ts)
        lo = bisect_left(anchors, ts - self.attach, key=lambda a: a[0])
        hi = bisect_right(anchors, ts + self.attach, key=lambda a: a[0])
        return [(e, inc) for _, _, e, inc in anchors[lo:hi] if self._is_open(inc)]

    def _set_started(self, inc: Incident, ts: datetime) -> None:
        inc.started_at = ts
        heapq.heappush(self._starting, (ts, self._opened.get(id(inc), 0), inc))

    def _track_open(self, key: tuple[str | None, str], inc: Incident) -> None:
        """A window now open under `key`: remember its place and when it may close."""
        opened = next(self._seq)
        self.open[key] = inc
        self._opened[id(inc)] = opened
        heapq.heappush(self._quiet, (inc.last_seen, opened, inc))
        if inc.started_at is not None:
            heapq.heappush(self._starting, (inc.started_at, opened, inc))

    def _untrack(self, key: tuple[str | None, str]) -> None:
        inc = self.open.pop(key)
        self._opened.pop(id(inc), None)
        self._touched.pop(id(inc), None)
        self._absorbable.get(inc.host, {}).pop(id(inc), None)

    # -- windows ---------------------------------------------------------------------------
    def _window(self, host: str | None, key: str, scope: str, first: Event) -> Incident:
        inc = self.open.get((host, key))
        if inc is None:
            inc = Incident(id=stable_id(host or "", scope, key, first.ts.isoformat(), first.pattern_id or "",
                                        first.record.message[:100]),
                           host=host, scope=scope, vm=key or None, first_ts=first.ts, last_ts=first.ts)
            self._track_open((host, key), inc)
        self._touch(inc)
        return inc

    def _to_vm(self, ev: Event) -> None:
        host = ev.record.host
        hinc = self.open.get((host, HOST_KEY))
        vinc = self.open.get((host, ev.vm))
        if hinc is not None and ev.role != "cause" and (vinc is None or not _has_cause(vinc)) \
                and (vinc is None or ev.role == "symptom"):
            # a symptom while a host-wide cause is open: the impact of that cause
            if vinc is not None:
                for e in vinc.events:
                    self._add(hinc, e)
                self._untrack((host, ev.vm))
            self._add(hinc, ev)
            if is_start(ev) and ev.vm in hinc.affected:
                self._set_started(hinc, ev.ts)  # the VM it hit was started again
            return
        if vinc is None and STARTED_RE.search(ev.record.message) and self._recover_closed(ev):
            return
        inc = self._window(host, ev.vm, "vm", ev)
        self._add(inc, ev)
        if STARTED_RE.search(ev.record.message):
            if inc.significant():
                self._set_started(inc, ev.ts)
        elif ev.role != "context":
            inc.started_at = inc.recovered_at = None

    def _nearest_vm_window(self, host: str | None, ts: datetime) -> Incident | None:
        """The open VM window with a failure or start nearest `ts` (within `attach`; on a tie the
        one opened first): walks outwards from `ts`, so it reads only the anchors nearer than that."""
        anchors = self._anchors.get(host)
        if not anchors:
            return None
        self._prune_anchors(anchors, ts)
        right = bisect_left(anchors, ts, key=lambda a: a[0])
        left = right - 1
        best, best_rank = None, None
        while True:
            dl = ts - anchors[left][0] if left >= 0 else None
            dr = anchors[right][0] - ts if right < len(anchors) else None
            if dl is None and dr is None:
                break
            if dr is None or (dl is not None and dl <= dr):
                dt, (_, _, _, inc), left = dl, anchors[left], left - 1
            else:
                dt, (_, _, _, inc), right = dr, anchors[right], right + 1
            if dt > self.attach or (best_rank is not None and dt > best_rank[0]):
                break
            if inc.vm is not None and self._is_open(inc):
                rank = (dt, self._opened[id(inc)])
                if best_rank is None or rank < best_rank:
                    best, best_rank = inc, rank
        return best

    def _starting_vms(self, ev: Event) -> set[str]:
        """VMs of this host that were being started within seconds of `ev`."""
        return {e.vm for e, _ in self._anchors_near(ev.record.host, ev.ts) if e.vm and is_start(e)}

    def _absorb_vm_windows(self, hinc: Incident) -> None:
        """VM windows with symptoms but no cause of their own join an open host-wide incident."""
        candidates = self._absorbable.pop(hinc.host, {})
        for inc in sorted(candidates.values(), key=lambda i: self._opened.get(id(i), -1)):
            if self._is_open(inc) and not _has_cause(inc) and inc.significant():
                for e in inc.events:
                    self._add(hinc, e)
                self._untrack(self._key(inc))

    def _place_pending(self, ev: Event) -> None:
        """An event naming no VM: the VM with a failure within seconds of it, else the host."""
        host = ev.record.host
        best = self._nearest_vm_window(host, ev.ts)
        if best is not None:
            ev = replace(ev, vm=best.vm)  # a copy: the caller's event keeps what its line said
            self._add(best, ev, in_time_order=True)
            return
        if ev.role == "context" and ev.shape is None:
            return  # context naming nothing and near nothing says nothing
        inc = self._window(host, HOST_KEY, "host", ev)
        self._add(inc, ev, in_time_order=True)

    def _recover(self, ev: Event) -> None:
        """A service back up recovers the host's open (or recently closed) incident."""
        host = ev.record.host
        inc = self.open.get((host, HOST_KEY))
        if inc is None:
            inc = next((i for i in reversed(self.recent) if i.host == host and i.scope == "host"
                        and i.recovered_at is None), None)
        if inc is not None and ev.ts >= inc.first_seen:
            inc.recovered_at = ev.ts
            self._add(inc, ev)
            if inc.closed:
                self.done.append(inc)
            else:
                self._touch(inc)

    def _recover_closed(self, ev: Event) -> bool:
        """A VM started again after its incident closed: that incident recovered."""
        for inc in reversed(self.recent):
            if inc.host == ev.record.host and inc.recovered_at is None and (
                    inc.vm == ev.vm or ev.vm in inc.affected):
                inc.recovered_at = ev.ts
                self.done.append(inc)
                return True
        return False

    def _close(self, key: tuple, inc: Incident) -> None:
        self._untrack(key)
        if inc.started_at:  # started again and nothing failed before the window closed
            inc.recovered_at, inc.started_at = inc.started_at, None
        inc.closed = True
        inc.status = "resolved"
        if inc.significant():
            self.done.append(inc)
            self.recent.append(inc)
            if self._recent_oldest is None or inc.last_seen < self._recent_oldest:
                self._recent_oldest = inc.last_seen

    # -- output ----------------------------------------------------------------------------
    def _changes(self) -> list[Incident]:
        """Incidents whose reportable content changed since last emitted (version bumped): the
        open ones changed since the last call, in the order they opened, then the closed ones."""
        touched = sorted((i for i in self._touched.values() if self._is_open(i)),
                         key=lambda i: self._opened[id(i)])
        self._touched = {}
        out: list[Incident] = []
        for inc in {id(i): i for i in touched + self.done}.values():
            if not inc.significant():
                continue
            fp = inc.fingerprint()
            if self._emitted.get(inc.id) == fp:
                continue
            first = inc.id not in self._emitted
            self._emitted[inc.id] = fp
            inc.version += 1
            inc.status = "resolved" if inc.closed else ("open" if first else "updated")
            out.append(inc)
        self.done = [i for i in self.done if self._emitted.get(i.id) != i.fingerprint()]
        return out

    # -- state -----------------------------------------------------------------------------
    def to_state(self, event_to_json: EventToJson) -> dict[str, Any]:
        """Open windows, pending events, closed incidents a later line may still recover, and
        what was emitted of each (only for incidents still alive: the others are never emitted
        again), as plain JSON values."""
        incidents: dict[str, Incident] = {}
        for inc in [*self.open.values(), *self.done, *self.recent]:
            incidents[inc.id] = inc
        return {
            "watermark": iso_or_none(self.watermark),
            "incidents": [i.to_state(event_to_json) for i in incidents.values()],
            "open": [[host, key, inc.id] for (host, key), inc in self.open.items()],
            "done": [i.id for i in self.done],
            "recent": [i.id for i in self.recent],
            "pending": [event_to_json(e) for _, _, e in sorted(self.pending, key=lambda x: x[1])],
            "emitted": {i: _fingerprint_to_json(self._emitted[i]) for i in incidents if i in self._emitted},
        }

    @classmethod
    def from_state(cls, d: dict[str, Any], event_from_json: EventFromJson, gap: float = DEFAULT_GAP) -> Correlator:
        """A correlator that goes on where the one that saved `d` stopped; the gap is the
        caller's (a new --window applies to the restored windows too). Raises KeyError,
        TypeError or ValueError on a state it cannot use."""
        c = cls(gap)
        by_id: dict[str, Incident] = {}
        for x in d.get("incidents", []):
            if (inc := Incident.from_state(x, event_from_json)) is not None:
                by_id[inc.id] = inc
        c.watermark = datetime_or_none(d.get("watermark"))
        for host, key, i in d.get("open", []):
            if i in by_id:
                inc = by_id[i]
                c._track_open((host, key), inc)
                c._touch(inc)
                for e in inc.events:
                    if e.role != "context" or is_start(e):
                        c._anchors.setdefault(inc.host, []).append((e.record.ts, next(c._seq), e, inc))
                if inc.vm is not None and not inc.has_cause and inc.significant():
                    c._absorbable.setdefault(inc.host, {})[id(inc)] = inc
        for anchors in c._anchors.values():
            anchors.sort(key=lambda a: a[0])
        c.done = [by_id[i] for i in d.get("done", []) if i in by_id]
        c.recent = [by_id[i] for i in d.get("recent", []) if i in by_id]
        c._recent_oldest = min((i.last_seen for i in c.recent), default=None)
        for e in (event_from_json(x) for x in d.get("pending", [])):
            if e is not None:
                heapq.heappush(c.pending, (e.ts, next(c._seq), e))
        c._emitted = {i: _fingerprint_from_json(v) for i, v in d.get("emitted", {}).items() if i in by_id}
        return c


def _fingerprint_to_json(fp: tuple) -> list:
    pid, shape, affected, severity, recovered, closed, failures = fp
    return [pid, shape, affected, severity, iso_or_none(recovered), closed, failures]


def _fingerprint_from_json(v: list) -> tuple:
    """Also reads the form that listed the VMs (states saved by earlier versions)."""
    pid, shape, affected, severity, recovered, closed, failures = v
    count = len(affected) if isinstance(affected, list) else int(affected)
    return (pid, shape, count, severity, datetime_or_none(recovered), bool(closed), int(failures))


def correlate(events: Iterable[Event], gap: float = DEFAULT_GAP) -> list[Incident]:
    """Batch: every incident, in its final state, most severe first then by time."""
    c = Correlator(gap)
    final: dict[str, Incident] = {}
    for ev in events:
        for inc in c.feed(ev):
            final[inc.id] = inc
    for inc in c.flush():
        final[inc.id] = inc
    return sorted(final.values(), key=lambda i: (-SEVERITY_RANK[i.severity()], i.first_seen, i.id))


class FinalIncidents:
    """Batch in bounded memory: the incidents of `correlate`, each handed out once it can no
    longer change (closed, and out of the correlator's `recent`, so no later start recovers it)
    instead of all at the end; unsorted. Feed events in time order, then `flush`."""

    def __init__(self, gap: float = DEFAULT_GAP) -> None:
        self.c = Correlator(gap)
        self.waiting: dict[str, Incident] = {}  # emitted, still able to change
        self._closed: list[tuple[datetime, int, str]] = []  # (last event, arrival, id) of closed ones
        self._seq = itertools.count()

    def feed(self, ev: Event) -> list[Incident]:
        for inc in self.c.feed(ev):
            self.waiting[inc.id] = inc
            if inc.closed:
                heapq.heappush(self._closed, (inc.last_seen, next(self._seq), inc.id))
        return self._final()

    def flush(self) -> list[Incident]:
        for inc in self.c.flush():
            self.waiting[inc.id] = inc
        out, self.waiting, self._closed = list(self.waiting.values()), {}, []
        return out

    def _final(self) -> list[Incident]:
        wm, out = self.c.watermark, []
        alive: set[int] | None = None
        while self._closed and wm - self._closed[0][0] > RECOVERY_HORIZON:
            _, _, iid = heapq.heappop(self._closed)
            inc = self.waiting.get(iid)
            if inc is None:
                continue
            if alive is None:
                alive = {id(i) for i in self.c.recent}
            if wm - inc.last_seen > RECOVERY_HORIZON and id(inc) not in alive:
                out.append(self.waiting.pop(iid))
            else:  # recovered since (a later last event), or still listed as recent
                heapq.heappush(self._closed, (max(inc.last_seen, wm - RECOVERY_HORIZON), next(self._seq), iid))
        return out
