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
    Timeline,
    Tracker,
    add_downtime,
    decide,
    failed_incident,
    kind_of,
    link_failed_starts,
)
from logsense.model import Event

KEEP = SHUTDOWN_SPAN + MIGRATION_SPAN  # beyond the grace period, how long ended runs are remembered
PRUNE_AT = 1000  # runs and marks kept beyond those of the last prune before the next (amortised)
AWAIT = timedelta(days=7)  # an opened incident is awaited this long for its VMs, then forgotten (left open)
HOLD = timedelta(seconds=10)  # a start holds this long before a VM counts as back (the correlator's too)
LATEST_KEPT = 1024  # incidents whose last whole dict is kept, to send one again naming a reboot
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
        # the last dict emitted of the newest LATEST_KEPT incidents (a failed start to send again, named)
        self.latest: dict[str, dict[str, Any]] = {}
        # a failed start's id -> (reboot incident id, the words naming it) of the reboots that named it
        self.links: dict[str, list[tuple[str, str]]] = {}
        self._resend: list[dict[str, Any]] = []  # failed starts to send again, now naming a reboot incident
        self.sent_again: dict[str, int] = {}  # id -> version sent here: the correlator's next comes after
        self.opened: list[RebootIncident] = []  # emitted, until their VMs are back
        self.watermark: datetime | None = None
        self._prune_at = PRUNE_AT  # the tracker's runs and marks when it is pruned next
        self._recheck = False  # a VM an opened incident awaits was started: is it back (once it held)?
        self._relink = False  # an incident came that may be a failed start an opened incident names

    @property
    def waiting(self) -> bool:
        """Whether the daemon's clock must tick for it: a grace period runs, or a start of a VM
        an opened incident awaits has yet to hold (an incident whose VMs nobody starts waits for
        the next line, not on the clock)."""
        return bool(self.tracker.reboots) or self._recheck or self._relink

    def set_grace(self, grace: float) -> None:
        self.grace = grace
        self.tracker.grace = timedelta(seconds=grace)

    def note(self, incidents: list[dict[str, Any]]) -> None:
        """Incidents the correlator emitted: a failed start a reboot incident links to. One a
        reboot incident named already names it too, as in `analyze` (the dict is completed here)."""
        for d in incidents:
            if "id" in d and "first_seen" in d:
                self._name_reboots(d)
                self.seen[d["id"]] = {k: d.get(k) for k in LINK_FIELDS}
                self._keep_latest(d)
                self._relink = self._relink or any(v is None for i in self.opened for v in i.failed.values())

    def feed(self, ev: Event) -> None:
        self.tracker.feed(ev)
        if self.opened and kind_of(ev) in ("vm-start", "migrate-in") and any(ev.vm in i.missing for i in self.opened):
            self._recheck = True

    def advance(self, now: datetime, lang: str = "en") -> list[dict[str, Any]]:
        """The reboot incidents whose VMs are all running again (resolved), and those whose grace
        period ended by `now` (opened), as incident dicts in `lang`."""
        if self.watermark is not None and now <= self.watermark:
            return []
        self.watermark = now
        out: list[dict[str, Any]] = []
        if self._recheck:
            self._recheck = False
            for inc in list(self.opened):
                back, holding = self._all_back(inc, now)
                self._recheck = self._recheck or holding
                if back is not None:
                    inc.recovered_at, inc.closed, inc.status = back, True, "resolved"
                    inc.version += 1
                    self.opened.remove(inc)
                    out.append(self._dict(inc, lang))
        if self._relink:
            self._relink = False
            out += [self._updated(inc, lang) for inc in self.opened if self._link(inc)]
        grace = timedelta(seconds=self.grace)
        due = [r for r in self.tracker.reboots if r.mark.ts + grace <= now]
        if due:
            self.tracker.reboots = [r for r in self.tracker.reboots if r.mark.ts + grace > now]
            for r in due:
                tl = self._timeline(r)
                if (inc := decide(r, tl, list(self.seen.values()), self.grace)) is not None:
                    inc.recovered_at, inc.closed, inc.status, inc.version = None, False, "open", 1
                    self.opened.append(inc)
                    out.append(self._dict(inc, lang, tl))
        self._prune(now)
        out += self._resend
        self._resend = []
        return out

    def _dict(self, inc: RebootIncident, lang: str, tl: Timeline | None = None) -> dict[str, Any]:
        """As `analyze` gives it: downtime added, the failed-start incidents named (and each of
        those sent again naming it, the first time)."""
        d = inc.to_dict(lang)
        add_downtime(tl or self._timeline(inc.reboot), d, lang)
        named = {i: {"explanation": "", "related_incidents": []} for i in inc.failed.values() if i in self.seen}
        link_failed_starts(inc, d, named, lang)
        for other, added in named.items():
            if all(rid != d["id"] for rid, _ in self.links.get(other, [])):
                self.links.setdefault(other, []).append((d["id"], added["explanation"]))
                if (last := self.latest.get(other)) is not None:
                    self._resend.append(self._again(last))
        return d

    def _keep_latest(self, d: dict[str, Any]) -> None:
        """Whole dicts are heavy: only the newest are kept (a reboot names a failed start within
        its grace period, so an old one is not named again)."""
        self.latest.pop(d["id"], None)
        self.latest[d["id"]] = d
        while len(self.latest) > LATEST_KEPT:
            del self.latest[next(iter(self.latest))]

    def _name_reboots(self, d: dict[str, Any]) -> None:
        """The reboot incidents that named this one, named in it (words and `related_incidents`)."""
        for rid, words in self.links.get(d["id"], []):
            if rid not in d.setdefault("related_incidents", []):
                d["related_incidents"].append(rid)
                d["explanation"] = d.get("explanation", "") + words

    def _again(self, last: dict[str, Any]) -> dict[str, Any]:
        """A failed start's last dict, sent again naming the reboot incidents: the next version."""
        d = {**last, "related_incidents": list(last.get("related_incidents") or [])}
        self._name_reboots(d)
        d["version"] = int(d.get("version") or 0) + 1
        if not d.get("closed"):
            d["status"] = "updated"
        self._keep_latest(d)
        self.sent_again[d["id"]] = d["version"]
        return d

    def _link(self, inc: RebootIncident) -> bool:
        """Whether a failed start's incident, emitted after the reboot incident opened, is now
        named in it."""
        found = False
        for vm, other in inc.failed.items():
            if other is None and (other := failed_incident(list(self.seen.values()), inc.host, vm,
                                                           inc.failed_runs[vm])) is not None:
                inc.failed[vm], found = other, True
        return found

    def _updated(self, inc: RebootIncident, lang: str) -> dict[str, Any]:
        inc.version, inc.status = inc.version + 1, "updated"
        return self._dict(inc, lang)

    def _all_back(self, inc: RebootIncident, now: datetime) -> tuple[datetime | None, bool]:
        """When the last of its VMs was running again (starts that have held), or None; and
        whether a start is still to hold."""
        backs, holding = [], False
        for vm in inc.missing:
            starts = [r.start for runs in self.tracker.open.values() if (r := runs.get(vm)) is not None
                      and r.start is not None and inc.boot.ts <= r.start]
            holding = holding or any(s > now - HOLD for s in starts)
            backs.append(min((s for s in starts if s <= now - HOLD), default=None))
        if backs and all(b is not None for b in backs):
            return max(b for b in backs if b is not None), holding
        return None, holding

    def _timeline(self, reboot: Reboot) -> Timeline:
        """The part of the tracker's timeline a reboot's decision and its downtime look at: the
        runs of its VMs on its host since they went down, and on any host since the boot."""
        vms = {r.vm for r in reboot.before}
        since = min((r.end for r in reboot.before if r.end is not None), default=reboot.mark.ts)
        host, boot = reboot.mark.host, reboot.mark.ts
        t = self.tracker
        runs = [r for r in t.runs if r.vm in vms and (r.host == host and (r.end is None or r.end >= since)
                                                     or r.start is not None and r.start >= boot)]
        return Timeline(runs, t.marks, t.first, t.last)

    def _prune(self, now: datetime) -> None:
        """Forget what is old, once the tracker holds PRUNE_AT more runs and marks than after the
        last prune: amortised, each run costs the same whatever the fleet."""
        if len(self.tracker.runs) + len(self.tracker.marks) < self._prune_at:
            return
        self.opened = [i for i in self.opened if now - i.boot.ts <= AWAIT]
        horizon = now - timedelta(seconds=self.grace) - KEEP
        keep = {id(r) for reboot in self._reboots() for r in reboot.before}
        self.tracker.prune(horizon, keep)
        oldest = now - timedelta(seconds=self.grace) - MIGRATION_SPAN
        self.seen = {i: d for i, d in self.seen.items() if (datetime_or_none(d.get("last_seen")) or now) >= oldest}
        self.latest = {i: d for i, d in self.latest.items() if i in self.seen}
        self.links = {i: v for i, v in self.links.items() if i in self.seen}
        self._prune_at = len(self.tracker.runs) + len(self.tracker.marks) + PRUNE_AT

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
            "links": [[i, rid, words] for i, named in self.links.items() for rid, words in named],
        }
        state["runs"] = [_run_to_json(r, event_to_json) for _, r in sorted(runs.values(), key=lambda x: x[0])]
        state["marks"] = [{"host": m.host, "ts": iso_or_none(m.ts), "kind": m.kind, "boot_id": m.boot_id,
                           "event": event_to_json(m.event)} for _, m in sorted(marks.values(), key=lambda x: x[0])]
        return state

    @classmethod
    def from_state(cls, d: dict[str, Any], event_from_json: EventFromJson, grace: float) -> RebootWatch:
        """The watch `to_state` saved, with the caller's grace period. Every value is checked
        (a damaged state must not fail later, in the loop): raises KeyError, TypeError,
        ValueError or IndexError on a state it cannot use."""
        if not isinstance(d, dict) or d.get("version") != STATE_VERSION:
            raise ValueError(f"lifecycle state version {d.get('version') if isinstance(d, dict) else d!r:.20}")
        w = cls(grace)
        t = w.tracker

        def event(x: Any) -> Event | None:
            ev = event_from_json(x)
            if ev is not None:
                _moment(ev.record.ts)
                _name(ev.record.host)
            return ev

        runs = [_run_from_json(x, event) for x in _list(d["runs"])]
        marks: list[HostMark | None] = []
        for x in _list(d["marks"]):
            ev, kind = event(x["event"]), x["kind"]
            if kind not in ("boot", "shutdown"):
                raise ValueError(f"mark kind {kind!r:.20}")
            marks.append(HostMark(_name(x["host"]), _moment(x["ts"]), kind, ev, _name(x.get("boot_id")))
                         if ev is not None else None)

        def run_at(i: Any) -> Run:
            return runs[_index(i, runs)]

        def mark_at(i: Any) -> HostMark | None:
            return marks[_index(i, marks)]

        t.runs = [run_at(i) for i in _list(d["listed_runs"])]
        t.marks = [m for i in _list(d["listed_marks"]) if (m := mark_at(i)) is not None]
        t.first, t.last = _moment(d["first"], True), _moment(d["last"], True)
        w.watermark = _moment(d["watermark"], True)
        for key, runs_of in (("open", t.open), ("last_closed", t.last_closed)):
            for h, vm, i in _list(d[key]):
                runs_of.setdefault(_name(h), {})[_text(vm)] = run_at(i)
        for key, into in (("boot_at", t.boot_at), ("shutdown_at", t.shutdown_at)):
            for h, i in _list(d[key]):
                if (m := mark_at(i)) is not None:
                    into[_name(h)] = m
        for key, times in (("last_ts", t.last_ts), ("daemon_at", t.daemon_at)):
            for h, ts in _list(d[key]):
                times[_name(h)] = _moment(ts)
        for key, sets in (("found_dead", t.found_dead), ("started_since_boot", t.started_since_boot)):
            for h, vms in _list(d[key]):
                sets[_name(h)] = {_text(v) for v in _list(vms)}
        w.seen = {}
        for x in _list(d["seen"]):
            _moment(x["first_seen"]), _moment(x["last_seen"]), _name(x["host"]), _name(x["vm"])
            w.seen[_text(x["id"])] = {**x, "affected_vms": [_text(v) for v in _list(x["affected_vms"])],
                                      "explanation": _text(x["explanation"])}
        for x in _list(d.get("links", [])):  # states saved before links were kept have none
            failed, rid, words = _list(x)
            w.links.setdefault(_text(failed), []).append((_text(rid), _text(words)))

        def reboot(x: dict[str, Any]) -> Reboot | None:
            mark = mark_at(x["mark"])
            shutdown = mark_at(x["shutdown"]) if x["shutdown"] is not None else None
            return Reboot(mark, [run_at(i) for i in _list(x["before"])], shutdown) if mark is not None else None

        t.reboots = [r for x in _list(d["reboots"]) if (r := reboot(x)) is not None]
        timeline = t.timeline()
        for x in _list(d["opened"]):
            if (r := reboot(x)) is not None and (inc := decide(r, timeline, list(w.seen.values()), grace)):
                inc.recovered_at, inc.closed, inc.status, inc.version = None, False, "open", _index(x["version"])
                w.opened.append(inc)
        w._recheck = w._relink = bool(w.opened)
        return w


def _run_to_json(r: Run, event_to_json: EventToJson) -> dict[str, Any]:
    return {"vm": r.vm, "host": r.host, "start": iso_or_none(r.start), "end": iso_or_none(r.end),
            "start_reason": r.start_reason, "end_reason": r.end_reason, "stop_detail": r.stop_detail,
            "end_seen": r.end_seen, "events": [event_to_json(e) for e in r.events]}


def _run_from_json(x: dict[str, Any], event: Callable[[Any], Event | None]) -> Run:
    return Run(_text(x["vm"]), _name(x["host"]), _moment(x["start"], True), _moment(x["end"], True),
               _text(x["start_reason"]), _text(x["end_reason"]), _name(x.get("stop_detail")), x.get("end_seen") is True,
               [e for e in (event(y) for y in _list(x["events"])) if e is not None])


# -- checks of restored values: each returns the value or raises TypeError / ValueError / IndexError
def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"{type(v).__name__}, not a string")
    return v


def _name(v: Any) -> str | None:
    return None if v is None else _text(v)


def _list(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise TypeError(f"{type(v).__name__}, not a list")
    return v


def _index(v: Any, within: list[Any] | None = None) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0 or within is not None and v >= len(within):
        raise IndexError(f"{v!r:.20} is no index here")
    return v


def _moment(v: Any, optional: bool = False) -> Any:
    """An aware datetime (or its ISO text); None only when `optional`."""
    if v is None and optional:
        return None
    ts = datetime.fromisoformat(_text(v)) if not isinstance(v, datetime) else v
    if ts.tzinfo is None:
        raise ValueError(f"{v!r:.40} has no zone")
    return ts
