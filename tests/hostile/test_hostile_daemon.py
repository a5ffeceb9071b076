"""The daemon under hostile load (issue 16, classes 2, 3, 5): thousands of VM logs on few
descriptors, odd rotation names, and bursts that must not starve the watchdog. Real daemons."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from test_daemon import NotifySocket
from test_daemon_helpers import GUEST_RAM, Watch, append, libvirtd_line, qemu_line

pytestmark = pytest.mark.slow


def start(tmp_path: Path, *extra: str, env: dict[str, str] | None = None, wrapper=None, emit: str = "events") -> Watch:
    return Watch(str(tmp_path / "log"), "--no-journal", "--state-dir", str(tmp_path / "state"), "--host", "kvm01",
                 "--tz", "UTC", "--emit", emit, *extra, env=env, wrapper=wrapper).ready()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    (tmp_path / "log" / "qemu").mkdir(parents=True)
    (tmp_path / "state").mkdir()
    return tmp_path


def test_more_vm_logs_than_descriptors_are_all_read_once_and_state_is_saved(logs: Path):
    n = 300
    for i in range(n):
        (logs / "log" / "qemu" / f"vm{i:03}.log").write_text(qemu_line(GUEST_RAM))
    prlimit = ["prlimit", "--nofile=128"]  # soft and hard: fewer descriptors than VM logs
    w = start(logs, "--from-start", wrapper=prlimit)
    w.wait_count(lambda o: True, n)
    for i in (0, 150, 299):  # a quiet (closed) file that changes is reopened and read on
        append(logs / "log" / "qemu" / f"vm{i:03}.log", qemu_line(GUEST_RAM))
    w.wait_count(lambda o: True, n + 3)
    assert w.stop() == 0
    files = [(o["file"], o["line"]) for o in w.out]
    assert len(files) == len(set(files)) == n + 3  # nothing lost, nothing doubled
    state = json.loads((logs / "state" / "state.json").read_text())
    assert len(state["files"]) == n
    w2 = start(logs, wrapper=prlimit)  # restart on the saved state: nothing read again
    append(logs / "log" / "qemu" / "vm007.log", qemu_line(GUEST_RAM))
    got = w2.wait(lambda o: True)
    assert (Path(got["file"]).name, got["line"]) == ("vm007.log", 2)
    assert w2.stop() == 0 and len(w2.out) == 1
    assert not any("Too many open files" in e for e in w.err + w2.err)


@pytest.mark.parametrize("rotated_name", ["libvirtd.log-20240315-12", "libvirtd.log-2024-03-15", "libvirtd.log.old",
                                          "libvirtd.log_1710460800"])
def test_a_rotation_to_any_name_reads_every_line_once(logs: Path, rotated_name: str):
    log = logs / "log" / "libvirtd.log"
    log.write_text("")
    w = start(logs, "--all")

    def lines(a: int, b: int) -> str:
        return "".join(libvirtd_line(f"benign seq={i}", level="info", where="virNetServerAddClient:17")
                       for i in range(a, b))

    append(log, lines(0, 50))
    w.wait(lambda o: o["message"].endswith("seq=49"))
    log.rename(logs / "log" / rotated_name)  # logrotate's dateext, olddir-less formats
    append(logs / "log" / rotated_name, lines(50, 60))  # the writer still writes to the old file
    log.write_text("")
    append(log, lines(60, 100))
    w.wait(lambda o: o["message"].endswith("seq=99"))
    w.wait(lambda o: o["message"].endswith("seq=59"))
    assert w.stop() == 0
    seqs = sorted(int(o["message"].split("seq=")[1]) for o in w.out if "seq=" in o["message"])
    assert seqs == list(range(100))


def test_a_burst_does_not_starve_the_watchdog(logs: Path, tmp_path: Path):
    notify = NotifySocket(tmp_path / "notify.sock")
    period = 8.0  # pings due every 4 s (the unit says WatchdogSec=30s); one pass of this burst took 20 s
    w = start(logs, env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": str(int(period * 1e6))}, emit="incidents")
    ready_at, _ = notify.wait(lambda m: "READY=1" in m)
    line = libvirtd_line("internal error: End of file from monitor", where="qemuMonitorIO:621")
    for i in range(20):  # 20 VM logs of 4,000 error lines each, all at once
        (logs / "log" / "qemu" / f"burst{i:02}.log").write_text(line * 4000)
    (logs / "log" / "qemu" / "zz-marker.log").write_text(qemu_line(GUEST_RAM))  # read after the burst
    pings: list[float] = []
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            try:
                at, _ = notify.wait(lambda m: m == "WATCHDOG=1", timeout=0.5)
                pings.append(at)
            except AssertionError:
                continue

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    w.wait(lambda o: o.get("vm") == "zz-marker", timeout=300)
    seen_at = time.monotonic()
    done.set()
    listener.join()
    assert w.stop() == 0
    notify.close()
    times = [ready_at, *pings, seen_at]  # from ready to the marker's incident, no stretch without a ping
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) < period, f"longest gap between watchdog pings {max(gaps):.1f} s"
