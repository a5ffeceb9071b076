"""Advice people paste into a shell: every placeholder filled or its sentence dropped, Confirm
holding only runnable commands, every value from a log quoted for the shell."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest
from conftest import FIXTURES, logsense

from logsense.catalogue import FIELD_RE, TEMPLATE_RE, is_command, load_catalogue, render, render_advice, render_command
from logsense.correlator import UNEXPLAINED_DIAGNOSTICS, UNEXPLAINED_REMEDIATION

CATALOGUE = load_catalogue()
ISSUE_PATH = "/var/lib/libvirt/images/$(touch /tmp/x); rm -rf ~.qcow2"  # issue 16, item 8
# every way out of a shell word: quotes of both kinds, command substitution, backticks, a new command
HOSTILE = "a'b\"c$(echo >MARK1)`echo >MARK2`;echo >MARK3;\necho >MARK4 #"


@pytest.mark.parametrize("pattern", CATALOGUE.patterns, ids=lambda p: p.id)
def test_every_pattern_renders_with_its_examples_fields_and_no_placeholder_left(pattern):
    for ex in pattern.examples or [None]:
        values = dict(ex.fields) if ex else {}
        fix, confirm = render_advice(pattern.remediation, pattern.diagnostics, values)
        for text in [render(pattern.cause, values), *fix, *confirm]:
            assert not FIELD_RE.search(text), text
        assert all(is_command(c) for c in confirm), confirm
        assert fix or not pattern.remediation or all(FIELD_RE.search(s) for s in pattern.remediation)


def test_the_catalogue_writes_only_commands_or_fill_in_templates_as_diagnostics():
    """The rule: a diagnostic is a command (a program name first, shell words, no <value> to fill,
    no closing full stop, comments as `# ...`). Templates with <value> move to Fix; nothing else may
    be written as a diagnostic."""
    rejected = [d for p in CATALOGUE.patterns for d in p.diagnostics if not is_command(d)]
    assert rejected and all(TEMPLATE_RE.search(d) for d in rejected), rejected
    fix, confirm = render_advice([], ["qemu-img check <image>", "free -h"], {})
    assert confirm == ["free -h"] and fix == ["To confirm, fill in the <image> and run: qemu-img check <image>"]


@pytest.mark.parametrize("text", [
    "raise libvirtd's log level: log_filters=\"1:qemu\" in /etc/libvirt/libvirtd.conf",
    "virsh start web01  (its error names the cause)",
    "Stop the stale scope: systemctl stop 'machine-qemu.scope'.",
    "check that the mount is up.",
    "virsh vol-info --pool <pool> <volume>",
])
def test_prose_is_not_a_command(text):
    assert not is_command(text)


@pytest.mark.parametrize("text", [
    "dmesg -T | grep -iE 'oom|Killed process'",
    "virsh start web01 # its error names the cause",
    "virsh domcapabilities | sed -n '/<cpu>/,/<\\/cpu>/p'",
    "prlimit --pid $(pgrep -o virtqemud || pgrep -o libvirtd)",
])
def test_commands_are_commands(text):
    assert is_command(text)


def test_unexplained_incident_advice_never_shows_a_placeholder_or_a_literal_vm():
    fix, confirm = render_advice(UNEXPLAINED_REMEDIATION, UNEXPLAINED_DIAGNOSTICS, {"vm": ""})
    assert confirm == ["journalctl -u libvirtd -u virtqemud --since -1h"]
    assert fix and all("log_filters" in s for s in fix)
    _, confirm = render_advice(UNEXPLAINED_REMEDIATION, UNEXPLAINED_DIAGNOSTICS, {"vm": "web01"})
    assert "virsh start web01 # its error names the cause" in confirm


def test_a_sentence_without_its_value_is_dropped_not_shown_with_braces():
    text = "Check the domain XML. Its emulator is {emulator} for {virttype} guests. Then start it again."
    assert render(text, {}) == "Check the domain XML. Then start it again."
    assert render("Only {vm} here.", {}) == ""


@pytest.mark.parametrize("host", [FIXTURES / "sample-outage", *sorted(p for p in (FIXTURES / "lab").iterdir()
                                                                    if p.is_dir())], ids=lambda p: p.name)
def test_no_report_shows_a_placeholder_or_prose_under_confirm(host):
    rep = json.loads(logsense("analyze", "--format", "json", "--tz", "UTC", str(host)).stdout)
    for inc in rep["incidents"]:
        for text in [inc["title"], inc["explanation"], *inc["remediation"], *inc["diagnostics"]]:
            assert not FIELD_RE.search(text), text
        assert all(is_command(d) for d in inc["diagnostics"]), inc["diagnostics"]
        assert not any(re.search(r"(?<![\w-])VM(?![\w-])", d) for d in inc["diagnostics"])


def test_the_issue_path_comes_out_quoted_and_runs_nothing(tmp_path):
    cmd = render_command("ls -l {path}", {"path": ISSUE_PATH})
    assert cmd == "ls -l '/var/lib/libvirt/images/$(touch /tmp/x); rm -rf ~.qcow2'"
    home = tmp_path / "home"
    home.mkdir()
    payload = render_command("ls -l {path}", {"path": ISSUE_PATH.replace("/tmp/x", str(tmp_path / "x"))})
    proc = subprocess.run(["bash", "-c", payload], cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "No such file or directory" in proc.stderr
    assert not (tmp_path / "x").exists() and home.is_dir()


def test_a_hostile_path_in_a_real_libvirt_line_is_quoted_in_the_report(tmp_path):
    log = tmp_path / "libvirtd.log"
    log.write_text("2024-03-05 10:00:01.000+0000: 1: error : virStorageSourceReportBrokenChain:1283 : Cannot access "
                   f"storage file '{ISSUE_PATH}': No such file or directory\n")
    rep = json.loads(logsense("analyze", "--format", "json", str(log)).stdout)
    diagnostics = [d for inc in rep["incidents"] for d in inc["diagnostics"]]
    assert f"ls -l {shlex.quote(ISSUE_PATH)}" in diagnostics
    assert not [d for d in diagnostics if "$(touch" in d and shlex.quote(ISSUE_PATH) not in d]


def _commands_with_values() -> list[tuple[str, str]]:
    every = [(p.id, d) for p in CATALOGUE.patterns for d in p.diagnostics]
    return [(i, d) for i, d in every + [("unexplained", d) for d in UNEXPLAINED_DIAGNOSTICS]
            if FIELD_RE.search(d) and is_command(d)]


def test_every_catalogue_command_keeps_a_hostile_value_inert(tmp_path):
    """Each command, filled with a value that tries every way out of its quotes, run by a real
    bash with no programs on its PATH (nothing but bash's builtins can run): no marker appears."""
    script = []
    for _, d in _commands_with_values():
        fields = {m.group(1): HOSTILE for m in FIELD_RE.finditer(d)}
        script.append(render_command(d, fields))
    assert len(script) > 100
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(["/bin/bash", "-c", "\n".join(f"{{ {c}\n}} </dev/null" for c in script)], cwd=tmp_path,
                          env={"PATH": str(tmp_path / "empty"), "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=120)
    assert "syntax error" not in proc.stderr, proc.stderr[-2000:]
    assert not list(tmp_path.glob("MARK*")), proc.stderr[-2000:]
