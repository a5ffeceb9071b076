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

from logsense.catalogue import load_catalogue  # noqa: E402

BENIGN_SYSLOG = [
    "{ts} kvm01 systemd[1]: Started session-{n}.scope - Session {n} of User root.",
    "{ts} kvm01 sshd[{pid}]: Accepted publickey for root from 10.0.0.{b} port {port} ssh2: ED25519 SHA256:abc",
    "{ts} kvm01 CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
    "{ts} kvm01 dnsmasq-dhcp[{pid}]: DHCPACK(virbr0) 192.168.122.{b} 52:54:00:12:34:{b:02x} web{b}",
    "{ts} kvm01 kernel: [{up}] virbr0: port 2(vnet{b}) entered forwarding state",
    "{ts} kvm01 kernel: [{up}] device vnet{b} entered promiscuous mode",
    "{ts} kvm01 systemd[1]: logrotate.service: Deactivated successfully.",
    "{ts} kvm01 chronyd[{pid}]: Selected source 10.0.0.{b} (ntp.example.org)",
    "{ts} kvm01 libvirtd[{pid}]: libvirt version: 9.0.0, package: 9.0.0-4+deb12u2 (Debian)",
    "{ts} kvm01 audit[{pid}]: USER_LOGIN pid={pid} uid=0 auid=0 ses={n} msg='op=login id=0 res=success'",
]
BENIGN_LIBVIRTD = [
    "{ts}: {pid}: debug : qemuMonitorJSONIOProcessLine:190 : Line [{{\"return\": {{}}, \"id\": \"libvirt-{n}\"}}]",
    "{ts}: {pid}: debug : qemuMonitorIOWrite:371 : QEMU_MONITOR_IO_WRITE: mon=0x7f3c{b:04x} "
    "buf={{\"execute\":\"query-balloon\",\"id\":\"libvirt-{n}\"}}",
    "{ts}: {pid}: info : qemuMonitorIOProcess:437 : QEMU_MONITOR_IO_PROCESS: mon=0x7f3c{b:04x} len=38",
    "{ts}: {pid}: debug : virDomainObjListFindByUUID:123 : uuid=0d2bc6a8-0c0c-4a5e-9d2a-1c2f3e4d5a{b:02x}",
    "{ts}: {pid}: debug : qemuDomainObjBeginJobInternal:1001 : Starting job: API=remoteDispatchDomainGetInfo "
    "job=query agentJob=none asyncJob=none (vm=0x7f3c{b:04x}, name=web{b}, current job=none async=none)",
]
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
                and path.with_suffix(".n").read_text() == str(total):
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
                f.write(tmpl.format(ts=ts, n=i, pid=1000 + i % 30000, b=i % 250, port=40000 + i % 20000,
                                    up=f"{i / 10:.6f}") + "\n")
        path.with_suffix(".n").write_text(str(total))
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


def timed(cmd: list[str], **kw) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall seconds and peak RSS (KiB) of one child process, pinned to one core."""
    t0 = time.perf_counter()
    proc = subprocess.run(["taskset", "-c", "0", "/usr/bin/time", "-f", "%M", *cmd], capture_output=True,
                          text=True, **kw)
    secs = time.perf_counter() - t0
    rss = int(proc.stderr.strip().splitlines()[-1]) if proc.stderr.strip() else 0
    return secs, rss, proc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--dir", default="/tmp/logsense-bench")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--prefilter", default="", help="comma-separated LOGSENSE_PREFILTER values to compare "
                    "(hyperscan, aho, none); default: the one the machine picks")
    args = ap.parse_args()
    paths = generate(Path(args.dir), args.lines)
    size = sum(p.stat().st_size for p in paths)
    lines = sum(1 for p in paths for _ in open(p, "rb"))
    cat = load_catalogue()
    eres = [e for e in (to_ere(p.regex) for p in cat.patterns) if e]
    pat_file = Path(args.dir) / "patterns.ere"
    pat_file.write_text("\n".join(eres) + "\n")
    print(f"archive: {len(paths)} files, {lines:,} lines, {size / 1e6:.0f} MB; "
          f"{len(eres)} of {len(cat.patterns)} patterns have an ERE form for grep")
    logsense = [sys.executable, "-m", "logsense", "analyze", "--format", "json", "--tz", "UTC", *map(str, paths)]
    kinds = [k for k in args.prefilter.split(",") if k] or [""]
    envs = {f"logsense analyze{f' ({k})' if k else ''}": {**os.environ, "LOGSENSE_PREFILTER": k} for k in kinds}
    outputs = {re.sub(rb'"seconds": [0-9.]+', b"", subprocess.run(logsense, capture_output=True, check=True,
                                                                 env=env).stdout) for env in envs.values()}
    if len(outputs) > 1:  # also warms the Hyperscan cache and the page cache
        sys.exit("the prefilters disagree: logsense analyze output differs")
    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeat):
        g = timed(["grep", "-E", "-c", "-f", str(pat_file), *map(str, paths)], env={**os.environ, "LC_ALL": "C"})
        runs = [("grep -E", g)] + [(name, timed(logsense, cwd=ROOT, env=env)) for name, env in envs.items()]
        for name, (secs, rss, proc) in runs:
            if proc.returncode not in (0, 1):
                sys.exit(f"{name} failed: {proc.stderr[-500:]}")
            if name not in best or secs < best[name][0]:
                best[name] = (secs, rss)
        matched = g[2].stdout.split()
    for name, (secs, rss) in best.items():
        print(f"{name:30} {secs:7.2f} s  {lines / secs / 1e6:6.2f} M lines/s  {size / secs / 1e6:7.1f} MB/s  "
              f"peak RSS {rss / 1024:6.1f} MB")
    for name in envs:
        print(f"ratio {name}/grep: {best[name][0] / best['grep -E'][0]:.2f}")
    print(f"(grep matched per file: {' '.join(matched)}; {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KiB "
          f"in this script)")


if __name__ == "__main__":
    main()
