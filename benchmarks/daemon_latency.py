"""`logsense watch` live: latency from a fault line's write to its incident on stdout (median,
p99) for each way a line arrives -- libvirtd.log, a VM's QEMU log, /var/log/messages and the
journal (a journal directory that systemd-journal-remote appends to) -- and the daemon's CPU
use idle and at 1,000 and 10,000 lines/s (benign libvirtd lines with a fault line in a VM's
QEMU log every so often). The real daemon, as a subprocess, with its default settle time
unless --settle is given: every latency should be about the settle time plus under 100 ms.

    .venv/bin/python benchmarks/daemon_latency.py [--seconds 10] [--faults 20] [--settle S]
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
# libvirt's own report of that QEMU failure, naming the VM (qemuProcessReportLogError)
MONITOR = "internal error: qemu unexpectedly closed the monitor (vm='{vm}'): {ts} qemu-system-x86_64: " + GUEST_RAM
TICKS = os.sysconf("SC_CLK_TCK")
JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"


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
    def __init__(self, logs: Path, state: Path, journal_dir: Path | None, settle: float | None) -> None:
        journal = ["--journal-dir", str(journal_dir)] if journal_dir else ["--no-journal"]
        extra = ["--settle", str(settle)] if settle is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logsense", "watch", str(logs), *journal, *extra, "--state-dir", str(state),
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
                    for vm in inc["affected_vms"] or [inc["vm"]]:
                        self.seen.setdefault(vm, time.perf_counter())
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


def fault_libvirtd(logs: Path, vm: str) -> float:
    with open(logs / "libvirtd.log", "a") as f:
        t = time.perf_counter()
        f.write(f"{stamp_libvirtd()}: 1466: error : qemuProcessReportLogError:1985 : "
                f"{MONITOR.format(vm=vm, ts=stamp_qemu())}\n")
    return t


def fault_syslog(logs: Path, vm: str) -> float:
    ts = datetime.now(UTC)
    with open(logs / "messages", "a") as f:
        t = time.perf_counter()
        f.write(f"{ts:%Y-%m-%dT%H:%M:%S.%f}+00:00 bench libvirtd[1432]: 1466: error : "
                f"qemuProcessReportLogError:1985 : {MONITOR.format(vm=vm, ts=stamp_qemu())}\n")
    return t


def journal_entry(message: str, priority: int = 3) -> str:
    usec = time.time_ns() // 1000
    return (f"__REALTIME_TIMESTAMP={usec}\n__MONOTONIC_TIMESTAMP={usec}\n"
            "_BOOT_ID=5b1c7d2a4e6f4a0b9c8d7e6f5a4b3c2d\n_HOSTNAME=bench\n"
            f"PRIORITY={priority}\nSYSLOG_IDENTIFIER=libvirtd\n_PID=1432\n_SYSTEMD_UNIT=libvirtd.service\n"
            f"MESSAGE={message}\n\n")


def fault_journal(jdir: Path, vm: str) -> float:
    """The entry is written when systemd-journal-remote has appended it to the journal file."""
    subprocess.run([JOURNAL_REMOTE, "-o", str(jdir / "bench.journal"), "-"], check=True, capture_output=True,
                   input=journal_entry(MONITOR.format(vm=vm, ts=stamp_qemu())).encode())
    return time.perf_counter()


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


def measure(d: Daemon, write, tag: str, faults: int) -> list[float]:
    lat = []
    for i in range(faults):
        vm = f"{tag}{i}"
        tw = write(vm)
        got = d.wait_for(vm)
        if got is not None:
            lat.append(got - tw)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--faults", type=int, default=20, help="faults per way a line arrives")
    ap.add_argument("--settle", type=float, default=None, help="the daemon's --settle (default: its own)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="logsense-bench-") as tmp:
        logs, state, jdir = Path(tmp) / "log", Path(tmp) / "state", Path(tmp) / "journal"
        (logs / "qemu").mkdir(parents=True)
        jdir.mkdir()
        (logs / "libvirtd.log").write_text(f"{stamp_libvirtd()}: 1432: info : libvirt version: 9.0.0\n")
        (logs / "messages").write_text(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%f}+00:00 bench systemd[1]: "
                                       "Started libvirtd.service - Virtualization daemon.\n")
        use_journal = Path(JOURNAL_REMOTE).exists()
        if use_journal:
            subprocess.run([JOURNAL_REMOTE, "-o", str(jdir / "bench.journal"), "-"], check=True,
                           capture_output=True, input=journal_entry("libvirt version: 9.0.0", 6).encode())
        else:
            print("systemd-journal-remote not installed: no journal figures")
        d = Daemon(logs, state, jdir if use_journal else None, args.settle)
        try:
            time.sleep(1.0)
            ways = [("libvirtd.log", lambda vm: fault_libvirtd(logs, vm)),
                    ("QEMU log", lambda vm: fault(logs / "qemu", vm)),
                    ("syslog", lambda vm: fault_syslog(logs, vm))]
            if use_journal:
                ways.append(("journal", lambda vm: fault_journal(jdir, vm)))
            for n, (name, write) in enumerate(ways):
                lat = measure(d, write, f"w{n}-", args.faults)
                text = (f"median {statistics.median(lat) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms"
                        if lat else "no incidents")
                print(f"latency write -> incident, {name:<12} ({len(lat)}/{args.faults} faults): {text}")
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
