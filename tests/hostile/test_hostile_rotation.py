"""Fast numbered rotation (issue 16, class 5): generations rotated away before the daemon ever
opened them, or while it was stopped, are found by identity and read once, oldest first.
A real daemon and a real writer process."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
from test_daemon_helpers import Watch, append, libvirtd_line

pytestmark = pytest.mark.slow

WRITER = r"""
import gzip, os, sys
log, first, rounds, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
line, compress = sys.argv[5], sys.argv[6] == "compress"
seq = first
def rotate():
    base = os.path.basename(log) + "."
    gens = sorted(((int(n[len(base):].split(".")[0]), n[len(base):].partition(".")[2])
                   for n in os.listdir(os.path.dirname(log))
                   if n.startswith(base) and n[len(base):].split(".")[0].isdigit()), reverse=True)
    for k, ext in gens:                  # .2 -> .3, .1 -> .2 (.gz kept)
        os.rename(f"{log}.{k}{'.' + ext if ext else ''}", f"{log}.{k + 1}{'.' + ext if ext else ''}")
    os.rename(log, log + ".1")           # current -> .1
    open(log, "w").close()               # create the new current file
    if compress:                         # logrotate's compress without delaycompress
        with open(log + ".1", "rb") as f, gzip.open(log + ".1.gz", "wb") as z:
            z.write(f.read())
        os.unlink(log + ".1")
for _ in range(rounds):                  # each generation written and rotated away at once
    with open(log, "a") as f:
        for _ in range(per):
            f.write(line.replace("SEQ", str(seq)))
            seq += 1
    rotate()
"""


def start(tmp_path: Path, *extra: str) -> Watch:
    return Watch(str(tmp_path / "log"), "--no-journal", "--state-dir", str(tmp_path / "state"), "--host", "kvm01",
                 "--tz", "UTC", "--emit", "events", "--all", *extra).ready()


def write(log: Path, first: int, rounds: int, per: int, compress: bool = False) -> int:
    """Run the writer: `rounds` generations of `per` numbered lines, each rotated away as soon as
    written (numbered rotation, nothing deleted); the next sequence number."""
    line = libvirtd_line("benign seq=SEQ", level="info", where="virNetServerAddClient:17")
    subprocess.run([sys.executable, "-c", WRITER, str(log), str(first), str(rounds), str(per), line,
                    "compress" if compress else "plain"],
                   check=True, timeout=60)
    return first + rounds * per


def seqs(w: Watch) -> list[int]:
    return [int(o["message"].split("seq=")[1]) for o in w.out if "seq=" in o["message"]]


def assert_each_once(got: list[int], n: int) -> None:
    """Every line 0..n-1 emitted exactly once; else which were lost and how many doubled."""
    assert sorted(got) == list(range(n)), f"lost {sorted(set(range(n)) - set(got))[:10]}..., " \
                                          f"doubled {len(got) - len(set(got))}"


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    (tmp_path / "log").mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "log" / "libvirtd.log").write_text("")
    return tmp_path


def test_generations_rotated_away_before_they_were_opened_are_read_once(logs: Path):
    log = logs / "log" / "libvirtd.log"
    w = start(logs)
    n = write(log, 0, rounds=8, per=400)  # 8 generations in a few milliseconds: most never seen at the path
    append(log, libvirtd_line(f"benign seq={n}", level="info", where="virNetServerAddClient:17"))
    w.wait_count(lambda o: "seq=" in o["message"], n + 1)
    assert w.stop() == 0
    assert_each_once(seqs(w), n + 1)


def test_generations_rotated_while_stopped_are_read_once_on_restart(logs: Path):
    log = logs / "log" / "libvirtd.log"
    w = start(logs)
    n = write(log, 0, rounds=1, per=50)
    append(log, libvirtd_line(f"benign seq={n}", level="info", where="virNetServerAddClient:17"))
    w.wait_count(lambda o: "seq=" in o["message"], n + 1)
    assert w.stop() == 0
    append(log, libvirtd_line(f"benign seq={n + 1}", level="info", where="virNetServerAddClient:17"))
    m = write(log, n + 2, rounds=2, per=100)  # rotated twice while stopped
    append(log, libvirtd_line(f"benign seq={m}", level="info", where="virNetServerAddClient:17"))
    w2 = start(logs)
    w2.wait_count(lambda o: "seq=" in o["message"], m + 1 - (n + 1))
    assert w2.stop() == 0
    assert_each_once(seqs(w) + seqs(w2), m + 1)
    assert seqs(w2) == list(range(n + 1, m + 1))


def test_a_compressed_generation_already_read_is_not_read_again(logs: Path):
    log = logs / "log" / "libvirtd.log"
    w = start(logs)
    n = write(log, 0, rounds=1, per=50)
    w.wait_count(lambda o: "seq=" in o["message"], n)
    rotated = log.with_name("libvirtd.log.1")  # logrotate's compress without delaycompress
    with gzip.open(str(rotated) + ".gz", "wb") as z:
        z.write(rotated.read_bytes())
    rotated.unlink()
    m = write(log, n, rounds=1, per=50)  # the next rotation finds the .gz beside the new generation
    append(log, libvirtd_line(f"benign seq={m}", level="info", where="virNetServerAddClient:17"))
    w.wait_count(lambda o: "seq=" in o["message"], m + 1)
    assert w.stop() == 0
    assert_each_once(seqs(w), m + 1)


def test_a_compressed_generation_never_opened_is_read_once(logs: Path):
    log = logs / "log" / "libvirtd.log"
    w = start(logs)
    # generations written, rotated and compressed (logrotate's compress without delaycompress)
    # at once: the daemon holds the first open (it reads it whole, its .gz is not read again);
    # of the others, rotated away before the daemon looked, only their .gz are there to find
    # (the races of these rotations with the daemon's look: tests/test_follow_rotation_race.py)
    m = write(log, 0, rounds=4, per=300, compress=True)
    append(log, libvirtd_line(f"benign seq={m}", level="info", where="virNetServerAddClient:17"))
    w.wait_count(lambda o: "seq=" in o["message"], m + 1)
    assert w.stop() == 0
    assert_each_once(seqs(w), m + 1)
