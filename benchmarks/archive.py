"""Deterministic KVM host archives for the benchmarks, built from real message texts.

Failure lines are the catalogue's own example lines (each re-stamped, and kept only if the
catalogue still classifies it by the pattern it illustrates) and the error lines of the lab
fixtures (`fixtures/lab/*`, produced by running libvirt and QEMU); each VM's QEMU log is a
sequence of real QEMU log blocks from the lab fixtures, renamed to the VM. Benign chatter is
syslog and libvirtd debug traffic as a busy host writes it.
"""

from __future__ import annotations

import hashlib
import lzma
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "fixtures" / "lab"
T0 = 1709632800  # 2024-03-05 10:00:00 UTC

BENIGN_SYSLOG = [
    "{ts} {host} systemd[1]: Started session-{n}.scope - Session {n} of User root.",
    "{ts} {host} sshd[{pid}]: Accepted publickey for root from 10.0.0.{b} port {port} ssh2: ED25519 SHA256:abc",
    "{ts} {host} CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
    "{ts} {host} dnsmasq-dhcp[{pid}]: DHCPACK(virbr0) 192.168.122.{b} 52:54:00:12:34:{b:02x} web{b}",
    "{ts} {host} kernel: [{up}] virbr0: port 2(vnet{b}) entered forwarding state",
    "{ts} {host} kernel: [{up}] device vnet{b} entered promiscuous mode",
    "{ts} {host} systemd[1]: logrotate.service: Deactivated successfully.",
    "{ts} {host} chronyd[{pid}]: Selected source 10.0.0.{b} (ntp.example.org)",
    "{ts} {host} systemd[1]: Starting sysstat-collect.service - system activity accounting tool...",
    "{ts} {host} audit[{pid}]: USER_LOGIN pid={pid} uid=0 auid=0 ses={n} msg='op=login id=0 res=success'",
]
# libvirtd's start banner ("libvirt version: ...") is not chatter: it is written once per daemon start
# and marks one (a lifecycle event), so it is not among these lines.
BENIGN_LIBVIRTD = [
    "{ts}: {pid}: debug : qemuMonitorJSONIOProcessLine:190 : Line [{{\"return\": {{}}, \"id\": \"libvirt-{n}\"}}]",
    "{ts}: {pid}: debug : qemuMonitorIOWrite:371 : QEMU_MONITOR_IO_WRITE: mon=0x7f3c{b:04x} "
    "buf={{\"execute\":\"query-balloon\",\"id\":\"libvirt-{n}\"}}",
    "{ts}: {pid}: info : qemuMonitorIOProcess:437 : QEMU_MONITOR_IO_PROCESS: mon=0x7f3c{b:04x} len=38",
    "{ts}: {pid}: debug : virDomainObjListFindByUUID:123 : uuid=0d2bc6a8-0c0c-4a5e-9d2a-1c2f3e4d5a{b:02x}",
    "{ts}: {pid}: debug : qemuDomainObjBeginJobInternal:1001 : Starting job: API=remoteDispatchDomainGetInfo "
    "job=query agentJob=none asyncJob=none (vm=0x7f3c{b:04x}, name=web{b}, current job=none async=none)",
]

CHATTER_KEY = hashlib.sha1(repr((BENIGN_SYSLOG, BENIGN_LIBVIRTD)).encode()).hexdigest()[:12]

LIBVIRTD_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}[+-]\d{4}")
QEMU_ISO_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
BSD_SYSLOG_HEAD = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ ")


def libvirtd_ts(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}+0000"


def syslog_ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1000000:06d}+00:00"


def qemu_iso_ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1000000:06d}Z"


@dataclass
class FaultLines:
    """Real failure lines as templates with `{ts}` (and `{host}` for syslog)."""

    syslog: list[str]
    libvirtd: list[str]
    qemu_blocks: list[list[str]]  # whole QEMU log blocks with `{ts}`/`{iso}` stamps and `{vm}` names


def _catalogue_templates() -> tuple[list[str], list[str]]:
    from logsense.catalogue import load_catalogue

    cat = load_catalogue()
    syslog, libvirtd = [], []
    for p in cat.patterns:
        for ex in p.examples:
            source = ex.source or p.sources[0]
            if source == "libvirtd" and LIBVIRTD_STAMP.match(ex.line):
                tmpl = LIBVIRTD_STAMP.sub("{ts}", ex.line.replace("{", "{{").replace("}", "}}"), count=1)
                line = tmpl.format(ts=libvirtd_ts(T0))
                if (m := cat.match(line.split(" : ", 2)[-1], "libvirtd")) is not None and m.pattern is p:
                    libvirtd.append(tmpl)
            elif source == "syslog" and BSD_SYSLOG_HEAD.match(ex.line):
                rest = BSD_SYSLOG_HEAD.sub("", ex.line, count=1).replace("{", "{{").replace("}", "}}")
                tmpl = "{ts} {host} " + rest
                msg = rest.format().split(": ", 1)[-1]
                if (m := cat.match(msg, "syslog")) is not None and m.pattern is p:
                    syslog.append(tmpl)
    return syslog, libvirtd


def _lab_libvirtd_errors() -> list[str]:
    out = set()
    for f in sorted(LAB.glob("*/*/var/log/libvirt/libvirtd.log.xz")):
        for line in lzma.open(f, "rt", errors="replace"):
            if " : " in line and (": error : " in line or ": warning : " in line) and LIBVIRTD_STAMP.match(line):
                out.add(LIBVIRTD_STAMP.sub("{ts}", line.rstrip("\n").replace("{", "{{").replace("}", "}}"), count=1))
    return sorted(out)


def _lab_qemu_blocks() -> list[list[str]]:
    blocks = []
    for f in sorted(LAB.glob("*/debug/var/log/libvirt/qemu/lab-*.log")):
        name = f.stem
        block = []
        for line in f.read_text(errors="replace").splitlines():
            line = line.replace("{", "{{").replace("}", "}}").replace(name, "{vm}")
            line = LIBVIRTD_STAMP.sub("{ts}", line, count=1)
            block.append(QEMU_ISO_STAMP.sub("{iso}", line, count=1))
        blocks.append(block)
    return blocks


def fault_lines() -> FaultLines:
    cat_syslog, cat_libvirtd = _catalogue_templates()
    return FaultLines(cat_syslog, cat_libvirtd + _lab_libvirtd_errors(), _lab_qemu_blocks())


def _generated(out: Path, key: str) -> bool:
    """Whether `out` already holds the archive of these parameters (a `.key` file beside the
    folder, not in it, remembers them)."""
    stamp = out.with_name(out.name + ".key")
    return out.is_dir() and stamp.exists() and stamp.read_text() == key


def _mark_generated(out: Path, key: str) -> None:
    out.with_name(out.name + ".key").write_text(key)


def _write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path)


def realistic_host(out: Path, total: int, vms: int = 50, host: str = "kvm01", seed: int = 42,
                   fail_share: float = 0.01, faults: FaultLines | None = None,
                   extra_syslog: list[tuple[float, str]] = (), extra_libvirtd: list[tuple[float, str]] = ()
                   ) -> list[Path]:
    """One host's /var/log: syslog (55 %), libvirtd.log (40 %) and a QEMU log per VM (5 %),
    `fail_share` of the syslog and libvirtd lines real failure lines, spread over a day.
    `extra_*` are (seconds after the start, message line with `{ts}`/`{host}`) to inject."""
    faults = faults or fault_lines()
    extras = hashlib.sha1(repr((sorted(extra_syslog), sorted(extra_libvirtd))).encode()).hexdigest()
    key = f"{total}/{vms}/{host}/{seed}/{fail_share}/{extras}/{CHATTER_KEY}"
    messages = out / "var" / "log" / "messages"
    libvirtd = out / "var" / "log" / "libvirt" / "libvirtd.log"
    qemu_dir = out / "var" / "log" / "libvirt" / "qemu"

    def chatter(path: Path, n: int, benign: list[str], bad: list[str], stamp: Callable[[float], str],
                extra: list[tuple[float, str]], rnd: random.Random) -> None:
        injected = sorted(extra)
        k = 0
        with open(path, "w") as f:
            for i in range(n):
                t = T0 + i * 86400 / n
                while k < len(injected) and injected[k][0] + T0 <= t:
                    f.write(injected[k][1].format(ts=stamp(injected[k][0] + T0), host=host) + "\n")
                    k += 1
                tmpl = bad[rnd.randrange(len(bad))] if rnd.random() < fail_share else benign[rnd.randrange(len(benign))]
                f.write(tmpl.format(ts=stamp(t), host=host, n=i, pid=1000 + i % 30000, b=i % 250,
                                    port=40000 + i % 20000, up=f"{i / 10:.6f}") + "\n")
            for secs, line in injected[k:]:
                f.write(line.format(ts=stamp(secs + T0), host=host) + "\n")

    paths = [messages, libvirtd, *(qemu_dir / f"web{v:02d}.log" for v in range(vms))]
    if _generated(out, key):
        return paths
    _write(messages, lambda p: chatter(p, int(total * 0.55), BENIGN_SYSLOG, faults.syslog,
                                                        syslog_ts, list(extra_syslog), random.Random(seed)))
    _write(libvirtd, lambda p: chatter(p, int(total * 0.40), BENIGN_LIBVIRTD, faults.libvirtd,
                                                        libvirtd_ts, list(extra_libvirtd),
                                                        random.Random(seed + 1)))
    per_vm = max(1, int(total * 0.05) // max(vms, 1))
    clean = [b for b in faults.qemu_blocks if any("reason=destroyed" in x or "reason=shutdown" in x for x in b)]
    for v in range(vms):
        name = f"web{v:02d}"
        path = qemu_dir / f"{name}.log"

        def write_vm(p: Path, v: int = v, name: str = name) -> None:
            rnd = random.Random(seed * 1000 + v)
            lines: list[str] = []
            t = T0 + rnd.uniform(0, 3600)
            while len(lines) < per_vm:
                blocks = faults.qemu_blocks if rnd.random() < 0.2 else (clean or faults.qemu_blocks)
                for tmpl in blocks[rnd.randrange(len(blocks))]:
                    lines.append(tmpl.format(ts=libvirtd_ts(t), iso=qemu_iso_ts(t), vm=name))
                    t += 0.01
                t += 86400 * 0.9 * rnd.random() / max(1, per_vm / 60)
            p.write_text("\n".join(lines[:max(per_vm, 1)]) + "\n")

        _write(path, write_vm)
    _mark_generated(out, key)
    return paths


def outage_host(out: Path, vms: int = 2000, host: str = "kvm01") -> list[Path]:
    """One NFS outage hitting `vms` VMs within seconds: the kernel's `nfs: server ... not
    responding`, then libvirt pausing each guest on its I/O error and losing its monitor."""
    messages = out / "var" / "log" / "messages"
    libvirtd = out / "var" / "log" / "libvirt" / "libvirtd.log"
    key = f"outage/{vms}/{host}/{CHATTER_KEY}"

    def write_syslog(p: Path) -> None:
        with open(p, "w") as f:
            for i in range(600):
                f.write(BENIGN_SYSLOG[i % len(BENIGN_SYSLOG)].format(
                    ts=syslog_ts(T0 + i * 0.5), host=host, n=i, pid=1000 + i, b=i % 250, port=40000 + i,
                    up=f"{i / 10:.6f}") + "\n")
            f.write(f"{syslog_ts(T0 + 300)} {host} kernel: [12345.678901] nfs: server nfs01.example.com not "
                    "responding, still trying\n")

    def write_libvirtd(p: Path) -> None:
        with open(p, "w") as f:
            for v in range(vms):
                t = T0 + 300.5 + v * 5.0 / vms
                f.write(f"{libvirtd_ts(t)}: 1234: warning : qemuProcessHandleIOError:851 : Transitioned guest "
                        f"vm{v:04d} to paused state due to IO error\n")
            for v in range(vms):
                t = T0 + 306 + v * 5.0 / vms
                f.write(f"{libvirtd_ts(t)}: 1234: error : qemuMonitorIO:832 : internal error: End of file from "
                        f"qemu monitor (vm='vm{v:04d}')\n")

    if not _generated(out, key):
        _write(messages, write_syslog)
        _write(libvirtd, write_libvirtd)
        _mark_generated(out, key)
    return [messages, libvirtd]


@dataclass
class Outage:
    """A shared NFS server going away: when (seconds after the start) and which hosts it hit."""

    server: str
    at: float
    hosts: list[str]


def fleet(out: Path, hosts: int = 200, lines: int = 20_000, vms: int = 10, outages: int = 3, seed: int = 7
          ) -> tuple[list[Path], list[Outage]]:
    """A folder per host (`out/kvmNNN/var/log/...`, realistic chatter and failures) and a few
    shared-storage outages, each hitting many hosts within seconds: the kernel's NFS message on
    each, then libvirt pausing some of its guests on their I/O errors."""
    rnd = random.Random(seed)
    faults = fault_lines()
    names = [f"kvm{h:03d}" for h in range(hosts)]
    plan = [Outage(f"nfs-{k + 1}.storage.lan", 3600.0 * (2 + 6 * k) + rnd.uniform(0, 600),
                   sorted(rnd.sample(names, max(2, int(hosts * rnd.uniform(0.3, 0.7)))))) for k in range(outages)]
    paths = []
    for name in names:
        syslog_extra: list[tuple[float, str]] = []
        libvirtd_extra: list[tuple[float, str]] = []
        for o in plan:
            if name in o.hosts:
                t = o.at + rnd.uniform(0, 20)
                syslog_extra.append((t, f"{{ts}} {{host}} kernel: [12345.678901] nfs: server {o.server} not "
                                        "responding, still trying"))
                for v in rnd.sample(range(vms), max(1, vms // 2)):
                    libvirtd_extra.append((t + rnd.uniform(0.5, 2.5), "{ts}: 1234: warning : qemuProcessHandleIOError"
                                           f":851 : Transitioned guest web{v:02d} to paused state due to IO error"))
        realistic_host(out / name, lines, vms=vms, host=name, seed=seed + len(paths), faults=faults,
                       extra_syslog=syslog_extra, extra_libvirtd=libvirtd_extra)
        paths.append(out / name)
    return paths, plan
