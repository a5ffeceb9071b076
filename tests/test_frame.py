"""The DataFrame API (logsense/frame.py): the same events and incidents as the command line,
with real dtypes."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import warnings

import pandas as pd
import pytest
from conftest import FIXTURES, ROOT
from conftest import logsense as run_logsense

import logsense
from logsense.report import incident_html

FORMATS = FIXTURES / "formats"
ARGS = ["--tz", "UTC", "--year", "2024"]  # syslog lines carry no year: fixed, not the checkout's mtime


def read(paths=FORMATS, **kw) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return logsense.events(paths, tz="UTC", year=2024, **kw)


@pytest.fixture(scope="module")
def ev() -> pd.DataFrame:
    return read()


@pytest.fixture(scope="module")
def inc(ev) -> pd.DataFrame:
    return logsense.incidents(ev)


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    if not logsense.SAMPLE.is_dir():
        pytest.skip("fixtures/sample-outage is not there yet")
    return read(logsense.SAMPLE)


def contract_rows(df: pd.DataFrame) -> list[dict]:
    """The frame's rows as CONTRACT.md event objects, through the rebuilt Events."""
    from logsense.frame import to_events

    return [e.to_dict() for _, e in to_events(df)]


def test_event_columns_are_the_contract_columns_with_real_dtypes(ev):
    assert list(ev.columns) == ["ts", "host", "source", "file", "line", "cursor", "vm", "pattern", "category",
                                "severity", "role", "message", "fields"]
    assert str(ev["ts"].dtype) == "datetime64[ns, UTC]"
    for col in ("host", "source", "vm", "pattern", "category", "severity", "role"):
        assert isinstance(ev[col].dtype, pd.CategoricalDtype), col
    assert str(ev["line"].dtype) == "Int64"
    assert all(isinstance(f, dict) for f in ev["fields"])
    assert list(ev.index) == list(range(len(ev)))


def test_fixed_vocabularies_are_the_categories_and_severity_is_ordered(ev):
    assert list(ev["severity"].cat.categories) == ["minor", "major", "critical"]
    assert ev["severity"].cat.ordered
    assert set(ev["category"].cat.categories) >= {"memory", "disk_image", "virt_layer", "guest"}
    assert list(ev["source"].cat.categories)[:4] == ["libvirtd", "qemu", "syslog", "journal"]
    assert (ev[ev["severity"] >= "major"]["severity"] != "minor").all()


@pytest.mark.parametrize("all_lines", [False, True], ids=["matched", "all"])
def test_events_agree_row_for_row_with_events_jsonl(all_lines):
    cmd = [sys.executable, "-m", "logsense", "events", "--format", "jsonl", *ARGS, str(FORMATS)]
    proc = subprocess.run(cmd + (["--all"] if all_lines else []), capture_output=True, text=True, cwd=ROOT,
                          check=True)
    cli = [json.loads(line) for line in proc.stdout.splitlines()]
    df = read(str(FORMATS), all_lines=all_lines)
    assert len(df) == len(cli) > 0
    assert contract_rows(df) == cli
    assert logsense.frame_from_dicts(cli).equals(df)


def test_the_oom_kill_is_one_row_with_its_values(ev):
    oom = ev[ev["pattern"] == "kernel.memory.oom-killed-qemu"]
    assert len(oom) == 1
    row = oom.iloc[0]
    assert row["ts"] == pd.Timestamp("2024-01-01T00:00:01Z")  # Dec 31 23:59 → Jan 1: the year rolled over
    assert (row["host"], row["source"], row["line"]) == ("kvm01", "syslog", 3)
    assert row["file"].endswith("var/log/messages")
    assert (row["category"], row["severity"], row["role"]) == ("memory", "critical", "cause")
    assert row["fields"]["pid"] == "28932"
    assert pd.isna(row["cursor"])


def test_qemu_events_carry_their_vm_and_stamps_to_the_microsecond(ev):
    web01 = ev[ev["vm"] == "web01"]
    assert set(web01["source"]) == {"qemu"}
    assert list(web01["line"]) == [1, 32, 33, 34, 35]
    assert web01["ts"].iloc[2] == pd.Timestamp("2024-03-05T10:11:13.123456Z")


def test_expand_fields_spreads_fields_into_prefixed_columns(ev):
    wide = logsense.expand_fields(ev)
    assert "fields" not in wide.columns
    assert len(wide) == len(ev)
    missing = wide[wide["pattern"] == "libvirt.disk_image.storage-file-missing"]
    assert list(missing["field_path"]) == ["/var/lib/libvirt/images/app01.qcow2"]
    assert wide["field_path"].isna().sum() == len(ev) - 1
    assert "fields" in logsense.expand_fields(ev, prefix="f.", keep=True).columns


def test_since_and_until_select_like_the_command_line():
    df = read(since="2024-03-05 10:15", until=pd.Timestamp("2024-03-05T10:21:00Z"))
    assert list(df["line"]) == [3, 35, 4]
    assert (df["ts"] >= pd.Timestamp("2024-03-05T10:15Z")).all()


def test_no_events_is_an_empty_frame_with_the_same_dtypes(tmp_path, ev):
    (tmp_path / "messages").write_text("Mar  5 10:00:00 kvm01 systemd[1]: Started Session 4 of User root.\n")
    empty = read(tmp_path)
    assert len(empty) == 0
    assert (empty.dtypes.astype(str) == ev.dtypes.astype(str)).all()
    assert len(logsense.incidents(empty)) == 0
    assert len(logsense.cooccurrence(empty)) == 0


def test_warnings_are_kept_in_attrs_and_summarised_once(tmp_path):
    (tmp_path / "notes.txt").write_text("not a log at all\n")
    with pytest.warns(UserWarning, match="not a log format"):
        df = logsense.events(tmp_path / "notes.txt", tz="UTC")  # named: warned; found in a folder: quietly skipped
    assert any("notes.txt" in w for w in df.attrs["warnings"])
    assert df.attrs["stats"]["files_read"] == 0 and df.attrs["stats"]["files_skipped"] == 1
    quiet = logsense.events(tmp_path, tz="UTC")
    assert quiet.attrs["warnings"] == [] and quiet.attrs["stats"]["files_skipped"] == 1


def test_incidents_are_the_incidents_analyze_finds(ev, inc):
    proc = run_logsense("analyze", "--format", "json", *ARGS, str(FORMATS))
    cli = json.loads(proc.stdout)["incidents"]
    assert list(inc["id"]) == [i["id"] for i in cli]
    for (_, row), want in zip(inc.iterrows(), cli, strict=True):
        for col in ("title", "explanation", "scope", "root_cause", "severity", "remediation", "diagnostics",
                    "affected_vms", "category"):
            got = row[col]
            assert (got if isinstance(got, list) or not pd.isna(got) else None) == want[col], col
        assert row["first_seen"] == pd.Timestamp(want["first_seen"])
        evidence = contract_rows(ev.loc[row["evidence"]])
        assert len(evidence) == len(want["evidence"])
        for got_ev, want_ev in zip(evidence, want["evidence"], strict=True):
            # the correlator gives a line naming no VM the VM it attached it to; the frame keeps the line's
            assert got_ev["vm"] in (want_ev["vm"], None)
            want_ev = {k: v for k, v in want_ev.items() if k != "count"}
            assert {**got_ev, "vm": None} == {**want_ev, "vm": None}
        assert row["evidence_counts"] == [e["count"] for e in want["evidence"]]


def test_incident_columns_have_real_dtypes(inc):
    for col in ("first_seen", "last_seen", "recovered_at"):
        assert str(inc[col].dtype) == "datetime64[ns, UTC]", col
    assert list(inc["severity"].cat.categories) == ["minor", "major", "critical"]
    assert str(inc["occurrences"].dtype) == "Int64"
    assert set(inc.columns) >= {"id", "host", "scope", "vm", "affected_vms", "category", "root_cause", "title",
                                "explanation", "severity", "first_seen", "last_seen", "recovered_at", "evidence",
                                "remediation", "diagnostics"}


def test_evidence_labels_survive_filtering_and_reordering(ev):
    web01 = ev[ev["vm"] == "web01"].iloc[::-1]  # a slice, backwards: labels, not positions
    inc = logsense.incidents(web01)
    assert len(inc) >= 1
    for labels in inc["evidence"]:
        assert set(labels) <= set(web01.index)
        assert (ev.loc[labels, "vm"] == "web01").all()


def test_window_is_the_quiet_time_that_closes_an_incident(ev, inc):
    # web01's start (10:11) and its crash (10:15) are four minutes apart
    assert len(logsense.incidents(ev, window=600)) < len(inc)


def test_evidence_is_the_long_table_incident_by_event(ev, inc):
    long = logsense.evidence(inc, ev)
    assert len(long) == sum(len(e) for e in inc["evidence"])
    assert list(long.columns[:4]) == ["incident_id", "rank", "count", "event"]
    roots = long[long["rank"] == 0].set_index("incident_id")["pattern"]
    assert roots.astype(str).to_dict() == dict(zip(inc["id"], inc["root_cause"].astype(str), strict=True))
    assert long["message"].tolist() == ev.loc[long["event"], "message"].tolist()


def test_incidents_render_as_the_html_report_in_a_notebook(inc):
    from logsense.frame import IncidentFrame

    assert isinstance(inc, IncidentFrame)
    html = inc._repr_html_()
    for d in inc._incident_dicts.values():
        assert incident_html(d) in html
    critical = inc[inc["severity"] == "critical"]
    assert critical._repr_html_().count("<section class='incident") == len(critical)
    assert "<section" not in inc[["id", "title"]]._repr_html_()  # a column selection stays a table
    assert pickle.loads(pickle.dumps(inc))._repr_html_() == html


def test_cooccurrence_counts_windows_shared_per_vm():
    def row(ts, vm, pattern):
        return {"ts": ts, "host": "h", "source": "qemu", "vm": vm, "pattern": pattern, "message": "m",
                "fields": {}}

    df = logsense.frame_from_dicts([
        row("2024-03-05T10:00:10+00:00", "a", "p1"), row("2024-03-05T10:00:20+00:00", "a", "p2"),
        row("2024-03-05T10:00:30+00:00", "a", "p2"),  # repeated in its window: counted once
        row("2024-03-05T10:07:00+00:00", "a", "p1"),  # a window of its own
        row("2024-03-05T10:00:10+00:00", "b", "p2"), row("2024-03-05T10:01:00+00:00", "b", "p3"),
    ])
    co = logsense.cooccurrence(df, window="5min").set_index(["a", "b"])
    # baskets: a@10:00 {p1,p2}, a@10:05 {p1}, b@10:00 {p2,p3}
    assert co.loc[("p1", "p2"), "count"] == 1
    assert co.loc[("p2", "p3"), "count"] == 1
    assert ("p1", "p3") not in co.index
    assert co.loc[("p1", "p2"), "support_a"] == pytest.approx(2 / 3)
    assert co.loc[("p1", "p2"), "lift"] == pytest.approx((1 / 3) / ((2 / 3) * (2 / 3)))
    assert co.loc[("p2", "p3"), "lift"] == pytest.approx((1 / 3) / ((2 / 3) * (1 / 3)))
    host_wide = logsense.cooccurrence(df, window="5min", per=("host",)).set_index(["a", "b"])
    assert host_wide.loc[("p1", "p3"), "count"] == 1


def test_cooccurrence_by_category_on_the_fixture(ev):
    co = logsense.cooccurrence(ev, by="category", window="1h")
    assert list(co.columns) == ["a", "b", "count", "support_a", "support_b", "support", "lift"]
    assert (co["a"] < co["b"]).all()
    assert ("cpu", "virt_layer") in set(zip(co["a"], co["b"], strict=True))


def test_parquet_from_the_command_line_round_trips(tmp_path, ev):
    out = tmp_path / "events.parquet"
    run_logsense("events", "--format", "parquet", "-o", str(out), *ARGS, str(FORMATS))
    back = logsense.read_events_parquet(out)
    pd.testing.assert_frame_equal(pd.DataFrame(back), pd.DataFrame(ev))
    plain = pd.read_parquet(out)  # plain pandas: the same, but each `fields` a list of (key, value) pairs
    pd.testing.assert_frame_equal(plain.drop(columns="fields"), pd.DataFrame(ev).drop(columns="fields"))
    assert [dict(f) for f in plain["fields"]] == list(ev["fields"])
    assert list(logsense.incidents(plain)["id"]) == list(logsense.incidents(ev)["id"])


def test_to_parquet_of_a_frame_keeps_fields_as_a_map(tmp_path, ev):
    import pyarrow as pa
    import pyarrow.parquet as pq

    sub = ev[ev["vm"] == "web01"]
    sub.to_parquet(tmp_path / "web01.parquet")
    assert pa.types.is_map(pq.read_schema(tmp_path / "web01.parquet").field("fields").type)
    pd.testing.assert_frame_equal(pd.DataFrame(logsense.read_events_parquet(tmp_path / "web01.parquet")),
                                  pd.DataFrame(sub))
    assert logsense.read_events_parquet(io.BytesIO(sub.to_parquet())).equals(sub)


def test_events_jsonl_file_reads_back_as_the_frame(tmp_path, ev):
    out = tmp_path / "events.jsonl"
    run_logsense("events", "--format", "jsonl", "-o", str(out), *ARGS, str(FORMATS))
    assert logsense.read_events_jsonl(out).equals(ev)


def test_importing_logsense_imports_neither_pandas_nor_matplotlib():
    code = ("import sys, logsense, logsense.cli, logsense.plot; "
            "print('pandas' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_sample_is_the_bundled_outage():
    assert logsense.SAMPLE == ROOT / "fixtures" / "sample-outage"


def test_the_sample_outage_as_frames(sample):
    inc = logsense.incidents(sample)
    by_vm = {vm: cat for vms, cat in zip(inc["affected_vms"], inc["category"], strict=True) for vm in vms}
    assert by_vm["app01"] == "disk_image"
    assert by_vm["db01"] == "memory"
    oom = sample[sample["pattern"] == "kernel.memory.oom-killed-qemu"]
    assert list(oom["vm"]) == ["db01"]
    assert set(sample["source"]) == {"libvirtd", "qemu", "syslog"}  # the journal's copies are one event
    assert sample["cursor"].notna().sum() == (sample["source"] == "journal").sum()


def test_a_fleet_reads_into_pandas_or_dask_with_a_host_column():
    """Two hosts' archives from the fixtures: pandas by default; a dask DataFrame (one partition a
    host, each read by a task on a real LocalCluster) holds the same rows."""
    from dask.distributed import Client, LocalCluster

    hosts = [FIXTURES / "lab" / "disk-full" / "debug", FIXTURES / "sample-outage"]
    df = logsense.read_fleet(hosts, tz="UTC")
    assert isinstance(df, pd.DataFrame) and len(df) > 0
    assert set(df["host"]) == {"vm", "kvm01"}  # each host its own, from its logs (else its folder name)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster):
        ddf = logsense.read_fleet(hosts, tz="UTC", dask=True)
        assert ddf.npartitions == 2
        back = ddf.compute()
    for col in ("host", "vm", "pattern"):
        back[col], df[col] = back[col].astype(object), df[col].astype(object)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), df.reset_index(drop=True), check_categorical=False)


def test_a_fleet_too_large_for_memory_is_a_dask_frame():
    ddf = logsense.read_fleet([FIXTURES / "sample-outage"], tz="UTC", memory_bytes=1)
    assert type(ddf).__module__.startswith("dask")
