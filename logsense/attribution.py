"""Which VM is a line about? An explicit map of entities learnt from the logs themselves.

QEMU logs name their VM (file name, `guest=` and `-uuid` on the command line, disk paths);
domain XML adds disks, tap devices and UUIDs; libvirtd messages name domains. Every link is
kept with the reason it was made, so `--show-entities` can show why an event got its VM.
The time-based link (an error near one VM's failed start) is the correlator's, since it
needs event order.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from logsense.model import Event, Record

NAME = r"([A-Za-z0-9_][\w+-]*(?:\.[\w+-]+)*)"  # a domain name as free text gives it (no trailing dot)
MESSAGE_VM_RES = [
    re.compile(r"\(vm='([^']+)'\)"),
    re.compile(r"\bvm='([^']+)'"),
    re.compile(r"[Dd]omain '([^']+)'"),
    re.compile(r"no domain with matching name '([^']+)'"),
    re.compile(r"\bguest=([^,\s]+)"),
    re.compile(r"\bdomain=([A-Za-z0-9_.+-]+)"),
    re.compile(r"\bname='([^']+)' uuid="),  # libvirtd: "Domain id=11 name='master-0' uuid=... is tainted"
    # what clients and tools print: "Failed to start domain mail", "for domain win10",
    # "VM 'avocado-vt-vm1' failed", "Start vm VM0100", "virsh start alma-8-hello"
    re.compile(r"[Ff]ailed to (?:start|create|destroy|shutdown|resume|restore|migrate|reboot) domain "
               r"(?!from\b)" + NAME),
    re.compile(r"\bfor domain (?!from\b)" + NAME),
    re.compile(r"Failed to define (?!domain\b|from\b)" + NAME + r" for reason"),  # avocado-vt's LibvirtXMLError
    re.compile(r"Impossibile avviare il dominio " + NAME),  # virsh in Italian (libvirt po/it.po)
    re.compile(r"\b(?:VM|vm) (?:with name )?'([^']+)'"),
    re.compile(r"\b(?:the )?'([^']+)' VM\b"),
    re.compile(r"\b(?:[Ss]tart(?:ing)?|[Ss]top(?:ping)?) (?:vm|VM|domain|guest|virtual machine) " + NAME),
    re.compile(r"\bvirsh (?:-c '?\S+?'? )?\"?(?:start|destroy|shutdown|reboot|resume|suspend|screenshot|dominfo) "
               r"(?:--\S+ )*" + NAME),
    re.compile(r"^\(" + NAME + r"\) "),  # docker-machine drivers prefix their lines with the machine's name
    # libvirt's per-domain paths use the short name "<id>-<name>" (name cut at 20 characters)
    re.compile(r"/swtpm/\d+-([\w.+-]{1,19})-swtpm\.sock"),
    re.compile(r"/domain-\d+-([\w.+-]{1,19})/"),
]
# a word one of MESSAGE_VM_RES needs (a cheap test before them all)
VM_HINT_RE = re.compile(r"vm|VM|[Dd]omain|guest=|name='|virsh|dominio|virtual machine|/swtpm/|[Ss]tart|[Ss]top|^\(")
NEARBY_LINES = 10  # a line naming no VM takes one named this close above it in the same log
ROTATED_SUFFIX_RE = re.compile(r"(?:\.\d+|-\d{8,10})(?:\.(?:gz|bz2|xz|zst))?$")


def logical_file(name: str) -> str:
    """A log's name without its rotation suffix: `libvirtd.log.1` is `libvirtd.log`'s past."""
    return ROTATED_SUFFIX_RE.sub("", name)
OWN_OBJECT = {"path", "device", "pid", "uuid", "scope", "network", "bridge"}  # fields that point elsewhere
NAME_UUID_RE = re.compile(r"\bname='([^']+)' uuid=([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
UUID_IN_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MCS_RE = re.compile(r":(s0:c\d+,c\d+)$")  # the per-VM category pair of an svirt label
SCOPE_RE = re.compile(r"machine-qemu(?:\\x2d|-)\d+(?:\\x2d|-)(.+?)\.scope")
OOM_TASK_RE = re.compile(r"task_memcg=\S*?(machine-qemu\S+?\.scope)\S*?,task=[^,]+,pid=(\d+)")
QEMU_PID_RE = re.compile(r"(?:qemu|QEMU)[^\n]{0,40}?\bpid[= ](\d+)")


def decode_scope(scope: str) -> str | None:
    """`machine-qemu\\x2d3\\x2dweb01.scope` → `web01` (systemd escapes '-' as \\x2d)."""
    m = SCOPE_RE.search(scope)
    if not m:
        return None
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda h: chr(int(h.group(1), 16)), m.group(1))


@dataclass
class EntityMap:
    """Links from uuids, disk paths, pids and devices to VM names, each with its reason."""

    uuid: dict[str, str] = field(default_factory=dict)
    path: dict[str, str] = field(default_factory=dict)
    pid: dict[int, str] = field(default_factory=dict)
    device: dict[str, str] = field(default_factory=dict)
    label: dict[str, str] = field(default_factory=dict)  # SELinux MCS pair (s0:c12,c34) -> VM
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    vms: set[str] = field(default_factory=set)

    shared: set[tuple[str, str]] = field(default_factory=set)  # keys two VMs use: they name neither
    # pasted text: the VMs each file names, with the line that names them (a paste is one story)
    pasted: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    named_at: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # log -> (seq, VM) of events
    seen_in: dict[str, int] = field(default_factory=dict)  # log -> classified lines learnt so far
    told: int = 0  # links and pasted names offered so far (a worker sends only the records that offered one)

    def _link(self, kind: str, key, vm: str, why: str) -> None:
        self.told += 1
        table = getattr(self, kind)
        if key not in table:
            table[key] = vm
            self.reasons[(kind, str(key))] = why
        elif table[key] != vm:
            self.shared.add((kind, str(key)))
            self.reasons[(kind, str(key))] = f"used by {table[key]} and {vm}: names neither"
        self.vms.add(vm)

    def _lookup(self, kind: str, key) -> str | None:
        if (kind, str(key)) in self.shared:
            return None
        return getattr(self, kind).get(key)

    def learn(self, rec: Record) -> None:
        """Take the links a record carries (QEMU command lines, libvirtd pid lines)."""
        if rec.vm:
            self.vms.add(rec.vm)
        if rec.extra.get("command_line") and rec.vm:
            where = f"{rec.file}:{rec.line}"
            if u := rec.extra.get("uuid"):
                self._link("uuid", u, rec.vm, f"-uuid on the command line ({where})")
            for disk in rec.extra.get("disks", ()):
                self._link("path", disk, rec.vm, f"disk on the command line ({where})")
        if (m := OOM_TASK_RE.search(rec.message)) and (vm := decode_scope(m.group(1))):
            self._link("pid", int(m.group(2)), vm, f"OOM report's cgroup {m.group(1)} ({rec.file}:{rec.line})")
        if "uuid=" in rec.message and (m := NAME_UUID_RE.search(rec.message)):
            self._link("uuid", m.group(2), m.group(1), f"name and uuid in one line ({rec.file}:{rec.line})")
        if rec.extra.get("pasted") and rec.file and (vm := self.vm_in_message(rec.raw)):
            self.pasted.setdefault(rec.file, []).append((rec.line or 0, vm))
            self.told += 1
        if rec.source in ("libvirtd", "journal") and (m := QEMU_PID_RE.search(rec.message)):
            vm = self.vm_in_message(rec.message)
            if vm:
                self._link("pid", int(m.group(1)), vm, f"{rec.file}:{rec.line}")

    def learn_events(self, events: list[Event]) -> None:
        """The VMs the classified lines name and where, before any is resolved (a line naming none
        may take the VM a line just above it named: `named_above`)."""
        for ev in events:
            rec = ev.record
            if rec.file:
                key = logical_file(rec.file)
                self.seen_in[key] = rec.extra["seq"] = self.seen_in.get(key, 0) + 1
            if vm := ev.fields.get("vm") or self.vm_in_message(rec.message):
                self.vms.add(vm)
                if rec.file:
                    named = self.named_at.setdefault(logical_file(rec.file), [])
                    named.append((rec.extra["seq"], vm))
                    del named[:-NEARBY_LINES]

    def learn_domain_xml(self, path: Path) -> None:
        """A domain's XML (/etc/libvirt/qemu/NAME.xml, virsh dumpxml): name, uuid, disks, taps."""
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError):
            return
        if root.tag != "domain":
            return
        name = (root.findtext("name") or "").strip()
        if not name:
            return
        self.vms.add(name)
        why = f"domain XML {path.name}"
        if u := (root.findtext("uuid") or "").strip().lower():
            self._link("uuid", u, name, why)
        for src in root.iterfind("./devices/disk/source"):
            if f := src.get("file") or src.get("dev"):
                self._link("path", f, name, why)
        for tgt in root.iterfind("./devices/interface/target"):
            if dev := tgt.get("dev"):
                self._link("device", dev, name, why)
        for lab in root.iterfind("./seclabel/label"):
            if lab.text and (m := MCS_RE.search(lab.text.strip())):
                self._link("label", m.group(1), name, why)

    def vm_in_message(self, message: str) -> str | None:
        if not VM_HINT_RE.search(message):
            return None  # most lines: none of the words every rule below needs
        for rx in MESSAGE_VM_RES:
            if m := rx.search(message):
                return m.group(1)
        return None

    def resolve(self, ev: Event) -> tuple[str | None, str]:
        """The VM of an event and why; (None, '') when the logs do not say."""
        f = ev.fields
        if vm := f.get("vm"):
            return vm, "named in the message"
        if (u := f.get("uuid")) and (vm := self._lookup("uuid", u.lower())):
            return vm, f"uuid {u}: " + self.reasons[("uuid", u.lower())]
        if (s := f.get("scope")) and (vm := decode_scope(s)):
            return vm, f"cgroup {s}"
        if (p := f.get("path")) and (vm := self._lookup("path", p)):
            return vm, f"disk {p}: " + self.reasons[("path", p)]
        if (p := f.get("pid")) and p.isdigit() and (vm := self._lookup("pid", int(p))):
            return vm, f"qemu pid {p}: " + self.reasons[("pid", p)]
        if (d := f.get("device")) and (vm := self._lookup("device", d)):
            return vm, f"device {d}: " + self.reasons[("device", d)]
        if (s := f.get("scontext")) and (m := MCS_RE.search(s)) and (vm := self._lookup("label", m.group(1))):
            return vm, f"SELinux label {m.group(1)}: " + self.reasons[("label", m.group(1))]
        rec = ev.record
        if rec.vm:
            return rec.vm, f"QEMU log {rec.file}"
        if vm := self.vm_in_message(rec.message):
            return vm, "named in the message"
        for u in UUID_IN_TEXT.findall(rec.message.lower()):
            if vm := self._lookup("uuid", u):
                return vm, f"uuid {u}: " + self.reasons[("uuid", u)]
        if rec.pid is not None and (vm := self._lookup("pid", rec.pid)):
            return vm, f"qemu pid {rec.pid}"
        if rec.extra.get("pasted") and (vm := self.pasted_vm(rec)):
            return vm, f"named in the pasted text {rec.file}"
        if ev.pattern is not None and ev.pattern.scope == "vm" and not f.keys() & OWN_OBJECT \
                and (named := self.named_above(rec)) is not None:
            return named[1], f"named a few lines above in {rec.file}"
        return None, ""

    def named_above(self, rec: Record) -> tuple[int, str] | None:
        """The last VM a classified line of the same log named at most NEARBY_LINES classified
        lines above: one operation's lines ("Cannot start job ... for domain win10", then the lock
        timeout). Counted in classified lines of the log, rotated parts included, so batch and live
        (which may read a log across a rotation) agree."""
        seq = rec.extra.get("seq", 0)
        named = self.named_at.get(logical_file(rec.file or ""), [])
        above = [(n, vm) for n, vm in named if 0 < seq - n <= NEARBY_LINES]
        return above[-1] if above else None

    def pasted_vm(self, rec: Record) -> str | None:
        """The VM of a pasted line naming none: the only VM its paste names, else the last one
        named above it (a virsh session or a test log moves from VM to VM)."""
        named = self.pasted.get(rec.file or "", [])
        if len({vm for _, vm in named}) == 1:
            return named[0][1]
        above = [vm for line, vm in named if line <= (rec.line or 0)]
        return above[-1] if above else None

    def table(self) -> list[tuple[str, str, str, str]]:
        """(kind, key, vm, reason) rows for `--show-entities`."""
        rows = []
        for kind in ("uuid", "path", "pid", "device", "label"):
            for key, vm in sorted(getattr(self, kind).items(), key=lambda kv: str(kv[0])):
                rows.append((kind, str(key), vm, self.reasons[(kind, str(key))]))
        return rows
