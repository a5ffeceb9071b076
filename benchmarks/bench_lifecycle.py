"""Benchmark: what the VM lifecycle (runs, reboot incidents, downtime) adds to correlation.

Not a test: it prints figures. It reads fixtures/lifecycle/reboot-50 (50 VMs, a host reboot)
once, copies its events onto N hosts (names changed, times shifted a day per copy), then times
on one core `correlator.correlate` alone and `batch.pairs` (correlate + timeline + reboot
incidents + downtime in every incident), and the daemon's `RebootWatch` fed the same events one by
one (what `logsense watch` adds per event), with the most runs it held at once.

    .venv/bin/python benchmarks/bench_lifecycle.py [--hosts 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from datetime import UTC, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from logsense import batch, lifecycle  # noqa: E402
from logsense.correlator import correlate  # noqa: E402
from logsense.pipeline import Options, Reader  # noqa: E402
from logsense.reboot_watch import RebootWatch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=200)
    args = ap.parse_args()
    base = Reader(Options(tz=UTC)).events([str(ROOT / "fixtures" / "lifecycle" / "reboot-50" / "kvm01")])
    events = []
    for n in range(args.hosts):
        shift = timedelta(days=n)
        for e in base:
            rec = replace(e.record, host=f"kvm{n:04d}", ts=e.record.ts + shift)
            events.append(replace(e, record=rec))
    events.sort(key=lambda e: e.ts)
    t0 = time.perf_counter()
    plain = correlate(events)
    t1 = time.perf_counter()
    pairs = batch.pairs(events)
    t2 = time.perf_counter()
    reboots = sum(1 for inc, _ in pairs if isinstance(inc, lifecycle.RebootIncident))
    print(f"{len(events)} events, {args.hosts} hosts x 50 VMs")
    print(f"correlate:          {t1 - t0:.3f} s, {len(plain)} incidents")
    print(f"batch.pairs:        {t2 - t1:.3f} s, {len(pairs)} incidents ({reboots} reboot incidents)")
    print(f"lifecycle's share:  {(t2 - t1) - (t1 - t0):.3f} s (analyse minus correlate)")
    live("live, these hosts", events)
    one = [replace(e, record=replace(e.record, host="kvm0000")) for e in events]  # one host, a reboot a day
    live("live, one host   ", one)


def live(what: str, events: list) -> None:
    """The daemon's RebootWatch fed the events one by one, as `logsense watch` feeds it."""
    watch, opened, held = RebootWatch(), 0, 0
    t0 = time.perf_counter()
    for n, ev in enumerate(events):
        opened += sum(1 for d in watch.advance(ev.ts) if d["status"] == "open")
        watch.feed(ev)
        if n % 1000 == 0:
            held = max(held, len(watch.tracker.runs))
    t1 = time.perf_counter()
    print(f"{what}: {t1 - t0:.3f} s, {(t1 - t0) / len(events) * 1e6:.1f} us/event, {opened} reboot incidents "
          f"opened, at most {held} runs held (batch keeps {len(lifecycle.timeline(events).runs)})")

if __name__ == "__main__":
    main()
