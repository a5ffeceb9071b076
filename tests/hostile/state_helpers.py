"""A real daemon state, saved by the daemon's own `_save` after reading real lines, and the
daemon's restore path run on a state file (no tests here: shared by the state hostile tests)."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_daemon_helpers import GUEST_RAM, MISSING_IMAGE, libvirtd_line, qemu_libvirt_line, qemu_line

import logsense.daemon as daemon_module
from logsense.catalogue import load_catalogue
from logsense.daemon import Config, Daemon
from logsense.state import STATE_FILE

Path_ = tuple[str | int, ...]


@pytest.fixture
def cached_catalogue(monkeypatch):
    """Every Daemon of a test shares one loaded catalogue (the real one, loaded once)."""
    monkeypatch.setattr(daemon_module, "load_catalogue", lambda *a: _catalogue())


@functools.cache
def _catalogue():
    return load_catalogue([])


def make_daemon(root: Path, state_dir: Path) -> Daemon:
    cfg = Config(paths=[str(root / "log")], journal=False, state_dir=str(state_dir), host="kvm01", tz="UTC",
                 window=60.0, sinks=[{"type": "file", "path": str(root / "out.jsonl")}])
    cfg.catalogue = []
    return Daemon(cfg)


def read_all(d: Daemon) -> list:
    recs = []
    for t in d.tailers.values():
        while True:
            got, more = t.poll(d._selector)
            recs.extend(got)
            if not more:
                break
    return recs


def build_state(root: Path) -> dict[str, Any]:
    """Logs with an open incident, a rotated file still read, events held by the settle buffer,
    a journal cursor and an undelivered sink queue: every part of the state has content."""
    (root / "log" / "qemu").mkdir(parents=True)
    vm = root / "log" / "qemu" / "web01.log"
    vm.write_text(qemu_libvirt_line("starting up libvirt version: 9.0.0, qemu version: 7.2.0")
                  + "LC_ALL=C PATH=/usr/bin HOME=/var/lib/libvirt/qemu/domain-3-web01 \\\n"
                  + "/usr/bin/qemu-system-x86_64 \\\n-name guest=web01,debug-threads=on \\\n"
                  + "-uuid 5b2c1e7a-8f41-4c3b-9d2e-7a6f0e1b2c3d \\\n"
                  + "-blockdev '{\"driver\":\"file\",\"filename\":\"/var/lib/libvirt/images/web01.qcow2\"}'\n"
                  + qemu_line(GUEST_RAM))
    lv = root / "log" / "libvirtd.log"
    lv.write_text(libvirtd_line(MISSING_IMAGE) * 2)
    d = make_daemon(root, root / "state")
    d.cfg.from_start = True
    d._start_files(d._restore())
    d.settling.settle = 3600  # the next events stay held: the settle buffer is saved with them
    d._process(read_all(d))
    d._process([], force=True)
    os.rename(lv, lv.with_name("libvirtd.log.1"))  # rotated, still read beside the new file
    lv.write_text(libvirtd_line("internal error: process exited while connecting to monitor"))
    with open(lv.with_name("libvirtd.log.1"), "a") as f:
        f.write(libvirtd_line(MISSING_IMAGE))
    d._process(read_all(d))
    d.journal_cursor = "s=0123456789abcdef;i=2a;b=fedcba;m=1f;t=5f2c;x=77"
    d._save()
    data = json.loads((root / "state" / STATE_FILE).read_text())
    data["sinks"] = {f"file:{root / 'out.jsonl'}": [inc.to_dict() for inc in d.corr.open.values()]}
    for t in d.tailers.values():
        t.close()
    return data


def restore(root: Path, state_dir: Path) -> dict[str, Any]:
    """The daemon's start on the state in `state_dir`, then a line through it, every window
    closed and a save; what it started with."""
    d = make_daemon(root, state_dir)
    vm = root / "log" / "qemu" / "web01.log"
    size = vm.stat().st_size
    try:
        state = d._restore()
        d._start_sinks(state)
        d._start_files(state)
        started = {"open": {i.id for i in d.corr.open.values()}, "cursor": d.journal_cursor,
                   "held": len(d.settling.held), "vms": set(d.entities.vms),
                   "queued": {dl.name: len(dl.queue) for dl in d.deliveries},
                   "files": {p: (t.offset, [o.offset for o in t.rotated]) for p, t in d.tailers.items()}}
        with open(vm, "a") as f:
            f.write(qemu_libvirt_line("shutting down, reason=failed"))
        d._process(read_all(d), force=True)
        if d.max_ts is not None:
            d.max_mono -= 7200  # two idle hours: every window closes
            d._tick()
        d.corr.advance((d.max_ts or d.corr.watermark or _epoch()) + timedelta(hours=3))
        d._save()
    finally:
        for dl in d.deliveries:
            dl.stop()
        for t in d.tailers.values():
            t.close()
        os.truncate(vm, size)  # the next case finds the logs as saved
    return started


def _epoch():
    from datetime import UTC, datetime

    return datetime(2026, 1, 1, tzinfo=UTC)


def field_paths(v: Any, at: Path_ = ()) -> Iterator[Path_]:
    """Every place in a JSON value (the first item of each list stands for the others)."""
    yield at
    if isinstance(v, dict):
        for k, x in v.items():
            yield from field_paths(x, (*at, k))
    elif isinstance(v, list) and v:
        yield from field_paths(v[0], (*at, 0))
        if len(v) > 1:
            yield (*at, len(v) - 1)


def replaced(data: Any, path: Path_, value: Any) -> Any:
    out = json.loads(json.dumps(data))
    if not path:
        return value
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return out
