"""The reports people read: summary first, 80 columns, grouped, evidence apart from context."""

from __future__ import annotations

import fcntl
import gzip
import io
import json
import os
import re
import struct
import subprocess
import termios
from zoneinfo import ZoneInfo

import pytest
from conftest import FIXTURES, LOGSENSE, ROOT, logsense, read_events

from logsense.correlator import correlate
from logsense.report import unrecognised_summary, write_html, write_markdown, write_text

SAMPLE = FIXTURES / "sample-outage"
LAB = sorted(p for p in (FIXTURES / "lab").iterdir() if p.is_dir())
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
MISSING_DISK = ("{t}: 1: error : virStorageSourceReportBrokenChain:1283 : Cannot access storage file "
                "'/var/lib/libvirt/images/{vm}.qcow2': No such file or directory\n")


def analysis(*paths):
    """(incidents, stats, unrecognised, warnings, events) of the real pipeline."""
    evs, run = read_events(list(paths))
    return [i.to_dict() for i in correlate(evs)], dict(run.stats), unrecognised_summary(evs), run.warnings, evs


def text_report(*paths, width=80, color=False) -> str:
    incidents, stats, unrec, warnings, _ = analysis(*paths)
    out = io.StringIO()
    write_text(out, incidents, stats, unrec, color=color, warnings=warnings, width=width)
    return ANSI_RE.sub("", out.getvalue())


def confirm_commands(text: str) -> list[str]:
    """The commands under each Confirm heading, with ` \\` continuations joined back."""
    cmds, inside = [], False
    for line in text.splitlines():
        if line.strip(" │") == "Confirm":
            inside = True
            continue
        body = line.strip(" │")
        if inside and body.startswith("$ "):
            cmds.append(body[2:])
        elif inside and cmds and cmds[-1].endswith(" \\"):
            cmds[-1] = cmds[-1][:-2] + " " + body
        else:
            inside = False
    return cmds


@pytest.mark.parametrize("color", [False, True], ids=["plain", "rich"])
@pytest.mark.parametrize("host", [SAMPLE, *LAB], ids=lambda p: p.name)
def test_report_fits_80_columns_and_cuts_no_essential_word(host, color):
    incidents, *_ = analysis(host)
    text = text_report(host, color=color)
    assert max(len(line) for line in text.splitlines()) <= 80
    flat = " ".join(line.strip(" │╭╮╰╯─") for line in text.splitlines())
    for inc in incidents:
        for item in [inc["title"], *inc["remediation"]]:
            for word in item.split():
                assert word in flat, (word, item)
    assert confirm_commands(text) == [d for inc in incidents for d in inc["diagnostics"]]


def test_summary_comes_first_with_severity_vms_span_and_what_was_read():
    text = text_report(SAMPLE)
    head = text.split("\n\n")[0].splitlines()
    assert head[0] == "logsense report: 5 incidents: 5 critical"
    assert "VMs hit   4: app01, big01, db01, web01" in head
    assert "Time span 2024-03-05 09:58:02 → 10:40:19 UTC" in head
    assert any(re.fullmatch(r"Read      \d+ files, \d+ lines, \d+ events matched", line) for line in head)


def test_summary_says_what_was_not_read(tmp_path):
    logs = tmp_path / "log"
    (logs / "libvirt").mkdir(parents=True)
    line = MISSING_DISK.format(t="2024-03-05 10:00:01.000+0000", vm="web01")
    (logs / "libvirt" / "libvirtd.log").write_text(line)
    packed = gzip.compress("".join(MISSING_DISK.format(t=f"2024-03-05 09:{n:02d}:01.000+0000", vm=f"v{n}")
                                   for n in range(60)).encode())
    (logs / "libvirt" / "libvirtd.log.1.gz").write_bytes(packed[:len(packed) // 2])  # damaged half way
    (logs / "notes.bin").write_bytes(bytes(range(256)) * 8)
    summary = text_report(logs, width=160).split("\n\n")[0]
    assert "Read      2 files" in summary and "Not read  1 file skipped" in summary
    assert "Warnings  1 warning:" in summary
    assert f"- {logs}/libvirt/libvirtd.log.1.gz: damaged compressed data" in summary
    out = io.StringIO()
    write_text(out, [], {"files_read": 0, "lines_read": 0, "sources_missing": ["journal: no permission",
                                                                               "/var/log/libvirt: none"]}, [])
    assert "Read      0 files, 0 lines" in out.getvalue()
    assert "Not read  journal: no permission, /var/log/libvirt: none" in out.getvalue()


def test_plurals_are_right_for_one():
    log = FIXTURES / "sample-outage" / "var" / "log" / "libvirt" / "qemu" / "app01.log"
    text = text_report(log)
    assert "1 file," in text and "1 files" not in text
    assert "logsense report: 1 incident: 1 critical" in text


def test_identical_incidents_on_thirty_vms_are_one_group(tmp_path):
    log = tmp_path / "var" / "log" / "libvirt"
    (log / "qemu").mkdir(parents=True)
    lines = []
    for n in range(30):
        t = f"2024-03-05 10:{n:02d}:01.000+0000"
        lines.append(MISSING_DISK.format(t=t, vm=f"web{n:02d}"))
        (log / "qemu" / f"web{n:02d}.log").write_text(f"2024-03-05 10:{n:02d}:01.001+0000: shutting down, "
                                                      "reason=failed\n")
    (log / "libvirtd.log").write_text("".join(lines))
    incidents, *_ = analysis(tmp_path)
    assert len(incidents) == 30
    text = text_report(tmp_path)
    assert text.count("CRITICAL ") == 1
    assert "CRITICAL 30 VMs failed to start: disk image missing — 30 incidents" in text
    assert "logsense report: 30 incidents in 1 group: 30 critical" in text
    assert "Same on (29 more incidents)" in text and "    web10  2024-03-05 10:10:01 → 10:10:01 UTC\n" in text
    assert "… 19 more" in text
    md = io.StringIO()
    write_markdown(md, incidents, {}, [])
    assert md.getvalue().count("\n## ") == 1 and "| 30 |" in md.getvalue()


def test_context_lines_are_not_evidence():
    text = text_report(SAMPLE)
    oom = text[text.index("CRITICAL kvm01: host out of memory"):]
    oom = oom[:oom.index("\n\n")]
    evidence = oom[oom.index("  Evidence"):oom.index("  Context")]
    context = oom[oom.index("  Context (1 line around it, not evidence)"):oom.index("  Fix")]
    assert "Killed process 28932" in evidence and "virbr0: port 3(vnet4) entered disabled state" not in evidence
    assert "virbr0: port 3(vnet4) entered disabled state" in context
    web = text[text.index("CRITICAL web01"):]
    assert web.index("starting up libvirt version") > web.index("  Context")


def test_plain_text_when_not_a_terminal_and_panels_on_one():
    plain = logsense("analyze", "--format", "text", str(SAMPLE)).stdout
    assert "\x1b[" not in plain and "╭" not in plain
    assert max(len(line) for line in plain.splitlines()) <= 80
    master, slave = os.openpty()  # the command drawing on a real terminal 100 columns wide
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 100, 0, 0))
    proc = subprocess.Popen([*LOGSENSE, "analyze", "--format", "text", str(SAMPLE)], stdout=slave,
                            stderr=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0
    shown = ANSI_RE.sub("", drawn.decode())
    assert "╭" in drawn.decode() and "\x1b[" in drawn.decode() and "app01 failed to start" in shown
    assert max(len(line) for line in shown.splitlines()) == 100


def test_every_format_starts_with_the_summary():
    incidents, stats, unrec, warnings, evs = analysis(SAMPLE)
    md, page = io.StringIO(), io.StringIO()
    write_markdown(md, incidents, stats, unrec, warnings=warnings)
    write_html(page, incidents, stats, unrec, evs, warnings=warnings)
    head = md.getvalue().split("\n## ")[0]
    assert "**5 incidents: 5 critical**" in head and "VMs hit (4): app01, big01, db01, web01" in head
    assert "2024-03-05 09:58:02 → 10:40:19 UTC" in head and "**Read:** 8 files" in head
    body = page.getvalue()
    assert body.index("VMs hit (4):") < body.index("<svg") < body.index("<section")


def test_json_carries_the_summary_as_data():
    rep = json.loads(logsense("analyze", "--format", "json", "--tz", "UTC", str(SAMPLE)).stdout)
    assert list(rep)[0] == "summary"
    assert rep["summary"] == {"incidents": 5, "groups": 5, "by_severity": {"critical": 5}, "hosts": ["kvm01"],
                              "vms_hit": ["app01", "big01", "db01", "web01"],
                              "first_seen": "2024-03-05T09:58:02.671000+00:00",
                              "last_seen": "2024-03-05T10:40:19.870110+00:00", "warnings": []}


def test_times_can_be_shown_in_another_zone():
    incidents, stats, unrec, warnings, _ = analysis(SAMPLE)
    out = io.StringIO()
    write_text(out, incidents, stats, unrec, tz=ZoneInfo("Asia/Tokyo"))
    assert "Time span 2024-03-05 18:58:02 → 19:40:19 JST" in out.getvalue()


def test_evidence_names_files_under_the_folder_the_summary_gives():
    text = text_report(SAMPLE)
    assert f"Logs in   {SAMPLE}/var/log/\n" in text
    assert "\n             libvirt/libvirtd.log:3\n" in text


def test_a_pipe_gets_the_text_report_unless_another_format_is_asked(tmp_path):
    piped = logsense("analyze", str(SAMPLE)).stdout  # stdout is a pipe here
    assert piped.startswith("logsense report: 5 incidents: 5 critical\n") and "\x1b[" not in piped
    events = logsense("events", str(SAMPLE / "var" / "log" / "libvirt" / "qemu" / "app01.log")).stdout
    assert not events.startswith("{") and "shutting down, reason=failed" in events


def test_a_title_is_shaped_by_the_vms_it_names_among_thousands() -> None:
    from logsense.report_model import title_shape

    vms = [f"vm{n:04d}" for n in range(2000)] + ["web", "web-1"]
    inc = {"title": "storage lost on kvm01: web-1, web and vm0007 paused (web-10 fine)", "affected_vms": vms,
           "host": "kvm01"}
    assert title_shape(inc) == "storage lost on {host}: {vm}, {vm} and {vm} paused (web-10 fine)"
