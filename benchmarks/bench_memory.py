"""Benchmark: peak RSS and wall time of `analyze` and `events --all` as the archive grows.

Not a test: it prints figures. The archive is the realistic one of benchmarks/archive.py
(deterministic: real fault lines at ~1 %, QEMU logs for 50 VMs). Each command runs in its own
process, output to a file; the peak RSS is the child's (getrusage of the waited child, so one
child at a time). With --baseline (a checkout of another revision: git archive REV | tar -x -C
DIR) both trees run in the same session, one after the other, and their outputs are compared.

    .venv/bin/python benchmarks/bench_memory.py [--sizes 500000,2000000,8000000]
        [--commands analyze-json,events-jsonl,events-parquet] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from archive import realistic_host  # noqa: E402

COMMANDS = {
    "analyze-json": (["analyze", "--format", "json"], "json"),
    "analyze-text": (["analyze", "--format", "text"], "txt"),
    "analyze-html": (["analyze", "--format", "html"], "html"),
    "events-jsonl": (["events", "--all", "--format", "jsonl"], "jsonl"),
    "events-parquet": (["events", "--all", "--format", "parquet"], "parquet"),
}


def run(tree: Path, args: list[str], out: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one logsense process from `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree), "LOGSENSE_CONFIG": "/dev/null"}
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: exec logsense with its output in a file and stderr discarded
        os.chdir(tree)
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.execve(sys.executable, [sys.executable, "-m", "logsense", *args, "--tz", "UTC", "-o", str(out)], env)
    _, status, usage = os.wait4(pid, 0)
    secs = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        sys.exit(f"logsense {' '.join(args)} from {tree} failed")
    return secs, usage.ru_maxrss / 1024


def same_output(a: Path, b: Path) -> bool:
    if a.suffix == ".parquet":
        sys.path.insert(0, str(ROOT))
        from logsense.frame import read_events_parquet

        return read_events_parquet(a).equals(read_events_parquet(b))
    strip = re.compile(rb'"seconds": [0-9.]+')
    return strip.sub(b"", a.read_bytes()) == strip.sub(b"", b.read_bytes())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="500000,2000000,8000000", help="lines of the realistic archive")
    ap.add_argument("--commands", default="analyze-json,events-jsonl,events-parquet",
                    help=f"comma-separated, of: {', '.join(COMMANDS)}")
    ap.add_argument("--dir", default="/tmp/logsense-bench")
    ap.add_argument("--baseline", default="", help="another revision's tree, run beside this one")
    args = ap.parse_args()
    work = Path(args.dir)
    trees = {"this tree": ROOT, **({"baseline": Path(args.baseline).resolve()} if args.baseline else {})}
    print(f"{os.cpu_count()} cores; peak RSS of each logsense process (getrusage of the child), wall time")
    print(f"{'command':16} {'lines':>10} {'tree':10} {'seconds':>8} {'peak RSS MB':>12}  output")
    for size in (int(s) for s in args.sizes.split(",")):
        paths = realistic_host(work / f"realistic-{size}", size)
        for name in args.commands.split(","):
            cmd, ext = COMMANDS[name]
            outs = {}
            for label, tree in trees.items():
                outs[label] = work / f"memory-{name}-{size}-{label.replace(' ', '-')}.{ext}"
                secs, rss = run(tree, [*cmd, *map(str, paths)], outs[label])
                same = ""
                if label == "baseline":
                    same = "same as this tree" if same_output(outs["this tree"], outs[label]) else "DIFFERS"
                print(f"{name:16} {size:>10,} {label:10} {secs:8.1f} {rss:12.0f}  {same}", flush=True)
    print(f"({resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB in this script)")


if __name__ == "__main__":
    main()
