"""Coverage of libvirt's own error vocabulary by the pattern catalogue.

Not a test: a measurement for humans. It reads the reference list of libvirt error and
warning templates (``../shared/data/libvirt-error-templates.tsv`` beside the repository,
or the path given as the first argument), turns every template into the line libvirtd
would log, runs the message through the catalogue and reports:

- how many templates are recognised at all (matched %),
- how many are recognised with the category of the template's scenario label, mapped to
  the contract's vocabulary (right-category %),
- the unmatched and the mismatched templates, so a human can judge them (the scenario
  labels in the file were assigned by keyword and are only approximate).

Usage::

    .venv/bin/python benchmarks/catalogue_coverage.py [TEMPLATES.tsv] [--catalogue DIR]

Targets for the libvirt part of the catalogue: >= 95 % matched, >= 85 % right category.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TSV = REPO.parent / "shared" / "data" / "libvirt-error-templates.tsv"

# Scenario labels of the TSV -> the fixed category vocabulary of CONTRACT.md.
# "performance" in the file labels vCPU/affinity/scheduler messages (our `cpu`), and
# "host" labels PCI passthrough and cgroup messages (host hardware -> `host`).
LABEL_TO_CATEGORY = {
    "memory": "memory",
    "permission": "permission",
    "disk_image": "disk_image",
    "storage": "storage",
    "network": "network",
    "virt_layer": "virt_layer",
    "performance": "cpu",
    "host": "host",
}

HEADER = "2024-03-05 10:11:12.345+0000: 1234: error : {func}:{line} : "
HEADER_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+[+-]\d{4}: \d+: \w+ : (?:\w+:\d+ : )?")

# strerror texts a virReportSystemError call site may append; tried in this order when
# the bare message is not recognised.
ERRNO_SUFFIXES = (": Permission denied", ": No such file or directory", ": Operation not permitted")

PATH_VALUE = "/var/lib/libvirt/images/vm1.qcow2"
# Words just before a %s and the plausible value libvirt would put there.
CONTEXT_VALUES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?:iommu_group symlink|/proc/\S*)\s*$"), "/sys/bus/pci/devices/0000:03:00.0/iommu_group"),
    (re.compile(r"(?:PCI device|pci device|PCI device at|device '?)\s*'?$", re.I), "0000:03:00.0"),
    (re.compile(r"SIG$"), "KILL"),
    (re.compile(r"AppArmor profile '?$"), "libvirt-2938f233-2589-4f85-9aa8-2f1cabd92dbf"),
    (re.compile(r"(?:context|label|range|MCS|role|user|context for:) '?$", re.I), "system_u:system_r:svirt_t:s0:c1,c2"),
    (re.compile(r"network '?$|for network $|allocated from network $", re.I), "default"),
    (re.compile(r"bridge '?$|bridge name '?$|OVS bridge $", re.I), "virbr0"),
    (re.compile(r"(?:port|tap device|interface|index for|MTU on|dev=|tap interface|macvtap tap device) '?$",
                re.I), "vnet0"),
    (re.compile(r"(?:pool|storage pool) '?$", re.I), "default"),
    (re.compile(r"(?:volume|volume name) '?$", re.I), "vm1.qcow2"),
    (re.compile(r"(?:snapshot|block job|block node) '?$", re.I), "snap1"),
    (re.compile(r"(?:disk|memory|zone) '?$", re.I), "vda"),
    (re.compile(r"(?:vm=|domain|guest|by domain|domain\(s\) as) '?$", re.I), "vm1"),
    (re.compile(r"(?:vCPUs|monitor type) '?$", re.I), "2"),
    (re.compile(r"(?:monitor|agent)=$"), "remoteDispatchDomainGetFSInfo"),
    (re.compile(r"(?:server at) '?$"), "kvm02"),
    (re.compile(r"server at '[^']*:$"), "16509"),
    (re.compile(r"(?:driver|module|by module|type) '?$", re.I), "vfio-pci"),
    (re.compile(r"(?:file|path|dir|directory|image|mount|mount list|pidfile|socket|lock|Cannot access|on|to|"
                r"for|beneath|of storage file|backing file|needed for|under|chain for|config file|leases file:|"
                r"stale socket path:|PID file|store for) '?$", re.I), PATH_VALUE),
]

NUMBER_VALUES = {"d": "3", "i": "3", "u": "3", "zd": "3", "zu": "1048576", "ld": "107", "lld": "48211",
                 "llu": "1048576", "ju": "1048576"}
PLACEHOLDER = re.compile(r"%(0?\d*)(l{0,2}|z|j)([sdiux])")


def fill(template: str) -> str:
    """The message libvirt would produce for a printf-style template."""
    out: list[str] = []
    pos = 0
    for m in PLACEHOLDER.finditer(template):
        out.append(template[pos:m.start()])
        width, length, conv = m.groups()
        if conv == "s":
            before = template[max(0, m.start() - 40):m.start()]
            value = next((v for rx, v in CONTEXT_VALUES if rx.search(before)), "vm1")
            # a path-like value where the next word makes it a path ("%s: %s" after "file")
        elif conv == "x":
            value = "0" * int(width) if width else "a"
        else:
            value = NUMBER_VALUES.get(length + conv, "3")
        out.append(value)
        pos = m.end()
    out.append(template[pos:])
    return "".join(out)


def read_templates(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, where, template = line.split("\t", 2)
        rows.append((label, where, template))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("templates", nargs="?", default=str(DEFAULT_TSV), help="templates TSV")
    ap.add_argument("--catalogue", action="append", default=[], help="extra pattern directory")
    ap.add_argument("--quiet", action="store_true", help="only the summary")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from logsense.catalogue import load_catalogue  # noqa: PLC0415 (after sys.path)

    tsv = Path(args.templates)
    if not tsv.is_file():
        print(f"templates file not found: {tsv}", file=sys.stderr)
        return 2
    cat = load_catalogue(args.catalogue)
    rows = read_templates(tsv)

    print("label mapping (TSV scenario -> category):")
    for label, category in LABEL_TO_CATEGORY.items():
        print(f"  {label:12} -> {category}")

    t0 = time.perf_counter()
    matched = right = 0
    unmatched: list[tuple[str, str, str]] = []
    mismatched: list[tuple[str, str, str, str, str]] = []
    by_label: Counter[str] = Counter()
    by_label_ok: Counter[str] = Counter()
    via_suffix = 0
    pattern_use: Counter[str] = Counter()
    for label, where, template in rows:
        func = "virReportHelper"
        line_no = where.rsplit(":", 1)[-1]
        message = fill(template)
        candidates = [message] + [message + s for s in ERRNO_SUFFIXES]
        m = None
        for i, text in enumerate(candidates):
            line = HEADER.format(func=func, line=line_no) + text
            msg = HEADER_RE.sub("", line, count=1)
            m = cat.match(msg, source="libvirtd")
            if m is not None:
                via_suffix += i > 0
                break
        by_label[label] += 1
        expected = LABEL_TO_CATEGORY.get(label, label)
        if m is None:
            unmatched.append((label, where, message))
            continue
        matched += 1
        pattern_use[m.pattern.id] += 1
        if m.pattern.category == expected:
            right += 1
            by_label_ok[label] += 1
        else:
            mismatched.append((label, where, message, m.pattern.id, m.pattern.category))
    # Robustness: the same messages as a virReportSystemError call site would log them.
    suffixed = sum(
        cat.match(fill(t) + ERRNO_SUFFIXES[0], source="libvirtd") is not None for _l, _w, t in rows)
    dt = time.perf_counter() - t0

    n = len(rows)
    if not args.quiet:
        print(f"\nunmatched ({len(unmatched)}):")
        for label, where, message in unmatched:
            print(f"  [{label}] {where}: {message}")
        print(f"\nmatched with another category ({len(mismatched)}) — label -> pattern (category):")
        for label, where, message, pid, category in mismatched:
            print(f"  [{label} -> {category}] {where}: {message}\n      {pid}")
        print("\nper label (right category / templates):")
        for label in sorted(by_label):
            print(f"  {label:12} {by_label_ok[label]:3} / {by_label[label]:3}")
        print(f"\nmost used patterns: {', '.join(f'{p} ({c})' for p, c in pattern_use.most_common(8))}")
    print(f"\ntemplates: {n}   patterns in catalogue: {len(cat.patterns)}   time: {dt * 1000:.0f} ms")
    print(f"matched:        {matched:4} / {n} = {100 * matched / n:5.1f} %   (target >= 95 %; "
          f"{via_suffix} only with an appended strerror)")
    print(f"right category: {right:4} / {n} = {100 * right / n:5.1f} %   (target >= 85 %)")
    print(f"still matched with '{ERRNO_SUFFIXES[0]}' appended: {suffixed} / {n} = {100 * suffixed / n:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
