"""Log text is untrusted: in Markdown it renders as text, on a terminal it cannot act."""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile

import pytest
from conftest import FIXTURES, logsense, read_events
from markdown_it import MarkdownIt  # rich's own Markdown parser: CommonMark, raw HTML allowed

from logsense.correlator import correlate
from logsense.report import unrecognised_summary, write_markdown
from logsense.text import one_line, safe

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"  # writes "rm -rf ~" to the clipboard
HOSTILE_PATH = ("/img/web01.qcow2\n# Injected heading\n````\n<img src=x onerror=alert(1)>\u202egpj.qcow2"
                f"{OSC52}\x1b[2J\x9b2J")
RAW = ["\x1b", "\x07", "\x9b", "\u202e"]


def journal_json(tmp_path, message: str):
    """A libvirtd journal entry as `journalctl -o json` writes it (fields of libvirt's own)."""
    entry = {"__REALTIME_TIMESTAMP": "1709633472123456", "_HOSTNAME": "kvm01", "_PID": "1432", "PRIORITY": "3",
             "SYSLOG_IDENTIFIER": "libvirtd", "_SYSTEMD_UNIT": "libvirtd.service", "LIBVIRT_SOURCE": "util.error",
             "CODE_FUNC": "virStorageSourceReportBrokenChain", "LIBVIRT_CODE": "38", "MESSAGE": message}
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(entry) + "\n")
    return path


def markdown_of(*paths) -> str:
    evs, run = read_events(list(paths))
    out = io.StringIO()
    write_markdown(out, [i.to_dict() for i in correlate(evs)], dict(run.stats), unrecognised_summary(evs),
                   warnings=run.warnings)
    return out.getvalue()


def test_markdown_from_a_hostile_journal_message_renders_as_text(tmp_path):
    message = f"Cannot access storage file '{HOSTILE_PATH}': No such file or directory"
    md = markdown_of(journal_json(tmp_path, message))
    tokens = MarkdownIt("commonmark").parse(md)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == ["logsense report: 1 incident", "kvm01: disk image missing (no line names the VM)"]
    assert not [t for t in tokens if t.type in ("html_block", "html_inline")]
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 2  # evidence and Confirm, each one whole block
    assert "# Injected heading\\n````\\n<img src=x onerror=alert(1)>" in fences[0].content
    html = MarkdownIt("commonmark").render(md)
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    for raw in RAW:
        assert raw not in md


def test_markdown_does_not_pass_catalogue_markup_as_html():
    md = markdown_of(FIXTURES / "sample-outage")
    html = MarkdownIt("commonmark").render(md)
    assert "&lt;source file=...&gt;" in html and "&lt;target&gt;" in html  # in Fix: shown, not swallowed
    assert "<source" not in html and "<target" not in html


def test_a_backtick_run_in_a_log_line_cannot_close_its_fence(tmp_path):
    message = "Cannot access storage file '/img/a``````b.qcow2': No such file or directory"
    md = markdown_of(journal_json(tmp_path, message))
    fences = [t for t in MarkdownIt("commonmark").parse(md) if t.type == "fence"]
    assert fences[0].markup == "```````" and "a``````b.qcow2" in fences[0].content


def test_terminal_text_escapes_escapes_bidi_and_c1(tmp_path):
    message = f"Cannot access storage file '{HOSTILE_PATH}': No such file or directory"
    out = logsense("analyze", "--format", "text", str(journal_json(tmp_path, message))).stdout
    for raw in RAW:
        assert raw not in out
    flat = "".join(out.split())
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07" in flat and "\\u202egpj" in flat and "\\x9b2J" in flat
    assert "\n# Injected" not in out


def test_safe_and_one_line():
    assert safe("a\x1b[31mb\u2066c\u2069\td\ne") == "a\\x1b[31mb\\u2066c\\u2069\td\ne"
    assert one_line("a\nb\tc\r") == "a\\nb\\tc\\x0d"


@pytest.mark.parametrize("name", [f"evil{OSC52}.log.gz", "evil\u202egol.gz", "evil\x1b]0;owned\x07\x1b[2J.gz"])
def test_file_names_in_warnings_reach_the_terminal_escaped(tmp_path, name):
    (tmp_path / name).write_bytes(gzip.compress(b"2024-03-05 10:00:01.000+0000: 1: error : x\n" * 200)[:60])
    proc = logsense("analyze", "--format", "text", str(tmp_path), check=False)
    assert "Traceback" not in proc.stderr and "logsense: warning:" in proc.stderr
    for raw in RAW:
        assert raw not in proc.stderr and raw not in proc.stdout
    assert one_line(name) in proc.stderr


def test_archive_member_names_in_warnings_reach_the_terminal_escaped(tmp_path):
    archive = tmp_path / "host.tar"
    with tarfile.open(archive, "w") as tar:
        for member in (f"../{OSC52}x.log", "/etc/\u202eevil"):
            info = tarfile.TarInfo(member)
            data = b"2024-03-05 10:00:01.000+0000: 1: error : x\n"
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    proc = logsense("analyze", "--format", "text", str(archive), check=False)
    assert "Traceback" not in proc.stderr
    assert re.search(r"refused archive member", proc.stderr)
    for raw in RAW:
        assert raw not in proc.stderr and raw not in proc.stdout


def test_events_as_text_keep_one_event_a_line(tmp_path):
    message = f"Cannot access storage file '{HOSTILE_PATH}': No such file or directory"
    out = logsense("events", "--format", "text", str(journal_json(tmp_path, message))).stdout
    assert len(out.splitlines()) == 1 and "\\n# Injected heading\\n" in out
    for raw in RAW:
        assert raw not in out
