"""`logsense analyze --fleet`: one Dask task per host on a real LocalCluster, the same incidents
as each host alone, and fleet incidents — one shared cause on several hosts — that never mix
unrelated hosts."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import FIXTURES, logsense

from logsense import fleet
from logsense.pipeline import Options, parse_zone

LAB = FIXTURES / "lab"
# the kernel's and libvirt's own message texts
NFS_DOWN = "{ts} {host} kernel: [12345.678901] nfs: server {server} not responding, still trying\n"
OOM = ("{ts} {host} kernel: [12345.678901] Out of memory: Killed process 28932 (qemu-system-x86) "
       "total-vm:8724532kB, anon-rss:4194304kB, file-rss:20kB, shmem-rss:0kB, UID:64055 pgtables:9000kB "
       "oom_score_adj:0\n")
BENIGN = "{ts} {host} systemd[1]: Started session-4.scope - Session 4 of User root.\n"
PAUSED = ("{ts}: 1234: warning : qemuProcessHandleIOError:851 : Transitioned guest {vm} to paused state due to IO "
          "error\n")


def host_folder(root: Path, name: str, minute: int, second: int, line: str = NFS_DOWN,
                server: str = "nfs01.example.com", vms: tuple[str, ...] = ()) -> Path:
    """A host's /var/log: syslog with one failure line at 10:MM:SS, libvirtd pausing its VMs."""
    log = root / name / "var" / "log"
    (log / "libvirt").mkdir(parents=True)
    ts = f"2024-03-05T10:{minute:02d}:{second:02d}.000000+00:00"
    (log / "messages").write_text(BENIGN.format(ts="2024-03-05T09:00:00.000000+00:00", host=name)
                                  + line.format(ts=ts, host=name, server=server))
    (log / "libvirt" / "libvirtd.log").write_text("".join(
        PAUSED.format(ts=f"2024-03-05 10:{minute:02d}:{second + 1:02d}.000+0000", vm=vm) for vm in vms))
    return root / name


@pytest.fixture(scope="module")
def cluster():
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as c:
        yield c


def test_each_host_gets_the_incidents_it_gets_alone(cluster):
    hosts = [LAB / "disk-full" / "debug", LAB / "qemu-killed" / "debug", FIXTURES / "sample-outage"]
    opts = Options(tz=parse_zone("UTC"))
    results = fleet.run_tasks([str(h) for h in hosts], opts, 120.0, scheduler=cluster.scheduler_address)
    for h, res in zip(hosts, results, strict=True):
        alone = json.loads(logsense("analyze", "--format", "json", "--tz", "UTC", str(h)).stdout)
        assert res.path == str(h)
        assert res.incidents == alone["incidents"], h
        assert res.incidents, f"{h}: the fixture has incidents"


def test_one_shared_cause_on_several_hosts_is_one_fleet_incident(tmp_path, cluster):
    a = host_folder(tmp_path, "kvm-a", 11, 10, vms=("web01", "web02"))
    b = host_folder(tmp_path, "kvm-b", 11, 40, vms=("db01",))
    c = host_folder(tmp_path, "kvm-c", 12, 5, vms=("app01",))
    proc = logsense("analyze", "--fleet", "--scheduler", cluster.scheduler_address, "--format", "json",
                    "--tz", "UTC", str(a), str(b), str(c))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert next(iter(report)) == "fleet"  # the fleet summary comes first
    assert [h["host"] for h in report["fleet"]["hosts"]] == ["kvm-a", "kvm-b", "kvm-c"]
    first = report["incidents"][0]
    assert first["scope"] == "fleet" and first["hosts"] == ["kvm-a", "kvm-b", "kvm-c"]
    assert first["root_cause"] == "kernel.storage.nfs-server-not-responding" and first["host"] is None
    assert first["vms_by_host"] == {"kvm-a": ["web01", "web02"], "kvm-b": ["db01"], "kvm-c": ["app01"]}
    assert "nfs01.example.com" in first["title"] and "3 hosts" in first["explanation"]
    assert "storage backend the hosts share" in first["explanation"]
    host_incidents = [i for i in report["incidents"] if i["scope"] != "fleet"]
    assert sorted(i["host"] for i in host_incidents) == ["kvm-a", "kvm-b", "kvm-c"]  # each keeps its own
    assert sorted(first["incidents"]) == sorted(i["id"] for i in host_incidents)
    assert report["stats"]["hosts"] == 3 and report["stats"]["fleet_incidents"] == 1


def test_unrelated_hosts_are_never_merged(tmp_path, cluster):
    """Same time but another cause, the same cause on another server, the same cause hours
    later: none of them joins the two hosts that share the outage."""
    hosts = [host_folder(tmp_path, "kvm-a", 11, 10, vms=("web01",)),
             host_folder(tmp_path, "kvm-b", 11, 20, vms=("web02",)),
             host_folder(tmp_path, "kvm-oom", 11, 15, line=OOM),
             host_folder(tmp_path, "kvm-other-nfs", 11, 15, server="nfs02.example.com", vms=("web03",)),
             host_folder(tmp_path, "kvm-later", 58, 0, vms=("web04",))]
    opts = Options(tz=parse_zone("UTC"))
    results = fleet.run_tasks([str(h) for h in hosts], opts, 120.0, scheduler=cluster.scheduler_address)
    assert all(r.incidents for r in results)
    (shared,) = fleet.fleet_incidents(results, 120.0)
    assert shared["hosts"] == ["kvm-a", "kvm-b"] and shared["affected_vms"] == ["web01", "web02"]


def test_text_report_starts_with_the_fleet_summary(tmp_path, cluster):
    a = host_folder(tmp_path, "kvm-a", 11, 10, vms=("web01",))
    b = host_folder(tmp_path, "kvm-b", 11, 12, vms=("web02",))
    proc = logsense("analyze", "--fleet", "--scheduler", cluster.scheduler_address, "--format", "text",
                    "--tz", "UTC", str(a), str(b))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Fleet: 2 hosts, 1 fleet incident(s)\n")
    assert "2 hosts: NFS server not responding" in proc.stdout.splitlines()[1]


def test_every_report_format_starts_with_the_fleet_summary(tmp_path, cluster):
    a = host_folder(tmp_path, "kvm-a", 11, 10, vms=("web01",))
    b = host_folder(tmp_path, "kvm-b", 11, 12, vms=("web02",))

    def run(fmt: str, *extra: str) -> str:
        proc = logsense("analyze", "--fleet", "--scheduler", cluster.scheduler_address, "--format", fmt,
                        "--tz", "UTC", *extra, str(a), str(b))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    markdown = run("markdown")
    assert markdown.startswith("# Fleet: 2 hosts, 1 fleet incident(s)\n")
    assert markdown.index("| kvm-b | 1 incident(s), worst critical |") < markdown.index("# logsense report")
    page = run("html")
    fleet_at, report_at = page.index("<section class='fleet'><h2>Fleet: 2 hosts"), page.index("<table class='summary'>")
    shared = json.loads(run("json"))["incidents"][0]
    assert fleet_at < report_at and f"href='#inc-{shared['id']}'" in page[fleet_at:report_at]
    assert "<svg" not in page  # the events stay with the workers: no timeline is drawn from nothing
    assert run("markdown", "--lang", "zh").startswith("# 集群：2 台宿主机，1 个集群故障\n")
    record = run("record")
    assert record.startswith("# Incident record: 2 hosts: NFS server not responding")
    first = record.split("\n---\n")[0]  # the fleet incident's record: which host each line is from
    assert "| Host | kvm-a, kvm-b |" in first and "`kvm-a messages:2`" in first and "`kvm-b messages:2`" in first


def test_bad_fleet_input_is_one_line(tmp_path):
    proc = logsense("analyze", "--fleet", "--tz", "UTC", str(tmp_path / "missing"), check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("logsense: error: --fleet:")
    assert "Traceback" not in proc.stderr
    proc = logsense("analyze", "--scheduler", "tcp://127.0.0.1:1", str(tmp_path), check=False)
    assert proc.returncode == 2 and "--scheduler needs --fleet" in proc.stderr


def test_a_fleet_reads_into_one_dataframe_with_a_host_column(tmp_path):
    a = host_folder(tmp_path, "kvm-a", 11, 10, vms=("web01",))
    b = host_folder(tmp_path, "kvm-b", 11, 12, vms=("web02",))
    df = fleet.events([str(a), str(b)], tz="UTC")
    assert set(df["host"]) == {"kvm-a", "kvm-b"}
    assert set(df.loc[df["vm"].notna(), "vm"]) == {"web01", "web02"}


def test_a_cause_common_across_the_fleet_is_not_a_fleet_incident_when_two_hosts_meet_by_chance():
    """A cause seen on 40 hosts at scattered times all day: two of them within the window is
    chance; a dozen within seconds is one shared cause."""
    def result(host: str, ts: datetime) -> fleet.HostResult:
        cause = {"ts": ts.isoformat(), "pattern": "kernel.storage.nfs-server-not-responding", "role": "cause",
                 "fields": {"server": "nfs01.example.com"}, "category": "storage"}
        inc = {"id": host, "evidence": [cause], "affected_vms": [], "last_seen": ts.isoformat(),
               "recovered_at": None, "severity": "critical", "remediation": [], "diagnostics": []}
        return fleet.HostResult(host, host, [inc], {})

    day = datetime(2024, 3, 5, tzinfo=UTC)
    scattered = [result(f"h{i:02d}", day + timedelta(minutes=36 * i)) for i in range(40)]
    scattered.append(result("h-near", day + timedelta(minutes=36 * 7, seconds=30)))  # meets h07
    assert fleet.fleet_incidents(scattered, 120.0) == []
    burst = [result(f"b{i:02d}", day + timedelta(hours=5, seconds=3 * i)) for i in range(12)]
    (shared,) = fleet.fleet_incidents(scattered + burst, 120.0)
    assert shared["hosts"] == [f"b{i:02d}" for i in range(12)]


def _one_cause(host: str, ts: datetime, pattern: str = "kernel.virt_layer.kvm-disabled-by-bios") -> fleet.HostResult:
    cause = {"ts": ts.isoformat(), "pattern": pattern, "role": "cause", "fields": {}, "category": "virt_layer"}
    inc = {"id": f"{host}-{ts.isoformat()}", "evidence": [cause], "affected_vms": [], "last_seen": ts.isoformat(),
           "recovered_at": None, "severity": "critical", "remediation": [], "diagnostics": []}
    return fleet.HostResult(host, host, [inc], {})


def test_a_common_cause_chained_over_a_long_stretch_is_chance():
    """The fleet benchmark's false alarms: a cause 16 times an hour over 200 hosts chains, each
    host within the window of the previous, into 6 to 9 hosts over several minutes. That is its
    rate, not a shared cause; 9 hosts within 20 seconds is one."""
    rnd = random.Random(3)
    day = datetime(2024, 3, 5, tzinfo=UTC)
    common = [_one_cause(f"kvm{rnd.randrange(200):03d}", day + timedelta(seconds=rnd.uniform(0, 86400)))
              for _ in range(380)]
    chained = [_one_cause(f"chain{i}", day + timedelta(hours=12, seconds=50 * i)) for i in range(9)]
    assert fleet.fleet_incidents(common + chained, 120.0) == []
    burst = [_one_cause(f"burst{i}", day + timedelta(hours=18, seconds=2 * i)) for i in range(9)]
    (shared,) = fleet.fleet_incidents(common + burst, 120.0)
    assert shared["hosts"] == sorted(f"burst{i}" for i in range(9))


def test_a_cause_crowded_into_one_hour_is_judged_by_that_hours_rate():
    """Half a cause's hosts met it in one morning hour (every VM started then), the rest over the
    day: hosts meeting in that hour are chance by that hour's rate (a fleet-wide rate calls most
    such days a fleet incident). Five hosts within seconds in a quiet hour are one shared cause.
    Chance is chance: over 20 days at most one false fleet incident, and the five always found."""
    day = datetime(2024, 3, 5, tzinfo=UTC)
    pattern = "qemu.permission.image-open-denied"
    false_alarms = 0
    for seed in range(20):
        rnd = random.Random(seed)
        morning = [_one_cause(f"kvm{h:03d}", day + timedelta(seconds=rnd.uniform(0, 3600)), pattern)
                   for h in range(40)]
        rest = [_one_cause(f"kvm{h:03d}", day + timedelta(seconds=rnd.uniform(3600, 86400)), pattern)
                for h in range(40, 80)]
        false_alarms += bool(fleet.fleet_incidents(morning + rest, 120.0))
        quiet = [_one_cause(f"late{i}", day + timedelta(hours=20, minutes=30, seconds=2 * i), pattern)
                 for i in range(5)]
        found = fleet.fleet_incidents(morning + rest + quiet, 120.0)
        assert any({f"late{i}" for i in range(5)} <= set(i["hosts"]) for i in found), seed
    assert false_alarms <= 1


def test_fleet_report_speaks_the_language_asked(tmp_path, cluster):
    a = host_folder(tmp_path, "kvm-a", 11, 10, vms=("web01",))
    b = host_folder(tmp_path, "kvm-b", 11, 12, vms=("web02",))
    args = ("analyze", "--fleet", "--scheduler", cluster.scheduler_address, "--tz", "UTC", str(a), str(b))
    text = logsense(*args, "--format", "text", "--lang", "zh")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("集群：2 台宿主机，1 个集群故障\n")
    zh = json.loads(logsense(*args, "--format", "json", "--lang", "zh").stdout)
    en = json.loads(logsense(*args, "--format", "json", "--lang", "en").stdout)
    shared_zh, shared_en = zh["incidents"][0], en["incidents"][0]
    assert shared_zh["scope"] == "fleet" and shared_zh["id"] == shared_en["id"]
    assert shared_zh["title"].startswith("2 台宿主机：") and "共用的存储后端" in shared_zh["explanation"]
    assert "storage backend the hosts share" in shared_en["explanation"]
    host_zh = [i for i in zh["incidents"] if i["scope"] != "fleet"]
    host_en = [i for i in en["incidents"] if i["scope"] != "fleet"]
    assert [i["id"] for i in host_zh] == [i["id"] for i in host_en]  # the same incidents, in other words
    assert all(z["title"] != e["title"] for z, e in zip(host_zh, host_en, strict=True))
