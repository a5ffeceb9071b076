"""Hostile site catalogues (issue 16, class 10): a site's pattern files pass the checks built-in
files pass before use, or the run stops with one line; nothing hangs, nothing eats the memory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import FIXTURES, LOGSENSE, logsense
from test_catalogue import SITE_PATTERN

from logsense.catalogue import Catalogue, Pattern

GOOD = SITE_PATTERN
SAMPLE = str(FIXTURES / "sample-outage")


def analyze_with(site: Path) -> tuple[int, str]:
    proc = logsense("analyze", "--format", "json", "--catalogue", str(site), SAMPLE, check=False)
    return proc.returncode, proc.stderr


def assert_one_line_refusal(rc: int, err: str, *words: str) -> None:
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("logsense: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], err


def test_a_good_site_file_is_used(tmp_path: Path):
    (tmp_path / "site.toml").write_text(GOOD)
    rc, err = analyze_with(tmp_path)
    assert rc == 0, err


@pytest.mark.parametrize("mutation, words", [
    (("category = \"storage\"", "category = \"disk\""), ["category 'disk'"]),
    (("title = \"SAN path down\"", "title = 5"), ["'title' must be a string"]),
    (("remediation = [\"Check the fabric.\"]", "remediation = [1, 2]"), ["'remediation' must be"]),
    (("sources = [\"syslog\"]", "sources = 5"), ["'sources' must be"]),
    (("regex = '''san-agent: path (?P<device>\\S+) down'''", "regex = '''(unclosed'''"), ["does not compile"]),
    (("regex = '''san-agent: path (?P<device>\\S+) down'''",
      "regex = '''san-agent: path (?P<device>\\S+) down|x{1000000}'''"), ["bounded repeat"]),
    (("regex = '''san-agent: path (?P<device>\\S+) down'''",
      "regex = '''san-agent: path (?P<device>\\S+) down|x{99999,}'''"), ["bounded repeat"]),
    (("regex = '''san-agent: path (?P<device>\\S+) down'''",
      "regex = '''(?:a+)+b|san-agent: path (?P<device>\\S+) down'''"), ["adversarial"]),
    (("fields = { device = \"sdq\" }", "fields = { device = \"sdz\" }"), ["field device"]),
])
def test_a_broken_site_file_stops_the_run_with_one_line(tmp_path: Path, mutation, words):
    (tmp_path / "site.toml").write_text(GOOD.replace(*mutation))
    rc, err = analyze_with(tmp_path)
    assert_one_line_refusal(rc, err, "site.toml", *words)


def test_a_site_file_that_is_not_toml_or_not_text_stops_the_run(tmp_path: Path):
    (tmp_path / "site.toml").write_bytes(b"\xff\xfe[[pattern]\x00")
    rc, err = analyze_with(tmp_path)
    assert_one_line_refusal(rc, err, "site.toml", "cannot read")
    (tmp_path / "site.toml").write_text("pattern = 5\n")
    rc, err = analyze_with(tmp_path)
    assert_one_line_refusal(rc, err, "site.toml", "array")


def test_a_fifo_in_the_catalogue_folder_does_not_hang(tmp_path: Path):
    os.mkfifo(tmp_path / "site.toml")
    import subprocess
    proc = subprocess.run([*LOGSENSE, "analyze", "--catalogue", str(tmp_path), SAMPLE], capture_output=True,
                          text=True, timeout=60)
    assert_one_line_refusal(proc.returncode, proc.stderr, "not a regular file")


def test_a_huge_site_file_is_refused_unread(tmp_path: Path):
    with open(tmp_path / "site.toml", "wb") as f:
        f.truncate(64 << 20)  # sparse: 64 MiB of nothing
    rc, err = analyze_with(tmp_path)
    assert_one_line_refusal(rc, err, "larger than")


def test_regex_timeouts_are_counted_per_pattern():
    import regex
    slow = Pattern(id="site.performance.slow", sources=("syslog",), regex="(a|aa)+$", category="performance",
                   severity="minor", role="context", title="t", cause="c", remediation=["r"], diagnostics=["d"],
                   compiled_regex=regex.compile("(a|aa)+$"))
    cat = Catalogue([slow], prefilter_kind="none")
    assert cat.match("a" * 5000 + "b", "syslog") is None
    assert cat.timeouts == {"site.performance.slow": 1}
