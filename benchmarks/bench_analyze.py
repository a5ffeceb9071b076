"""Benchmark: `logsense analyze` against GNU `grep -E` with the catalogue's regexes, same files.

Not a test: it prints figures. It generates a deterministic archive (benign syslog and libvirtd
debug chatter with a sprinkling of real fault lines), then times, in one go and on one core:
  1. grep -E -f <the catalogue's regexes turned into EREs> over the files (the baseline),
  2. logsense analyze over the same files,
and prints lines/s, MB/s, peak RSS and the ratio.

    .venv/bin/python benchmarks/bench_analyze.py [--lines 2000000] [--dir /tmp/logsense-bench]
        [--prefilter hyperscan,aho]   (times logsense once per first step, via LOGSENSE_PREFILTER)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))

from archive import BENIGN_LIBVIRTD, BENIGN_SYSLOG, CHATTER_KEY, outage_host, realistic_host  # noqa: E402

from logsense.catalogue import load_catalogue  # noqa: E402

FAULTS_SYSLOG = [
    "{ts} kvm01 kernel: [{up}] Out of memory: Killed process {pid} (qemu-system-x86) total-vm:9012345kB, "
    "anon-rss:8123456kB, file-rss:1234kB, shmem-rss:0kB, UID:64055 pgtables:17000kB oom_score_adj:0",
    "{ts} kvm01 kernel: [{up}] EXT4-fs error (device dm-2): ext4_journal_check_start:83: comm qemu-system-x86: "
    "Detected aborted journal",
]
FAULTS_LIBVIRTD = [
    "{ts}: {pid}: error : virStorageSourceReportBrokenChain:1283 : Cannot access storage file "
    "'/var/lib/libvirt/images/app{b}.qcow2': No such file or directory",
    "{ts}: {pid}: error : qemuMonitorIO:586 : internal error: End of file from monitor",
]


def generate(out: Path, total: int) -> list[Path]:
    """Deterministic archive: 60% syslog, 40% libvirtd debug, one fault line in 20,000."""
    rnd = random.Random(42)
    out.mkdir(parents=True, exist_ok=True)
    files = {"messages": (out / "messages", BENIGN_SYSLOG, FAULTS_SYSLOG, 0.6),
             "libvirtd": (out / "libvirt" / "libvirtd.log", BENIGN_LIBVIRTD, FAULTS_LIBVIRTD, 0.4)}
    paths = []
    for kind, (path, benign, faults, share) in files.items():
        if path.exists() and path.stat().st_size > 0 and path.with_suffix(".n").exists() \
                and path.with_suffix(".n").read_text() == f"{total}/{CHATTER_KEY}":
            paths.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        n = int(total * share)
        t0 = 1709632800
        with open(path, "w") as f:
            for i in range(n):
                t = t0 + i * 86400 // n
                if kind == "messages":
                    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{i % 1000000:06d}+00:00"
                else:
                    ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{i % 1000:03d}+0000"
                tmpl = faults[i % len(faults)] if i % 20000 == 7 else benign[rnd.randrange(len(benign))]
                f.write(tmpl.format(ts=ts, host="kvm01", n=i, pid=1000 + i % 30000, b=i % 250, port=40000 + i % 20000,
                                    up=f"{i / 10:.6f}") + "\n")
        path.with_suffix(".n").write_text(f"{total}/{CHATTER_KEY}")
        paths.append(path)
    return paths


OUTSIDE = {"d": "[0-9]", "s": "[[:space:]]", "S": "[^[:space:]]", "w": "[[:alnum:]_]", "W": "[^[:alnum:]_]",
           "t": "\t"}
INSIDE = {"d": "0-9", "s": "[:space:]", "w": "[:alnum:]_", "t": "\t", "n": "\x01"}  # lines hold no newline


def to_ere(rx: str) -> str | None:
    """A Python regex as a POSIX ERE for grep -E (same lines match), or None if it has none."""
    if re.search(r"\(\?[=!<>]|\(\?[a-z]+\)|\\[bBAZzpP]", rx.replace("(?P<", "(").replace("(?i)", "")):
        return None
    s = re.sub(r"\(\?P<\w+>", "(", rx.replace("(?i)", "")).replace("(?:", "(")
    s = re.sub(r"([*+?}])\?", r"\1", s)  # lazy to greedy
    out, i, inside = [], 0, False
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            table = INSIDE if inside else OUTSIDE
            if n in table:
                out.append(table[n])
            elif n in "SW" and inside:
                return None
            elif n.isalnum():
                return None
            else:
                out.append(n if inside else "\\" + n)
            i += 2
            continue
        if c == "[" and not inside:
            inside = True
            out.append(c)
            if s[i + 1:i + 2] == "^":
                out.append("^")
                i += 1
            if s[i + 1:i + 2] == "]":
                out.append("]")
                i += 1
        elif c == "]" and inside:
            inside = False
            out.append(c)
        else:
            out.append(c)
        i += 1
    ere = "".join(out)
    ok = subprocess.run(["grep", "-E", "-e", ere, "/dev/null"], capture_output=True).returncode
    return ere if ok == 1 else None


def timed(cmd: list[str], stdout_to: Path | None = None, cores: int = 1, **kw
          ) -> tuple[float, int, subprocess.CompletedProcess, float]:
    """Wall seconds, peak RSS (KiB; of its biggest process) and CPU seconds (its workers' too) of one
    child process, pinned to `cores` cores."""
    t0 = time.perf_counter()
    with open(stdout_to or os.devnull, "w") as out:
        proc = subprocess.run(["taskset", "-c", f"0-{cores - 1}", "/usr/bin/time", "-f", "%M %U %S", *cmd],
                              stdout=out, stderr=subprocess.PIPE, text=True, **kw)
    secs = time.perf_counter() - t0
    rss, user, system = proc.stderr.strip().splitlines()[-1].split() if proc.stderr.strip() else (0, 0, 0)
    return secs, int(rss), proc, float(user) + float(system)


def fast_eres(cat, sample: Path, limit: float) -> tuple[list[str], list[str]]:
    """The EREs GNU grep runs fast, and the ids of the others (alone over a sample, slower than
    `limit` times the median one, or over 10 s)."""
    cands = [(p.id, e) for p, e in ((p, to_ere(p.regex)) for p in cat.patterns) if e]
    times = []
    for _pid, ere in cands:
        t0 = time.perf_counter()
        try:  # output to a pipe: with /dev/null grep stops at the first match
            subprocess.run(["grep", "-E", "-c", "-e", ere, str(sample)], capture_output=True, timeout=10,
                           env={**os.environ, "LC_ALL": "C"})
            times.append(time.perf_counter() - t0)
        except subprocess.TimeoutExpired:
            times.append(float("inf"))
    median = sorted(times)[len(times) // 2]
    keep = [e for (_, e), t in zip(cands, times, strict=True) if t <= limit * median]
    slow = [pid for (pid, _), t in zip(cands, times, strict=True) if t > limit * median]
    return keep, slow


def grep_groups(eres: list[str], work: Path, size: int) -> list[Path]:
    """The EREs as pattern files of `size` each: GNU grep 3.8 spends ~1 ms on every matching line
    with a few hundred patterns at once (it grows with the number of patterns), much less in
    small groups, so the baseline is grep's faster way: all at once, or group after group."""
    files = []
    for n in range(0, len(eres), size):
        f = work / f"patterns-{n // size:03d}.ere"
        f.write_text("\n".join(eres[n:n + size]) + "\n")
        files.append(f)
    return files


def logsense_cmd(tree: Path, paths: list[Path], out: Path, fmt: str = "json", jobs: int | None = None
                 ) -> tuple[list[str], dict]:
    """`logsense analyze` from a source tree (this one, or a baseline checkout), report to a file;
    `jobs`: its worker processes (a baseline that predates --jobs gets none)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return [sys.executable, "-m", "logsense", "analyze", "--format", fmt, "--tz", "UTC", "-o", str(out),
            *(["--jobs", str(jobs)] if jobs else []), *map(str, paths)], env


def bench_case(name: str, paths: list[Path], pat_file: Path, groups: list[Path], trees: dict[str, Path], work: Path,
               repeat: int, envs: dict[str, dict] | None = None, jobs: tuple[int, ...] = (1,)) -> None:
    """grep -E and logsense (from each tree; this one at each --jobs, on that many cores) over the
    same files, outputs to files, best of `repeat`."""
    size = sum(p.stat().st_size for p in paths)
    lines = sum(1 for p in paths for _ in open(p, "rb"))
    runs: dict[str, tuple[list[str], dict, int]] = {}
    for label, tree in trees.items():
        for kind, extra in (envs or {"": {}}).items():
            for n in jobs if label == "logsense" else (None,):
                tag = f"{label}{f' ({kind})' if kind else ''}{f' --jobs {n}' if n else ''}"
                cmd, env = logsense_cmd(tree, paths, work / f"{name}-{label}{kind}-{n}.json", jobs=n)
                runs[tag] = (cmd, {**env, **extra}, n or 1)
    outputs = set()
    for label, (cmd, env, _) in runs.items():  # warm caches, check every variant says the same
        subprocess.run(cmd, check=True, env=env, cwd=env["PYTHONPATH"], capture_output=True)
        if label.startswith("logsense"):
            outputs.add(re.sub(r'"seconds": [0-9.]+', "", Path(cmd[cmd.index("-o") + 1]).read_text()))
    if len(outputs) > 1:
        sys.exit(f"{name}: the variants of this tree disagree: logsense analyze output differs")
    best: dict[str, tuple[float, int, float]] = {}  # wall seconds, peak RSS, CPU seconds
    grep_env = {**os.environ, "LC_ALL": "C"}
    for _ in range(repeat):
        trials = [("grep -E (all at once)", timed(["grep", "-E", "-f", str(pat_file), *map(str, paths)],
                                                  work / f"{name}-grep.out", env=grep_env))]
        grouped = [timed(["grep", "-E", "-f", str(g), *map(str, paths)], work / f"{name}-grep-{n}.out",
                         env=grep_env) for n, g in enumerate(groups)]
        trials.append((f"grep -E ({len(groups)} groups)", (sum(t[0] for t in grouped), max(t[1] for t in grouped),
                                                            grouped[0][2], sum(t[3] for t in grouped))))
        trials += [(label, timed(cmd, cores=n, env=env, cwd=env["PYTHONPATH"]))
                   for label, (cmd, env, n) in runs.items()]
        for label, (secs, rss, proc, cpu) in trials:
            if proc.returncode not in (0, 1):
                sys.exit(f"{name}: {label} failed: {proc.stderr[-500:]}")
            if label not in best or secs < best[label][0]:
                best[label] = (secs, rss, cpu)
    first = next(iter(runs.values()))[0]
    out = json.loads(Path(first[first.index("-o") + 1]).read_text())
    print(f"\n[{name}] {len(paths)} files, {lines:,} lines, {size / 1e6:.0f} MB; "
          f"{out['stats'].get('events_matched', 0):,} events, {len(out['incidents']):,} incidents, "
          f"largest incident {max((len(i['affected_vms']) for i in out['incidents']), default=0):,} VMs")
    for label, (secs, rss, cpu) in best.items():
        print(f"  {label:30} {secs:7.2f} s  {lines / secs / 1e6:6.2f} M lines/s  {size / secs / 1e6:7.1f} MB/s  "
              f"peak RSS {rss / 1024:6.1f} MB  CPU {cpu:6.2f} s")
    grep_best = min(v[0] for k, v in best.items() if k.startswith("grep"))
    for label in runs:
        print(f"  ratio {name} {label}/grep: {best[label][0] / grep_best:.2f}")
    for one in (k for k in runs if k.endswith(" --jobs 1")):  # the scaling curve: --jobs N on N cores
        variant = one.removesuffix(" --jobs 1")
        curve = ", ".join(f"--jobs {n}: {best[k][0]:.2f} s (CPU {best[k][2]:.2f} s), "
                          f"{best[one][0] / best[k][0]:.2f}x, {best[k][0] / grep_best:.2f}x grep"
                          for k, (_, _, n) in runs.items() if k.startswith(f"{variant} --jobs "))
        print(f"  scaling {name} {variant}: {curve}")
    if name == "outage":
        print(f"  correlation alone (this tree, in this process): {correlation_seconds(paths):.2f} s")


def correlation_seconds(paths: list[Path]) -> float:
    """CPU seconds of correlating the events and building the incident objects, reading apart."""
    from logsense.correlator import correlate
    from logsense.pipeline import Options, Reader, parse_zone

    evs = Reader(Options(tz=parse_zone("UTC"))).events([str(p) for p in paths])
    t0 = time.process_time()
    [i.to_dict() for i in correlate(evs)]
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=2_000_000, help="lines of the sparse and realistic archives")
    ap.add_argument("--vms", type=int, default=2000, help="VMs the single outage hits")
    ap.add_argument("--dir", default="/tmp/logsense-bench")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cases", default="sparse,realistic,outage")
    ap.add_argument("--baseline", default="", help="a checkout of another revision, timed beside this one "
                    "in the same run (git archive REV | tar -x -C DIR)")
    ap.add_argument("--grep-limit", type=float, default=10.0, help="leave out of grep's side each ERE slower "
                    "alone than this many times the median one")
    ap.add_argument("--grep-group", type=int, default=10, help="EREs a grep process in grep's grouped run")
    ap.add_argument("--jobs", default=f"1,{os.cpu_count() or 1}", help="comma-separated --jobs values to time "
                    "this tree at, each on that many cores (the scaling curve); default: 1 and the cores")
    ap.add_argument("--prefilter", default="", help="comma-separated LOGSENSE_PREFILTER values to compare "
                    "(hyperscan, aho, none); default: the one the machine picks")
    args = ap.parse_args()
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    trees = {"logsense": ROOT}
    if args.baseline:
        trees["baseline"] = Path(args.baseline).resolve()
    envs = {k: {"LOGSENSE_PREFILTER": k} for k in args.prefilter.split(",") if k} or None
    cases = {"sparse": lambda: generate(work / "sparse", args.lines),
             "realistic": lambda: realistic_host(work / "realistic", args.lines),
             "outage": lambda: outage_host(work / f"outage-{args.vms}", vms=args.vms)}
    archives = {c: cases[c]() for c in args.cases.split(",")}
    sample = work / "grep-sample"
    with open(sample, "wb") as f:
        for p in realistic_host(work / "realistic-sample", 100_000):
            f.write(p.read_bytes())
    cat = load_catalogue()
    eres, slow = fast_eres(cat, sample, args.grep_limit)
    pat_file = work / "patterns.ere"
    pat_file.write_text("\n".join(eres) + "\n")
    groups = grep_groups(eres, work, args.grep_group)
    print(f"grep's side: {len(eres)} of {len(cat.patterns)} patterns as EREs (the others have no ERE form"
          f"{f', or grep alone is slow on them: {chr(44).join(slow)}' if slow else ''}); "
          f"grep's time is its faster way, all at once or {len(groups)} groups one after the other; "
          f"{os.cpu_count()} cores, each run pinned to core 0 (--jobs N: cores 0 to N-1)")
    for name, paths in archives.items():
        bench_case(name, paths, pat_file, groups, trees, work, args.repeat, envs,
                   tuple(sorted({int(n) for n in args.jobs.split(",") if n})))
    print(f"({resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KiB in this script)")


if __name__ == "__main__":
    main()
