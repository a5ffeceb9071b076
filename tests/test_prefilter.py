"""The portable prefilter (Aho-Corasick over necessary literals) must never lose a line that the
Hyperscan path (or the plain per-line path) finds."""

from __future__ import annotations

import os
import subprocess

import pytest
import regex

from logsense import catalogue as catmod
from logsense.catalogue import Catalogue, CatalogueError, load_catalogue
from logsense.catalogue_check import example_record, selected_in_buffer
from logsense.prefilter import LiteralPrefilter, necessary_literals
from tests.conftest import FIXTURES, LOGSENSE, ROOT

REFERENCE = "hyperscan" if catmod.hyperscan is not None else "none"  # what the fallback is held to


def load(kind: str) -> Catalogue:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOGSENSE_PREFILTER", kind)
        return load_catalogue()


@pytest.fixture(scope="module")
def aho() -> Catalogue:
    return load("aho")


@pytest.fixture(scope="module")
def reference() -> Catalogue:
    return load(REFERENCE)


def texts(lits) -> set[str]:
    return {t for t, _ in lits}


@pytest.mark.parametrize("rx, want", [
    (r"Kill(?:ed)? process (?P<pid>\d+)", {"Kill process ", "Killed process "}),  # optional group
    (r"Out of memory|oom-kill:constraint=", {"Out of memory", "oom-kill:constraint="}),  # alternation
    (r"[Ll]og I/O [Ee]rror", {"Log I/O Error", "Log I/O error", "log I/O Error", "log I/O error"}),  # small class
    (r"(?P<dev>sd[a-z]+): (?:timeout|reset) on port \d+", {": timeout on port ", ": reset on port "}),
    (r"^Call Trace:\s*$", {"Call Trace:"}),  # anchors are zero width
    (r"XFS \((?P<d>[\w.-]+)\): (?:metadata I/O error|[Ll]og I/O)", {"): metadata I/O error", "): log I/O",
                                                                     "): Log I/O"}),
])
def test_literal_derivation(rx: str, want: set[str]):
    lits = necessary_literals(rx)
    assert lits is not None and texts(lits) == want
    assert not any(ci for _, ci in lits)


def test_case_insensitive_literals_are_lowered_and_avoid_unicode_case_partners():
    rx = r"(?i)bad disk (?:full|gone)"
    lits = necessary_literals(rx)
    assert lits is not None and all(ci for _, ci in lits)
    assert all(t == t.lower() and not set(t) & set("kis") for t, _ in lits)
    for line in ("BAD DISK FULL", "bad disk gone", "Bad Di\u017f\u212a Full"):  # LONG S, KELVIN SIGN
        assert regex.search(rx, line)
        assert any(t in line.encode().lower().decode("latin-1") for t, _ in lits), line
    # a case-sensitive literal is preferred; a too-short one is not
    assert texts(necessary_literals(r"kvm: (?i:disabled by bios)")) == {"kvm: "}  # one scan, not two
    assert texts(necessary_literals(r"\d: (?i:disabled by bios)")) == {"abled by b"}
    assert texts(necessary_literals(r"failed to initialize (?i:kvm)")) == {"failed to initialize "}


@pytest.mark.parametrize("rx", [r"a|b\d+", r"(?:abc)?xy", r"\d+ \w+", r"(\w+)-\1", r"x{0,3}"])
def test_no_safe_literal_means_always_a_candidate(rx: str):
    assert necessary_literals(rx) is None
    pre = LiteralPrefilter([rx, r"never here"], [("syslog",), ("syslog",)])
    assert pre.without_literal() == [0]
    assert 0 in pre.candidates("anything at all")
    buf = b"one\ntwo\n"
    assert pre.selector("syslog")(buf) == [(0, 3), (4, 7)]  # every line: correct, slow


def test_selector_picks_literal_and_hint_lines_only(aho: Catalogue):
    lines = [b"2024-03-05 10:00:00.000+0000: 1: info : f:1 : benign",
             b"2024-03-05 10:00:01.000+0000: 1: error : f:2 : something nobody has a pattern for",
             b"2024-03-05 10:00:02.000+0000: 1: error : f:3 : internal error: End of file from monitor",
             b"2024-03-05 10:00:03.000+0000: 1: debug : f:4 : another benign line"]
    buf = b"\n".join(lines) + b"\n"
    starts = [s for s, _ in aho.selector("libvirtd")(buf)]
    assert starts == [buf.index(lines[1]), buf.index(lines[2])]
    assert aho.selector("qemu")(b"x\nqemu-system-x86_64: -drive file=a: oops\n") == [(2, 41)]


def examples(cat: Catalogue):
    for p in cat.patterns:
        for ex in p.examples + p.near_misses:
            yield p, ex, example_record(ex, p)


def test_every_example_is_selected_and_classified_as_with_the_reference(aho: Catalogue, reference: Catalogue):
    assert aho.prefilter == "aho" and reference.prefilter == REFERENCE
    wrong = []
    for p, ex, rec in examples(aho):
        if rec.source != "journal" and ex in p.examples and not selected_in_buffer(aho, ex.line, rec.source):
            wrong.append(f"{p.id}: not selected: {ex.line}")
        got, want = aho.match(rec.message, rec.source), reference.match(rec.message, rec.source)
        if (got and (got.pattern.id, got.fields)) != (want and (want.pattern.id, want.fields)):
            wrong.append(f"{p.id}: {got and got.pattern.id} != {want and want.pattern.id}: {ex.line}")
    assert not wrong, "\n".join(wrong)


def test_candidates_are_a_superset_of_every_regex_that_matches(aho: Catalogue):
    """Not only the winner: every pattern whose regex matches an example line is a candidate."""
    lost = []
    for _p, _ex, rec in examples(aho):
        cands = set(aho._candidates(rec.message, rec.source))
        for i in aho._by_source.get(rec.source, []):
            if aho.patterns[i].compiled.search(rec.message) and i not in cands:
                lost.append(f"{aho.patterns[i].id}: {rec.message}")
    assert not lost, "\n".join(lost)


def test_unknown_prefilter_is_an_error():
    with pytest.raises(CatalogueError):
        load("fastest")


def events(kind: str, path: str) -> str:
    proc = subprocess.run([*LOGSENSE, "events", "--format", "jsonl", "--tz", "UTC", "--year", "2024", path],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "LOGSENSE_PREFILTER": kind})
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


@pytest.mark.parametrize("fixture", ["lab", "sample-outage"])
def test_events_are_identical_with_either_prefilter(fixture: str):
    path = str(FIXTURES / fixture)
    want = events(REFERENCE, path)
    assert want.count("\n") > 10
    assert events("aho", path) == want
