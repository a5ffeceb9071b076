"""`logsense analyze` on the bundled sample outage: the incidents an operator needs, in every format."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import FIXTURES, logsense, read_events

from logsense.correlator import Correlator, correlate

SAMPLE = FIXTURES / "sample-outage"


@pytest.fixture(scope="module")
def report() -> dict:
    proc = logsense("analyze", "--format", "json", "--tz", "UTC", str(SAMPLE))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def by_root(report: dict) -> dict[str, dict]:
    return {i["root_cause"]: i for i in report["incidents"]}


def test_sample_outage_incidents(report):
    incs = by_root(report)
    assert len(report["incidents"]) == 5
    app = incs["libvirt.disk_image.storage-file-missing"]
    assert (app["scope"], app["vm"], app["category"], app["affected_vms"]) == ("vm", "app01", "disk_image", ["app01"])
    assert "twice" in app["explanation"] or "2 times" in app["title"]  # a start loop is one incident, counted
    oom = incs["kernel.memory.oom-killed-qemu"]
    assert (oom["scope"], oom["vm"], oom["category"], oom["affected_vms"]) == ("host", None, "memory", ["db01"])
    assert oom["recovered_at"] == "2024-03-05T10:07:31.045000+00:00"  # db01 started again
    assert "OOM killer" in oom["explanation"] and "reason=crashed" in oom["explanation"]
    web = incs["qemu.permission.image-open-denied"]
    assert (web["vm"], web["category"]) == ("web01", "permission")
    assert "/srv/images/web01.qcow2" in web["explanation"]
    assert any("namei -l /srv/images/web01.qcow2" in d for d in web["diagnostics"])
    big = incs["qemu.memory.guest-ram-alloc-failed"]
    assert (big["vm"], big["category"], big["recovered_at"]) == ("big01", "memory", None)
    daemon = incs["systemd.virt_layer.daemon-killed"]
    assert (daemon["scope"], daemon["category"]) == ("host", "virt_layer")
    assert daemon["recovered_at"] == "2024-03-05T10:40:19.870110+00:00"  # systemd restarted it
    assert all(i["severity"] == "critical" for i in report["incidents"])


def test_evidence_comes_cause_first_with_file_and_line(report):
    web = by_root(report)["qemu.permission.image-open-denied"]
    first = web["evidence"][0]
    assert first["pattern"] == "qemu.permission.image-open-denied" and first["role"] == "cause"
    assert first["file"].endswith("var/log/libvirt/qemu/web01.log") and first["line"] == 33
    evs, _ = read_events([SAMPLE])
    assert {e.record.source for e in evs if e.pattern} == {"libvirtd", "qemu", "syslog", "journal"}
    app = by_root(report)["libvirt.disk_image.storage-file-missing"]
    missing = [e for e in app["evidence"] if e["pattern"] == "libvirt.disk_image.storage-file-missing"]
    assert sum(e["count"] for e in missing) == 4  # 2 starts x (libvirtd.log + journal), listed once each


def test_benign_chatter_raises_nothing(report):
    vms = {vm for i in report["incidents"] for vm in i["affected_vms"]}
    assert "web02" not in vms  # it only started normally and took a DHCP lease


def test_ids_are_stable_across_runs(report):
    again = json.loads(logsense("analyze", "--format", "json", "--tz", "UTC", str(SAMPLE)).stdout)
    assert [i["id"] for i in again["incidents"]] == [i["id"] for i in report["incidents"]]
    assert len({i["id"] for i in report["incidents"]}) == 5


def test_stats(report):
    s = report["stats"]
    assert s["files_read"] >= 8 and s["lines_read"] > 100 and s["events_matched"] > 20
    assert s["incidents"] == 5 and s["seconds"] >= 0


def test_replaying_events_one_by_one_gives_the_batch_incidents():
    evs, _ = read_events([SAMPLE])
    batch = [i.to_dict() for i in correlate(evs)]
    c = Correlator()
    emitted: dict[str, list[dict]] = {}
    for ev in evs:
        for inc in c.feed(ev):
            emitted.setdefault(inc.id, []).append(inc.to_dict())
    for inc in c.flush():
        emitted.setdefault(inc.id, []).append(inc.to_dict())
    assert set(emitted) == {i["id"] for i in batch}
    for inc in batch:
        versions = emitted[inc["id"]]
        assert [v["version"] for v in versions] == list(range(1, len(versions) + 1))
        assert versions[0]["status"] == "open" and versions[-1]["status"] == "resolved"
        final = dict(versions[-1])
        assert final == inc


def test_since_until_and_window(tmp_path):
    out = logsense("analyze", "--format", "json", "--tz", "UTC", "--since", "2024-03-05T10:10:00+00:00",
                   "--until", "2024-03-05T10:30:00+00:00", str(SAMPLE))
    roots = {i["root_cause"] for i in json.loads(out.stdout)["incidents"]}
    assert roots == {"qemu.permission.image-open-denied", "qemu.memory.guest-ram-alloc-failed"}
    tight = json.loads(logsense("analyze", "--format", "json", "--window", "30", str(SAMPLE)).stdout)
    assert len(tight["incidents"]) == 6  # app01's two failed starts, 68 s apart, no longer one incident


def test_fail_on_sets_the_exit_status():
    assert logsense("analyze", "--format", "json", "--fail-on", "critical", str(SAMPLE)).returncode == 1
    empty = logsense("analyze", "--format", "json", "--fail-on", "minor", str(FIXTURES / "lab" / "destroy" / "warn"))
    assert empty.returncode == 0
    bad = logsense("analyze", "--fail-on", "fatal", str(SAMPLE), check=False)
    assert bad.returncode == 2 and "--fail-on" in bad.stderr and "Traceback" not in bad.stderr


def test_text_report_lists_incidents_most_severe_first():
    out = logsense("analyze", "--format", "text", str(SAMPLE)).stdout
    assert "CRITICAL app01 failed to start: disk image missing" in out
    assert "kvm01: host out of memory" in out and "VMs: db01" in out
    assert "$ free -h" in out and "Recovered" in out
    assert out.index("app01 failed to start") < out.index("libvirt daemon crashed")


def test_markdown_report_for_a_ticket():
    md = logsense("analyze", "--format", "markdown", str(SAMPLE)).stdout
    assert md.startswith("# logsense report: 5 incidents\n")
    assert "| critical | 2024-03-05 09:58:02 | vm | app01 | 1 |" in md
    assert "## web01 failed to start: QEMU denied access to a disk image" in md
    assert "```sh\nls -lZ /srv/images/web01.qcow2" in md


def test_show_entities_explains_attribution():
    err = logsense("analyze", "--format", "json", "--show-entities", str(SAMPLE)).stderr
    assert "path   /srv/images/web01.qcow2 -> web01" in err
    assert "pid    28932 -> db01  (OOM report's cgroup" in err


def test_control_characters_never_reach_the_terminal(tmp_path):
    log = tmp_path / "libvirtd.log"
    log.write_text("2024-03-05 10:00:00.000+0000: 1: error : virStorageSourceReportBrokenChain:1283 : "
                   "Cannot access storage file '/img/\x1b[31mevil\x07.qcow2': No such file or directory\n")
    out = logsense("analyze", "--format", "text", str(log)).stdout
    assert "\x1b[31m" not in out and "\x07" not in out and "\\x1b[31mevil\\x07" in out


def test_html_report_is_self_contained_and_opens_in_a_browser(tmp_path):
    html_file = tmp_path / "report.html"
    logsense("analyze", "--format", "html", "-o", str(html_file), str(SAMPLE))
    html = html_file.read_text()
    assert "<svg" in html and html.count("<section class='incident") == 5
    assert "src=" not in html and "<script" not in html  # nothing fetched, nothing run
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed (bash dev.sh test installs it)")
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", html_file.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "web01 failed to start" in proc.stdout and "<circle" in proc.stdout


def test_demo_runs_with_no_arguments():
    out = logsense("demo").stdout
    assert "No incidents" not in out and "app01" in out


def test_unrecognised_errors_are_summarised_by_shape(tmp_path):
    log = tmp_path / "libvirtd.log"
    log.write_text("".join(f"2024-03-05 10:00:0{n}.000+0000: 1: error : someFunc:1 : internal error: frobnicator "
                           f"{n} failed on '/dev/x{n}'\n" for n in range(3)))
    rep = json.loads(logsense("analyze", "--format", "json", str(log)).stdout)
    assert rep["incidents"] == []
    assert rep["unrecognised_errors"][0]["count"] == 3
    assert rep["unrecognised_errors"][0]["shape"] == "internal error: frobnicator <n> failed on '…'"


def test_no_path_reads_the_live_host_without_crashing():
    proc = logsense("analyze", "--format", "json", check=False)
    assert proc.returncode in (0, 3) and "Traceback" not in proc.stderr  # 3: this host has no logs to read
    assert proc.returncode == 3 or "incidents" in json.loads(proc.stdout)


def test_sample_fixture_is_what_the_generator_writes(tmp_path):
    assert (Path(SAMPLE) / "var/log/journal").is_dir() and list(SAMPLE.rglob("*.journal.xz"))


def test_a_fleet_archive_never_correlates_across_hosts(tmp_path):
    """Two hosts' trees in one run: the same minute's failures stay two incidents, one per host."""
    for host in ("kvm01", "kvm02"):
        log = tmp_path / host / "var" / "log"
        (log / "libvirt" / "qemu").mkdir(parents=True)
        (log / "messages").write_text(f"2024-03-05T10:00:00.000000+00:00 {host} systemd[1]: Started "
                                      "session-1.scope - Session 1 of User root.\n")
        (log / "libvirt" / "libvirtd.log").write_text(
            "2024-03-05 10:00:01.000+0000: 1: error : virStorageSourceReportBrokenChain:1283 : Cannot access "
            "storage file '/var/lib/libvirt/images/web01.qcow2': No such file or directory\n")
        (log / "libvirt" / "qemu" / "web01.log").write_text("2024-03-05 10:00:01.001+0000: shutting down, "
                                                          "reason=failed\n")
    rep = json.loads(logsense("analyze", "--format", "json", str(tmp_path / "kvm01"), str(tmp_path / "kvm02")).stdout)
    got = sorted((i["host"], i["vm"], i["root_cause"]) for i in rep["incidents"])
    assert got == [("kvm01", "web01", "libvirt.disk_image.storage-file-missing"),
                   ("kvm02", "web01", "libvirt.disk_image.storage-file-missing")]
    assert len({i["id"] for i in rep["incidents"]}) == 2
