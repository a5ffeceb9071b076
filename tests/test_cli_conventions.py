"""Conventions admins know: journalctl's times, zones in and out, filters, /etc/logsense with drop-ins
and `disable`, `watch --format text`, `catalogue test` naming file and line."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import FIXTURES, LOGSENSE, ROOT
from test_catalogue import SITE_PATTERN
from test_daemon_helpers import GUEST_RAM, qemu_line

from logsense.timespec import TimeSpecError, parse_span, parse_when

SAMPLE = FIXTURES / "sample-outage"
LIBVIRTD = SAMPLE / "var/log/libvirt/libvirtd.log"  # every line carries its zone (+0000)
PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2024, 3, 5, 14, 30, 0, tzinfo=UTC)  # 15:30 in Paris


def run(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """The real command line with a chosen environment (TZ, LOGSENSE_CONFIG); no site config leaks in."""
    full = {**os.environ, "LOGSENSE_CONFIG": "/dev/null", **(env or {})}
    proc = subprocess.run([*LOGSENSE, *args], capture_output=True, text=True, env=full, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"logsense {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.mark.parametrize(("text", "expected"), [
    ("now", NOW),
    ("today", datetime(2024, 3, 5, tzinfo=PARIS)),
    ("yesterday", datetime(2024, 3, 4, tzinfo=PARIS)),
    ("tomorrow", datetime(2024, 3, 6, tzinfo=PARIS)),
    ("10:00", datetime(2024, 3, 5, 10, 0, tzinfo=PARIS)),
    ("10:00:30", datetime(2024, 3, 5, 10, 0, 30, tzinfo=PARIS)),
    ("-2h", NOW - timedelta(hours=2)),
    ("+5min", NOW + timedelta(minutes=5)),
    ("1 hour ago", NOW - timedelta(hours=1)),
    ("1h 30min ago", NOW - timedelta(minutes=90)),
    ("2 days left", NOW + timedelta(days=2)),
    ("2024-03-01", datetime(2024, 3, 1, tzinfo=PARIS)),
    ("2024-03-01 10:00", datetime(2024, 3, 1, 10, tzinfo=PARIS)),
    ("2024-03-01T10:00:00+01:00", datetime(2024, 3, 1, 9, tzinfo=UTC)),
    ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ("Fri 2024-03-01 10:00 UTC", datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ("2024-03-01 10:00 Asia/Tokyo", datetime(2024, 3, 1, 1, tzinfo=UTC)),
    ("@1709287200", datetime(2024, 3, 1, 10, tzinfo=UTC)),
])
def test_times_read_as_journalctl_reads_them(text: str, expected: datetime):
    assert parse_when(text, PARIS, now=NOW) == expected


def test_today_is_midnight_in_the_zone_across_a_dst_change():
    after_switch = datetime(2024, 3, 31, 12, tzinfo=UTC)  # Paris went to summer time at 02:00 that night
    assert parse_when("today", PARIS, now=after_switch).utcoffset() == timedelta(hours=1)
    assert parse_when("10:00", PARIS, now=after_switch).utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("text", ["soon", "5 parsecs ago", "25:00", "2024-13-01", "-h", "@x"])
def test_what_is_not_a_time_is_refused(text: str):
    with pytest.raises(TimeSpecError, match="not a time"):
        parse_when(text, PARIS, now=NOW)


def test_spans_take_systemd_units_where_M_is_a_month_and_m_a_minute():
    assert parse_span("1M") == 2629800 and parse_span("1m") == 60 and parse_span("2w 1d") == 15 * 86400
    assert parse_span("1 fortnight") is None


def test_a_bad_since_is_one_line_exit_2():
    proc = run("events", "--since", "next blue moon", str(LIBVIRTD), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not a time: 'next blue moon'" in proc.stderr


def since_count(*args: str, env: dict[str, str]) -> int:
    out = run("events", "--format", "jsonl", "--since", "2024-03-05 10:10", *args, str(LIBVIRTD), env=env).stdout
    return len(out.splitlines())


def test_since_is_read_in_the_machines_zone_and_tz_does_not_change_it():
    utc = since_count(env={"TZ": "UTC"})
    assert 0 < utc < len(run("events", "--format", "jsonl", str(LIBVIRTD)).stdout.splitlines())
    assert since_count("--tz", "Asia/Tokyo", env={"TZ": "UTC"}) == utc  # --tz is the syslog lines' zone only
    assert since_count(env={"TZ": "Asia/Tokyo"}) > utc  # 10:10 in Tokyo is 01:10 UTC: more lines
    assert since_count("--utc", env={"TZ": "Asia/Tokyo"}) == utc


def test_relative_since_on_an_old_archive_reads_it_and_finds_nothing_in_range():
    proc = run("analyze", "--format", "json", "--since", "1 hour ago", str(SAMPLE))
    rep = json.loads(proc.stdout)
    assert rep["incidents"] == [] and rep["stats"]["lines_read"] > 0


def first_stamp(*args: str, env: dict[str, str] | None = None) -> str:
    return run("events", "--min-severity", "critical", *args, str(LIBVIRTD), env=env).stdout.split()[0]


def test_times_print_in_the_local_zone_or_tz_or_utc():
    assert first_stamp(env={"TZ": "Asia/Tokyo"}) == "2024-03-05T18:58:02+09:00"
    assert first_stamp("--tz", "Europe/Paris", env={"TZ": "Asia/Tokyo"}) == "2024-03-05T10:58:02+01:00"
    assert first_stamp("--utc", env={"TZ": "Asia/Tokyo"}) == "2024-03-05T09:58:02+00:00"
    ev = json.loads(run("events", "-f", "jsonl", str(LIBVIRTD), env={"TZ": "Asia/Tokyo"}).stdout.splitlines()[0])
    assert ev["ts"].endswith("+00:00")  # JSON stays UTC (CONTRACT.md)
    stats = json.loads(run("analyze", "-f", "json", "--utc", str(SAMPLE)).stdout)["stats"]
    assert stats["display_tz"] == "UTC"


def incidents(*args: str) -> list[dict]:
    return json.loads(run("analyze", "--format", "json", "--tz", "UTC", *args, str(SAMPLE)).stdout)["incidents"]


def test_filters_choose_what_is_shown():
    everything = incidents()
    assert len(everything) >= 4
    web01 = incidents("--vm", "web01")
    assert web01 and all("web01" in {i["vm"], *i["affected_vms"]} for i in web01) and len(web01) < len(everything)
    memory = incidents("--category", "memory")
    assert memory and {i["category"] for i in memory} == {"memory"}
    critical = incidents("--min-severity", "critical")
    assert critical and {i["severity"] for i in critical} == {"critical"}
    assert incidents("--host", "kvm01") == everything
    # the per-VM logs carry no host name: they become kvm99's; the syslog's lines stay kvm01's, not shown
    other = incidents("--host", "kvm99")
    assert other and {i["host"] for i in other} == {"kvm99"} and len(other) < len(everything)
    bad = run("analyze", "--category", "weather", str(SAMPLE), check=False)
    assert bad.returncode == 2 and "memory" in bad.stderr  # the choices are listed


def test_events_filters():
    out = run("events", "-f", "jsonl", "--vm", "app01", "--min-severity", "critical", str(SAMPLE)).stdout
    events = [json.loads(line) for line in out.splitlines()]
    assert events and {(e["vm"], e["severity"]) for e in events} == {("app01", "critical")}


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    """An /etc/logsense: the main file, a drop-in that switches a pattern off, a site pattern folder."""
    (tmp_path / "logsense.toml").write_text('tz = "UTC"\nwindow = 30\ndisable = ["qemu.virt_layer.vm-starting"]\n')
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d/50-noise.toml").write_text('disable = ["libvirt.disk_image.storage-file-missing"]\n')
    (tmp_path / "patterns").mkdir()
    (tmp_path / "patterns/site.toml").write_text(SITE_PATTERN)
    return tmp_path


def test_settings_file_drop_ins_disable_and_site_patterns(etc: Path):
    env = {"LOGSENSE_CONFIG": str(etc / "logsense.toml")}
    patterns = {json.loads(line)["pattern"] for line in
                run("events", "-f", "jsonl", str(SAMPLE), env=env).stdout.splitlines()}
    assert "libvirt.disk_image.storage-file-missing" not in patterns  # the drop-in's
    assert "qemu.virt_layer.vm-starting" not in patterns  # the main file's: drop-ins add to the list
    assert "libvirt.disk_image.storage-file-missing" in {
        json.loads(line)["pattern"] for line in run("events", "-f", "jsonl", str(SAMPLE)).stdout.splitlines()}
    listed = run("catalogue", "list", env=env).stdout
    assert "site.storage.san-path-down" in listed and "storage-file-missing" not in listed
    assert run("catalogue", "check", "--no-timing", env=env).returncode == 0
    # --config names the file instead of LOGSENSE_CONFIG
    assert "site.storage.san-path-down" in run("catalogue", "list", "--config", str(etc / "logsense.toml")).stdout


def test_settings_window_applies_unless_the_flag_says_otherwise(etc: Path, tmp_path: Path):
    log = tmp_path / "libvirtd.log"
    lines = LIBVIRTD.read_text().splitlines(keepends=True)
    log.write_text("".join(lines))
    env = {"LOGSENSE_CONFIG": str(etc / "logsense.toml")}
    narrow = json.loads(run("analyze", "-f", "json", str(log), env=env).stdout)["incidents"]
    wide = json.loads(run("analyze", "-f", "json", "--window", "3600", str(log), env=env).stdout)["incidents"]
    assert len(wide) <= len(narrow)


@pytest.mark.parametrize(("content", "message"), [
    ("colour = 'blue'\n", "unknown setting 'colour'"),
    ("disable = 'x'\n", "disable is a list of strings"),
    ("tz = \n", "not valid TOML"),
])
def test_a_bad_settings_file_is_one_line_exit_2(tmp_path: Path, content: str, message: str):
    (tmp_path / "logsense.toml").write_text(content)
    proc = run("events", str(LIBVIRTD), env={"LOGSENSE_CONFIG": str(tmp_path / "logsense.toml")}, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr


def test_a_named_config_must_exist_and_disabling_an_unknown_id_fails_the_check(tmp_path: Path):
    proc = run("events", "--config", str(tmp_path / "nope.toml"), str(LIBVIRTD), check=False)
    assert proc.returncode == 2 and "no such config file" in proc.stderr
    (tmp_path / "logsense.toml").write_text('disable = ["no.such.pattern"]\n')
    check = run("catalogue", "check", "--no-timing", "--config", str(tmp_path / "logsense.toml"), check=False)
    assert check.returncode == 1 and "disable: no pattern with id 'no.such.pattern'" in check.stderr


def test_catalogue_test_names_file_and_line(tmp_path: Path):
    out = run("catalogue", "test", str(SAMPLE / "var/log/libvirt")).stdout
    assert f"{SAMPLE}/var/log/libvirt/libvirtd.log:3  libvirt.disk_image.storage-file-missing" in out


def test_watch_format_text_is_one_line_a_change_for_a_person(tmp_path: Path):
    log = tmp_path / "qemu" / "web01.log"
    log.parent.mkdir()
    log.write_text(qemu_line(GUEST_RAM))
    env = {**os.environ, "LOGSENSE_CONFIG": "/dev/null"}
    proc = subprocess.Popen([*LOGSENSE, "watch", "--format", "text", "--from-start", "--no-journal", "--state-dir",
                             str(tmp_path), "--host", "kvm01", "--tz", "UTC", str(tmp_path / "qemu")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "no output from watch --format text"
        line = proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert not line.startswith("{")
    assert " open " in line and "critical" in line and "web01:" in line and " v1]" in line, line
    assert time.time()  # the line came while the daemon ran: no sleep needed


def test_the_shipped_example_settings_are_valid_for_analysis_and_the_daemon():
    from logsense.daemon import Config

    env = {"LOGSENSE_CONFIG": str(ROOT / "contrib/logsense.toml")}
    assert run("events", "-f", "jsonl", str(LIBVIRTD), env=env).stdout
    cfg = Config.load(str(ROOT / "contrib/logsense.toml"), {})
    assert cfg.window == 120 and [s["type"] for s in cfg.sinks] == ["stdout", "file"] and cfg.format == "json"
