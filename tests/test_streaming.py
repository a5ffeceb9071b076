"""Events leave the reader in time order without all being held: runs sorted and spilled to disk,
then merged, give exactly what sorting everything in memory gave, on every fixture tree; and the
writers of `logsense events` write what they are given as it comes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import FIXTURES, logsense
from test_ingest_modes import fixture_trees

import logsense as api
from logsense import spill
from logsense.frame import events_frame, write_events_parquet_batches
from logsense.pipeline import Options, Reader, parse_zone
from logsense.report import write_json_object

SAMPLE = FIXTURES / "sample-outage"


def event_dicts(tree: Path, all_lines: bool = True) -> list[dict]:
    reader = Reader(Options(tz=parse_zone("UTC"), year=2026, all_lines=all_lines))
    return [e.to_dict() for e in reader.iter_events([str(tree)])]


@pytest.mark.parametrize("tree", fixture_trees(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_runs_spilled_to_disk_give_the_order_of_one_sort_in_memory(tree: Path, monkeypatch) -> None:
    whole = event_dicts(tree)
    monkeypatch.setattr(spill, "RUN_SIZE", 3)  # a run every three events: ties cross runs
    assert event_dicts(tree) == whole


@pytest.mark.parametrize("tree", [SAMPLE, FIXTURES / "formats"], ids=["sample", "formats"])
def test_runs_merged_early_to_bound_open_files_keep_the_order(tree: Path, monkeypatch) -> None:
    whole = event_dicts(tree)
    monkeypatch.setattr(spill, "RUN_SIZE", 2)
    monkeypatch.setattr(spill, "MAX_RUNS", 3)  # every third run, the runs so far become one
    assert event_dicts(tree) == whole


def test_spilled_runs_leave_no_file_behind(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(spill.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(spill, "RUN_SIZE", 5)
    reader = Reader(Options(tz=parse_zone("UTC"), all_lines=True))
    evs = reader.iter_events([str(SAMPLE)])
    assert len(list(tmp_path.iterdir())) == 1  # read: the runs wait on disk
    assert sum(1 for _ in evs) > 5 * 3
    assert list(tmp_path.iterdir()) == []


def test_read_stats_are_complete_before_the_first_event_is_taken() -> None:
    reader = Reader(Options(tz=parse_zone("UTC")))
    evs = reader.iter_events([str(SAMPLE)])
    matched = reader.run.stats["events_matched"]
    assert matched > 0 and reader.run.read
    assert matched == sum(1 for e in evs if e.pattern is not None)


@pytest.mark.parametrize("value", [[], [{"a": [1, {"b": None}]}, "x\ny", 3.5], [{}]])
def test_json_object_streamed_is_json_dump_byte_for_byte(value: list) -> None:
    parts = {"events": value, "stats": {"n": 1, "l": ["é", {}], "e": []}, "more": []}
    out = io.StringIO()
    write_json_object(out, {**parts, "events": iter(value)})
    expected = io.StringIO()
    json.dump(parts, expected, indent=2)
    assert out.getvalue() == expected.getvalue() + "\n"


def test_parquet_in_many_row_groups_reads_back_as_the_frame(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    evs = Reader(Options(tz=parse_zone("UTC"), all_lines=True)).events([str(SAMPLE)])
    out = tmp_path / "events.parquet"
    write_events_parquet_batches(iter(evs), out, batch=7)
    assert pq.ParquetFile(out).num_row_groups == -(-len(evs) // 7)
    pd.testing.assert_frame_equal(pd.DataFrame(api.read_events_parquet(out)), pd.DataFrame(events_frame(evs)))


def test_parquet_of_no_event_is_the_empty_frame_written_whole(tmp_path: Path) -> None:
    write_events_parquet_batches(iter([]), tmp_path / "none.parquet")
    events_frame([]).to_parquet(tmp_path / "whole.parquet")
    pd.testing.assert_frame_equal(api.read_events_parquet(tmp_path / "none.parquet"),
                                  api.read_events_parquet(tmp_path / "whole.parquet"))


def test_events_all_json_from_the_command_line_is_the_jsonl_events_with_stats(tmp_path: Path) -> None:
    whole = json.loads(logsense("events", "--all", "--tz", "UTC", "--format", "json", str(SAMPLE)).stdout)
    lines = logsense("events", "--all", "--tz", "UTC", "--format", "jsonl", str(SAMPLE)).stdout.splitlines()
    assert whole["events"] == [json.loads(x) for x in lines]
    assert len(lines) > whole["stats"]["events_matched"] > 0


def analyses(tree: Path) -> tuple[dict[str, dict], dict[str, dict], int]:
    """(the correlator's incidents of the whole list, those the one pass over the stream gave, how
    many it handed out before the end), by id."""
    from logsense import batch
    from logsense.correlator import correlate
    from logsense.lifecycle import RebootIncident

    reader = Reader(Options(tz=parse_zone("UTC"), year=2026))
    evs = reader.events([str(tree)])
    whole = {d["id"]: d for d in (inc.to_dict("en") for inc in correlate(evs))}
    early = 0
    feed = batch.FinalIncidents.feed

    def counting(self, ev):
        nonlocal early
        out = feed(self, ev)
        early += len(out)
        return out

    objects: dict = {}
    batch.FinalIncidents.feed = counting
    try:
        batch.analyse(iter(evs), lang="en", objects=objects).close()
    finally:
        batch.FinalIncidents.feed = feed
    streamed = {k: inc.to_dict("en") for k, inc in objects.items() if not isinstance(inc, RebootIncident)}
    return whole, streamed, early


@pytest.mark.parametrize("tree", fixture_trees(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_analysis_in_one_pass_finds_the_incidents_of_the_whole_list(tree: Path) -> None:
    whole, streamed, _ = analyses(tree)
    assert streamed == whole


def test_a_day_of_a_busy_host_hands_incidents_out_as_they_become_final(tmp_path: Path) -> None:
    """The benchmarks' realistic archive (real fault lines over a day): most incidents leave the
    correlator long before the end, and they are the ones the whole list gives."""
    import sys

    sys.path.insert(0, str(FIXTURES.parent / "benchmarks"))
    from archive import realistic_host

    realistic_host(tmp_path / "host", 30_000, vms=8)
    whole, streamed, early = analyses(tmp_path / "host")
    assert streamed == whole and len(whole) > 50
    assert early > len(whole) / 2
