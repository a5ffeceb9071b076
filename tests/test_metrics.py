"""Prometheus metrics of the real daemon: scraped from its real listener and read from its
textfile with prometheus_client's own parser; follow lag on a real file; contrib's dashboard
and alert rules use only metrics the daemon exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import test_sinks_daemon
import yaml
from conftest import logsense
from prometheus_client.parser import text_string_to_metric_families
from test_daemon_helpers import GUEST_RAM, append, libvirtd_line, qemu_line
from test_sinks import free_port

from logsense.catalogue import load_catalogue
from logsense.daemon import Config, Daemon

ROOT = Path(__file__).resolve().parent.parent
start_watch = test_sinks_daemon.start_watch  # the fixture: daemons a failed test left are killed
UNKNOWN_ERROR = "internal error: frobnicator 7 exploded while probing the widget"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(got: dict, name: str, **labels) -> float | None:
    return got.get((name, frozenset(labels.items())))


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        return resp.read().decode()


def scrape_until(url: str, pred, timeout: float = 15.0) -> dict:
    """The metrics once `pred` holds (the daemon takes its snapshot once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        got = samples(scrape(url))
        if pred(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)  # a scrape is all there is to wait on: the daemon is another process


PROMTOOL = shutil.which("promtool")


def promtool_lint(text: str) -> str:
    """`promtool check metrics` on an exposition: its complaints ('' when none)."""
    if PROMTOOL is None:
        pytest.fail("promtool is not installed (bash dev.sh test installs it)")
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    return (proc.stdout + proc.stderr).strip()


@pytest.fixture
def host(tmp_path: Path) -> Path:
    logs = tmp_path / "log"
    (logs / "qemu").mkdir(parents=True)
    (logs / "libvirtd.log").write_text(libvirtd_line("libvirt version: 9.0.0, package: 9.0.0-4+deb12u1 (Debian)",
                                                     level="info", where="virLogVMMessage:2", pid=1432))
    (tmp_path / "state").mkdir()
    return tmp_path


def test_a_real_daemon_serves_its_metrics_and_writes_the_textfile(host: Path, start_watch):
    textfile = host / "textfile" / "logsense.prom"
    textfile.parent.mkdir()
    hook = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens: the queue holds the incident
    t0 = time.time()
    w = start_watch(str(host / "log"), "--no-journal", "--state-dir", str(host / "state"), "--host", "kvm01",
                    "--tz", "UTC", "--window", "60", "--metrics", "127.0.0.1:0", "--metrics-textfile", str(textfile),
                    "--sink", "stdout", "--sink", f"webhook:{hook}")
    url = w.wait_err(lambda line: line.startswith("logsense: metrics on ")).split()[-1]
    benign = "".join(libvirtd_line(f"benign seq={i}", level="info", where="virNetServerAddClient:17")
                     for i in range(5))
    append(host / "log" / "libvirtd.log", benign + libvirtd_line(UNKNOWN_ERROR, where="virFrob:12"))
    append(host / "log" / "qemu" / "web01.log", qemu_line(GUEST_RAM))
    opened = w.wait(lambda o: o["status"] == "open")
    assert opened["category"] == "memory" and opened["severity"] == "critical"

    got = scrape_until(url, lambda g: value(g, "logsense_incidents_open", category="memory", severity="critical")
                       and value(g, "logsense_sink_failures_total", sink=f"webhook:{hook}"))  # snapshots, 1/s
    assert value(got, "logsense_lines_read_total", source="libvirtd") == 6
    assert value(got, "logsense_lines_read_total", source="qemu") == 1
    assert value(got, "logsense_read_bytes_total", source="qemu") == len(qemu_line(GUEST_RAM).encode())
    assert value(got, "logsense_events_total", category="memory", severity="critical") == 1
    assert value(got, "logsense_unrecognised_errors_total") == 1
    assert value(got, "logsense_incidents_emitted_total", category="memory", severity="critical", status="open") == 1
    assert value(got, "logsense_incidents_open", category="memory", severity="critical") == 1
    assert value(got, "logsense_sink_queue_items", sink=f"webhook:{hook}") == 1
    assert value(got, "logsense_sink_failures_total", sink=f"webhook:{hook}") >= 1
    assert value(got, "logsense_sink_delivered_total", sink="stdout") == 1
    assert value(got, "logsense_catalogue_patterns") == len(load_catalogue([]).patterns)
    assert t0 <= value(got, "logsense_state_last_save_timestamp_seconds") <= time.time()
    assert value(got, "logsense_follow_lag_seconds", source="qemu") == 0
    assert value(got, "logsense_files_followed") == 2
    labels = {v for (_, ls) in got for _, v in ls}
    assert not any("web01" in v for v in labels)  # no VM names as labels

    lint = promtool_lint(scrape(url))
    assert w.stop() == 0
    assert lint == ""  # Prometheus' own naming and help-text checks
    from_file = samples(textfile.read_text())
    assert value(from_file, "logsense_events_total", category="memory", severity="critical") == 1
    assert value(from_file, "logsense_lines_read_total", source="libvirtd") == 6
    assert os.listdir(textfile.parent) == ["logsense.prom"]  # written through a renamed temporary file


def test_follow_lag_is_how_far_the_reader_is_behind_the_writer(tmp_path: Path):
    log = tmp_path / "libvirtd.log"
    log.write_text(libvirtd_line("libvirt version: 9.0.0", level="info", where="virLogVMMessage:2"))
    d = Daemon(Config(paths=[str(log)], journal=False, state_dir=str(tmp_path / "state")))
    d._start_files(None)  # a first start: read from the end
    reg = d.metrics.registry
    d.metrics.observe(d, force=True)
    assert reg.get_sample_value("logsense_follow_lag_seconds", {"source": "libvirtd"}) == 0
    caught_up = log.stat().st_mtime
    append(log, libvirtd_line("benign seq=1", level="info", where="virNetServerAddClient:17"))
    os.utime(log, (caught_up + 30, caught_up + 30))  # the writer wrote on for 30 s
    d.metrics.observe(d, force=True)
    assert reg.get_sample_value("logsense_follow_lag_seconds", {"source": "libvirtd"}) == pytest.approx(30)
    t = d.tailers[str(log)]
    t.poll(d._selector)
    d.metrics.file_read(t)
    d.metrics.observe(d, force=True)
    assert reg.get_sample_value("logsense_follow_lag_seconds", {"source": "libvirtd"}) == 0
    assert reg.get_sample_value("logsense_lines_read_total", {"source": "libvirtd"}) == 1
    t.close()


@pytest.mark.parametrize("listen, message", [("nonsense", "is not HOST:PORT"),
                                             ("127.0.0.1:99999", "is not HOST:PORT")])
def test_a_bad_metrics_address_is_one_line_and_exit_2(host: Path, listen: str, message: str):
    proc = logsense("watch", str(host / "log"), "--no-journal", "--state-dir", str(host / "state"),
                    "--metrics", listen, check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_a_metrics_port_in_use_is_one_line_and_exit_2(host: Path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = logsense("watch", str(host / "log"), "--no-journal", "--state-dir", str(host / "state"),
                        "--metrics", f"127.0.0.1:{port}", check=False)
    assert proc.returncode == 2 and "cannot listen on" in proc.stderr and "Traceback" not in proc.stderr


# -- contrib: the dashboard and the alert rules use what the daemon exports ------------------
EXPORTED = {"logsense_lines_read_total", "logsense_read_bytes_total", "logsense_parse_failures_total",
            "logsense_events_total", "logsense_unrecognised_errors_total", "logsense_incidents_emitted_total",
            "logsense_incidents_open", "logsense_follow_lag_seconds", "logsense_files_followed",
            "logsense_journal_lag_seconds", "logsense_sink_queue_items", "logsense_sink_delivered_total",
            "logsense_sink_failures_total", "logsense_sink_dropped_total", "logsense_catalogue_patterns",
            "logsense_state_last_save_timestamp_seconds"}


def names_in(expr: str) -> set[str]:
    return set(re.findall(r"\blogsense_[a-z_]+", expr))


def test_every_metric_named_here_is_one_the_daemon_exports(tmp_path: Path):
    d = Daemon(Config(paths=[], journal=False, state_dir=str(tmp_path)))
    d.metrics.observe(d, force=True)
    exported = {f.name + ("_total" if f.type == "counter" else "") for f in d.metrics.registry.collect()}
    # the journal's lag only while following the journal, the last save once saved
    assert exported == EXPORTED - {"logsense_journal_lag_seconds", "logsense_state_last_save_timestamp_seconds"}


def test_grafana_dashboard_queries_only_exported_metrics():
    dash = json.loads((ROOT / "contrib" / "grafana-logsense.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 8
    used = set().union(*(names_in(e) for e in exprs))
    assert used <= EXPORTED, used - EXPORTED
    assert {"logsense_incidents_open", "logsense_follow_lag_seconds", "logsense_sink_queue_items"} <= used
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dash["panels"] if "targets" in p)


def test_prometheus_alert_rules_are_well_formed_and_use_exported_metrics():
    rules = yaml.safe_load((ROOT / "contrib" / "prometheus-logsense-rules.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert len(alerts) >= 5
    for r in alerts:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"} and {"alert", "expr"} <= set(r)
        assert r["labels"]["severity"] in ("critical", "warning", "info")
        assert {"summary", "description"} <= set(r["annotations"])
        assert names_in(r["expr"]) <= EXPORTED and (names_in(r["expr"]) or r["expr"].startswith("up{")), r["expr"]
        assert r["expr"].count("(") == r["expr"].count(")")


def test_daemon_warns_once_when_the_textfile_cannot_be_written(tmp_path: Path, capsys):
    d = Daemon(Config(paths=[], journal=False, state_dir=str(tmp_path)))
    d.metrics.serve(None, str(tmp_path / "missing-dir" / "logsense.prom"))
    d.metrics.observe(d, force=True)
    d.metrics.observe(d, force=True)
    assert capsys.readouterr().err.count("cannot write metrics") == 1


def test_journal_entries_are_counted_and_its_lag_reported(host: Path, tmp_path: Path, start_watch):
    from test_daemon import JOURNAL_REMOTE, add_journal

    if not Path(JOURNAL_REMOTE).exists():
        pytest.fail("systemd-journal-remote is not installed (bash dev.sh test installs it)")
    jdir = tmp_path / "journal"
    jdir.mkdir()
    add_journal(jdir, tmp_path, 0, 5)  # 5 libvirtd errors and 5 sshd lines (not followed)
    w = start_watch(str(host / "log"), "--state-dir", str(host / "state"), "--host", "kvm01", "--from-start",
                    "--journal-dir", str(jdir), "--emit", "events", "--metrics", "127.0.0.1:0")
    url = w.wait_err(lambda line: line.startswith("logsense: metrics on ")).split()[-1]
    w.wait(lambda o: o["message"].endswith("seq=4"))
    # the counters are live, the lag a snapshot taken once a second: wait for one after the entries
    got = scrape_until(url, lambda g: value(g, "logsense_lines_read_total", source="journal") == 5
                       and value(g, "logsense_journal_lag_seconds") == 0)
    assert value(got, "logsense_lines_read_total", source="journal") == 5
    assert value(got, "logsense_read_bytes_total", source="journal") > 5 * len("internal error: End of file")
    assert value(got, "logsense_journal_lag_seconds") == 0  # all read entries processed
    assert w.stop() == 0


def test_journal_lag_is_the_newest_entry_read_minus_the_newest_processed(tmp_path: Path):
    from datetime import UTC, datetime, timedelta

    from logsense.model import Record

    d = Daemon(Config(paths=[], journal=False, state_dir=str(tmp_path)))
    t0 = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
    processed = Record(ts=t0, source="journal", message="internal error: End of file from monitor", cursor="s=0;i=1")
    d.metrics.records([processed])
    assert d.metrics._journal_lag(d) == 0
    d.journal_q.put(Record(ts=t0 + timedelta(seconds=3), source="journal", message="a", cursor="s=0;i=2"))
    d.journal_q.put(Record(ts=t0 + timedelta(seconds=42), source="journal", message="b", cursor="s=0;i=3"))
    assert d.metrics._journal_lag(d) == 42


RULES_TEST = """
rule_files: [RULES]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'logsense_incidents_open{job="logsense", instance="kvm01:9874", category="memory", severity="critical"}'
        values: '0 1 1 0'
      - series: 'logsense_follow_lag_seconds{job="logsense", instance="kvm01:9874", source="qemu"}'
        values: '0 120x10'
      - series: 'logsense_sink_failures_total{job="logsense", instance="kvm01:9874", sink="webhook:http://hooks/x"}'
        values: '0+3x20'
      - series: 'logsense_sink_queue_items{job="logsense", instance="kvm01:9874", sink="webhook:http://hooks/x"}'
        values: '4x20'
      - series: 'up{job="logsense", instance="kvm02:9874"}'
        values: '0x10'
    alert_rule_test:
      - eval_time: 2m
        alertname: LogsenseCriticalIncidentOpen
        exp_alerts:
          - exp_labels: {severity: critical, instance: "kvm01:9874", category: memory}
            exp_annotations:
              summary: "1 critical memory incident(s) open on kvm01:9874"
              description: "See `journalctl -u logsense` or the incident file on the host
                for what broke and how to fix it."
      - eval_time: 4m
        alertname: LogsenseCriticalIncidentOpen
        exp_alerts: []
      - eval_time: 3m
        alertname: LogsenseFollowLagHigh
        exp_alerts: []
      - eval_time: 8m
        alertname: LogsenseFollowLagHigh
        exp_alerts:
          - exp_labels: {severity: warning, instance: "kvm01:9874", source: qemu}
            exp_annotations:
              summary: "logsense on kvm01:9874 is 2m 0s behind its qemu logs"
              description: "Incidents are late by as much. A burst of log lines, or too little CPU for the daemon."
      - eval_time: 6m
        alertname: LogsenseDown
        exp_alerts:
          - exp_labels: {severity: critical, instance: "kvm02:9874", job: logsense}
            exp_annotations:
              summary: "logsense on kvm02:9874 is not answering scrapes"
              description: "No metrics for 5 minutes: the daemon is stopped, crashed or its sandbox
                blocks the listener."
      - eval_time: 5m
        alertname: LogsenseSinkFailing
        exp_alerts: []
      - eval_time: 15m
        alertname: LogsenseSinkFailing
        exp_alerts:
          - exp_labels: {severity: warning, instance: "kvm01:9874", job: logsense, sink: "webhook:http://hooks/x"}
            exp_annotations:
              summary: "logsense sink webhook:http://hooks/x on kvm01:9874 keeps failing"
              description: "Incidents queue up (kept across restarts, up to queue_max); check the receiver and the
                network drop-in."
"""


def test_promtool_lint_is_real():
    if PROMTOOL is None:
        pytest.fail("promtool is not installed (bash dev.sh test installs it)")
    bad = "# HELP logsense_x A counter.\n# TYPE logsense_x counter\nlogsense_x 1\n"
    assert 'should have "_total" suffix' in promtool_lint(bad)


def test_the_alert_rules_pass_promtool_and_fire_when_they_should(tmp_path: Path):
    if PROMTOOL is None:
        pytest.fail("promtool is not installed (bash dev.sh test installs it)")
    rules = ROOT / "contrib" / "prometheus-logsense-rules.yml"
    check = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "SUCCESS: 8 rules found" in check.stdout, check.stdout + check.stderr
    test = tmp_path / "rules-test.yml"
    test.write_text(RULES_TEST.replace("RULES", json.dumps(str(rules))))
    run = subprocess.run([PROMTOOL, "test", "rules", str(test)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
