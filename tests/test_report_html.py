"""The HTML report: one self-contained file with a summary table, a legend and a timeline whose
marks link to their incidents."""

from __future__ import annotations

import io
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from conftest import FIXTURES, read_events
from test_report_escaping import HOSTILE_PATH, journal_json
from test_report_text import MISSING_DISK

from logsense.correlator import correlate
from logsense.model import CATEGORIES
from logsense.report import unrecognised_summary, write_html

SAMPLE = FIXTURES / "sample-outage"


class Page(HTMLParser):
    """The ids, links (and whether inside the SVG), tags and table rows of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.svg_links: list[str] = []
        self.links: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self._svg = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "svg":
            self._svg += 1
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and "href" in a:
            (self.svg_links if self._svg else self.links).append(a["href"])

    def handle_endtag(self, tag):
        if tag == "svg":
            self._svg -= 1


def html_report(*paths) -> tuple[str, list[dict]]:
    evs, run = read_events(list(paths))
    incidents = [i.to_dict() for i in correlate(evs)]
    out = io.StringIO()
    write_html(out, incidents, dict(run.stats), unrecognised_summary(evs), evs, warnings=run.warnings)
    return out.getvalue(), incidents


def test_timeline_marks_and_summary_table_link_to_every_incident():
    text, incidents = html_report(SAMPLE)
    page = Page(text)
    want = {f"#inc-{i['id']}" for i in incidents}
    assert want <= set(page.svg_links) and want <= set(page.links)  # timeline and summary table
    assert {h[1:] for h in page.svg_links + page.links if h.startswith("#")} <= page.ids  # no dead link
    marks = [a for t, a in page.tags if t == "circle"]
    assert len(page.svg_links) > len(incidents) and marks


def test_summary_table_and_legend_come_before_the_incidents():
    text, incidents = html_report(SAMPLE)
    assert text.index("<table class='summary'>") < text.index("<svg") < text.index("<section")
    summary = text[text.index("<table class='summary'>"):text.index("</table>")]
    assert summary.count("<tr class='critical'>") == len(incidents) == 5
    legend = text[text.index("<div class='legend'>"):text.index("<svg")]
    assert all(f"</i>{c}</span>" in legend for c in CATEGORIES) and "unrecognised error" in legend


def test_html_is_self_contained():
    text, _ = html_report(SAMPLE)
    page = Page(text)
    assert not [a for _, a in page.tags if "src" in a or "onerror" in a or "onclick" in a]
    assert "<script" not in text and "<link" not in text and "http://" not in text.replace(
        "http://www.w3.org/2000/svg", "") and "https://" not in text


def test_grouped_incidents_keep_a_target_for_every_member(tmp_path):
    log = tmp_path / "var" / "log" / "libvirt"
    (log / "qemu").mkdir(parents=True)
    lines = []
    for n in range(4):
        lines.append(MISSING_DISK.format(t=f"2024-03-05 10:{n:02d}:01.000+0000", vm=f"web{n}"))
        (log / "qemu" / f"web{n}.log").write_text(f"2024-03-05 10:{n:02d}:01.001+0000: shutting down, reason=failed\n")
    (log / "libvirtd.log").write_text("".join(lines))
    text, incidents = html_report(tmp_path)
    page = Page(text)
    assert len(incidents) == 4 and text.count("<section class='incident") == 1
    assert {f"inc-{i['id']}" for i in incidents} <= page.ids
    assert {f"#inc-{i['id']}" for i in incidents} <= set(page.svg_links)


def test_hostile_log_text_is_inert_in_html(tmp_path):
    message = f"Cannot access storage file '{HOSTILE_PATH}': No such file or directory"
    text, _ = html_report(journal_json(tmp_path, message))
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "\x1b" not in text and "\u202e" not in text and "\\u202e" in text


def test_links_survive_in_a_real_browser(tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed (bash dev.sh test installs it)")
    text, incidents = html_report(SAMPLE)
    page = tmp_path / "report.html"
    page.write_text(text)
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = Page(proc.stdout)
    assert {f"#inc-{i['id']}" for i in incidents} <= set(dom.svg_links)
    assert "logsense report: 5 incidents" in proc.stdout
