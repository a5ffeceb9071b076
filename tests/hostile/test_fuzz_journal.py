"""Property-based fuzzing of the journal readers (issue 16, Proof): `journalctl -o export` and
`-o json` text and any entry shape. Never an exception; records of the documented types; one
record per entry with a usable time, one warning per entry without."""

from __future__ import annotations

import io
import json
import struct
from datetime import datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from logsense import journal
from logsense.model import EPOCH

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = st.sampled_from(["MESSAGE", "_PID", "SYSLOG_PID", "PRIORITY", "__REALTIME_TIMESTAMP", "_HOSTNAME", "__CURSOR",
                        "SYSLOG_IDENTIFIER", "_COMM", "CODE_LINE", "_SYSTEMD_UNIT"]) | st.from_regex(r"[A-Z_]{1,12}",
                                                                                                  fullmatch=True)
STAMPS = st.one_of(st.integers(0, 10 ** 21).map(str), st.sampled_from(["", " 1710498067123456 ", "-1", "²", "1e6",
                                                                        "99999999999999999999"]))
VALUES = st.one_of(st.binary(max_size=60), STAMPS.map(str.encode),
                   st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")))
ENTRIES = st.lists(st.lists(st.tuples(KEYS, VALUES, st.booleans()), min_size=1, max_size=8), max_size=6)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) |
                           st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=10)
# what systemd.journal's Reader converts fields to, beside text and numbers
READER_VALUES = JSON_VALUES | st.datetimes(timezones=st.none() | st.timezones()) | st.uuids() | st.binary(max_size=30)
JSON_ENTRIES = st.lists(st.dictionaries(KEYS, JSON_VALUES | STAMPS, max_size=8), max_size=6)


def usable_time(value: bytes | None) -> bool:
    """Does __REALTIME_TIMESTAMP give a time: absent, or microseconds in datetime's range."""
    if value is None:
        return True
    text = value.decode("utf-8", "replace").strip()
    if not (text.isascii() and text.isdigit() and len(text) < 20):
        return False
    try:
        EPOCH + timedelta(microseconds=int(text))
    except OverflowError:
        return False
    return True


def export(entries: list[list[tuple[str, bytes, bool]]]) -> bytes:
    out = b""
    for fields in entries:
        for key, value, binary in fields:
            if binary or b"\n" in value:
                out += key.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
            else:
                out += key.encode() + b"=" + value + b"\n"
        out += b"\n"
    return out


def check_record(rec) -> None:
    assert isinstance(rec.ts, datetime) and rec.ts.tzinfo is not None
    assert isinstance(rec.message, str) and isinstance(rec.raw, str) and rec.source == "journal"
    assert rec.pid is None or isinstance(rec.pid, int)
    assert rec.level is None or rec.level in journal.LEVELS.values()
    assert rec.host is None or isinstance(rec.host, str)
    assert rec.cursor is None or isinstance(rec.cursor, str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in rec.extra.items())


@FUZZ
@given(entries=ENTRIES)
@example(entries=[[("CODE_LINE", b"12", False), ("CODE_LINE", b"12", True), ("MESSAGE", b"x", False)]])
@example(entries=[[("__REALTIME_TIMESTAMP", b"100000000000000000000", False)]])
def test_export_entries_give_one_record_each_or_a_warning(entries):
    warnings: list[str] = []
    recs = list(journal.read_export(io.BytesIO(export(entries)), "x.export", "kvm01", warnings.append))
    fields = [dict((k, v) for k, v, _ in e) for e in entries]
    good = [f for f in fields if usable_time(f.get("__REALTIME_TIMESTAMP"))]
    assert len(recs) == len(good) and len(warnings) == len(fields) - len(good)
    for rec, f in zip(recs, good, strict=True):
        check_record(rec)
        assert rec.message == f.get("MESSAGE", b"").decode("utf-8", "replace").rstrip("\n")


@FUZZ
@given(data=st.binary(max_size=400) | ENTRIES.map(export).map(lambda b: b[:len(b) // 2]))
@example(data=b"MESSAGE\n\xff\xff\xff\xff\xff\xff\xff\x3fx")  # a binary field claiming 2^62 bytes
def test_export_takes_any_bytes(data: bytes):
    for rec in journal.read_export(io.BytesIO(data), "x.export", None, lambda _: None):
        check_record(rec)


@FUZZ
@given(entries=JSON_ENTRIES, junk=st.lists(st.binary(max_size=30), max_size=3))
@example(entries=[{"_PID": [300], "PRIORITY": "²", "__REALTIME_TIMESTAMP": "100000000000000000000"}], junk=[])
@example(entries=[{"MESSAGE": [1, 2, 300], "CODE_LINE": [12, 12]}], junk=[b"[" * 100_000])
def test_json_lines_give_one_record_per_entry_or_a_warning(entries, junk):
    lines = [json.dumps(e).encode() for e in entries] + [j.replace(b"\n", b" ") for j in junk]
    warnings: list[str] = []
    recs = list(journal.read_json(io.BytesIO(b"\n".join(lines) + b"\n"), "x.json", None, warnings.append))
    for rec in recs:
        check_record(rec)
        assert rec.file == "x.json"
    good = [e for e in entries if journal.record_or_skip(e, "x.json", None, None) is not None]
    assert len(recs) >= len(good)  # a junk line may happen to be a journal object too
    assert len(recs) + len(warnings) >= len(entries)  # every entry read or said


@FUZZ
@given(entry=st.dictionaries(KEYS | st.text(max_size=8), READER_VALUES | STAMPS | st.lists(READER_VALUES, max_size=3),
                             max_size=10))
def test_any_entry_shape_is_a_record_or_a_skip(entry):
    rec = journal.record_or_skip(entry, "x", "kvm01", None)
    if rec is not None:
        check_record(rec)
