"""Every core for one archive: files read by worker processes give exactly what one process
gives — the same events (VM, host, order of ties), incidents, stats, warnings and VM map — over
every fixture tree, with the worker road forced for small inputs (LOGSENSE_PARALLEL_BYTES=0)."""

from __future__ import annotations

import gzip
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT, logsense
from test_ingest_modes import fixture_trees

from logsense.batch import pairs
from logsense.catalogue import load_catalogue
from logsense.parallel import BYTES_ENV, Workers
from logsense.pipeline import Options, Reader, parse_zone

TREES = fixture_trees() + sorted(d for d in (FIXTURES / "lifecycle").iterdir() if d.is_dir())
CATALOGUE = load_catalogue()


@pytest.fixture(scope="module")
def pools() -> Iterator[dict[int, Workers]]:
    """The workers of --jobs 2 and 4 (the reading process is the N-th), which read every job here;
    shared by the module's tests (starting them takes a second)."""
    made = {n: Workers(n - 1, [], [], share=False) for n in (2, 4)}
    yield made
    for workers in made.values():
        workers.close()


def outcome(paths: list[Path], jobs: int = 1, workers: Workers | None = None) -> dict:
    """What analyze reports (incidents, stats but the time taken, warnings), the events and the VM map."""
    CATALOGUE.timeouts.clear()
    reader = Reader(Options(tz=parse_zone("UTC"), jobs=jobs), CATALOGUE, workers=workers)
    evs = reader.events([str(p) for p in paths])
    run = reader.run
    got = {"events": [e.to_dict() for e in evs], "incidents": [d for _, d in pairs(evs)],
           "stats": {k: v for k, v in run.stats.items() if k != "seconds"}, "warnings": run.warnings,
           "missing": run.missing, "read": run.read, "entities": run.entities.table()}
    return json.loads(json.dumps(got, default=str)) | {"used_workers": reader.used_workers}


@pytest.mark.parametrize("tree", TREES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_workers_give_what_one_process_gives(tree: Path, pools: dict[int, Workers], monkeypatch):
    one = outcome([tree])
    assert not one["used_workers"]
    monkeypatch.setenv(BYTES_ENV, "0")
    for n, workers in pools.items():
        many = outcome([tree], n, workers)
        assert many.pop("used_workers") or not one["read"], f"--jobs {n} did not use the workers"
        assert many == {k: v for k, v in one.items() if k != "used_workers"}, f"--jobs {n} differs"


def test_several_hosts_and_loose_files_in_one_run(pools: dict[int, Workers], monkeypatch):
    """Collections after the first reuse the pool; loose files and trees mix in one run; and
    where the reading process takes the jobs no worker has started (as `--jobs` does), the
    output is the same whichever process read what."""
    paths = [FIXTURES / "sample-outage", FIXTURES / "formats", *sorted((FIXTURES / "formats").glob("*"))[:3]]
    one = outcome(paths)
    monkeypatch.setenv(BYTES_ENV, "0")
    many = outcome(paths, 2, pools[2])
    assert many.pop("used_workers") and many == {k: v for k, v in one.items() if k != "used_workers"}
    shared = outcome(paths, 2)  # its own pool of one worker, sharing the jobs with this process
    shared.pop("used_workers")
    assert shared == {k: v for k, v in one.items() if k != "used_workers"}


def damaged_tree(tmp_path: Path) -> Path:
    """A truncated gzip, a truncated xz and a line longer than the reader keeps, beside good logs."""
    import lzma

    tree = tmp_path / "host"
    log = tree / "var/log/libvirt"
    log.mkdir(parents=True)
    good = (FIXTURES / "sample-outage/var/log/libvirt/libvirtd.log").read_bytes()
    data = gzip.compress(good * 50)
    (log / "libvirtd.log.2.gz").write_bytes(data[: len(data) // 2])
    xz = lzma.compress(good * 50)
    (log / "libvirtd.log.1.xz").write_bytes(xz[: len(xz) * 2 // 3])
    (log / "libvirtd.log").write_bytes(good.splitlines(keepends=True)[0] + b"2024-03-05 10:02:00.000+0000: 1: error : "
                                       b"f:1 : " + b"x" * (2 << 20) + b"\n" + good)
    return tree


def test_damaged_files_warn_once_each_as_in_one_process(tmp_path: Path, pools: dict[int, Workers], monkeypatch):
    tree = damaged_tree(tmp_path)
    one = outcome([tree])
    monkeypatch.setenv(BYTES_ENV, "0")
    many = outcome([tree], 2, pools[2])
    assert many.pop("used_workers")
    assert many["warnings"] == one["warnings"] and many == {k: v for k, v in one.items() if k != "used_workers"}
    said = many["warnings"]
    assert len(said) == len(set(said)) >= 3, said
    assert any("libvirtd.log.2.gz" in w and "damaged compressed data" in w for w in said)
    assert any("libvirtd.log.1.xz" in w for w in said)
    assert any("libvirtd.log:" in w and "longer than" in w for w in said)


def test_events_and_vms_take_jobs_too(monkeypatch):
    sample = str(FIXTURES / "sample-outage")
    bad = logsense("events", "--jobs", "0", sample, check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == "logsense: error: --jobs must be at least 1"
    one = [logsense(cmd, "--jobs", "1", "--format", fmt, sample).stdout for cmd, fmt in (("events", "jsonl"),
                                                                                      ("vms", "json"))]
    monkeypatch.setenv(BYTES_ENV, "0")
    two = [logsense(cmd, "--jobs", "2", "--format", fmt, sample).stdout for cmd, fmt in (("events", "jsonl"),
                                                                                      ("vms", "json"))]
    assert one == two and one[0].count("\n") > 20


def test_every_line_is_read_in_one_process(pools: dict[int, Workers], monkeypatch):
    """`--all` makes every line an event: a worker would hand back its whole file at once (1.2 GB
    at 2 M lines), so those runs stay in one process, with the same lines out."""
    monkeypatch.setenv(BYTES_ENV, "0")
    sample = [str(FIXTURES / "sample-outage")]
    one = Reader(Options(tz=parse_zone("UTC"), all_lines=True, jobs=1), CATALOGUE).events(sample)
    reader = Reader(Options(tz=parse_zone("UTC"), all_lines=True, jobs=2), CATALOGUE, workers=pools[2])
    two = reader.events(sample)
    assert not reader.used_workers and [e.to_dict() for e in two] == [e.to_dict() for e in one]
    assert len(one) > 40 and any(e.pattern is None and e.shape is None for e in one)  # benign lines too
    classified = Reader(Options(tz=parse_zone("UTC"), jobs=2), CATALOGUE, workers=pools[2])
    classified.events(sample)
    assert classified.used_workers  # the same run without --all does use them


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def left_behind(pids: set[int], timeout: float = 30) -> list[int]:
    """The processes among `pids` still running after `timeout` seconds (each awaited through a
    pidfd: multiprocessing's resource tracker leaves a moment after the process that started it)."""
    left = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if not select.select([fd], [], [], timeout)[0]:
                left.append(pid)
        finally:
            os.close(fd)
    return left


def started_with_workers(tmp_path: Path) -> tuple[subprocess.Popen, set[int]]:
    """A real `logsense analyze --jobs 3` over more than it reads in a moment, once both its
    workers run (the third reader is the process itself); and every process below it."""
    tree = tmp_path / "host/var/log/libvirt/qemu"
    tree.mkdir(parents=True)
    line = (FIXTURES / "sample-outage/var/log/libvirt/libvirtd.log").read_bytes()
    for n in range(8):
        (tree / f"vm{n}.log").write_bytes(line * 1000)
    env = {**os.environ, BYTES_ENV: "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "logsense", "analyze", "--jobs", "3", "--format", "json",
                             str(tmp_path / "host")], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers: set[int] = set()
    while proc.poll() is None and len(workers) < 2:
        workers = {p for p in descendants(proc.pid) if b"spawn_main" in cmdline(p)}
    assert proc.poll() is None, "finished before it could be stopped: make the input bigger"
    return proc, descendants(proc.pid)


def test_ctrl_c_leaves_no_worker_behind(tmp_path: Path):
    """Interrupted while its workers read: exit 130, no traceback, every process it started gone."""
    proc, seen = started_with_workers(tmp_path)
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and b"Traceback" not in err, err
    assert seen and not left_behind(seen), "worker processes left behind"


def test_workers_end_with_a_killed_parent(tmp_path: Path):
    proc, seen = started_with_workers(tmp_path)
    proc.kill()
    proc.communicate()
    assert seen and not left_behind(seen), "worker processes outlived their parent"


def test_a_finished_run_leaves_no_worker_behind(tmp_path: Path):
    env = {**os.environ, BYTES_ENV: "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "logsense", "analyze", "--jobs", "2", "--format", "json",
                             str(FIXTURES / "sample-outage")], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    workers: set[int] = set()
    while proc.poll() is None:
        workers |= descendants(proc.pid)
    out, _ = proc.communicate()
    assert proc.returncode == 0 and json.loads(out)["incidents"]
    assert workers and not left_behind(workers)
