"""Every VM's life from the logs: when it ran, how each run began and ended, the host's boots
and shutdowns on the same timeline, and the VMs a host reboot left down.

The lines that matter carry a `lifecycle` field in the catalogue (patterns/README.md):
`vm-start` (QEMU's `starting up` header, systemd-machined's `New machine`, libvirt's debug start
line), `vm-stop` (QEMU's `shutting down, reason=R`: the `reason` group; machined's `terminated`),
`vm-start-failed` (`Failed to autostart VM`), `migrate-in` (the `-incoming` command line),
`host-boot` (the kernel's `Linux version` line; journalctl's `-- Boot ID --` line, which the journal
readers give where a host's boot id changes: one boot with the kernel's line), `host-shutdown` (`System is rebooting`,
systemd-shutdown, the shutdown target) and `daemon-start` (libvirtd's `libvirt version:` line).
One start or stop shows in several files (QEMU's log, libvirtd's, the journal) within seconds:
those lines are one start or stop.

What the logs cannot say is inferred, and named so: a VM's first start within the grace period
after a host boot is `autostart` (libvirt logs no line of its own for it at the default level;
at debug its start line has `conn=(nil)`, which settles it); a start on one host within minutes
of the same VM's `reason=migrated` on another is `migrated-in`; a VM still running when its host
booted again ended `host-down`; a VM started (or failing to start) after libvirtd started had
ended, unseen, by then (`unknown`: libvirt starts no running guest). A guest killed with its
host leaves no line at all (fixtures/lab/host-restart): without the host's boot line, and if
nobody starts it again, it looks as if it still ran.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from logsense.correlator import Incident, join_sentences, stable_id
from logsense.i18n import t
from logsense.model import Event

START_REASONS = ("manual", "autostart", "migrated-in", "unknown")
END_REASONS = ("shutdown", "destroyed", "crashed", "failed", "migrated-out", "saved", "host-down", "unknown",
               "running")
DEFAULT_GRACE = 600.0  # seconds after a host boot within which a VM counts as started again
SAME_LINE_SPAN = timedelta(seconds=30)  # lines of one start or stop, from different files
MIGRATION_SPAN = timedelta(minutes=10)  # a destination starts this close to the source's end
AUTOSTART_SPAN = timedelta(minutes=2)  # libvirtd autostarts guests this soon after it starts
SHUTDOWN_SPAN = timedelta(hours=1)  # a host's shutdown stops its guests within this
START_SPAN = timedelta(minutes=5)  # a start that fails does so within this
# QEMU's `shutting down, reason=` words -> how a run ended
STOP_REASONS = {"shutdown": "shutdown", "destroyed": "destroyed", "crashed": "crashed", "failed": "failed",
                "migrated": "migrated-out", "saved": "saved", "from-snapshot": "unknown", "daemon": "unknown",
                "unknown": "unknown"}
LISTED_VMS = 12  # names spelled out in a title or a command before "and N more"


@dataclass
class Run:
    """One running interval of a VM on a host (a failed start is a run that ended `failed`)."""

    vm: str
    host: str | None
    start: datetime | None  # None: it was running when the logs begin
    end: datetime | None = None  # None: still running when the logs end
    start_reason: str = "unknown"
    end_reason: str = "running"
    stop_detail: str | None = None  # QEMU's own reason when the host's going down ended it
    end_seen: bool = False  # a line says it ended (not inferred from a boot or a daemon start)
    events: list[Event] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        return self.end_reason != "failed"


@dataclass
class HostMark:
    host: str | None
    ts: datetime
    kind: str  # "boot" or "shutdown"
    event: Event
    boot_id: str | None = None  # the journal's _BOOT_ID of the boot, when known


@dataclass
class Reboot:
    """A host boot after which VMs that ran before it may not run again: what the reboot
    incident decides on once the grace period has passed."""

    mark: HostMark
    before: list[Run]  # the runs its host's going down ended (host-down)
    shutdown: HostMark | None  # None: no shutdown line (a crash or a power loss)


@dataclass
class Timeline:
    runs: list[Run]
    marks: list[HostMark]
    first: datetime | None  # the window the logs cover
    last: datetime | None
    reboots: list[Reboot] = field(default_factory=list)

    by_vm: dict[str, list[Run]] = field(default_factory=dict)
    by_vm_host: dict[tuple[str, str | None], list[Run]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for r in self.runs:
            self.by_vm.setdefault(r.vm, []).append(r)
            self.by_vm_host.setdefault((r.vm, r.host), []).append(r)

    def runs_of(self, vm: str, host: str | None = None) -> list[Run]:
        """The VM's runs (on `host` only, when given), in the order they began."""
        return self.by_vm.get(vm, []) if host is None else self.by_vm_host.get((vm, host), [])


def kind_of(ev: Event) -> str | None:
    """What the event's line says of a VM's or the host's life (the pattern's `lifecycle`)."""
    return getattr(ev.pattern, "lifecycle", None) if ev.pattern is not None else None


def boot_id(ev: Event) -> str | None:
    """The journal's boot id of an event's line (journal records carry it), else None."""
    boot = ev.fields.get("boot_id") or (ev.record.extra or {}).get("_BOOT_ID")
    return boot.replace("-", "").lower() if boot else None


class Tracker:
    """Walks the events in time order, one open run per (host, VM): `timeline` feeds it a whole
    archive, the daemon (logsense/reboot_watch.py) the live events, pruning what is old."""

    def __init__(self, grace: timedelta) -> None:
        self.grace = grace
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.reboots: list[Reboot] = []
        self.runs: list[Run] = []
        # per host, per VM (a host's boot touches only its own VMs)
        self.open: dict[str | None, dict[str, Run]] = {}
        self.last_closed: dict[str | None, dict[str, Run]] = {}
        self.marks: list[HostMark] = []
        self.last_ts: dict[str | None, datetime] = {}  # per host, the newest line seen
        self.shutdown_at: dict[str | None, HostMark] = {}  # per host, the shutdown under way
        self.boot_at: dict[str | None, HostMark] = {}
        self.daemon_at: dict[str | None, datetime] = {}  # per host, libvirtd's last start
        self.found_dead: dict[str | None, set[str]] = {}  # VMs whose run had ended unseen by then
        self.started_since_boot: dict[str | None, set[str]] = {}  # ... or since that daemon start

    def feed(self, ev: Event) -> None:
        host, kind = ev.record.host, kind_of(ev)
        self.first = ev.ts if self.first is None else self.first
        self.last = ev.ts
        if kind == "host-boot":
            self._boot(host, ev)
        elif kind == "host-shutdown":
            if host not in self.shutdown_at:
                mark = HostMark(host, ev.ts, "shutdown", ev)
                self.shutdown_at[host] = mark
                self.marks.append(mark)
        elif kind == "daemon-start":
            self.daemon_at[host] = ev.ts
            self.started_since_boot.pop(host, None)
            self.found_dead.pop(host, None)
        elif kind is not None and ev.vm:
            self._vm(host, ev.vm, kind, ev)
        self.last_ts[host] = ev.ts

    def _same_boot(self, host: str | None, ev: Event) -> bool:
        """A line of the boot already marked: its journal boot id, or (no boot id to tell) a line
        within seconds of the mark with no shutdown in between (the journal's and syslog's)."""
        prev, this = self.boot_at.get(host), boot_id(ev)
        if prev is None:
            return False
        if this is not None and prev.boot_id is not None:
            return this == prev.boot_id
        return host not in self.shutdown_at and abs(ev.ts - prev.ts) <= SAME_LINE_SPAN

    def _boot(self, host: str | None, ev: Event) -> None:
        if self._same_boot(host, ev):
            prev = self.boot_at[host]
            prev.boot_id = prev.boot_id or boot_id(ev)
            return
        down = self.shutdown_at.get(host)
        down_ts = down.ts if down is not None else self.last_ts.get(host, ev.ts)
        before = list(self.open.get(host, {}).values())
        for run in before:
            self._close(host, run.vm, run, min(down_ts, ev.ts), "host-down")
        if down is not None:  # runs that ended while the host was going down: it ended them
            for run in self.last_closed.get(host, {}).values():
                if run.end is not None and down.ts <= run.end <= down.ts + SHUTDOWN_SPAN and run.end_reason not in (
                        "failed", "migrated-out", "host-down"):
                    run.stop_detail, run.end_reason = run.end_reason, "host-down"
                    before.append(run)
        mark = HostMark(host, ev.ts, "boot", ev, boot_id(ev))
        self.marks.append(mark)
        self.boot_at[host] = mark
        self.shutdown_at.pop(host, None)
        self.started_since_boot.pop(host, None)
        if before:
            self.reboots.append(Reboot(mark, sorted(before, key=lambda r: (r.end, r.vm)), down))

    def _vm(self, host: str | None, vm: str, kind: str, ev: Event) -> None:
        run = self.open.get(host, {}).get(vm)
        daemon = self.daemon_at.get(host)
        if run is not None and daemon is not None and (run.start is None or run.start < daemon) and (
                kind != "vm-stop" or ev.fields.get("reason") == "failed"):
            # started (or failing to start) after libvirtd restarted: the run it knew had ended
            # unseen by then (a guest survives a daemon restart, and libvirt starts no running guest)
            self._close(host, vm, run, daemon, "unknown")
            self.found_dead.setdefault(host, set()).add(vm)
            run = None
        if kind in ("vm-start", "migrate-in"):
            if host in self.shutdown_at and run is None:
                self._cancel_shutdown(host)  # a guest starting: the host is not going down
            if run is not None and run.start is not None and ev.ts - run.start <= SAME_LINE_SPAN:
                run.events.append(ev)  # another file's line for the same start
            else:
                if run is not None:  # started again without a stop line: the old process ended unseen
                    self._close(host, vm, run, ev.ts, "unknown")
                run = Run(vm, host, ev.ts, start_reason=self._start_reason(host, vm, ev.ts), events=[ev])
                self.open.setdefault(host, {})[vm] = run
                self.runs.append(run)
                self.started_since_boot.setdefault(host, set()).add(vm)
            if kind == "migrate-in":
                run.start_reason = "migrated-in"
            elif "client" in ev.fields and run.start_reason != "migrated-in":
                # libvirt's debug start line: conn=(nil) is libvirtd starting it by itself
                run.start_reason = "autostart" if ev.fields["client"] == "(nil)" else "manual"
            return
        if kind == "vm-start-failed":
            last = self.last_closed.get(host, {}).get(vm)
            if run is not None and run.start is not None and ev.ts - run.start <= SAME_LINE_SPAN:
                run.start_reason = "autostart"
                self._close(host, vm, run, ev.ts, "failed", ev)
            elif last is not None and last.end_reason == "failed" and ev.ts - last.end <= SAME_LINE_SPAN:
                last.start_reason = "autostart"
                last.events.append(ev)
            else:
                if run is not None:  # libvirt starts no running guest: that run had ended unseen
                    self._close(host, vm, run, ev.ts, "unknown")
                failed = Run(vm, host, ev.ts, ev.ts, "autostart", "failed", end_seen=True, events=[ev])
                self.runs.append(failed)
                self.last_closed.setdefault(host, {})[vm] = failed
            return
        # vm-stop
        reason = STOP_REASONS.get(ev.fields.get("reason", ""), "unknown")
        if run is not None and reason == "failed" and (run.start is None or ev.ts - run.start > START_SPAN):
            self._close(host, vm, run, ev.ts, "unknown")  # a new start failed: the old run had ended unseen
            run = None
        if run is not None:
            self._close(host, vm, run, ev.ts, reason, ev)
            return
        last = self.last_closed.get(host, {}).get(vm)
        if last is not None and last.end_seen and last.end is not None and ev.ts - last.end <= SAME_LINE_SPAN:
            last.events.append(ev)  # the same stop, seen in another file
            if last.end_reason == "unknown" and reason != "unknown":
                last.end_reason = reason
            return
        # a stop with no start seen: running since before the logs (or a start that failed at once)
        start = ev.ts if reason == "failed" or last is not None else None
        run = Run(vm, host, start, ev.ts, "unknown" if start is None else self._start_reason(host, vm, ev.ts),
                  reason, end_seen=True, events=[ev])
        self.runs.append(run)
        self.last_closed.setdefault(host, {})[vm] = run

    def _cancel_shutdown(self, host: str | None) -> None:
        mark = self.shutdown_at.pop(host)
        if mark in self.marks:  # the daemon may have pruned it
            self.marks.remove(mark)

    def prune(self, before: datetime, keep: set[int]) -> None:
        """Forget runs that ended and marks made before `before` (the daemon's memory stays
        bounded), except what the open runs, the last ones and `keep` (ids of runs) still need."""
        needed = keep | {id(r) for runs in (*self.open.values(), *self.last_closed.values()) for r in runs.values()}
        self.runs = [r for r in self.runs if r.end is None or r.end >= before or id(r) in needed]
        current = {id(m) for m in (*self.boot_at.values(), *self.shutdown_at.values())}
        self.marks = [m for m in self.marks if m.ts >= before or id(m) in current]

    def _start_reason(self, host: str | None, vm: str, ts: datetime) -> str:
        """Autostart: the first start of a VM within the grace period after its host booted, or
        soon after libvirtd started when its earlier run had ended unseen (the host went down
        with no line of it). A daemon start alone says nothing: `virsh start` may follow at once."""
        if vm in self.started_since_boot.get(host, ()):
            return "manual"
        boot, daemon = self.boot_at.get(host), self.daemon_at.get(host)
        if boot is not None and ts - boot.ts <= self.grace:
            return "autostart"
        if daemon is not None and ts - daemon <= AUTOSTART_SPAN and vm in self.found_dead.get(host, ()):
            return "autostart"
        return "manual"

    def timeline(self) -> Timeline:
        return Timeline(list(self.runs), list(self.marks), self.first, self.last, list(self.reboots))

    def _close(self, host: str | None, vm: str, run: Run, ts: datetime, reason: str, ev: Event | None = None
               ) -> None:
        run.end, run.end_reason = ts, reason
        if ev is not None:
            run.events.append(ev)
            run.end_seen = True
        self.open.get(host, {}).pop(vm, None)
        self.last_closed.setdefault(host, {})[vm] = run


def timeline(events: Iterable[Event], grace: float = DEFAULT_GRACE) -> Timeline:
    """The runs of every VM and the host marks, from events in time order."""
    b = Tracker(timedelta(seconds=grace))
    for ev in events:
        b.feed(ev)
    _match_migrations(b.runs)
    return b.timeline()


def _match_migrations(runs: list[Run]) -> None:
    """A start on one host close to the same VM's migration away from another is the arrival."""
    by_vm: dict[str, list[Run]] = {}
    for r in runs:
        by_vm.setdefault(r.vm, []).append(r)
    for out in runs:
        if out.end_reason != "migrated-out" or out.end is None:
            continue
        for run in by_vm[out.vm]:
            if run.host != out.host and run.start is not None and abs(run.start - out.end) <= MIGRATION_SPAN:
                run.start_reason = "migrated-in"


# -- the reboot incident ------------------------------------------------------------------------

class RebootIncident(Incident):
    """A host booted again and VMs that ran before it were not running after the grace period."""

    reboot: Reboot
    boot: HostMark
    crashed: bool
    missing: list[str]
    came_back: list[str]
    failed: dict[str, str | None]  # VM -> id of its failed-start incident
    failed_runs: dict[str, Run]  # VM -> its start that failed
    grace: float

    @property
    def root(self) -> Event:
        return self.boot.event

    def severity(self) -> str:
        return "major"

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        d = super().to_dict(lang)
        host = self.host or t("title.host_default", lang)
        when = self.boot.ts.isoformat(timespec="seconds")
        names = _names(self.missing, lang)
        d["category"] = "host"
        d["affected_vms"] = sorted(self.missing)
        d["title"] = t("reboot.title_one" if len(self.missing) == 1 else "reboot.title_many", lang,
                       host=host, when=when, names=names)
        how = (t("reboot.how_crash", lang) if self.crashed
               else t("reboot.how_shutdown", lang, at=self.first_seen.isoformat(timespec="seconds")))
        kernel = self.boot.event.fields.get("kernel")
        booted = t("reboot.kernel", lang, kernel=kernel) if kernel else self.boot.event.record.message[:80]
        parts = [t("reboot.host_line", lang, host=host, how=how, when=when, booted=booted)]
        total = len(self.missing) + len(self.came_back)
        parts.append(t("reboot.counts", lang, total=total, back=len(self.came_back), minutes=f"{self.grace / 60:g}",
                       missing=", ".join(sorted(self.missing))))
        for vm, other in sorted(self.failed.items()):
            parts.append(t("reboot.failed_ref", lang, vm=vm, other=other) if other
                         else t("reboot.failed", lang, vm=vm))
        if self.recovered_at is not None:
            parts.append(t("reboot.all_back", lang, at=self.recovered_at.isoformat(timespec="seconds")))
        d["explanation"] = join_sentences(parts)
        vms = " ".join(sorted(self.missing)[:LISTED_VMS])
        d["remediation"] = [t("reboot.fix_start", lang, vms=vms), t("reboot.fix_autostart", lang, vms=vms),
                            t("reboot.fix_why", lang), t("reboot.fix_guests", lang)]
        first = sorted(self.missing)[0]
        d["diagnostics"] = [
            "virsh list --all --autostart", "ls -l /etc/libvirt/qemu/autostart/", f"virsh dominfo {first}",
            "journalctl -b -u libvirtd -u virtqemud | grep -iE 'autostart|error'",
            "virsh pool-list --all --autostart", "virsh net-list --all --autostart", "journalctl -b -1 -n 50",
        ]
        return d


def _names(vms: list[str], lang: str = "en") -> str:
    vms = sorted(vms)
    if len(vms) <= LISTED_VMS:
        return ", ".join(vms)
    return t("names.more", lang, names=", ".join(vms[:LISTED_VMS]), n=len(vms) - LISTED_VMS)


def reboot_incidents(tl: Timeline, others: list[dict[str, Any]], grace: float = DEFAULT_GRACE) -> list[RebootIncident]:
    """One host incident per boot after which VMs that ran before it were not running again
    within `grace` seconds. `others` (incident dicts) give the ids of failed-start incidents."""
    return [inc for r in tl.reboots if (inc := decide(r, tl, others, grace)) is not None]


def decide(reboot: Reboot, tl: Timeline, others: list[dict[str, Any]], grace: float) -> RebootIncident | None:
    """The incident of one reboot, from what `tl` knows of the grace period after it (batch:
    everything; the daemon: what it saw by the end of the grace period); None when every VM
    that ran before came back (here, or on another host: evacuated)."""
    mark, window = reboot.mark, timedelta(seconds=grace)
    missing, came_back, failed, failed_runs = [], [], {}, {}
    for r in reboot.before:
        after = _started(tl.runs_of(r.vm, r.host), mark.ts, window) or _started(tl.runs_of(r.vm), mark.ts, window)
        if any(a.ran for a in after):
            came_back.append(r.vm)
            continue
        missing.append(r.vm)
        if after:
            failed[r.vm], failed_runs[r.vm] = failed_incident(others, mark.host, r.vm, after[0]), after[0]
    if not missing:
        return None
    shutdown = reboot.shutdown
    down_at = min(r.end for r in reboot.before if r.end is not None)
    inc = RebootIncident(id=stable_id(mark.host or "", "host", "reboot", mark.ts.isoformat()),
                         host=mark.host, scope="host", vm=None)
    inc.reboot, inc.boot, inc.crashed, inc.grace = reboot, mark, shutdown is None, grace
    inc.missing, inc.came_back, inc.failed, inc.failed_runs = missing, came_back, failed, failed_runs
    for ev in ([shutdown.event] if shutdown else []) + [mark.event]:
        inc.add(ev)
    for r in reboot.before:
        if r.vm in missing and r.events:
            inc.add(r.events[-1])
    inc.affected = set(missing)
    backs = [_back_at(tl, vm, mark.ts) for vm in missing]
    if backs and all(b is not None for b in backs):
        inc.recovered_at = max(b for b in backs if b is not None)
    inc.first_ts = shutdown.ts if shutdown is not None else down_at
    inc.closed, inc.status, inc.version = True, "resolved", 1
    return inc


def _started(runs: list[Run], boot: datetime, window: timedelta) -> list[Run]:
    return [a for a in runs if a.start is not None and boot <= a.start <= boot + window]


def failed_incident(others: list[dict[str, Any]], host: str | None, vm: str, run: Run) -> str | None:
    """The id of the incident (among `others`) of the VM's start that failed, if any."""
    start = run.start or run.end
    for d in others:
        if d.get("host") == host and (d.get("vm") == vm or vm in d.get("affected_vms", [])) and start is not None:
            a, b = datetime.fromisoformat(d["first_seen"]), datetime.fromisoformat(d["last_seen"])
            if a - SAME_LINE_SPAN <= start <= b + SAME_LINE_SPAN:
                return d["id"]
    return None


def _back_at(tl: Timeline, vm: str, after: datetime) -> datetime | None:
    """When the VM was running again (a start that did not fail), on any host."""
    starts = [r.start for r in tl.runs_of(vm) if r.ran and r.start is not None and r.start >= after]
    return min(starts) if starts else None


# -- downtime in every incident -----------------------------------------------------------------

def downtime(tl: Timeline, inc: dict[str, Any]) -> list[dict[str, Any]]:
    """For each VM the incident is about that went down in it: when, and when it was back."""
    first = datetime.fromisoformat(inc["first_seen"]) - SAME_LINE_SPAN
    last = datetime.fromisoformat(inc["last_seen"]) + SAME_LINE_SPAN
    vms = sorted({v for v in [inc.get("vm"), *inc.get("affected_vms", [])] if v})
    out = []
    for vm in vms:
        runs = sorted(tl.runs_of(vm, inc.get("host")), key=lambda r: r.end or r.start or first)
        ended = [r for r in runs if r.end is not None and first <= r.end <= last
                 and r.end_reason not in ("running", "migrated-out")]
        if not ended:
            continue
        down = ended[-1]
        i = runs.index(down)
        while i > 0 and not runs[i].ran and runs[i - 1].end is not None \
                and runs[i - 1].end_reason in ("crashed", "host-down", "unknown", "failed"):
            i -= 1  # failed starts after a crash: the VM has been down since the crash
        down_at = runs[i].end
        assert down_at is not None
        back = _back_at(tl, vm, down_at)
        until = back or tl.last or down_at
        out.append({"vm": vm, "down_at": down_at.isoformat(timespec="microseconds"),
                    "back_at": back.isoformat(timespec="microseconds") if back else None,
                    "seconds": round((until - down_at).total_seconds(), 3), "still_down": back is None})
    return out


def add_downtime(tl: Timeline, inc: dict[str, Any], lang: str = "en") -> dict[str, Any]:
    """`down_at` (the first VM to go down), `downtime_seconds` (the longest, to the end of the logs
    for a VM still down) and `downtime` per VM, in the incident dict."""
    per_vm = downtime(tl, inc)
    inc["down_at"] = min((d["down_at"] for d in per_vm), default=None)
    inc["downtime_seconds"] = max((d["seconds"] for d in per_vm), default=None)
    inc["downtime"] = per_vm
    if per_vm:  # said in words too, so that every format shows it
        said = [t("downtime.back", lang, vm=d["vm"], down=d["down_at"][:19].replace("T", " "),
                  back=d["back_at"][:19].replace("T", " "), duration=duration(d["seconds"], lang)) if d["back_at"]
                else t("downtime.still", lang, vm=d["vm"], down=d["down_at"][:19].replace("T", " "),
                       duration=duration(d["seconds"], lang)) for d in per_vm[:LISTED_VMS]]
        more = t("downtime.more", lang, n=len(per_vm) - LISTED_VMS) if len(per_vm) > LISTED_VMS else ""
        inc["explanation"] += t("downtime", lang, said=t("explain.sep", lang).join(said), more=more)
    return inc


def duration(seconds: float | None, lang: str = "en") -> str:
    """1d 2h, 3h 04m, 5m 06s, 7.5s: short enough for a table (units in `lang`)."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return t("dur.s", lang, s=f"{seconds:.1f}")
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    if d:
        return t("dur.dh", lang, d=d, h=h)
    return t("dur.hm", lang, h=h, m=f"{m:02d}") if h else t("dur.ms", lang, m=m, s=f"{sec:02d}")


def link_failed_starts(inc: RebootIncident, d: dict[str, Any], by_id: dict[str, dict[str, Any]], lang: str = "en"
                       ) -> None:
    """The reboot incident's dict `d` and the failed-start incidents (in `by_id`) of the VMs that
    were started again and failed name each other (`related_incidents`, and in words)."""
    for vm, other in inc.failed.items():
        if other in by_id:
            by_id[other]["explanation"] += t("reboot.related", lang, vm=vm, host=inc.host or "", id=d["id"])
            by_id[other].setdefault("related_incidents", []).append(d["id"])
            d.setdefault("related_incidents", []).append(other)


# -- per VM, for `logsense vms` -------------------------------------------------------------------

def summary(tl: Timeline) -> list[dict[str, Any]]:
    """One row per VM: its state at the end of the logs, last start and stop, counts, downtime."""
    rows = []
    for vm in sorted({r.vm for r in tl.runs}):
        runs = sorted(tl.runs_of(vm), key=lambda r: (r.start or r.end or tl.first, r.end or tl.last))
        latest = max(runs, key=lambda r: (r.end is None, r.end or r.start or tl.first))
        started = [r for r in runs if r.start is not None]
        stopped = [r for r in runs if r.end is not None]
        last_start = max(started, key=lambda r: r.start) if started else None
        last_stop = max(stopped, key=lambda r: r.end) if stopped else None
        rows.append({
            "vm": vm, "host": latest.host,
            "state": "running" if latest.end is None else "shut off",
            "last_start": _iso(last_start.start if last_start else None),
            "last_start_reason": last_start.start_reason if last_start else None,
            "last_stop": _iso(last_stop.end if last_stop else None),
            "last_stop_reason": last_stop.end_reason if last_stop else None,
            "runs": sum(1 for r in runs if r.ran), "crashes": sum(1 for r in runs if r.end_reason == "crashed"),
            "failed_starts": sum(1 for r in runs if r.end_reason == "failed"),
            "downtime_seconds": _down_seconds(tl, runs),
        })
    return rows


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat(timespec="microseconds") if ts is not None else None


def _down_seconds(tl: Timeline, runs: list[Run]) -> float:
    """Time not running, from the first moment its state is known to the end of the logs."""
    if tl.first is None or tl.last is None:
        return 0.0
    spans = sorted((r.start or tl.first, r.end or tl.last) for r in runs if r.ran)
    known = min((r.start or tl.first) for r in runs)
    covered, cur_a, cur_b = 0.0, None, None
    for a, b in spans:
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                covered += (cur_b - cur_a).total_seconds()
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        covered += (cur_b - cur_a).total_seconds()
    return round(max((tl.last - known).total_seconds() - covered, 0.0), 3)


def run_rows(tl: Timeline) -> list[dict[str, Any]]:
    """The runs as plain rows (vm, host, start, end, start_reason, end_reason, and stop_detail:
    QEMU's own reason for a run its host's going down ended), in time order."""
    key = [(r.start or r.end or tl.first, r.vm) for r in tl.runs]
    order = sorted(range(len(tl.runs)), key=lambda i: key[i])
    return [{"vm": tl.runs[i].vm, "host": tl.runs[i].host, "start": _iso(tl.runs[i].start),
             "end": _iso(tl.runs[i].end), "start_reason": tl.runs[i].start_reason,
             "end_reason": tl.runs[i].end_reason, "stop_detail": tl.runs[i].stop_detail} for i in order]


def mark_rows(tl: Timeline) -> list[dict[str, Any]]:
    return [{"host": m.host, "ts": _iso(m.ts), "kind": m.kind, "message": m.event.record.message[:200]}
            for m in tl.marks]


class _CallableModule(types.ModuleType):
    """`logsense.lifecycle(events_df)` is the DataFrame API (frame.lifecycle); once this module is
    imported, it is what the name `logsense.lifecycle` means, so calling the module calls that."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from logsense.frame import lifecycle as frame_lifecycle

        return frame_lifecycle(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
