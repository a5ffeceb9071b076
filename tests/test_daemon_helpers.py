"""The real `logsense watch` as a subprocess, and real log lines stamped now (no tests here).

Output is read by a thread and awaited with a timeout; readiness is the daemon's own
"logsense: watching N files" line on stderr. No sleep stands in for an event that can be
awaited.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WAIT = 15.0


def now() -> datetime:
    return datetime.now(UTC)


def libvirtd_line(message: str, level: str = "error", where: str = "virStorageSourceReportBrokenChain:5208",
                  pid: int = 1466, ts: datetime | None = None) -> str:
    """libvirtd.log, as fixtures/formats/var/log/libvirt/libvirtd.log has it."""
    ts = ts or now()
    return f"{ts:%Y-%m-%d %H:%M:%S}.{ts.microsecond // 1000:03d}+0000: {pid}: {level} : {where} : {message}\n"


def qemu_line(message: str, ts: datetime | None = None) -> str:
    """A QEMU line with `-msg timestamp=on`, as in a per-VM log."""
    ts = ts or now()
    return f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.microsecond:06d}Z qemu-system-x86_64: {message}\n"


def qemu_libvirt_line(message: str, ts: datetime | None = None) -> str:
    """libvirt's own stamped lines in a per-VM log (header, `shutting down, reason=...`)."""
    ts = ts or now()
    return f"{ts:%Y-%m-%d %H:%M:%S}.{ts.microsecond // 1000:03d}+0000: {message}\n"


def syslog_line(message: str, prog: str = "kernel", host: str = "kvm01", ts: datetime | None = None) -> str:
    ts = ts or now()
    return f"{ts:%b} {ts.day:2d} {ts:%H:%M:%S} {host} {prog}: {message}\n"


MISSING_IMAGE = "Cannot access storage file '/var/lib/libvirt/images/app01.qcow2': No such file or directory"
GUEST_RAM = "cannot set up guest memory 'pc.ram': Cannot allocate memory"
OOM = ("Out of memory: Killed process 28932 (qemu-system-x86) total-vm:9012345kB, anon-rss:8123456kB, "
       "file-rss:1234kB, shmem-rss:0kB, UID:64055 pgtables:17000kB oom_score_adj:0")


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()


RUNNING: list[Watch] = []  # the daemons started, killed after each test if still running (tests/conftest.py)


def reap_daemons() -> None:
    """Kill the daemons a test left running: a failed wait raises before the test's stop."""
    while RUNNING:
        w = RUNNING.pop()
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(timeout=WAIT)


class Watch:
    """`python -m logsense watch ARGS` with its stdout parsed as JSON lines."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, wrapper: list[str] | None = None) -> None:
        self.args = args
        self.proc = subprocess.Popen([*(wrapper or []), sys.executable, "-m", "logsense", "watch", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        RUNNING.append(self)
        self.out: list[dict] = []
        self.err: list[str] = []
        self._outq: queue.Queue = queue.Queue()
        self._errq: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc.stdout, self._outq, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self._errq, False), daemon=True).start()

    @staticmethod
    def _pump(stream, q: queue.Queue, parse: bool) -> None:
        for line in stream:
            q.put(json.loads(line) if parse else line.rstrip("\n"))
        q.put(None)

    def _drain(self, q: queue.Queue, into: list, timeout: float) -> bool:
        try:
            item = q.get(timeout=timeout)
        except queue.Empty:
            return True
        if item is None:
            q.put(None)
            return False
        into.append(item)
        return True

    def wait_err(self, pred: Callable[[str], bool], timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.err[seen:]:
                if pred(line):
                    return line
            seen = len(self.err)
            left = deadline - time.monotonic()
            if left <= 0 or not self._drain(self._errq, self.err, min(left, 0.5)) and len(self.err) == seen:
                raise AssertionError(f"no such stderr line; stderr: {self.err}")

    def ready(self) -> Watch:
        self.wait_err(lambda line: line.startswith("logsense: watching"))
        return self

    def wait(self, pred: Callable[[dict], bool], timeout: float = WAIT, start: int = 0) -> dict:
        """The first output (from index `start`) satisfying `pred`, waiting for it."""
        deadline = time.monotonic() + timeout
        checked = start
        while True:
            for item in self.out[checked:]:
                if pred(item):
                    return item
            checked = max(checked, len(self.out))
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; outputs: {[_short(o) for o in self.out]}; stderr: {self.err}")
            if not self._drain(self._outq, self.out, min(left, 0.5)) and len(self.out) == checked:
                raise AssertionError(f"daemon exited {self.proc.poll()}; stderr: {self._all_err()}")

    def wait_count(self, pred: Callable[[dict], bool], n: int, timeout: float = WAIT) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            got = [o for o in self.out if pred(o)]
            if len(got) >= n:
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(got)} of {n} outputs; stderr: {self.err}")
            if not self._drain(self._outq, self.out, min(left, 0.5)) and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.poll()}; stderr: {self._all_err()}")

    def _all_err(self) -> list[str]:
        while self._drain(self._errq, self.err, 0.2):
            if self._errq.empty():
                break
        return self.err

    def stop(self) -> int:
        """SIGTERM: finish the batch, save state, exit 0; everything it wrote is collected."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=WAIT)
        self._collect()
        return rc

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=WAIT)
        self._collect()

    def _collect(self) -> None:
        while self._drain(self._outq, self.out, 2.0):
            pass
        while self._drain(self._errq, self.err, 2.0):
            pass


def _short(o: dict) -> str:
    return f"{o.get('id', '')}:{o.get('status', '')}:{o.get('version', '')}:{(o.get('title') or o.get('message'))}"


# -- a private systemd-journald -------------------------------------------------------------
JOURNALD = "/lib/systemd/systemd-journald"
JOURNALD_CONF = ("[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToWall=no\n"
                 "ForwardToConsole=no\nSeal=no\nCompress=no\n")


def in_private_journald(work: Path) -> list[str]:
    """A command prefix: run the command in a private mount namespace with its own
    systemd-journald (lab/run's recipe), whose journal lands in WORK/run-log/journal.

    Nothing outside the namespace is touched: /run/systemd is a tmpfs there, /run/log and
    /etc/systemd/journald.conf are bind mounts of files under WORK. The journald is stopped by
    pid when the command ends (its pid is in WORK/journald.pid, for the test to make sure)."""
    (work / "run-log").mkdir(parents=True, exist_ok=True)
    (work / "journald.conf").write_text(JOURNALD_CONF)
    return ["unshare", "-m", "--propagation", "private", sys.executable, __file__, "journald-namespace", str(work),
            "--"]


def _journald_namespace(work: Path, argv: list[str]) -> int:
    """Inside the namespace: mounts, journald (awaited by its own READY=1), then the command,
    with SIGTERM and SIGINT passed on to it."""
    for args in (["-t", "tmpfs", "-o", "mode=0755", "logsense-test", "/run/systemd"],
                 ["--bind", str(work / "run-log"), "/run/log"],
                 ["--bind", str(work / "journald.conf"), "/etc/systemd/journald.conf"]):
        subprocess.run(["mount", *args], check=True)
    ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ready.bind(str(work / "journald.notify"))
    ready.settimeout(WAIT)
    journald = subprocess.Popen([JOURNALD], env={**os.environ, "NOTIFY_SOCKET": str(work / "journald.notify")},
                                stdout=subprocess.DEVNULL, stderr=open(work / "journald.stderr", "w"))
    (work / "journald.pid").write_text(str(journald.pid))
    try:
        while "READY=1" not in ready.recv(4096).decode():
            pass
        child = subprocess.Popen(argv)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: child.send_signal(signum))
        rc = child.wait()
        subprocess.run(["journalctl", "--sync"], check=False)  # every entry on disk before the test reads
        return rc
    finally:
        journald.terminate()
        journald.wait(WAIT)
        (work / "journald.pid").unlink()


def stop_private_journald(work: Path) -> None:
    """Kill (by pid) the journald of `in_private_journald` if its namespace did not stop it."""
    pidfile = work / "journald.pid"
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text())
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == JOURNALD.encode():
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__" and sys.argv[1:2] == ["journald-namespace"]:
    sys.exit(_journald_namespace(Path(sys.argv[2]), sys.argv[sys.argv.index("--") + 1:]))


def test_a_daemon_a_test_left_running_is_reaped(tmp_path: Path):
    (tmp_path / "log").mkdir()
    (tmp_path / "state").mkdir()
    w = Watch(str(tmp_path / "log"), "--no-journal", "--state-dir", str(tmp_path / "state")).ready()
    assert w in RUNNING and w.proc.poll() is None
    reap_daemons()  # what tests/conftest.py does after every test
    assert w.proc.poll() is not None and not RUNNING
