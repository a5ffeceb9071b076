"""The catalogue is code: every pattern proven by its examples, benign lines left alone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import logsense, read_events

from logsense.catalogue import CatalogueError, load_catalogue
from logsense.catalogue_check import example_record, selected_in_buffer
from logsense.model import Record
from logsense.pipeline import classify

CATALOGUE = load_catalogue()


@pytest.mark.parametrize("pattern_id", sorted(CATALOGUE.by_id))
def test_pattern_examples(pattern_id: str):
    p = CATALOGUE.by_id[pattern_id]
    assert p.examples, f"{pattern_id} has no example: every pattern needs real lines"
    for ex in p.examples:
        rec = example_record(ex, p)
        m = CATALOGUE.match(rec.message, rec.source)
        assert m is not None and m.pattern.id == pattern_id, ex.line
        assert {k: m.fields.get(k) for k in ex.fields} == ex.fields
        if rec.source != "journal":
            assert selected_in_buffer(CATALOGUE, ex.line, rec.source), "the fast path would miss it"
    for ex in p.near_misses:
        rec = example_record(ex, p)
        assert CATALOGUE.match(rec.message, rec.source) is None, ex.line


def test_catalogue_size_and_coverage():
    cats = {p.category for p in CATALOGUE.patterns}
    assert len(CATALOGUE.patterns) >= 200
    assert cats == {"memory", "cpu", "permission", "disk_image", "storage", "network", "config", "virt_layer",
                    "performance", "host", "guest"}


BENIGN = """\
Mar  5 10:00:01 kvm01 sshd[2211]: Connection closed by authenticating user root 10.0.0.9 port 52114 [preauth]
Mar  5 10:00:02 kvm01 sshd[2211]: error: Could not load host key: /etc/ssh/ssh_host_dsa_key
Mar  5 10:00:03 kvm01 sudo[2300]: pam_unix(sudo:auth): auth could not identify password for [bob]
Mar  5 10:00:04 kvm01 bash[2301]: /home/bob/run.sh: line 3: /tmp/out: Permission denied
Mar  5 10:00:05 kvm01 dnsmasq-dhcp[1187]: DHCPREQUEST(virbr0) 192.168.122.45 52:54:00:6b:3c:58
Mar  5 10:00:05 kvm01 dnsmasq-dhcp[1187]: DHCPACK(virbr0) 192.168.122.45 52:54:00:6b:3c:58 web02
Mar  5 10:00:06 kvm01 kernel: [338312.020118] virbr0: port 2(vnet1) entered blocking state
Mar  5 10:00:06 kvm01 kernel: [338312.020201] device vnet1 entered promiscuous mode
Mar  5 10:00:08 kvm01 kernel: [338313.736010] virbr0: port 2(vnet1) entered forwarding state
Mar  5 10:00:09 kvm01 systemd[1]: Started session-812.scope - Session 812 of User root.
Mar  5 10:00:10 kvm01 systemd[1]: Starting libvirtd.service - Virtualization daemon...
Mar  5 10:00:11 kvm01 libvirtd[1432]: libvirt version: 9.0.0, package: 9.0.0-4+deb12u2 (Debian)
Mar  5 10:00:12 kvm01 CRON[40211]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)
Mar  5 10:00:13 kvm01 systemd[1]: logrotate.service: Deactivated successfully.
"""


def test_benign_lines_are_not_events(tmp_path: Path):
    (tmp_path / "messages").write_text(BENIGN)
    evs, run = read_events([tmp_path / "messages"], year=2024)
    assert run.stats["lines_read"] == len(BENIGN.splitlines())
    assert [(e.pattern_id, e.record.message) for e in evs if e.role != "context"] == []


def test_normal_start_and_stop_raise_nothing():
    from conftest import FIXTURES

    from logsense.correlator import correlate

    for scenario in ("destroy", "clean-shutdown"):
        evs, _ = read_events([FIXTURES / "lab" / scenario / "warn"])
        assert correlate(evs) == [], scenario


def test_journal_entry_classified_by_libvirt_code():
    rec = Record(ts=datetime.now(UTC), source="journal", message="some message no pattern knows about pool p1",
                 level="error", extra={"LIBVIRT_CODE": "49"})
    ev = classify(rec, CATALOGUE)
    assert (ev.pattern, ev.category, ev.role) == (None, "storage", "context")
    assert ev.fields == {"libvirt_code": "VIR_ERR_NO_STORAGE_POOL"} and ev.shape is not None


def test_unknown_error_line_is_kept_as_unrecognised(tmp_path: Path):
    log = tmp_path / "libvirtd.log"
    log.write_text("2024-03-05 10:00:00.000+0000: 1: error : fooBar:12 : internal error: the flux capacitor "
                   "broke at 88 mph\n2024-03-05 10:00:01.000+0000: 1: info : fooBar:13 : all fine\n")
    evs, _ = read_events([log])
    assert len(evs) == 1 and evs[0].pattern is None and evs[0].role == "context"
    assert evs[0].shape == "internal error: the flux capacitor broke at <n> mph"


SITE_PATTERN = """
[[pattern]]
id = "site.storage.san-path-down"
sources = ["syslog"]
regex = '''san-agent: path (?P<device>\\S+) down'''
category = "storage"
severity = "major"
role = "cause"
title = "SAN path down"
cause = "A SAN path went down."
remediation = ["Check the fabric."]
diagnostics = ["multipath -ll"]

[[pattern.examples]]
line = "Mar  5 10:00:00 kvm01 san-agent[12]: san-agent: path sdq down"
fields = { device = "sdq" }
"""


def test_site_catalogue_adds_patterns(tmp_path: Path):
    (tmp_path / "site.toml").write_text(SITE_PATTERN)
    ok = logsense("catalogue", "check", "--catalogue", str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    log = tmp_path / "messages"
    log.write_text("Mar  5 10:00:00 kvm01 san-agent[12]: san-agent: path sdq down\n")
    out = logsense("catalogue", "test", "--catalogue", str(tmp_path), "--year", "2024", str(log)).stdout
    assert "site.storage.san-path-down  device=sdq" in out
    shown = logsense("catalogue", "show", "--catalogue", str(tmp_path), "site.storage.san-path-down").stdout
    assert "multipath -ll" in shown and "san-agent: path sdq down" in shown


def test_site_file_replaces_a_builtin_file_of_the_same_name(tmp_path: Path):
    (tmp_path / "security.toml").write_text(SITE_PATTERN)
    listed = logsense("catalogue", "list", "--catalogue", str(tmp_path)).stdout
    assert "site.storage.san-path-down" in listed
    assert "security.permission.selinux-avc-virt" not in listed


def test_check_rejects_bad_patterns_one_line_each(tmp_path: Path):
    bad = SITE_PATTERN.replace('[[pattern.examples]]\nline = "Mar  5 10:00:00 kvm01 san-agent[12]: san-agent: path '
                               'sdq down"\nfields = { device = "sdq" }', "")
    bad += SITE_PATTERN.replace("site.storage.san-path-down", "site.storage.slow").replace(
        "san-agent: path (?P<device>\\\\S+) down", "(a+)+$").replace("category = \"storage\"", "category = \"disk\"")
    (tmp_path / "bad.toml").write_text(bad)
    proc = logsense("catalogue", "check", "--catalogue", str(tmp_path), check=False)
    assert proc.returncode == 1
    err = proc.stderr
    assert "site.storage.san-path-down: no examples" in err
    assert "category 'disk' is not one of" in err
    (tmp_path / "bad.toml").write_text(SITE_PATTERN.replace("san-agent: path (?P<device>\\S+) down",
                                                            "san-agent: path (?P<device>(?:\\S+\\s*)+)x"))
    slow = logsense("catalogue", "check", "--catalogue", str(tmp_path), check=False)
    assert slow.returncode == 1 and "10 KB adversarial line" in slow.stderr
    assert "Traceback" not in err


def test_outcomes_and_chains_are_data_checked_with_the_catalogue(tmp_path: Path):
    """patterns/outcomes.toml words the explanation; a site's copy replaces it and is checked."""
    from logsense.catalogue_check import check_catalogue

    k = load_catalogue().knowledge
    assert k.outcome(["shutting down, reason=crashed"]).text("zh") == "崩溃"
    oom = next(c for c in k.chains if c.name == "oom-killed-qemu")
    assert oom.sentence(list(oom.example), "memory") == (
        "Known chain: the kernel's OOM killer killed the QEMU process to free host memory, "
        "QEMU died (reason=crashed), libvirtd lost its monitor (End of file from monitor).")
    site = tmp_path / "site"
    site.mkdir()
    (site / "outcomes.toml").write_text(
        "[[outcome]]\nresult = 'crashed'\nregex = 'reason=crashed'\nexamples = ['shutting down, reason=failed']\n"
        "[[chain]]\nname = 'x'\nall = ['Killed process']\ntext = 'Known chain: x'\nexample = ['nothing here']\n"
        "[[chain]]\nname = 'y'\nall = ['(']\ntext = 'y'\nexample = ['(']\n")
    with pytest.raises(CatalogueError):  # a site's broken knowledge is refused before use
        load_catalogue([site])
    problems = check_catalogue(load_catalogue([site], vet_site=False), timing=False)
    assert any("outcome 'crashed': example 1 gives None" in p for p in problems)
    assert any("chain 'x': does not hold on its own example lines" in p for p in problems)
    assert any("chain 'y'" in p and "does not compile" in p for p in problems)
