"""Group events into explained incidents, incrementally, on event time.

Events arrive in time order (batch sorts them; the daemon feeds them behind a watermark).
Each host has one window per VM and one host-wide window; a window closes when the watermark
passes its last event by more than the gap. Only open windows are held, so memory follows the
window, not the archive; the daemon and `analyze` use this very object, so a replayed archive
gives the incidents the daemon would have emitted live.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from logsense.catalogue import render, render_advice
from logsense.i18n import t
from logsense.model import ROLE_RANK, SEVERITY_RANK, Event

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

# What the operator saw happen to the VM, from the lines that show it (i18n keys).
OUTCOMES = [
    (re.compile(r"shutting down, reason=failed|unexpectedly closed the monitor|exited while connecting to monitor"
                r"|[Ff]ailed to start domain|could not start|Failed to start"), "outcome.failed_start"),
    (re.compile(r"shutting down, reason=crashed|Killed process|End of file from monitor|terminating on signal 9"),
     "outcome.crashed"),
    (re.compile(r"[Pp]aused|I/O error|io-error|No space left"), "outcome.paused"),
    (re.compile(r"GUEST_PANICKED|guest-panicked|panic", re.I), "outcome.panicked"),
]
STARTED_RE = re.compile(r"starting up libvirt version")


def outcome_of(events: Iterable[Event]) -> str | None:
    for rx, words in OUTCOMES:
        if any(rx.search(e.record.message) for e in events if e.role != "context"):
            return words
    return None


def evidence_key(ev: Event) -> tuple:
    """Lines with the same key are one piece of evidence, counted."""
    return (ev.pattern_id, ev.shape or ev.record.message[:200], ev.vm)


def is_start(ev: Event) -> bool:
    """A VM being started: QEMU's log header, or libvirt's debug line for the start job."""
    return bool(STARTED_RE.search(ev.record.message)) or (ev.pattern_id or "").endswith(".start-requested")


def _has_cause(inc: Incident) -> bool:
    return any(e.role == "cause" for e in inc.events)


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

    @property
    def first_seen(self) -> datetime:
        return self.first_ts or self.events[0].ts

    @property
    def last_seen(self) -> datetime:
        return self.last_ts or self.events[-1].ts

    def add(self, ev: Event) -> None:
        key = evidence_key(ev)
        if self.last_ts is None or ev.ts > self.last_ts:
            self.last_ts = ev.ts
        if self.first_ts is None or ev.ts < self.first_ts:
            self.first_ts = ev.ts  # windows merged into a host incident may bring earlier events
        if key in self.counts:
            self.counts[key] += 1  # repeated: counted, not listed again
        else:
            self.counts[key] = 1
            self.events.append(ev)
        if ev.vm and ev.role != "context":
            self.affected.add(ev.vm)
        if ev.role != "context" and re.search(r"shutting down, reason=(failed|crashed)", ev.record.message):
            self.failures += 1

    @property
    def root(self) -> Event:
        """Cause over symptom over context, then catalogue priority, severity, and time."""
        def rank(e: Event) -> tuple:
            prio = e.pattern.priority if e.pattern is not None else 0
            return (ROLE_RANK.get(e.role or "context", 0), e.pattern is not None, prio,
                    SEVERITY_RANK.get(e.severity or "minor", 0), -e.ts.timestamp())
        return max(self.events, key=rank)

    def significant(self) -> bool:
        """A window of context lines alone (a normal start, a lease) or of unrecognised errors
        alone (reported apart, by shape) is not an incident."""
        return any(e.role in ("cause", "symptom") for e in self.events)

    def severity(self) -> str:
        sev = max((e.severity or "minor" for e in self.events if e.role != "context"),
                  key=lambda s: SEVERITY_RANK[s], default="minor")
        return sev

    def fingerprint(self) -> tuple:
        """What, when it changes, makes the daemon emit an update."""
        return (self.root.pattern_id, self.root.shape, tuple(sorted(self.affected)), self.severity(),
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
            verb = t(what or "outcome.errors", lang)
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
        }

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


UNEXPLAINED_REMEDIATION, UNEXPLAINED_DIAGNOSTICS = unexplained_advice()


def explain(inc: Incident, root: Event, cause_text: str, what: str | None, lang: str = "en") -> str:
    """The chain from cause to symptoms, in plain words (`what`: an outcome key)."""
    parts = []
    if root.role == "cause":
        parts.append(cause_text)
    else:
        parts.append(t("explain.no_cause", lang, text=cause_text))
    seen_titles = []
    for e in inc.events:
        if e is root or e.pattern is None or e.role == "context":
            continue
        if (title := e.pattern.text("title", lang)) not in seen_titles:
            seen_titles.append(title)
    if seen_titles:
        parts.append(t("explain.then", lang, titles=t("explain.sep", lang).join(seen_titles[:6])))
    for chain in CHAINS:
        if steps := chain(inc, root):
            parts.append(t("chain", lang, steps=t("chain.sep", lang).join(t(k, lang) for k in steps)))
            break
    if inc.scope == "host" and inc.affected:
        parts.append(t("explain.vms_hit", lang, vms=", ".join(sorted(inc.affected))))
    elif what:
        parts.append(t("explain.result", lang, vm=inc.vm, what=t(what, lang)) if inc.vm
                     else t("explain.result_unnamed", lang, what=t(what, lang)))
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


def _has(inc: Incident, rx: str) -> bool:
    r = re.compile(rx)
    return any(r.search(e.record.message) for e in inc.events)


# A chain gives the i18n keys of its steps (joined into one "Known chain: ..." sentence), or None.
def _chain_oom(inc: Incident, root: Event) -> list[str] | None:
    if root.category != "memory" or not _has(inc, r"Killed process|oom-kill"):
        return None
    crashed, eof = _has(inc, r"reason=crashed"), _has(inc, r"End of file from monitor")
    if not (crashed or eof):
        return None
    steps = ["chain.oom.kill"]
    if crashed:
        steps.append("chain.oom.crashed")
    if eof:
        steps.append("chain.oom.eof")
    return steps


def _chain_disk_full(inc: Incident, root: Event) -> list[str] | None:
    if root.category == "storage" and _has(inc, r"No space left|ENOSPC|enospc") and _has(
            inc, r"I/O error|[Pp]aused|io-error"):
        return ["chain.disk_full"]
    return None


def _chain_kvm(inc: Incident, root: Event) -> list[str] | None:
    if _has(inc, r"KVM kernel module|failed to initialize kvm|[Dd]omain requires KVM|/dev/kvm"):
        return ["chain.kvm"]
    return None


def _chain_network(inc: Incident, root: Event) -> list[str] | None:
    if root.category == "network" and _has(inc, r"network '[^']+' is not active|is not active"):
        return ["chain.network"]
    return None


def _chain_permission(inc: Incident, root: Event) -> list[str] | None:
    if root.category == "permission" and _has(inc, r"Permission denied|denied"):
        return ["chain.permission"]
    return None


CHAINS = [_chain_oom, _chain_disk_full, _chain_kvm, _chain_network, _chain_permission]


class Correlator:
    """Feed events in time order; get incidents as they open, change and close."""

    def __init__(self, gap: float = DEFAULT_GAP) -> None:
        self.set_gap(gap)
        self.open: dict[tuple[str | None, str], Incident] = {}
        self.pending: list[Event] = []  # events naming no VM, waiting to be attached by time
        self.watermark: datetime | None = None
        self.recent: list[Incident] = []  # closed incidents a later start or service may still recover
        self.done: list[Incident] = []
        self._emitted: dict[str, tuple] = {}

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
            inc = self._window(ev.record.host, HOST_KEY, "host", ev)
            inc.add(ev)
            if ev.role == "cause":
                inc.affected |= self._starting_vms(ev)
            self._absorb_vm_windows(inc)
        elif ev.vm:
            self._to_vm(ev)
        else:
            self.pending.append(ev)
        return self._changes()

    def advance(self, now: datetime) -> list[Incident]:
        """Move the watermark (the daemon's clock tick on idle logs); return what changed."""
        self._advance(now)
        return self._changes()

    def _advance(self, now: datetime) -> None:
        """Attach or place pending events, confirm restarts, close quiet windows."""
        if self.watermark is None or now > self.watermark:
            self.watermark = now
        keep = []
        for ev in self.pending:
            if self.watermark - ev.ts >= self.attach:
                self._place_pending(ev)
            else:
                keep.append(ev)
        self.pending = keep
        self.recent = [i for i in self.recent if self.watermark - i.last_seen <= RECOVERY_HORIZON]
        for key, inc in list(self.open.items()):
            if inc.started_at and self.watermark - inc.started_at >= RECOVERY_HOLD:
                inc.recovered_at, inc.started_at = inc.started_at, None
            if self.watermark - inc.last_seen > self.gap:
                self._close(key, inc)

    def flush(self) -> list[Incident]:
        """End of input: place what is pending, close every window."""
        for ev in self.pending:
            self._place_pending(ev)
        self.pending = []
        for key, inc in list(self.open.items()):
            self._close(key, inc)
        return self._changes()

    # -- windows ---------------------------------------------------------------------------
    def _window(self, host: str | None, key: str, scope: str, first: Event) -> Incident:
        inc = self.open.get((host, key))
        if inc is None:
            inc = Incident(id=stable_id(host or "", scope, key, first.ts.isoformat(), first.pattern_id or "",
                                        first.record.message[:100]),
                           host=host, scope=scope, vm=key or None)
            self.open[(host, key)] = inc
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
                    hinc.add(e)
                del self.open[(host, ev.vm)]
            hinc.add(ev)
            if is_start(ev) and ev.vm in hinc.affected:
                hinc.started_at = ev.ts  # the VM it hit was started again
            return
        if vinc is None and STARTED_RE.search(ev.record.message) and self._recover_closed(ev):
            return
        inc = self._window(host, ev.vm, "vm", ev)
        inc.add(ev)
        if STARTED_RE.search(ev.record.message):
            if inc.significant():
                inc.started_at = ev.ts
        elif ev.role != "context":
            inc.started_at = inc.recovered_at = None

    def _starting_vms(self, ev: Event) -> set[str]:
        """VMs of this host that were being started within seconds of `ev`."""
        return {e.vm for (h, _), inc in self.open.items() if h == ev.record.host for e in inc.events
                if e.vm and is_start(e) and abs(e.ts - ev.ts) <= self.attach}

    def _absorb_vm_windows(self, hinc: Incident) -> None:
        """VM windows with symptoms but no cause of their own join an open host-wide incident."""
        for (host, key), inc in list(self.open.items()):
            if host != hinc.host or key == HOST_KEY:
                continue
            if not _has_cause(inc) and inc.significant():
                for e in inc.events:
                    hinc.add(e)
                del self.open[(host, key)]

    def _place_pending(self, ev: Event) -> None:
        """An event naming no VM: the VM with a failure within seconds of it, else the host."""
        host = ev.record.host
        best, best_dt = None, None
        for (h, key), inc in self.open.items():
            if h != host or key == HOST_KEY:
                continue
            for e in inc.events:
                if e.role == "context" and not is_start(e):
                    continue
                dt = abs(e.ts - ev.ts)
                if dt <= self.attach and (best_dt is None or dt < best_dt):
                    best, best_dt = inc, dt
        if best is not None:
            ev = replace(ev, vm=best.vm)  # a copy: the caller's event keeps what its line said
            best.add(ev)
            best.events.sort(key=lambda e: e.ts)
            return
        if ev.role == "context" and ev.shape is None:
            return  # context naming nothing and near nothing says nothing
        inc = self._window(host, HOST_KEY, "host", ev)
        inc.add(ev)
        inc.events.sort(key=lambda e: e.ts)

    def _recover(self, ev: Event) -> None:
        """A service back up recovers the host's open (or recently closed) incident."""
        host = ev.record.host
        inc = self.open.get((host, HOST_KEY))
        if inc is None:
            inc = next((i for i in reversed(self.recent) if i.host == host and i.scope == "host"
                        and i.recovered_at is None), None)
        if inc is not None and ev.ts >= inc.first_seen:
            inc.recovered_at = ev.ts
            inc.add(ev)
            if inc.closed:
                self.done.append(inc)

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
        del self.open[key]
        if inc.started_at:  # started again and nothing failed before the window closed
            inc.recovered_at, inc.started_at = inc.started_at, None
        inc.closed = True
        inc.status = "resolved"
        if inc.significant():
            self.done.append(inc)
            self.recent.append(inc)

    # -- output ----------------------------------------------------------------------------
    def _changes(self) -> list[Incident]:
        """Incidents whose reportable content changed since last emitted (version bumped)."""
        out: list[Incident] = []
        for inc in {id(i): i for i in list(self.open.values()) + self.done}.values():
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
            "pending": [event_to_json(e) for e in self.pending],
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
        c.open = {(host, key): by_id[i] for host, key, i in d.get("open", []) if i in by_id}
        c.done = [by_id[i] for i in d.get("done", []) if i in by_id]
        c.recent = [by_id[i] for i in d.get("recent", []) if i in by_id]
        c.pending = [e for e in (event_from_json(x) for x in d.get("pending", [])) if e is not None]
        c._emitted = {i: _fingerprint_from_json(v) for i, v in d.get("emitted", {}).items() if i in by_id}
        return c


def _fingerprint_to_json(fp: tuple) -> list:
    pid, shape, affected, severity, recovered, closed, failures = fp
    return [pid, shape, list(affected), severity, iso_or_none(recovered), closed, failures]


def _fingerprint_from_json(v: list) -> tuple:
    pid, shape, affected, severity, recovered, closed, failures = v
    return (pid, shape, tuple(affected), severity, datetime_or_none(recovered), bool(closed), int(failures))


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
