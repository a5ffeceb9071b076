"""One road from a line to an incident: every fixture gives the same events (VM included) and
the same incidents whether `analyze` reads it or the daemon's live core follows it.

The live side is the daemon's own code, in-process: each log file is written line by line
into a fresh tree in file order (rotated files of a set first, the set's live file last) and
read by a `Tailer` after every line; halfway through each file the file is rotated (renamed
to `.1`, a new one created), so the rest arrives in a new file. Domain XML is copied in
first; the journal is read by the `JournalFollower`'s own reader. Records go through
`Daemon._ingest` (shared classify + settle buffer) and `Daemon._emit` (the correlator).

Line numbers and file names differ by construction (a rotated file numbers its lines anew), and
so do the cursors of an exported journal (`journalctl -o export`/`json` files are stored as a
journal by systemd-journal-remote, as journald would have stored them); everything else must be
equal.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import FIXTURES, read_events

from logsense.batch import pairs
from logsense.correlator import correlate
from logsense.daemon import Config, Daemon
from logsense.follow import FileOptions, JournalFollower, Tailer, Waker
from logsense.ingest import formats
from logsense.lifecycle import RebootIncident, timeline
from logsense.model import Event
from logsense.pipeline import parse_zone
from logsense.sources import Workspace, discover

HOST = "kvm-test"
BOOT_PATTERNS = ("host.host.kernel-boot", "host.host.journal-boot")  # the root of a reboot incident
JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
YEAR = 2026


def fixture_trees() -> list[Path]:
    """Every host tree among the fixtures, fixtures/real/* included whenever it exists."""
    trees = [d for s in sorted((FIXTURES / "lab").iterdir()) if s.is_dir() for d in sorted(s.iterdir())
             if d.is_dir()]
    trees += [FIXTURES / "formats", FIXTURES / "sample-outage"]
    real = FIXTURES / "real"
    if real.is_dir():
        trees += sorted(d for d in real.iterdir() if d.is_dir())
    return trees


def event_key(ev: dict) -> tuple:
    d = {k: v for k, v in ev.items() if k not in ("file", "line", "count", "cursor")}
    d["cursor"] = ev["cursor"] is not None  # an exported journal stored anew gets new cursors
    return tuple(sorted((k, str(v)) for k, v in d.items()))


def incident_key(inc: dict) -> dict:
    d = {k: v for k, v in inc.items() if k not in ("status", "version", "evidence")}
    d["evidence"] = [event_key(e) for e in inc["evidence"]]
    return d


def reboot_key(inc: dict) -> dict:
    """A reboot incident as `analyze` and the daemon give it (the daemon opens it, analyze
    reports its final state)."""
    return {k: v for k, v in incident_key(inc).items() if k not in ("recovered_at",)}


def batch(tree: Path) -> tuple[list[dict], list[dict], list[dict]]:
    evs, _ = read_events([tree], tz="UTC", year=YEAR, host=HOST)
    reboots = [reboot_key(d) for inc, d in pairs(evs) if isinstance(inc, RebootIncident)] \
        if timeline(evs).reboots else []
    return [e.to_dict() for e in evs], [incident_key(i.to_dict()) for i in correlate(evs)], reboots


class LiveReplay:
    """The daemon's core, fed as a live host would feed it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        cfg = Config(paths=[str(root / "logs")], journal=False, state_dir=str(root / "state"), host=HOST, tz="UTC",
                     settle=60.0)  # held until the end: one release, in time order, as batch sorts
        self.daemon = Daemon(cfg)
        self.opts = FileOptions(host=HOST, tz=parse_zone("UTC"), year=YEAR, rotated_grace=0.0)
        self.events: list[Event] = []
        self.incidents: dict[str, dict] = {}
        self.warnings: list[str] = []

    def _take(self, records) -> None:
        self.events += self.daemon._ingest(records)

    def write_file(self, source: Path, dest: Path, data: bytes) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.touch()
        tailer = Tailer(str(dest), self.opts, self.warnings.append)
        assert tailer.open(at_end=False)
        lines = data.splitlines(keepends=True)
        half = len(lines) // 2
        with open(dest, "ab") as f:
            for n, line in enumerate(lines):
                if n == half and n:
                    os.rename(dest, f"{dest}.1")  # rotated: the rest goes to a new file
                    f.close()
                    f = open(dest, "ab")  # noqa: SIM115 - the writer reopens its log
                f.write(line)
                f.flush()
                self._take(tailer.poll(self.daemon._selector)[0])
            f.close()
        for _ in range(3):  # the rotated file finished (grace 0), a held record handed out
            self._take(tailer.poll(self.daemon._selector)[0])
        assert not tailer.rotated
        tailer.close()

    def read_journal(self, directory: Path) -> None:
        q: queue.Queue = queue.Queue()
        follower = JournalFollower(q, Waker(), HOST, self.warnings.append, directory=str(directory),
                                   from_start=True)
        reader = follower._open()
        follower._position(reader)
        follower.drain(reader)
        reader.close()
        self._take([q.get_nowait() for _ in range(q.qsize())])

    def finish(self) -> tuple[list[dict], list[dict], list[dict]]:
        """Events and incidents; the reboot incidents apart (those the daemon's lifecycle hook
        gave, the idle clock run on past every grace period)."""
        self.events += self.daemon._ingest([], force=True)
        outputs = self.daemon._emit(self.events) + [i.to_dict() for i in self.daemon.corr.flush()]
        if self.events:
            end = max(e.ts for e in self.events) + timedelta(seconds=self.daemon.cfg.reboot_grace + 1)
            reboots = self.daemon._lifecycle(end, None, [])
            outputs += reboots
        for inc in outputs:
            self.incidents[inc["id"]] = inc
        reboot_ids = {i["id"] for i in outputs if i.get("root_cause") in BOOT_PATTERNS and "downtime" in i}
        incs = sorted((i for i in self.incidents.values() if i["id"] not in reboot_ids), key=lambda i: i["id"])
        reboots = sorted((self.incidents[i] for i in reboot_ids), key=lambda i: i["id"])
        return [e.to_dict() for e in self.events], [incident_key(i) for i in incs], [reboot_key(i) for i in reboots]


def journal_dir_of(data: bytes, fmt: str, directory: Path) -> Path:
    """A journal directory holding an exported journal (`journalctl -o export` or `-o json`),
    written by systemd-journal-remote as journald would have stored it."""
    if fmt == "journal-json":
        out = []
        for line in data.splitlines():
            if line.strip():
                entry = json.loads(line)
                out.append("".join(f"{k}={v}\n" for k, v in entry.items() if isinstance(v, str | int)) + "\n")
        data = "".join(out).encode()
    directory.mkdir()
    subprocess.run([JOURNAL_REMOTE, "-o", str(directory / "export.journal"), "-"], input=data, check=True,
                   capture_output=True)
    return directory


def live(tree: Path, tmp: Path) -> tuple[list[dict], list[dict], list[dict]]:
    replay = LiveReplay(tmp)
    logs = tmp / "logs"
    ws = Workspace()
    try:
        for col in discover([str(tree)], ws, lambda _m: None):
            for xml in col.domain_xml:
                dest = logs / xml.relative_to(tree)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(xml, dest)
            replay.daemon._learn_domain_xml()
            files = []
            for n, lf in enumerate(col.files):
                with lf.open(lambda _m: None) as stream:
                    data = stream.read()
                fmt = formats.detect(lf.name, data[:formats.HEAD_BYTES])
                if fmt in formats.LINE_FORMATS or fmt in ("journal-export", "journal-json"):
                    files.append((formats.FORMAT_ORDER.get(fmt, 5), n, lf, data, fmt))
            for _, _, lf, data, fmt in sorted(files, key=lambda t: t[:2]):
                if fmt not in formats.LINE_FORMATS:  # an exported journal: live, it is the journal
                    replay.read_journal(journal_dir_of(data, fmt, tmp / f"export-{len(os.listdir(tmp))}"))
                    continue
                rel = Path(lf.name).relative_to(tree)
                live_name = rel.name.split(".log")[0] + ".log" if ".log" in rel.name else rel.name.split("-")[0]
                replay.write_file(lf.path, logs / rel.parent / live_name, data)
            if col.journal_files:
                jdir = tmp / "journal"
                jdir.mkdir()
                for i, jf in enumerate(sorted(col.journal_files)):
                    shutil.copy(jf, jdir / f"system{i}.journal")
                replay.read_journal(jdir)
    finally:
        ws.close()
    return replay.finish()


@pytest.mark.parametrize("tree", fixture_trees(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_batch_and_live_give_the_same_events_and_incidents(tree: Path, tmp_path: Path) -> None:
    b_events, b_incidents, b_reboots = batch(tree)
    l_events, l_incidents, l_reboots = live(tree, tmp_path)
    assert [event_key(e) for e in l_events] == [event_key(e) for e in b_events]
    assert [e["vm"] for e in l_events] == [e["vm"] for e in b_events]
    assert sorted(l_incidents, key=lambda i: i["id"]) == sorted(b_incidents, key=lambda i: i["id"])
    assert l_reboots == sorted(b_reboots, key=lambda i: i["id"])  # the host-reboot incidents, when any


LIFECYCLE_TREES = [d for s in sorted((FIXTURES / "lifecycle").iterdir()) if s.is_dir() for d in sorted(s.iterdir())]


@pytest.mark.parametrize("tree", LIFECYCLE_TREES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_batch_and_live_give_the_same_reboot_incidents(tree: Path, tmp_path: Path) -> None:
    """fixtures/lifecycle: VMs' lives, a host reboot among them (the lines that make them are
    compared in the test above, for the trees whose events both modes shape alike)."""
    _, _, b_reboots = batch(tree)
    _, _, l_reboots = live(tree, tmp_path)
    assert l_reboots == sorted(b_reboots, key=lambda i: i["id"])
    if "reboot-50" in str(tree):
        assert [i["affected_vms"] for i in l_reboots] == [["vm07", "vm23", "vm41"]]

