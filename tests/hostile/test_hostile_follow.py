"""Hostile swaps under a followed log (issue 16, class 6): a symlink that replaces a rotated log
is never followed, a FIFO swapped in neither hangs nor kills the daemon, and the next real file
is read as usual."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_daemon_helpers import Watch, append, libvirtd_line

pytestmark = pytest.mark.slow


def test_a_symlink_or_fifo_swapped_in_for_a_log_is_not_read(tmp_path: Path):
    logs = tmp_path / "log"
    logs.mkdir()
    (tmp_path / "state").mkdir()
    secret = tmp_path / "shadow"
    secret.write_text(libvirtd_line("SECRET root:$6$hash:19000:0:99999:7:::", level="error", where="x:1"))
    log = logs / "libvirtd.log"
    log.write_text("")
    w = Watch(str(logs), "--no-journal", "--state-dir", str(tmp_path / "state"), "--host", "kvm01", "--tz", "UTC",
              "--emit", "events", "--all").ready()
    append(log, libvirtd_line("benign seq=1", level="info", where="virNetServerAddClient:17"))
    w.wait(lambda o: o["message"].endswith("seq=1"))
    log.rename(logs / "libvirtd.log.1")  # rotated away, and a symlink put in its place
    log.symlink_to(secret)
    w.wait_err(lambda line: "libvirtd.log: a symlink, not followed" in line)
    log.unlink()
    os.mkfifo(log)  # then a FIFO
    w.wait_err(lambda line: "libvirtd.log: not a regular file, not read" in line)
    log.unlink()
    log.write_text("")  # and a real log again
    append(log, libvirtd_line("benign seq=2", level="info", where="virNetServerAddClient:17"))
    w.wait(lambda o: o["message"].endswith("seq=2"))
    assert w.proc.poll() is None and w.stop() == 0
    assert not any("SECRET" in o.get("message", "") for o in w.out)
    assert sum("a symlink, not followed" in e for e in w.err) == 1  # said once, not every pass
