"""`logsense watch` live: latency from a fault line's write to its incident on stdout (median,
p99), and the daemon's CPU use idle and at 1,000 and 10,000 lines/s (benign libvirtd lines with
a fault line in a VM's QEMU log every so often). The real daemon, as a subprocess.

    .venv/bin/python benchmarks/daemon_latency.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUEST_RAM = "cannot set up guest memory 'pc.ram': Cannot allocate memory"
TICKS = os.sysconf("SC_CLK_TCK")


def stamp_libvirtd() -> str:
    ts = datetime.now(UTC)
    return f"{ts:%Y-%m-%d %H:%M:%S}.{ts.microsecond // 1000:03d}+0000"


def stamp_qemu() -> str:
    ts = datetime.now(UTC)
    return f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.microsecond:06d}Z"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class Daemon:
    def __init__(self, logs: Path, state: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logsense", "watch", str(logs), "--no-journal", "--state-dir", str(state),
             "--window", "600", "--host", "bench"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT)
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        line = self.proc.stderr.readline()
        if not line.startswith("logsense: watching"):
            raise SystemExit(f"daemon did not start: {line}{self.proc.stderr.read()}")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            inc = json.loads(line)
            with self.cond:
                if inc["status"] == "open":
                    self.seen[inc["vm"]] = time.perf_counter()
                    self.cond.notify_all()

    def wait_for(self, vm: str, timeout: float = 10.0) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: vm in self.seen, timeout)
            return self.seen.get(vm)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def fault(qemu: Path, vm: str) -> float:
    with open(qemu / f"{vm}.log", "a") as f:
        t = time.perf_counter()
        f.write(f"{stamp_qemu()} qemu-system-x86_64: {GUEST_RAM}\n")
    return t


def load(d: Daemon, logs: Path, rate: int, seconds: float, tag: str) -> tuple[float, list[float]]:
    """Write `rate` lines/s for `seconds`; a fault every 500 lines. CPU seconds per second,
    and the fault latencies."""
    qemu = logs / "qemu"
    pid = d.proc.pid
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    step = 0.01
    per_tick = max(1, int(rate * step))
    n, written, faults = 0, [], []
    with open(logs / "libvirtd.log", "a") as f:
        next_t = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            chunk = []
            for _ in range(per_tick):
                chunk.append(f"{stamp_libvirtd()}: 1432: info : virNetServerClientNew:412 : "
                             f"new client fd=23 n={n}\n")
                n += 1
            f.write("".join(chunk))
            f.flush()
            if n // 500 > len(faults):
                vm = f"{tag}{len(faults)}"
                faults.append(vm)
                written.append(fault(qemu, vm))
            next_t += step
            time.sleep(max(0.0, next_t - time.perf_counter()))
    lat = []
    for vm, tw in zip(faults, written, strict=True):
        got = d.wait_for(vm)
        if got is not None:
            lat.append(got - tw)
    elapsed = time.perf_counter() - t0
    return (cpu_seconds(pid) - cpu0) / elapsed, lat


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--faults", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="logsense-bench-") as tmp:
        logs, state = Path(tmp) / "log", Path(tmp) / "state"
        (logs / "qemu").mkdir(parents=True)
        (logs / "libvirtd.log").write_text("")
        d = Daemon(logs, state)
        try:
            time.sleep(1.0)
            # latency, one fault at a time on a quiet host
            lat = []
            for i in range(args.faults):
                tw = fault(logs / "qemu", f"quiet{i}")
                got = d.wait_for(f"quiet{i}")
                if got is not None:
                    lat.append(got - tw)
                time.sleep(0.02)
            print(f"latency write -> incident (quiet host, {len(lat)} faults): "
                  f"median {statistics.median(lat) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms")
            time.sleep(2.0)
            c0, t0 = cpu_seconds(d.proc.pid), time.perf_counter()
            time.sleep(args.seconds)
            idle = (cpu_seconds(d.proc.pid) - c0) / (time.perf_counter() - t0)
            print(f"CPU idle: {idle * 100:.2f} % of one core")
            for rate in (1000, 10000):
                cpu, lat = load(d, logs, rate, args.seconds, f"r{rate}-")
                text = (f"median {statistics.median(lat) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms"
                        if lat else "no incidents")
                print(f"{rate:>6} lines/s: CPU {cpu * 100:.1f} % of one core; fault latency {text} "
                      f"({len(lat)} faults)")
        finally:
            d.stop()


if __name__ == "__main__":
    main()
