"""The corpus of real public log excerpts (fixtures/real) is well formed and the score does not fall.

Floors live in fixtures/real/SCORE_FLOOR.toml; benchmarks/real_corpus.py prints every miss.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("real_corpus", REPO / "benchmarks" / "real_corpus.py")
real_corpus = importlib.util.module_from_spec(_spec)
sys.modules["real_corpus"] = real_corpus
_spec.loader.exec_module(real_corpus)

FOLDERS = sorted(p for p in real_corpus.CORPUS.iterdir() if p.is_dir())
MIN_EXCERPTS, MIN_QUIET = 150, 40


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_excerpt_folder_is_valid(folder: Path) -> None:
    assert real_corpus.verdict_problems(folder) == []


def test_an_invalid_folder_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "no-category-1"
    bad.mkdir()
    (bad / "verdict.toml").write_text('origin = "https://example.org/x"\nsource_kind = "qemu"\n'
                                      'verdict = "fault"\nnote = "n"\n', encoding="utf-8")
    problems = real_corpus.verdict_problems(bad)
    assert any("category" in p for p in problems)
    assert any("no log file" in p for p in problems)


def test_top_incident_is_most_severe_then_earliest() -> None:
    incs = [{"category": "network", "severity": "major", "first_seen": "2024-01-01T00:00:01+00:00"},
            {"category": "memory", "severity": "critical", "first_seen": "2024-01-01T00:00:09+00:00"},
            {"category": "storage", "severity": "critical", "first_seen": "2024-01-01T00:00:05+00:00"}]
    assert real_corpus.top_incident(incs)["category"] == "storage"
    assert real_corpus.names_vm({"vm": None, "affected_vms": ["a", "b"]}, "b")
    assert not real_corpus.names_vm({"vm": "a", "affected_vms": []}, "b")


@pytest.fixture(scope="module")
def summary() -> dict:
    _, summ = real_corpus.run()
    return summ


def test_score_does_not_fall_below_the_floors(summary: dict) -> None:
    floor = tomllib.loads((real_corpus.CORPUS / real_corpus.FLOOR_FILE).read_text(encoding="utf-8"))
    assert summary["errors"] == 0
    assert summary["explained_ratio"] >= floor["explained_ratio"], summary
    assert summary["false_alarms"] <= floor["false_alarms"], summary


def test_corpus_is_complete() -> None:
    excerpts = real_corpus.load_corpus()
    quiet = [e for e in excerpts if e.verdict["verdict"] == "quiet"]
    assert len(excerpts) >= MIN_EXCERPTS
    assert len(quiet) >= MIN_QUIET
