"""The daemon's state file: the previous good state kept beside it, loading falls back to it,
and every way a state file can be damaged is one warning line, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logsense.state import STATE_FILE, StateFile


def state_file(tmp_path: Path) -> tuple[StateFile, list[str]]:
    said: list[str] = []
    return StateFile(tmp_path / STATE_FILE, said.append), said


def a_state(n: int) -> dict:
    return {"version": 1, "saved_at": f"2026-11-26T18:00:{n:02d}+00:00", "files": {}, "journal": {"cursor": f"c{n}"}}


def test_every_save_keeps_the_state_before_it_as_the_backup(tmp_path: Path):
    sf, said = state_file(tmp_path)
    assert sf.load().state is None and not said  # a first start: nothing to say
    sf.save(a_state(1))
    assert not sf.backup.exists()  # nothing good to keep yet
    sf.save(a_state(2))
    sf.save(a_state(3))
    assert json.loads(sf.path.read_text()) == a_state(3)
    assert json.loads(sf.backup.read_text()) == a_state(2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE, STATE_FILE + ".bak"]  # no temp file left


DAMAGE = {
    "empty": b"",
    "blank": b"\n  \n",
    "truncated": json.dumps(a_state(2)).encode()[:40],
    "not JSON": b"\x00\x01binary junk\xff",
    "not an object": b"[1, 2, 3]",
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_state_falls_back_to_the_backup_and_says_so_once(tmp_path: Path, damage: str):
    sf, _ = state_file(tmp_path)
    for n in (1, 2):
        sf.save(a_state(n))
    sf.path.write_bytes(DAMAGE[damage])
    sf, said = state_file(tmp_path)
    loaded = sf.load()
    assert loaded.state == a_state(1)
    assert len(said) == 1 and "using state.json.bak" in said[0], said
    sf.save(a_state(3))  # the damaged file is not kept as the backup: the good one stays
    assert json.loads(sf.backup.read_text()) == a_state(1)
    sf.save(a_state(4))
    assert json.loads(sf.backup.read_text()) == a_state(3)


def test_an_unreadable_state_falls_back_to_the_backup(tmp_path: Path):
    sf, _ = state_file(tmp_path)
    for n in (1, 2):
        sf.save(a_state(n))
    sf.path.unlink()
    sf.path.mkdir()  # reading it fails for root too (EISDIR)
    sf, said = state_file(tmp_path)
    assert sf.load().state == a_state(1)
    assert "cannot read state" in said[0] and "using state.json.bak" in said[0]


def test_a_crash_between_the_steps_of_a_save_leaves_a_state_to_load(tmp_path: Path):
    sf, _ = state_file(tmp_path)
    for n in (1, 2):
        sf.save(a_state(n))
    # crashed after linking the current state, before renaming the link over the backup
    (tmp_path / ".state.json.bak.link").write_text("stale")
    sf, said = state_file(tmp_path)
    assert sf.load().state == a_state(2) and not said
    sf.save(a_state(3))
    assert json.loads(sf.backup.read_text()) == a_state(2)
    assert not (tmp_path / ".state.json.bak.link").exists()
    # where hard links are refused the state is renamed to the backup: a crash right after
    # leaves no state.json, only the backup
    sf.path.rename(sf.backup)
    sf, said = state_file(tmp_path)
    assert sf.load().state == a_state(3)
    assert said == [f"{sf.path}: missing; using state.json.bak, the state saved before it"]


def test_both_unusable_is_no_state_but_known_to_have_run_before(tmp_path: Path):
    sf, _ = state_file(tmp_path)
    sf.save(a_state(1))
    sf.save(a_state(2))
    sf.path.write_bytes(b"")
    sf.backup.write_bytes(b"{\"version\": 1, \"fi")
    loaded = state_file(tmp_path)[0].load()
    assert loaded.state is None and loaded.ran_before and loaded.saved_at is not None
    assert loaded.why == "state.json: state is empty; state.json.bak: state is not valid JSON (truncated?)"
