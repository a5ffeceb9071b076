"""Benchmark: what the VM lifecycle (runs, reboot incidents, downtime) adds to correlation.

Not a test: it prints figures. It reads fixtures/lifecycle/reboot-50 (50 VMs, a host reboot)
once, copies its events onto N hosts (names changed, times shifted a day per copy), then times
on one core `correlator.correlate` alone and `lifecycle.analyse` (correlate + timeline + reboot
incidents + downtime in every incident).

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

from logsense import lifecycle  # noqa: E402
from logsense.correlator import correlate  # noqa: E402
from logsense.pipeline import Options, Reader  # noqa: E402


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
    pairs = lifecycle.analyse(events)
    t2 = time.perf_counter()
    reboots = sum(1 for inc, _ in pairs if isinstance(inc, lifecycle.RebootIncident))
    print(f"{len(events)} events, {args.hosts} hosts x 50 VMs")
    print(f"correlate:          {t1 - t0:.3f} s, {len(plain)} incidents")
    print(f"lifecycle.analyse:  {t2 - t1:.3f} s, {len(pairs)} incidents ({reboots} reboot incidents)")
    print(f"lifecycle's share:  {(t2 - t1) - (t1 - t0):.3f} s (analyse minus correlate)")


if __name__ == "__main__":
    main()
