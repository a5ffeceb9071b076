"""The parsed catalogue kept on disk between runs (catalogue.ParsedCatalogue): a warm start reads
it and compiles each regex on first use; anything edited, damaged or broken is read afresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from logsense.catalogue import CACHE_KEPT, write_cache
from tests.test_catalogue import SITE_PATTERN

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "fixtures" / "sample-outage"

PROBE = """
import json, sys
from logsense.catalogue import load_catalogue
cat = load_catalogue(sys.argv[1:])
lazy = sum(p.compiled_regex is None for p in cat.patterns)
verdicts = {f"{p.id}:{ex.line}": bool(p.compiled.search(ex.line)) for p in cat.patterns for ex in p.examples}
print(json.dumps({"patterns": len(cat.patterns), "lazy": lazy, "verdicts": verdicts}))
"""


def run(cache: Path, *args: str, code: str = PROBE) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "LOGSENSE_CONFIG": "/dev/null"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT)


def cli(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "LOGSENSE_CONFIG": "/dev/null"}
    return subprocess.run([sys.executable, "-m", "logsense", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT)


def test_a_warm_start_compiles_on_first_use_and_classifies_the_same(tmp_path: Path):
    cold = run(tmp_path)
    assert cold.returncode == 0, cold.stderr
    assert len(list((tmp_path / "logsense").glob("catalogue-*.marshal"))) == 1
    warm = run(tmp_path)
    assert warm.returncode == 0, warm.stderr
    cold_out, warm_out = json.loads(cold.stdout), json.loads(warm.stdout)
    assert cold_out["lazy"] == 0  # a cold start compiles every regex (and so finds any that does not compile)
    assert warm_out["lazy"] == warm_out["patterns"] > 300  # a warm one compiles none up front
    assert warm_out["verdicts"] == cold_out["verdicts"]


def test_analyze_says_the_same_with_a_cold_and_a_warm_cache(tmp_path: Path):
    outs = []
    for n in range(2):
        got = cli(tmp_path, "analyze", "--format", "json", "--tz", "UTC", "-o", str(tmp_path / f"{n}.json"),
                  str(SAMPLE))
        assert got.returncode == 0, got.stderr
        report = json.loads((tmp_path / f"{n}.json").read_text())
        report["stats"].pop("seconds", None)
        outs.append(report)
    assert outs[0]["incidents"] and outs[0] == outs[1]


def test_a_regex_broken_after_a_warm_start_is_still_reported(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "site.toml").write_text(SITE_PATTERN)
    cache = tmp_path / "cache"
    assert cli(cache, "catalogue", "check", "--catalogue", str(site)).returncode == 0
    assert run(cache, str(site)).returncode == 0  # warm: this catalogue's parsed copy exists
    broken = SITE_PATTERN.replace('regex = ', 'regex = "san-agent: path (?P<device>" #', 1)
    assert broken != SITE_PATTERN
    (site / "site.toml").write_text(broken)
    got = cli(cache, "catalogue", "check", "--catalogue", str(site))
    assert got.returncode != 0
    assert "does not compile" in got.stdout + got.stderr


def test_a_damaged_cache_file_is_read_afresh_and_replaced(tmp_path: Path):
    assert run(tmp_path).returncode == 0
    [blob] = (tmp_path / "logsense").glob("catalogue-*.marshal")
    blob.write_bytes(b"\x00not marshal" * 10)
    again = run(tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["lazy"] == 0  # nothing usable was read: everything compiled
    assert json.loads(run(tmp_path).stdout)["lazy"] > 300  # and the copy written again


def test_only_the_newest_cache_files_of_a_kind_are_kept(tmp_path: Path):
    for n in range(CACHE_KEPT + 4):
        f = tmp_path / f"hs-{n:04d}.db"
        f.write_bytes(b"x")
        os.utime(f, (1_000_000 + n, 1_000_000 + n))
    (tmp_path / "catalogue-keep.marshal").write_bytes(b"y")
    write_cache(tmp_path / "hs-new.db", b"z")
    kept = sorted(f.name for f in tmp_path.glob("hs-*"))
    assert len(kept) == CACHE_KEPT and "hs-new.db" in kept
    assert "hs-0000.db" not in kept and f"hs-{CACHE_KEPT + 3:04d}.db" in kept
    assert (tmp_path / "catalogue-keep.marshal").exists()  # another kind is left alone


RACE = """
import sys
from pathlib import Path
from logsense.catalogue import BUILTIN_DIR, ParsedCatalogue, pattern_files, read_patterns, translation_files
site = Path(sys.argv[1])
files = pattern_files([site])
listed = files + [path for _, path in translation_files([BUILTIN_DIR, site])]  # as load_catalogue lists them
assert ParsedCatalogue(listed).loaded  # the warm copy: these texts are vetted
(site / "site.toml").write_text(sys.argv[2])  # the file changes after the key was taken
problems = []
read_patterns(files, problems)
print("\\n".join(problems))
"""


def test_a_file_changed_after_the_cache_was_read_is_compiled_afresh(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "site.toml").write_text(SITE_PATTERN)
    cache = tmp_path / "cache"
    assert run(cache, str(site)).returncode == 0  # cold: the parsed copy is written
    broken = SITE_PATTERN.replace('regex = ', 'regex = "san-agent: path (?P<device>" #', 1)
    got = run(cache, str(site), broken, code=RACE)
    assert got.returncode == 0, got.stderr
    assert "regex does not compile" in got.stdout
