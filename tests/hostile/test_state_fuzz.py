"""Property-based fuzzing of the state loader (issue 16, Proof): whatever bytes or JSON lie in
state.json and state.json.bak, loading returns a usable state or None and never raises, and
the daemon's restore from it never raises."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from state_helpers import _catalogue, build_state, field_paths, replaced, restore

import logsense.daemon as daemon_module
from logsense.state import STATE_FILE, StateFile

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# keys the state uses, so generated objects reach past the first type check
KEYS = ["version", "files", "journal", "cursor", "correlator", "entities", "settling", "sinks", "saved_at",
        "identity", "offset", "line", "context", "rotated", "dev", "ino", "fp", "fp_len", "incidents", "open",
        "events", "record", "ts", "source", "message", "pattern", "extra", "watermark", "emitted", "pid", "vms"]
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(["2026-11-26T18:00:00+00:00", "2026-11-26T18:00:00", "9999-12-31T23:59:59+14:00",
                              "0001-01-01T00:00:00-23:59", "libvirtd", "critical", "cause"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5),
                           max_leaves=25)
counter = itertools.count()


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """A real saved state, the logs it was saved over, and one catalogue for every daemon."""
    root = tmp_path_factory.mktemp("fuzz")
    data = build_state(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(daemon_module, "load_catalogue", lambda *a: _catalogue())
        yield root, data


def load_and_restore(root: Path, main: bytes | None, backup: bytes | None = None) -> Any:
    state_dir = root / f"case{next(counter)}"
    state_dir.mkdir()
    if main is not None:
        (state_dir / STATE_FILE).write_bytes(main)
    if backup is not None:
        (state_dir / (STATE_FILE + ".bak")).write_bytes(backup)
    said: list[str] = []
    loaded = StateFile(state_dir / STATE_FILE, said.append).load()
    assert loaded.state is None or isinstance(loaded.state, dict)
    assert len(said) <= 1  # one line, whatever was wrong
    if loaded.state is None:
        assert loaded.why and loaded.ran_before  # said by the daemon: a look-back, not a skip to the end
    restore(root, state_dir)
    return loaded


@FUZZ
@given(main=st.binary(max_size=300), backup=st.none() | st.binary(max_size=300))
def test_any_bytes_as_the_state_and_its_backup(host, main: bytes, backup: bytes | None):
    load_and_restore(host[0], main, backup)


@FUZZ
@given(value=json_values, backup=st.none() | json_values)
def test_any_json_as_the_state_and_its_backup(host, value: Any, backup: Any):
    load_and_restore(host[0], json.dumps(value).encode(), None if backup is None else json.dumps(backup).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=st.lists(st.tuples(st.integers(min_value=0), json_values), min_size=1, max_size=3))
def test_a_real_state_with_any_places_replaced_by_any_json(host, picks: list[tuple[int, Any]]):
    root, data = host
    paths = [p for p in field_paths(data) if p]
    damaged = data
    for n, value in picks:
        path = paths[n % len(paths)]
        try:
            damaged = replaced(damaged, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier pick replaced what this path goes through
    loaded = load_and_restore(root, json.dumps(damaged).encode())
    assert loaded.state is not None  # some part of a real state always survives
