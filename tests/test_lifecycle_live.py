"""The daemon's VMs' lives (logsense/reboot_watch.py) in-process: bounded memory over days of a
host's life, recovery once the VMs are back, and a state round trip through plain JSON. Real
lines: fixtures/lifecycle/reboot-50, copied onto later days."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from conftest import FIXTURES, read_events

from logsense import lifecycle
from logsense.catalogue import load_catalogue
from logsense.reboot_watch import PRUNE_AT, RebootWatch
from logsense.state import Relinker, event_to_json

REBOOT = FIXTURES / "lifecycle" / "reboot-50" / "kvm01"
NOT_BACK = ["vm07", "vm23", "vm41"]
DAYS = 30


@pytest.fixture(scope="module")
def day():
    evs, _ = read_events([REBOOT])
    return evs


def shifted(events, d: int):
    """The day's events again, `d` days later (each day: 50 VMs started, a reboot, 47 back)."""
    return [replace(e, record=replace(e.record, ts=e.record.ts + timedelta(days=d))) for e in events]


def run(watch: RebootWatch, events) -> list[dict]:
    out = []
    for ev in events:
        out += watch.advance(ev.ts)
        watch.feed(ev)
    return out


def test_memory_stays_bounded_over_days_and_each_reboot_resolves_when_its_vms_are_back(day):
    watch = RebootWatch(600)
    out, held = [], []
    for d in range(DAYS):
        out += run(watch, shifted(day, d))
        held.append(len(watch.tracker.runs))
    out += watch.advance(max(e.ts for e in day) + timedelta(days=DAYS - 1, hours=1))
    opened = [o for o in out if o["status"] == "open"]
    assert len(opened) == DAYS and all(o["affected_vms"] == NOT_BACK for o in opened)
    resolved = [o for o in out if o["status"] == "resolved"]
    assert len(resolved) == DAYS - 1  # each one the next morning, when vm07, vm23 and vm41 start again
    assert all(o["version"] == 2 and o["recovered_at"] for o in resolved)
    assert "All of them were running again by" in resolved[0]["explanation"]
    assert max(held) < PRUNE_AT + 200 < 97 * DAYS  # 97 runs a day were made
    assert len(watch.tracker.marks) < PRUNE_AT


def test_a_reboot_saved_and_restored_midway_opens_as_it_would_have(day):
    """State saved between the boot and the end of its grace period, through JSON and the
    daemon's Relinker: the restored watch emits the very incident the uninterrupted one does."""
    boot = next(e.ts for e in day if e.pattern_id == "host.host.kernel-boot" and e.ts.hour == 10)
    before = [e for e in day if e.ts <= boot]
    after = [e for e in day if e.ts > boot]
    whole = RebootWatch(72)
    expected = run(whole, day) + whole.advance(boot + timedelta(seconds=73))
    first = RebootWatch(72)
    assert run(first, before) == []
    saved = json.loads(json.dumps(first.to_state(event_to_json)))
    relink = Relinker(load_catalogue(), True)
    second = RebootWatch.from_state(saved, relink.event, 72)
    got = run(second, after) + second.advance(boot + timedelta(seconds=73))
    assert got == expected and [o["affected_vms"] for o in got] == [NOT_BACK]


def test_batch_is_the_same_tracker_fed_to_the_end(day):
    """`lifecycle.timeline` is `Tracker` fed every event: the reboot waiting is in its timeline."""
    tl = lifecycle.timeline(day)
    (reboot,) = tl.reboots
    assert reboot.mark.ts.hour == 10 and len(reboot.before) == 50 and reboot.shutdown is not None


def test_only_the_newest_incidents_are_kept_whole():
    """A daemon emits incidents for months: the whole dicts kept to send a failed start again are
    the newest LATEST_KEPT, an incident emitted again counting as new."""
    from logsense.reboot_watch import LATEST_KEPT, RebootWatch

    w = RebootWatch()
    dicts = [{"id": f"i{n}", "first_seen": "2024-03-05T10:00:00+00:00", "last_seen": "2024-03-05T10:00:00+00:00",
              "host": "kvm01", "vm": "vm01", "affected_vms": ["vm01"], "explanation": ""}
             for n in range(LATEST_KEPT + 100)]
    w.note(dicts)
    w.note([dicts[50]])  # emitted again: newest
    assert len(w.latest) == LATEST_KEPT and list(w.latest)[-1] == "i50"
    assert "i0" not in w.latest and f"i{LATEST_KEPT + 99}" in w.latest
