"""Score logsense on the corpus of real public log excerpts in ``fixtures/real/``.

Not a unit test: a measurement of how often logsense is right on logs it has never seen.
Each folder under ``fixtures/real/`` holds one verbatim excerpt (its log files, named as on
the host) and a ``verdict.toml`` written by a human before logsense ever ran on it::

    origin = "https://..."      # the public page the lines come from
    source_kind = "libvirtd"    # libvirtd | qemu | syslog | journal | console | mixed
    verdict = "fault"           # fault | quiet
    category = "memory"         # the root cause's category (faults only)
    vm = "instance-0000001a"    # only when the lines name the VM
    note = "..."                # what a senior admin reads in the lines

Every folder is run through ``logsense analyze --format json`` (in-process, through the
command line's own entry point) on its log files, and scored:

- explained: a fault excerpt has an incident of the verdict's category (and, when the
  verdict names a VM, that VM is the incident's vm or among its affected_vms);
- top right: the most severe incident (the earliest among equals) has that category;
- false alarm: a quiet excerpt with any major or critical incident;
- unreadable: logsense read no file of the excerpt (no log format recognised);
- untimed: some incident has no known time (`time_known` false: the lines carried no time).

Usage::

    .venv/bin/python benchmarks/real_corpus.py [CORPUS_DIR] [--json SUMMARY.json] [--only SLUG ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "fixtures" / "real"
VERDICT_FILE = "verdict.toml"
FLOOR_FILE = "SCORE_FLOOR.toml"
SOURCE_KINDS = {"libvirtd", "qemu", "syslog", "journal", "console", "mixed"}
VERDICTS = {"fault", "quiet"}
CATEGORIES = {"memory", "cpu", "permission", "disk_image", "storage", "network", "config",
              "virt_layer", "performance", "host", "guest"}
SEVERITY_RANK = {"minor": 1, "major": 2, "critical": 3}


@dataclass
class Excerpt:
    """One folder of the corpus: its verdict and its log files."""

    slug: str
    path: Path
    verdict: dict[str, Any]
    logs: list[Path]


@dataclass
class Score:
    """What logsense made of one excerpt, and how that compares with the verdict."""

    slug: str
    verdict: str
    category: str | None
    vm: str | None
    explained: bool = False
    top_right: bool = False
    false_alarm: bool = False
    unreadable: bool = False
    untimed: bool = False
    error: str | None = None
    incidents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def miss(self) -> bool:
        return not self.explained if self.verdict == "fault" else self.false_alarm


def verdict_problems(folder: Path) -> list[str]:
    """Why a corpus folder is not a valid excerpt (empty when it is)."""
    problems: list[str] = []
    vfile = folder / VERDICT_FILE
    if not vfile.is_file():
        return [f"{folder.name}: no {VERDICT_FILE}"]
    try:
        v = tomllib.loads(vfile.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        return [f"{folder.name}: {VERDICT_FILE} is not valid TOML: {exc}"]
    for key in ("origin", "source_kind", "verdict", "note"):
        if not isinstance(v.get(key), str) or not v[key].strip():
            problems.append(f"{folder.name}: {key} missing or empty")
    if not str(v.get("origin", "")).startswith(("https://", "http://")):
        problems.append(f"{folder.name}: origin is not a URL")
    if v.get("source_kind") not in SOURCE_KINDS:
        problems.append(f"{folder.name}: source_kind {v.get('source_kind')!r} not one of {sorted(SOURCE_KINDS)}")
    if v.get("verdict") not in VERDICTS:
        problems.append(f"{folder.name}: verdict {v.get('verdict')!r} not one of {sorted(VERDICTS)}")
    if v.get("verdict") == "fault" and v.get("category") not in CATEGORIES:
        problems.append(f"{folder.name}: a fault needs a category from CONTRACT.md, not {v.get('category')!r}")
    if "vm" in v and (not isinstance(v["vm"], str) or not v["vm"].strip()):
        problems.append(f"{folder.name}: vm, when given, is a non-empty string")
    if not log_files(folder):
        problems.append(f"{folder.name}: no log file beside {VERDICT_FILE}")
    return problems


def log_files(folder: Path) -> list[Path]:
    """The excerpt's log files: everything in the folder but the verdict."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != VERDICT_FILE)


def load_corpus(corpus: Path = CORPUS, only: list[str] | None = None) -> list[Excerpt]:
    """Every valid excerpt folder, in name order (invalid ones raise, with every problem listed)."""
    folders = sorted(p for p in corpus.iterdir() if p.is_dir()) if corpus.is_dir() else []
    if only:
        folders = [p for p in folders if p.name in only]
    problems = [msg for f in folders for msg in verdict_problems(f)]
    if problems:
        raise ValueError("invalid corpus folders:\n" + "\n".join(problems))
    return [Excerpt(f.name, f, tomllib.loads((f / VERDICT_FILE).read_text(encoding="utf-8")), log_files(f))
            for f in folders]


def analyze(paths: list[Path]) -> tuple[dict[str, Any] | None, str | None]:
    """``logsense analyze --format json PATHS`` in-process: (report, None) or (None, why not)."""
    from logsense.cli import app

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        args = ["analyze", "--format", "json", "--tz", "UTC", "-o", str(out), *map(str, paths)]
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                rc = app(args, standalone_mode=False)
        except SystemExit as exc:  # typer.Exit is a SystemExit in some click versions
            rc = exc.code
        except Exception as exc:  # an input error or a crash: both are a result to report
            code = getattr(exc, "exit_code", None)
            if code is None:
                return None, f"{type(exc).__name__}: {exc}"
            rc = code
        if isinstance(rc, int) and rc not in (0, 1):
            return None, f"exit {rc}: {err.getvalue().strip()[:200]}"
        if not out.is_file() or not out.stat().st_size:
            return None, f"no report written: {err.getvalue().strip()[:200]}"
        return json.loads(out.read_text(encoding="utf-8")), None


def top_incident(incidents: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The most severe incident, the earliest among equals (report order breaks the last ties)."""
    if not incidents:
        return None
    order = {id(i): n for n, i in enumerate(incidents)}
    return min(incidents, key=lambda i: (-SEVERITY_RANK.get(i.get("severity", ""), 0),
                                         i.get("first_seen") or "~", order[id(i)]))


def names_vm(incident: dict[str, Any], vm: str) -> bool:
    return incident.get("vm") == vm or vm in (incident.get("affected_vms") or [])


def score(ex: Excerpt) -> Score:
    v = ex.verdict
    s = Score(ex.slug, v["verdict"], v.get("category"), v.get("vm"))
    report, error = analyze(ex.logs)
    if report is None:
        s.error, s.unreadable = error, True
        return s
    s.incidents = report.get("incidents", [])
    stats = report.get("stats", {})
    s.unreadable = not stats.get("files_read") or not stats.get("lines_read")
    s.untimed = any(not i.get("first_seen") or i.get("time_known") is False for i in s.incidents)
    if s.verdict == "fault":
        s.explained = any(i.get("category") == s.category and (not s.vm or names_vm(i, s.vm))
                          for i in s.incidents)
        top = top_incident(s.incidents)
        s.top_right = top is not None and top.get("category") == s.category
    else:
        s.false_alarm = any(SEVERITY_RANK.get(i.get("severity", ""), 0) >= SEVERITY_RANK["major"]
                            for i in s.incidents)
    return s


def describe_miss(s: Score) -> str:
    """One line saying what logsense produced instead of the verdict."""
    if s.error:
        return f"no result ({s.error})"
    if s.unreadable:
        return "no file read (format not recognised)"
    if not s.incidents:
        return "no incident"
    found = "; ".join(f"{i.get('severity')} {i.get('category')} vm={i.get('vm')} {i.get('root_cause')}"
                      for i in s.incidents[:4])
    more = f" (+{len(s.incidents) - 4} more)" if len(s.incidents) > 4 else ""
    return f"got: {found}{more}"


def summarise(scores: list[Score], seconds: float) -> dict[str, Any]:
    faults = [s for s in scores if s.verdict == "fault"]
    quiet = [s for s in scores if s.verdict == "quiet"]

    def pct(n: int, d: int) -> float:
        return round(100.0 * n / d, 1) if d else 0.0

    explained = sum(s.explained for s in faults)
    top_right = sum(s.top_right for s in faults)
    return {
        "excerpts": len(scores), "faults": len(faults), "quiet": len(quiet),
        "explained": explained, "explained_pct": pct(explained, len(faults)),
        "explained_ratio": round(explained / len(faults), 4) if faults else 0.0,
        "top_right": top_right, "top_right_pct": pct(top_right, len(faults)),
        "false_alarms": sum(s.false_alarm for s in quiet),
        "false_alarm_pct": pct(sum(s.false_alarm for s in quiet), len(quiet)),
        "unreadable": sum(s.unreadable for s in scores), "untimed": sum(s.untimed for s in scores),
        "errors": sum(s.error is not None for s in scores), "seconds": round(seconds, 2),
    }


def run(corpus: Path = CORPUS, only: list[str] | None = None) -> tuple[list[Score], dict[str, Any]]:
    t0 = time.perf_counter()
    scores = [score(ex) for ex in load_corpus(corpus, only)]
    return scores, summarise(scores, time.perf_counter() - t0)


def result_line(s: Score) -> str:
    if s.verdict == "fault":
        want = s.category + (f" vm={s.vm}" if s.vm else "")
        mark = "ok  " if s.explained else "MISS"
        top = "" if s.top_right or not s.explained else "  (top incident is another category)"
        line = f"{mark} {s.slug:45} fault {want}{top}"
    else:
        mark = "FALSE-ALARM" if s.false_alarm else "ok  "
        line = f"{mark} {s.slug:45} quiet"
    if s.miss:
        line += f"\n       {describe_miss(s)}"
    return line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", nargs="?", default=str(CORPUS), help="corpus folder (default fixtures/real)")
    ap.add_argument("--json", metavar="PATH", help="write the summary and every excerpt's result as JSON")
    ap.add_argument("--only", nargs="+", metavar="SLUG", help="score only these excerpts")
    args = ap.parse_args(argv)
    try:
        scores, summary = run(Path(args.corpus), args.only)
    except ValueError as exc:
        print(f"real_corpus: {exc}", file=sys.stderr)
        return 2
    for s in scores:
        print(result_line(s))
    print()
    print(f"excerpts {summary['excerpts']} (faults {summary['faults']}, quiet {summary['quiet']})")
    print(f"explained {summary['explained']}/{summary['faults']} = {summary['explained_pct']} %")
    print(f"top right {summary['top_right']}/{summary['faults']} = {summary['top_right_pct']} %")
    print(f"false alarms {summary['false_alarms']}/{summary['quiet']} = {summary['false_alarm_pct']} %")
    print(f"unreadable {summary['unreadable']}  untimed {summary['untimed']}  errors {summary['errors']}"
          f"  ({summary['seconds']} s)")
    if args.json:
        doc = {"summary": summary, "excerpts": [asdict(s) | {"miss": s.miss} for s in scores]}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
