"""What a file is before its lines are read: its format, the host it names, and the context
its parser starts with. Batch and live both set a file up here, so a file is read the same
way whichever end found it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from pathlib import PurePath

from logsense import parsers
from logsense.model import Record

HEAD_BYTES = 64 * 1024  # what format detection and host hints look at
# syslog first, so the host name it carries is known before files that carry none
FORMAT_ORDER = {"syslog": 0, "dmesg": 1, "journal-export": 2, "journal-json": 2, "libvirtd": 3, "qemu": 4}
LINE_FORMATS = frozenset(parsers.LINE_PARSERS)  # read line by line (the others are journal formats)


def detect(name: str, head: bytes, explicit: bool = False, knows: Callable[[str], bool] | None = None) -> str | None:
    """The format of a file from its name and first HEAD_BYTES bytes; None if not a log. A file
    named on the command line may be pasted text ("console"; `knows`: the catalogue knows a line)."""
    fmt = parsers.detect_format(name, head[:HEAD_BYTES])
    return parsers.console_format(name, head, fmt, explicit, knows) if explicit else fmt


def is_domain_xml(name: str) -> bool:
    """A domain's XML as libvirt keeps it (/etc/libvirt/qemu, /run/libvirt/qemu) or as
    `virsh dumpxml` printed it into a sosreport."""
    return name.endswith(".xml") and ("/qemu/" in f"/{name}" or "dumpxml" in name)


def vm_of_file(name: str) -> str | None:
    """A per-VM QEMU log is named after its VM (`web01.log`, rotated `web01.log.1`); a QEMU text
    outside `qemu/` that is not NAME.log (a pasted `virsh.txt`) names none."""
    if "/qemu/" not in f"/{name}" and ".log" not in PurePath(name).name:
        return None
    return PurePath(name).name.split(".log")[0] or None


def file_context(name: str, fmt: str, head: bytes, host: str | None, tz: tzinfo,
                 year: int, month: int) -> parsers.FileContext:
    """The parser context of a line-format file: host, zone, year of its newest line, the VM
    a QEMU log belongs to, and the source journalctl's text output is read as."""
    ctx = parsers.FileContext(file=name, host=host, tz=tz, year=year, month=month)
    if fmt == "qemu":
        ctx.vm = vm_of_file(name)
    if fmt == "syslog" and parsers.is_journal_text(name, head):
        ctx.source = "journal"
    return ctx


def new_parser(fmt: str, ctx: parsers.FileContext) -> parsers.LineParser:
    return parsers.LINE_PARSERS[fmt](ctx)


def fast_path_ok(fmt: str) -> bool:
    """Formats whose lines stand alone, so only the lines the catalogue may match are parsed."""
    return fmt in parsers.STATELESS


def host_hint(fmt: str, head: bytes) -> str | None:
    return parsers.host_hint(fmt, head)


class HostOf:
    """The one place that decides a record's host: the host a line names itself (syslog, the
    journal's _HOSTNAME) wins; otherwise the given host (--host, the tree's, the machine's)."""

    def __init__(self, host: str | None = None) -> None:
        self.host = host

    def learn(self, fmt: str, head: bytes) -> None:
        """A file's first lines may name the host of a tree that does not say it otherwise."""
        if self.host is None:
            self.host = host_hint(fmt, head)

    def apply(self, rec: Record) -> None:
        if self.host is None and rec.host:
            self.host = rec.host  # the tree's host, for files that carry none
        rec.host = one_host(rec.host, self.host)


def one_host(name: str | None, tree_host: str | None) -> str | None:
    """A record's host within one tree: the tree's when the record names none, or names the same
    machine by another form (QEMU's FQDN `kvm01.example.com`, the journal's `kvm01`)."""
    if name is None or tree_host is None:
        return name or tree_host
    if name != tree_host and name.split(".", 1)[0].lower() == tree_host.split(".", 1)[0].lower():
        return tree_host
    return name
