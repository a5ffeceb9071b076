"""The host-reboot incident, live: `logsense watch` keeps the VMs' lives (`lifecycle.Tracker`,
the very code `analyze` runs) on the events it correlates, and opens the incident "host H
rebooted at T; A, B were running before and were not started again" when a boot's grace period
has passed in event time (the daemon's clock moves event time on while the logs are idle). Once
every VM it names is running again, it resolves.

Memory stays bounded: runs that ended and host marks older than the grace period and the
shutdown span are forgotten, unless a reboot still waiting needs them. The state is plain JSON
in the daemon's state.json (key `lifecycle`), events saved and restored by the daemon's own
functions, like the correlator's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from logsense.correlator import datetime_or_none, iso_or_none
from logsense.lifecycle import (
    DEFAULT_GRACE,
    MIGRATION_SPAN,
    SHUTDOWN_SPAN,
    HostMark,
    Reboot,
    RebootIncident,
    Run,
    Tracker,
    add_downtime,
    decide,
    link_failed_starts,
)
from logsense.model import Event

KEEP = SHUTDOWN_SPAN + MIGRATION_SPAN  # beyond the grace period, how long ended runs are remembered
PRUNE_EVERY = timedelta(minutes=1)  # of event time
HOLD = timedelta(seconds=10)  # a start holds this long before a VM counts as back (the correlator's too)
LINK_FIELDS = ("id", "host", "scope", "vm", "affected_vms", "first_seen", "last_seen", "explanation")
STATE_VERSION = 1
EventToJson = Callable[[Event], dict[str, Any]]
EventFromJson = Callable[[dict[str, Any]], Event | None]


class RebootWatch:
    """Feed it the events the correlator gets (`feed`) and the incidents it emits (`note`);
    `advance(event time)` gives the reboot incidents to emit."""

    def __init__(self, grace: float = DEFAULT_GRACE) -> None:
        self.tracker = Tracker(timedelta(seconds=grace))
        self.grace = grace
        self.seen: dict[str, dict[str, Any]] = {}  # recent incidents: a VM's failed start to link to
        self.opened: list[RebootIncident] = []  # emitted, until their VMs are back
        self.watermark: datetime | None = None
        self._pruned: datetime | None = None

    @property
    def waiting(self) -> bool:
        """Whether the daemon's clock must tick for it (a grace period runs, VMs are awaited)."""
        return bool(self.tracker.reboots or self.opened)

    def set_grace(self, grace: float) -> None:
        self.grace = grace
        self.tracker.grace = timedelta(seconds=grace)

    def note(self, incidents: list[dict[str, Any]]) -> None:
        for d in incidents:
            if "id" in d and "first_seen" in d:
                self.seen[d["id"]] = {k: d.get(k) for k in LINK_FIELDS}

    def feed(self, ev: Event) -> None:
        self.tracker.feed(ev)

    def advance(self, now: datetime, lang: str = "en") -> list[dict[str, Any]]:
        """The reboot incidents whose grace period ended by `now` (opened), and those whose VMs
        are all running again (resolved), as incident dicts in `lang`."""
        if self.watermark is not None and now <= self.watermark:
            return []
        self.watermark = now
        out: list[dict[str, Any]] = []
        grace = timedelta(seconds=self.grace)
        due = [r for r in self.tracker.reboots if r.mark.ts + grace <= now]
        if due:
            self.tracker.reboots = [r for r in self.tracker.reboots if r.mark.ts + grace > now]
            self.opened = [i for i in self.opened if i.host not in {r.mark.host for r in due}]  # superseded
            for r in due:
                if (inc := decide(r, self.tracker.timeline(), list(self.seen.values()), self.grace)) is not None:
                    inc.recovered_at, inc.closed, inc.status, inc.version = None, False, "open", 1
                    self.opened.append(inc)
                    out.append(self._dict(inc, lang))
        for inc in list(self.opened):
            if (back := self._all_back(inc, now)) is not None:
                inc.recovered_at, inc.closed, inc.status = back, True, "resolved"
                inc.version += 1
                self.opened.remove(inc)
                out.append(self._dict(inc, lang))
        self._prune(now)
        return out

    def _dict(self, inc: RebootIncident, lang: str) -> dict[str, Any]:
        """As `analyze` gives it: downtime added, the failed-start incidents named."""
        d = inc.to_dict(lang)
        add_downtime(self.tracker.timeline(), d, lang)
        link_failed_starts(inc, d, {i: dict(v) for i, v in self.seen.items()}, lang)
        return d

    def _all_back(self, inc: RebootIncident, now: datetime) -> datetime | None:
        """When the last of its VMs was running again (a start that has held), or None."""
        backs = []
        for vm in inc.missing:
            starts = [r.start for runs in self.tracker.open.values() if (r := runs.get(vm)) is not None
                      and r.start is not None and inc.boot.ts <= r.start <= now - HOLD]
            if not starts:
                return None
            backs.append(min(starts))
        return max(backs, default=None)

    def _prune(self, now: datetime) -> None:
        if self._pruned is not None and now - self._pruned < PRUNE_EVERY:
            return
        self._pruned = now
        horizon = now - timedelta(seconds=self.grace) - KEEP
        keep = {id(r) for reboot in self._reboots() for r in reboot.before}
        self.tracker.prune(horizon, keep)
        oldest = now - timedelta(seconds=self.grace) - MIGRATION_SPAN
        self.seen = {i: d for i, d in self.seen.items() if (datetime_or_none(d.get("last_seen")) or now) >= oldest}

    def _reboots(self) -> list[Reboot]:
        """The reboots still needed: waiting for their grace period, or opened and awaiting VMs."""
        return [*self.tracker.reboots, *(i.reboot for i in self.opened)]

    # -- state -----------------------------------------------------------------------------
    def to_state(self, event_to_json: EventToJson) -> dict[str, Any]:
        """Plain JSON: the tracker's runs and marks (each once, by index), what is waiting."""
        t = self.tracker
        runs: dict[int, tuple[int, Run]] = {}
        marks: dict[int, tuple[int, HostMark]] = {}

        def run_ref(r: Run) -> int:
            return runs.setdefault(id(r), (len(runs), r))[0]

        def mark_ref(m: HostMark | None) -> int | None:
            return None if m is None else marks.setdefault(id(m), (len(marks), m))[0]

        listed_runs = [run_ref(r) for r in t.runs]
        listed_marks = [mark_ref(m) for m in t.marks]
        reboots = [{"mark": mark_ref(r.mark), "before": [run_ref(x) for x in r.before],
                    "shutdown": mark_ref(r.shutdown)} for r in self._reboots()]
        state = {
            "version": STATE_VERSION, "grace": self.grace,
            "first": iso_or_none(t.first), "last": iso_or_none(t.last), "watermark": iso_or_none(self.watermark),
            "open": [[h, vm, run_ref(r)] for h, rs in t.open.items() for vm, r in rs.items()],
            "last_closed": [[h, vm, run_ref(r)] for h, rs in t.last_closed.items() for vm, r in rs.items()],
            "boot_at": [[h, mark_ref(m)] for h, m in t.boot_at.items()],
            "shutdown_at": [[h, mark_ref(m)] for h, m in t.shutdown_at.items()],
            "last_ts": [[h, iso_or_none(ts)] for h, ts in t.last_ts.items()],
            "daemon_at": [[h, iso_or_none(ts)] for h, ts in t.daemon_at.items()],
            "found_dead": [[h, sorted(v)] for h, v in t.found_dead.items()],
            "started_since_boot": [[h, sorted(v)] for h, v in t.started_since_boot.items()],
            "reboots": reboots[:len(t.reboots)],
            "opened": [{**r, "version": i.version} for r, i in zip(reboots[len(t.reboots):], self.opened, strict=True)],
            "listed_runs": listed_runs, "listed_marks": listed_marks,
            "seen": list(self.seen.values()),
        }
        state["runs"] = [_run_to_json(r, event_to_json) for _, r in sorted(runs.values(), key=lambda x: x[0])]
        state["marks"] = [{"host": m.host, "ts": iso_or_none(m.ts), "kind": m.kind, "boot_id": m.boot_id,
                           "event": event_to_json(m.event)} for _, m in sorted(marks.values(), key=lambda x: x[0])]
        return state

    @classmethod
    def from_state(cls, d: dict[str, Any], event_from_json: EventFromJson, grace: float) -> RebootWatch:
        """The watch `to_state` saved, with the caller's grace period. Raises KeyError,
        TypeError, ValueError or IndexError on a state it cannot use."""
        if not isinstance(d, dict) or d.get("version") != STATE_VERSION:
            raise ValueError(f"lifecycle state version {d.get('version') if isinstance(d, dict) else d!r:.20}")
        w = cls(grace)
        t = w.tracker
        runs = [_run_from_json(x, event_from_json) for x in d["runs"]]
        marks: list[HostMark | None] = []
        for x in d["marks"]:
            ev = event_from_json(x["event"])
            ts = datetime_or_none(x["ts"])
            marks.append(HostMark(x["host"], ts, str(x["kind"]), ev, x.get("boot_id"))
                         if ev is not None and ts is not None else None)
        t.runs = [runs[i] for i in d["listed_runs"]]
        t.marks = [m for i in d["listed_marks"] if (m := marks[i]) is not None]
        t.first, t.last = datetime_or_none(d["first"]), datetime_or_none(d["last"])
        w.watermark = datetime_or_none(d["watermark"])
        for h, vm, i in d["open"]:
            t.open.setdefault(h, {})[vm] = runs[i]
        for h, vm, i in d["last_closed"]:
            t.last_closed.setdefault(h, {})[vm] = runs[i]
        for key, into in (("boot_at", t.boot_at), ("shutdown_at", t.shutdown_at)):
            for h, i in d[key]:
                if marks[i] is not None:
                    into[h] = marks[i]
        for key, times in (("last_ts", t.last_ts), ("daemon_at", t.daemon_at)):
            for h, ts in d[key]:
                if (value := datetime_or_none(ts)) is not None:
                    times[h] = value
        for key, sets in (("found_dead", t.found_dead), ("started_since_boot", t.started_since_boot)):
            for h, vms in d[key]:
                sets[h] = {str(v) for v in vms}
        w.seen = {x["id"]: x for x in d["seen"] if isinstance(x, dict) and "id" in x}

        def reboot(x: dict[str, Any]) -> Reboot | None:
            mark = marks[x["mark"]]
            shutdown = marks[x["shutdown"]] if x["shutdown"] is not None else None
            return Reboot(mark, [runs[i] for i in x["before"]], shutdown) if mark is not None else None

        t.reboots = [r for x in d["reboots"] if (r := reboot(x)) is not None]
        timeline = t.timeline()
        for x in d["opened"]:
            if (r := reboot(x)) is not None and (inc := decide(r, timeline, list(w.seen.values()), grace)):
                inc.recovered_at, inc.closed, inc.status, inc.version = None, False, "open", int(x["version"])
                w.opened.append(inc)
        return w


def _run_to_json(r: Run, event_to_json: EventToJson) -> dict[str, Any]:
    return {"vm": r.vm, "host": r.host, "start": iso_or_none(r.start), "end": iso_or_none(r.end),
            "start_reason": r.start_reason, "end_reason": r.end_reason, "stop_detail": r.stop_detail,
            "end_seen": r.end_seen, "events": [event_to_json(e) for e in r.events]}


def _run_from_json(x: dict[str, Any], event_from_json: EventFromJson) -> Run:
    return Run(str(x["vm"]), x["host"], datetime_or_none(x["start"]), datetime_or_none(x["end"]),
               str(x["start_reason"]), str(x["end_reason"]), x.get("stop_detail"), bool(x.get("end_seen")),
               [e for e in (event_from_json(y) for y in x["events"]) if e is not None])
