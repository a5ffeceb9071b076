"""The HTML timeline in bounded memory: every event its own mark while they are few; past the
limit, a mark a time bin per row, the most severe event of each bin kept, nothing uncounted."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

from logsense.catalogue import load_catalogue
from logsense.model import Event, Record
from logsense.report import write_html
from logsense.timeline_marks import TimelineMarks

CAT = load_catalogue()
DAY = datetime(2024, 3, 5, tzinfo=UTC)
BENIGN = "libvirt.virt_layer.domain-tainted"  # a minor pattern stands for the chatter
CRITICAL = "kernel.memory.oom-killed-qemu"


def event(n: int, ts: datetime, vm: str | None, pattern_id: str, message: str) -> Event:
    p = CAT.by_id[pattern_id]
    rec = Record(ts=ts, source="syslog", message=message, host="kvm01", file="/var/log/messages", line=n)
    return Event(rec, p, vm=vm, category=p.category, severity=p.severity, role=p.role)


def day_of_events(count: int, vms: int) -> list[Event]:
    """`count` minor events spread over a day on `vms` VMs, and one critical one at noon on vm07."""
    step = 86400 / count
    evs = [event(n, DAY + timedelta(seconds=n * step), f"vm{n % vms:02d}", BENIGN, f"chatter {n}")
           for n in range(count)]
    noon = count // 2
    evs[noon] = event(noon, evs[noon].ts, "vm07", CRITICAL, "Out of memory: Killed process 4242 (qemu-system-x86)")
    return evs


def test_few_events_are_each_their_own_mark():
    evs = day_of_events(300, 5)
    marks = TimelineMarks.of(evs)
    assert marks.width == 0 and len(marks.all()) == 300
    assert all(m.count == 1 for m in marks.all())


def test_many_events_fit_under_the_limit_and_every_one_is_counted():
    evs = day_of_events(60_000, 20)
    marks = TimelineMarks(max_marks=2_000)
    for ev in evs:
        marks.add(ev)
    got = marks.all()
    assert len(got) <= 2_000 and marks.width >= 1
    assert sum(m.count for m in got) == 60_000
    assert {m.row for m in got} == {f"vm{v:02d}" for v in range(20)}  # every row still drawn
    (oom,) = [m for m in got if m.pattern_id == CRITICAL]  # the one critical event outranks its bin
    assert oom.row == "vm07" and oom.count > 1
    assert (marks.first, marks.last) == (evs[0].ts, evs[-1].ts)  # the axis spans every event


def test_the_page_links_a_binned_mark_to_its_incident_and_says_how_many_it_stands_for():
    evs = day_of_events(60_000, 20)
    marks = TimelineMarks(max_marks=2_000)
    for ev in evs:
        marks.add(ev)
    oom = next(e for e in evs if e.pattern_id == CRITICAL)
    incident = {"id": "inc-oom", "title": "OOM killer", "severity": "critical", "scope": "vm", "host": "kvm01",
                "affected_vms": ["vm07"], "first_seen": oom.ts.isoformat(), "last_seen": oom.ts.isoformat(),
                "evidence": [{"file": "/var/log/messages", "line": oom.record.line, "cursor": None}]}
    from logsense.lifecycle import timeline

    page = io.StringIO()
    write_html(page, [], {}, [], marks, timeline=timeline([]))
    circles = page.getvalue().count("<circle")
    assert circles == len(marks.all()) <= 2_000
    svg = io.StringIO()
    from logsense.report_html import timeline_svg

    svg.write(timeline_svg(marks, [incident]))
    linked = re.findall(r"<a href='#inc-inc-oom'><circle[^>]*><title>([^<]*)</title>", svg.getvalue())
    assert len(linked) == 1 and CRITICAL in linked[0] and "(×" in linked[0]
