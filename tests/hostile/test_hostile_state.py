"""A damaged state file (issue 16, class 11): every field of a real saved state changed to a
value of another type is dropped with one warning, the rest kept, and the daemon's restore
never raises."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from state_helpers import build_state, cached_catalogue, field_paths, replaced, restore  # noqa: F401

from logsense.state import STATE_FILE, StateFile, check_state

OTHER_TYPES: list[Any] = [None, 7, -1, 10**30, 2.5, math.nan, "x", [], {}, True]
# top-level parts kept whole when another part is damaged, and the part a path belongs to
PARTS = ("files", "journal", "correlator", "entities", "settling", "sinks", "saved_at", "host", "catalogue")


def same_type(a: Any, b: Any) -> bool:
    return type(a) is type(b) and not (isinstance(a, float) and math.isnan(b))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("host")
    return root, build_state(root)


def test_the_real_state_passes_its_own_schema(saved):
    _, data = saved
    state, problems, dropped = check_state(json.loads(json.dumps(data)))
    assert problems == [] and dropped == set()
    for part in PARTS:  # every part has content, so every field path below is a real one
        assert data[part], part
    assert state == data


def kept_apart_from(original: dict, loaded: dict, path: tuple) -> None:
    """Everything outside the damaged part is as saved: the other top-level parts whole, and
    in a map or list of parts (files, incidents, events) the other items."""
    for part in PARTS:
        if path[:1] != (part,):
            assert loaded.get(part) == original[part], f"{part} lost after damaging {path}"
    if len(path) >= 2 and isinstance(original[path[0]], dict) and path[0] != "journal":
        for k, v in original[path[0]].items():
            if k != path[1] and path[0] != "correlator":
                assert loaded[path[0]][k] == v, f"{path[0]}[{k}] lost after damaging {path}"
    if path[0] == "correlator" and len(path) >= 3 and isinstance(path[2], int):
        items = original["correlator"][path[1]]
        assert len(loaded["correlator"][path[1]]) >= len(items) - 1
    if path[0] == "settling" and len(path) >= 2:
        assert len(loaded["settling"]) >= len(original["settling"]) - 1


@pytest.mark.usefixtures("cached_catalogue")
def test_every_field_of_another_type_is_dropped_alone_and_the_daemon_restores(saved, tmp_path):
    root, data = saved
    baseline = restore(root, _write(tmp_path / "baseline", data))
    assert baseline["open"] and baseline["cursor"] and baseline["held"] and baseline["vms"]
    assert all(baseline["queued"].values()) and any(r for _, r in baseline["files"].values())
    cases = crashed = 0
    for path in field_paths(data):
        if path == ("version",):
            continue  # another version keeps positions only (tested below)
        original = _at(data, path)
        for value in OTHER_TYPES:
            if same_type(original, value) or isinstance(original, int | float) and isinstance(value, int | float) \
                    and not isinstance(value, bool) and not isinstance(original, bool) and value in (7, 2.5):
                continue  # e.g. an offset of 7 is a valid offset: no damage
            cases += 1
            damaged = replaced(data, path, value)
            said: list[str] = []
            state_dir = _write(tmp_path / f"case{cases}", damaged)
            loaded = StateFile(state_dir / STATE_FILE, said.append).load()
            assert len(said) <= 1, said
            if path == ():
                assert loaded.state is None and loaded.why and loaded.ran_before
            else:
                assert loaded.state is not None, (path, value, said)
                kept_apart_from(data, loaded.state, path)
            try:
                started = restore(root, state_dir)
            except Exception as exc:  # noqa: BLE001 - counted and reported below
                crashed += 1
                print(f"restore crashed with {path} = {value!r}: {type(exc).__name__}: {exc}")
                continue
            if path and path[0] != "files":
                assert started["files"] == baseline["files"], (path, value)
            if path[:1] not in (("correlator",), ("catalogue",), ()):
                assert started["open"] == baseline["open"], (path, value)
    print(f"{cases} damaged states restored")
    assert cases > 1000 and crashed == 0


def test_another_version_keeps_the_file_positions_only(saved, tmp_path):
    _, data = saved
    said: list[str] = []
    state_dir = _write(tmp_path, {**data, "version": 0})
    loaded = StateFile(state_dir / STATE_FILE, said.append).load()
    assert loaded.state is not None and loaded.state["files"] == data["files"]
    assert "correlator" not in loaded.state
    assert len(said) == 1 and "state version 0 is not 1" in said[0]


def test_a_bad_file_entry_drops_that_file_position_only(saved, tmp_path):
    _, data = saved
    bad = next(iter(data["files"]))
    damaged = replaced(data, ("files", bad, "offset"), "144")
    said: list[str] = []
    loaded = StateFile(_write(tmp_path, damaged) / STATE_FILE, said.append).load()
    assert loaded.dropped_files == {bad} and bad not in loaded.state["files"]
    assert said == [f"{tmp_path / STATE_FILE}: files[{bad!r}]: offset: str, not a whole number; the rest is used"]


def _write(state_dir: Path, data: Any) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_FILE).write_text(json.dumps(data))
    return state_dir


def _at(data: Any, path: tuple) -> Any:
    for k in path:
        data = data[k]
    return data
