"""What a file is before its lines are read: its format, the host it names, and the context
its parser starts with. Batch and live both set a file up here, so a file is read the same
way whichever end found it."""

from __future__ import annotations

from datetime import tzinfo
from pathlib import PurePath

from logsense import parsers
from logsense.model import Record

HEAD_BYTES = 64 * 1024  # what format detection and host hints look at
# syslog first, so the host name it carries is known before files that carry none
FORMAT_ORDER = {"syslog": 0, "dmesg": 1, "journal-export": 2, "journal-json": 2, "libvirtd": 3, "qemu": 4}
LINE_FORMATS = frozenset(parsers.LINE_PARSERS)  # read line by line (the others are journal formats)


def detect(name: str, head: bytes) -> str | None:
    """The format of a file from its name and first HEAD_BYTES bytes; None if not a log."""
    return parsers.detect_format(name, head[:HEAD_BYTES])


def is_domain_xml(name: str) -> bool:
    """A domain's XML as libvirt keeps it (/etc/libvirt/qemu, /run/libvirt/qemu) or as
    `virsh dumpxml` printed it into a sosreport."""
    return name.endswith(".xml") and ("/qemu/" in f"/{name}" or "dumpxml" in name)


def vm_of_file(name: str) -> str | None:
    """A per-VM QEMU log is named after its VM (`web01.log`, rotated `web01.log.1`)."""
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
        if rec.host is None:
            rec.host = self.host
