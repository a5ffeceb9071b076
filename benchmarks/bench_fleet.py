"""Benchmark: `analyze --fleet` over N generated hosts on a Dask LocalCluster, at 1, 2 and 4
workers: hosts/s and the speed-up over one worker, and whether every outage was found.

Not a test: it prints figures. The fleet (benchmarks/archive.py) is a folder per host with
realistic chatter and failure lines, and a few shared NFS outages each hitting many hosts.

    .venv/bin/python benchmarks/bench_fleet.py [--hosts 200] [--lines 20000] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from archive import fleet  # noqa: E402

from logsense.fleet import fleet_incidents, run_tasks  # noqa: E402
from logsense.pipeline import Options, parse_zone  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--lines", type=int, default=20_000, help="lines a host")
    ap.add_argument("--outages", type=int, default=3)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--dir", default="/tmp/logsense-bench-fleet")
    args = ap.parse_args()
    t0 = time.perf_counter()
    paths, plan = fleet(Path(args.dir), hosts=args.hosts, lines=args.lines, outages=args.outages)
    print(f"fleet: {len(paths)} hosts x {args.lines:,} lines, {len(plan)} shared NFS outages hitting "
          f"{', '.join(str(len(o.hosts)) for o in plan)} hosts (generated in {time.perf_counter() - t0:.0f} s); "
          f"{os.cpu_count()} cores")
    opts = Options(tz=parse_zone("UTC"))
    base = None
    for n in map(int, args.workers.split(",")):
        t0 = time.perf_counter()
        results = run_tasks([str(p) for p in paths], opts, 120.0, workers=n)
        secs = time.perf_counter() - t0
        found = fleet_incidents(results, 120.0)
        nfs = {tuple(i["hosts"]) for i in found if i["root_cause"] == "kernel.storage.nfs-server-not-responding"}
        hit = sum(tuple(o.hosts) in nfs for o in plan)
        base = base or secs
        print(f"  {n} worker(s): {secs:6.1f} s  {len(paths) / secs:6.1f} hosts/s  speed-up {base / secs:4.2f}  "
              f"({sum(len(r.incidents) for r in results):,} host incidents, {len(found)} fleet incidents, "
              f"{hit} of {len(plan)} outages found with exactly their hosts, {len(found) - hit} other; "
              "includes the cluster's start)")


if __name__ == "__main__":
    main()
