"""Every VM's life from the logs (logsense/lifecycle.py): runs, host boots, the reboot incident,
downtime, `logsense vms`. On the lab's real recordings and on fixtures/lifecycle/ (real lines,
new times and names: see its README)."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from datetime import datetime

import pytest
from conftest import FIXTURES, logsense, read_events

import logsense as ls
from logsense import batch, lifecycle
from logsense.catalogue import parse_pattern

LAB = FIXTURES / "lab"
LC = FIXTURES / "lifecycle"
REBOOT = LC / "reboot-50" / "kvm01"
MIGRATION = [LC / "migration" / "kvm01", LC / "migration" / "kvm02"]
SINGLE = LC / "single" / "kvm03"
NOT_BACK = ["vm07", "vm23", "vm41"]


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def reboot_events():
    evs, _ = read_events([REBOOT])
    return evs


def runs_by_vm(tl):
    out = {}
    for r in tl.runs:
        out.setdefault(r.vm, []).append(r)
    return out


# -- runs from the lab's real recordings ----------------------------------------------------------

@pytest.mark.parametrize(("scenario", "end_reason"), [
    ("destroy", "destroyed"), ("qemu-killed", "crashed"), ("clean-shutdown", "shutdown"),
    ("missing-image", "failed"), ("unreadable-image", "failed"),
])
def test_a_lab_run_ends_as_libvirt_said(scenario, end_reason):
    evs, _ = read_events([LAB / scenario / "warn"])
    tl = lifecycle.timeline(evs)
    assert [(r.vm, r.end_reason) for r in tl.runs] == [(f"lab-{scenario}", end_reason)]
    run = tl.runs[0]
    assert run.start is not None and run.end is not None and run.start <= run.end
    assert run.start_reason == "manual"  # no host boot in the lab's logs


@pytest.mark.parametrize("level", ["warn", "debug"])
def test_a_host_restart_in_the_lab(level):
    """libvirtd stopped, every QEMU killed, /run emptied, libvirtd started (lab/README.md):
    QEMU's log says nothing of the kill; the restart after libvirtd's start closes the old run
    (unknown) and is autostart (debug: libvirt's start line has conn=(nil); warn: the earlier
    run had ended unseen); the guest not marked autostart looks as if it were still running."""
    evs, _ = read_events([LAB / "host-restart" / level])
    tl = lifecycle.timeline(evs)
    got = {vm: [(r.start_reason, r.end_reason) for r in rs] for vm, rs in runs_by_vm(tl).items()}
    assert got == {
        "lab-restart-auto": [("manual", "unknown"), ("autostart", "destroyed")],  # destroyed: the lab's clean-up
        "lab-restart-manual": [("manual", "running")],
        "lab-restart-broken": [("manual", "unknown"), ("autostart", "failed")],
    }
    daemon = max(e.ts for e in evs if e.pattern_id == "libvirt.virt_layer.daemon-started")
    assert runs_by_vm(tl)["lab-restart-auto"][0].end == daemon
    failed = next(d for _, d in batch.pairs(evs) if d["vm"] == "lab-restart-broken")
    assert failed["category"] == "disk_image"
    assert any("Failed to autostart VM 'lab-restart-broken'" in e["message"] for e in failed["evidence"])
    assert failed["down_at"] == lifecycle._iso(daemon)  # down since before the daemon found it dead


def test_one_start_seen_in_several_files_is_one_run():
    evs, _ = read_events([LAB / "destroy" / "debug"])  # libvirtd's debug start line + QEMU's header
    tl = lifecycle.timeline(evs)
    assert len(tl.runs) == 1
    assert {e.record.source for e in tl.runs[0].events} >= {"libvirtd", "qemu"}


# -- a host with 50 VMs, rebooted, 3 of them not back ----------------------------------------------

def test_the_reboot_ends_every_run_and_47_vms_are_autostarted(reboot_events):
    tl = lifecycle.timeline(reboot_events)
    boots = [m for m in tl.marks if m.kind == "boot"]
    assert [m.ts for m in boots] == [ts("2024-03-05T07:59:50+00:00"), ts("2024-03-05T10:15:40+00:00")]
    assert [m.event.record.message for m in tl.marks if m.kind == "shutdown"] == ["System is rebooting."]
    runs = runs_by_vm(tl)
    assert len(runs) == 50
    for vm, rs in runs.items():
        first = rs[0]
        assert first.end_reason == "host-down" and first.stop_detail == "shutdown", vm
        assert ts("2024-03-05T10:14:00+00:00") <= first.end < ts("2024-03-05T10:15:40+00:00")
        if vm in ("vm07", "vm41"):
            assert len(rs) == 1
        elif vm == "vm23":
            assert [(r.start_reason, r.end_reason) for r in rs[1:]] == [("autostart", "failed")]
        else:
            assert [(r.start_reason, r.end_reason) for r in rs[1:]] == [("autostart", "running")], vm


def test_vms_that_did_not_come_back_are_one_host_incident(reboot_events):
    pairs = batch.pairs(reboot_events)
    reboot = [d for inc, d in pairs if isinstance(inc, lifecycle.RebootIncident)]
    assert len(reboot) == 1
    d = reboot[0]
    assert d["scope"] == "host" and d["host"] == "kvm01" and d["category"] == "host"
    assert d["affected_vms"] == NOT_BACK
    assert d["title"] == ("host kvm01 rebooted at 2024-03-05T10:15:40+00:00; vm07, vm23, vm41 were running "
                          "before and were not started again")
    assert d["root_cause"] == "host.host.kernel-boot"
    assert "50 VM(s) were running before; 47 were started again within 10 min" in d["explanation"]
    assert d["first_seen"].startswith("2024-03-05T10:14:00")  # the shutdown began
    fixes = " ".join(d["remediation"])
    assert "virsh start $vm" in fixes and "vm07 vm23 vm41" in fixes and "virsh autostart $vm" in fixes
    assert "/etc/libvirt/qemu/autostart/" in fixes and "storage pool or network" in fixes
    assert "virsh list --all --autostart" in d["diagnostics"]
    assert d["recovered_at"] is None  # they never came back in these logs
    assert {e["message"] for e in d["evidence"]} >= {"System is rebooting.", "shutting down, reason=shutdown"}


def test_the_failed_autostart_is_its_own_incident_linked_both_ways(reboot_events):
    by_id = {d["id"]: d for _, d in batch.pairs(reboot_events)}
    reboot = next(d for d in by_id.values() if d["title"].startswith("host kvm01 rebooted"))
    failed = next(d for d in by_id.values() if d["vm"] == "vm23")
    assert failed["root_cause"] == "libvirt.disk_image.storage-file-missing"
    assert failed["related_incidents"] == [reboot["id"]] and reboot["related_incidents"] == [failed["id"]]
    assert f"vm23 was started but failed to start (incident {failed['id']})" in reboot["explanation"]
    assert reboot["id"] in failed["explanation"]
    assert any("Failed to autostart VM 'vm23'" in e["message"] for e in failed["evidence"])


def test_downtime_of_vms_still_down_runs_to_the_end_of_the_logs(reboot_events):
    d = next(d for _, d in batch.pairs(reboot_events) if d["scope"] == "host")
    per_vm = {x["vm"]: x for x in d["downtime"]}
    assert set(per_vm) == set(NOT_BACK)
    vm07 = per_vm["vm07"]
    assert vm07["down_at"].startswith("2024-03-05T10:14:07") and vm07["back_at"] is None and vm07["still_down"]
    last = max(e.ts for e in reboot_events)
    assert vm07["seconds"] == pytest.approx((last - ts(vm07["down_at"])).total_seconds())
    assert d["down_at"] == min(x["down_at"] for x in d["downtime"])
    assert d["downtime_seconds"] == max(x["seconds"] for x in d["downtime"])


def test_no_reboot_incident_when_every_vm_came_back(reboot_events):
    kept = [e for e in reboot_events if e.vm not in NOT_BACK and NOT_BACK[1] not in e.record.message]
    assert not [d for _, d in batch.pairs(kept) if d["title"].startswith("host kvm01 rebooted")]


def test_a_host_that_went_down_without_a_shutdown_line_crashed(reboot_events):
    """No `System is rebooting`, no stop lines: a crash or power loss. The runs end at the
    host's last line before the boot."""
    boot = ts("2024-03-05T10:15:40+00:00")
    kept = [e for e in reboot_events if not (ts("2024-03-05T10:14:00+00:00") <= e.ts < boot)]
    pairs = batch.pairs(kept)
    d = next(d for _, d in pairs if d["title"].startswith("host kvm01 rebooted"))
    assert "went down without a shutdown line (a crash or a power loss)" in d["explanation"]
    last_before = max(e.ts for e in kept if e.ts < boot)
    tl = lifecycle.timeline(kept)
    assert {r.end for r in tl.runs if r.end_reason == "host-down"} == {last_before}


def test_a_shutdown_line_followed_by_guest_starts_was_no_shutdown(reboot_events):
    """`System is rebooting` at 08:00:30, while VMs were still being started: the host went on.
    The shutdown begins with `Reached target shutdown.target` at 10:15:10, after the guests'
    stops at 10:14, which were then their own."""
    moved = [replace(e, record=replace(e.record, ts=ts("2024-03-05T08:00:30+00:00")))
             if e.record.message == "System is rebooting." else e for e in reboot_events]
    tl = lifecycle.timeline(sorted(moved, key=lambda e: e.ts))
    assert [(m.kind, m.ts.strftime("%H:%M:%S")) for m in tl.marks] == [
        ("boot", "07:59:50"), ("shutdown", "10:15:10"), ("boot", "10:15:40")]
    assert runs_by_vm(tl)["vm01"][0].end_reason == "shutdown"


def test_the_grace_period_is_an_option(reboot_events):
    """Starts came 21-70 s after the boot: with 30 s of grace, most VMs were not back in time."""
    d = next(d for _, d in batch.pairs(reboot_events, grace=30) if d["scope"] == "host")
    assert len(d["affected_vms"]) == 41  # vm01..vm09 were started by 10:16:10
    assert "and 29 more" in d["title"]
    assert d["recovered_at"] is None  # vm07, vm41 never came back
    proc = logsense("analyze", str(REBOOT), "--format", "json", "--reboot-grace", "30")
    incs = json.loads(proc.stdout)["incidents"]
    assert len(next(i for i in incs if i["scope"] == "host")["affected_vms"]) == 41
    bad = logsense("analyze", str(REBOOT), "--reboot-grace", "-1", check=False)
    assert bad.returncode == 2 and "--reboot-grace" in bad.stderr and "Traceback" not in bad.stderr


# -- a migration pair, a crash, a destroy, a guest shutdown ---------------------------------------

def test_a_migration_leaves_both_hosts_logs():
    evs, _ = read_events(MIGRATION)
    tl = lifecycle.timeline(evs)
    got = sorted((r.vm, r.host, r.start_reason, r.end_reason) for r in tl.runs)
    assert got == [("db01", "kvm01", "manual", "migrated-out"), ("db01", "kvm02", "migrated-in", "running"),
                   ("web01", "kvm01", "manual", "migrated-out"), ("web01", "kvm02", "migrated-in", "running")]
    rows = {r["vm"]: r for r in lifecycle.summary(tl)}
    assert rows["web01"]["host"] == "kvm02" and rows["web01"]["state"] == "running"
    assert rows["web01"]["downtime_seconds"] == 0.0  # the destination ran before the source stopped
    assert not batch.pairs(evs)  # a migration is no incident


def test_crash_destroy_and_shutdown(tmp_path):
    evs, _ = read_events([SINGLE])
    tl = lifecycle.timeline(evs)
    got = [(r.vm, r.end_reason) for r in sorted(tl.runs, key=lambda r: (r.vm, r.start))]
    assert got == [("app01", "crashed"), ("app01", "running"), ("app02", "destroyed"), ("app03", "shutdown"),
                   ("app04", "running")]
    app01 = runs_by_vm(tl)["app01"][0]
    assert len(app01.events) == 4  # QEMU's and machined's lines of the start and of the stop
    incs = [d for _, d in batch.pairs(evs)]
    assert [i["vm"] for i in incs] == ["app01"]  # destroy and shutdown raise nothing
    crash = incs[0]
    assert crash["down_at"].startswith("2024-03-05T09:30:00") and crash["downtime_seconds"] == 300.0
    assert crash["downtime"] == [{"vm": "app01", "down_at": "2024-03-05T09:30:00.000000+00:00",
                                  "back_at": "2024-03-05T09:35:00.000000+00:00", "seconds": 300.0,
                                  "still_down": False}]
    assert crash["explanation"].endswith(" Downtime: app01 down from 2024-03-05 09:30:00 to 2024-03-05 09:35:00 "
                                         "(5m 00s).")
    rows = {r["vm"]: r for r in lifecycle.summary(tl)}
    assert rows["app01"]["crashes"] == 1 and rows["app01"]["state"] == "running"
    assert rows["app02"]["state"] == "shut off" and rows["app02"]["last_stop_reason"] == "destroyed"


def test_a_failed_start_long_after_a_start_ends_the_run_unseen():
    """app04 runs since 09:00; at 09:50 its start fails (the lab's missing-image line, moved
    there): libvirt starts no running guest, so the 09:00 run had ended without a line."""
    evs, _ = read_events([SINGLE])
    lab, _ = read_events([LAB / "missing-image" / "warn"])
    failed = next(e for e in lab if e.fields.get("reason") == "failed")
    moved = replace(failed, vm="app04", record=replace(failed.record, host="kvm03",
                                                       ts=ts("2024-03-05T09:50:00+00:00")))
    tl = lifecycle.timeline(sorted([*evs, moved], key=lambda e: e.ts))
    assert [(r.start_reason, r.end_reason, r.end) for r in runs_by_vm(tl)["app04"]] == [
        ("manual", "unknown", moved.ts), ("manual", "failed", moved.ts)]


# -- the command line -----------------------------------------------------------------------------

def test_vms_prints_one_line_per_vm():
    proc = logsense("vms", str(REBOOT), "--format", "text")
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["VM", "HOST", "STATE"]
    vm_lines = [line for line in lines[1:] if line.startswith("vm")]
    assert len(vm_lines) == 50
    vm23 = next(line for line in vm_lines if line.startswith("vm23 "))
    assert "shut off" in vm23 and "(failed)" in vm23 and "(autostart)" in vm23
    vm01 = next(line for line in vm_lines if line.startswith("vm01 "))
    assert "running" in vm01 and "(host-down)" in vm01 and vm01.rstrip().endswith("2m 00s")
    assert any("boot at 2024-03-05 10:15:40" in line for line in lines)


def test_vms_json_markdown_html():
    data = json.loads(logsense("vms", *map(str, MIGRATION), "--format", "json").stdout)
    assert {v["vm"]: v["last_start_reason"] for v in data["vms"]} == {"db01": "migrated-in", "web01": "migrated-in"}
    assert len(data["runs"]) == 4 and data["window"]["first"].startswith("2024-03-05T09:00:00")
    md = logsense("vms", str(SINGLE), "--format", "markdown").stdout
    assert "| app01 | kvm03 | running |" in md
    page = logsense("vms", str(SINGLE), "--format", "html").stdout
    assert page.count("<rect") >= 5 and "app02" in page and "<script" not in page
    bad = logsense("vms", str(SINGLE), "--format", "jsonl", check=False)
    assert bad.returncode == 2 and "'jsonl' is not one of 'text', 'json', 'markdown', 'html'" in bad.stderr
    negative = logsense("vms", str(SINGLE), "--reboot-grace", "-5", check=False)
    assert negative.returncode == 2 and "--reboot-grace" in negative.stderr
    missing = logsense("vms", "/nonexistent/logs", check=False)
    assert missing.returncode == 2 and "no such file" in missing.stderr


@pytest.mark.parametrize("fmt", ["text", "markdown", "html", "jsonl"])
def test_analyze_reports_the_reboot_in_every_format(fmt):
    out = logsense("analyze", str(REBOOT), "--format", fmt).stdout
    assert "host kvm01 rebooted at 2024-03-05T10:15:40+00:00; vm07, vm23, vm41 were" in out
    assert "for vm in vm07 vm23 vm41; do virsh start $vm; done" in out
    if fmt == "html":
        assert "<h2>VM lifecycle</h2>" in out and out.count("<rect") > 50


def test_the_incident_record_states_each_vms_downtime():
    from logsense.record import load_record_data, render

    evs, _ = read_events([SINGLE])
    crash = next(d for _, d in batch.pairs(evs) if d["vm"] == "app01")
    assert "app01 was down from 2024-03-05 09:30:00 UTC to 2024-03-05 09:35:00 UTC: 5 min 00 s." in render(
        crash, load_record_data())
    evs, _ = read_events([REBOOT])
    reboot = next(d for _, d in batch.pairs(evs) if d["scope"] == "host")
    assert "vm41 was down from 2024-03-05 10:14:41 UTC and still down when the logs end (2 min 09 s by then)." \
        in render(reboot, load_record_data())


def test_every_incident_json_has_downtime_fields():
    incs = json.loads(logsense("analyze", str(LAB / "qemu-killed" / "warn"), "--format", "json").stdout)["incidents"]
    assert incs and all({"down_at", "downtime_seconds", "downtime"} <= set(i) for i in incs)
    assert incs[0]["down_at"].startswith("2026-11-25T18:49:41.622")


# -- the DataFrame API and the plot ---------------------------------------------------------------

@pytest.fixture(scope="module")
def single_frames():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = ls.events([str(SINGLE)], tz="UTC")
    return ev, ls.incidents(ev)


def test_lifecycle_dataframe(single_frames):
    ev, _ = single_frames
    runs = ls.lifecycle(ev)
    assert list(runs.columns) == ["vm", "host", "start", "end", "start_reason", "end_reason"]
    assert str(runs["start"].dtype) == "datetime64[ns, UTC]"
    assert len(runs) == 5 and runs["end"].isna().sum() == 2  # app01's second run and app04 still run
    assert set(runs["end_reason"]) == {"crashed", "destroyed", "shutdown", "running"}


def test_the_reboot_incident_is_a_dataframe_row(reboot_events):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = ls.events([str(REBOOT)], tz="UTC")
    inc = ls.incidents(ev)
    row = inc[inc["scope"] == "host"].iloc[0]
    assert list(row["affected_vms"]) == NOT_BACK and row["category"] == "host"
    assert set(ev.loc[row["evidence"], "pattern"]) >= {"host.host.kernel-boot", "host.host.system-shutdown"}


def test_timeline_draws_running_bars(single_frames, tmp_path):
    import matplotlib
    import matplotlib.image

    matplotlib.use("Agg")
    ev, inc = single_frames
    fig = ls.plot.timeline(ev, inc)
    bars = [p for p in fig.axes[0].patches if abs(p.get_height() - 0.25) < 1e-9]
    assert len(bars) == 5
    assert "running" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    without = ls.plot.timeline(ev, inc, runs=False)
    assert not [p for p in without.axes[0].patches if abs(p.get_height() - 0.25) < 1e-9]
    path = tmp_path / "timeline.png"
    fig.savefig(path, dpi=60)
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 100 and pixels[..., :3].std() > 0.05


# -- the catalogue field --------------------------------------------------------------------------

def test_a_pattern_lifecycle_value_is_checked():
    problems: list[str] = []
    base = {"id": "x.host.y", "sources": ["syslog"], "regex": "boot", "category": "host", "severity": "minor",
            "role": "context", "title": "t", "cause": "c"}
    assert parse_pattern({**base, "lifecycle": "vm-start"}, "f.toml", problems).lifecycle == "vm-start"
    assert parse_pattern({**base, "lifecycle": "vm-launch"}, "f.toml", problems) is None
    assert problems == ["f.toml: x.host.y: lifecycle 'vm-launch' is not one of vm-start, vm-stop, "
                        "vm-start-failed, migrate-in, host-boot, host-shutdown, daemon-start"]


def test_the_grace_period_is_a_setting_too(tmp_path):
    """`reboot_grace` in the settings file: analyze and watch read it; a bad value is a usage error."""
    conf = tmp_path / "logsense.toml"
    conf.write_text("reboot_grace = 30\n")
    incs = json.loads(logsense("analyze", str(REBOOT), "--format", "json", "--config", str(conf)).stdout)["incidents"]
    assert len(next(i for i in incs if i["scope"] == "host")["affected_vms"]) == 41
    conf.write_text("reboot_grace = -5\n")
    bad = logsense("watch", str(REBOOT), "--no-journal", "--state-dir", str(tmp_path / "state"), "--config", str(conf),
                   check=False)
    assert bad.returncode == 2 and "reboot_grace must be a number of seconds" in bad.stderr
    assert "Traceback" not in bad.stderr
