"""Find the log files under the paths a user gives, and open them decompressed.

A path may be a file, a directory (a copied `/var/log`, a sosreport, a plain folder), a
`.tar.*` archive of those, or a journal directory. Files are grouped into *collections*
(one per host tree) and rotated sets come oldest first. Nothing here parses lines.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import re
import stat
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard

Warn = Callable[[str], None]
COMPRESSED = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}
TAR_RE = re.compile(r"\.(tar|tgz|tbz2|txz|tar\.(gz|bz2|xz|zst))$")
DATE_SUFFIX = re.compile(r"^(.*?)-(\d{8})(?:\d{2})?$")
NUM_SUFFIX = re.compile(r"^(.*?)\.(\d+)$")
STDIN = "-"
STDIN_NAME = "(stdin)"  # what reports show for `-`
MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
SOS_KEEP = ("var/log", "sos_commands/logs", "sos_commands/kernel", "sos_commands/libvirt",
            "etc/libvirt/qemu", "run/libvirt/qemu")
LIVE_PATHS = ("/var/log/libvirt", "/var/log/messages", "/var/log/syslog")
UNPACK_LIMIT = int(os.environ.get("LOGSENSE_MAX_UNPACK", 16 << 30))  # bytes all archives may unpack to
ARCHIVE_RE = re.compile(r"\.(tar|tgz|tbz2|txz|zip|7z|rar)(\.(gz|bz2|xz|zst))?$")


class UnpackLimit(OSError):
    """Archives would unpack to more than the workspace allows (a bomb, or a cap set too low)."""


@dataclass
class LogFile:
    """One file to read: `name` is what reports show, `path` where it is on disk."""

    path: Path
    name: str
    mtime: float
    compression: str | None = None
    explicit: bool = False  # named on the command line (not found by walking a folder)

    def open(self, warn: Warn) -> BinaryIO:
        raw = _open_regular_or_pipe(self.path)
        if self.compression is None:
            return raw
        if self.compression == "gzip":
            stream: BinaryIO = gzip.GzipFile(fileobj=raw)
        elif self.compression == "bz2":
            stream = bz2.BZ2File(raw)
        elif self.compression == "xz":
            stream = lzma.LZMAFile(raw)
        else:
            stream = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return TolerantStream(stream, self.name, warn)

    def content_mtime(self) -> float:
        """mtime of the newest line: the gzip header's when it has one, else the file's."""
        if self.compression == "gzip":
            try:
                with gzip.open(self.path) as g:
                    g.read(1)
                    if g.mtime:
                        return float(g.mtime)
            except (OSError, EOFError):
                pass
        return self.mtime


def _open_regular_or_pipe(path: Path) -> BinaryIO:
    """Open for reading; a FIFO with no writer reads as empty instead of waiting for one."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(fd, True)  # a writer that is there is waited for, as `cat` would
    return os.fdopen(fd, "rb")


class TolerantStream(io.RawIOBase):
    """A decompressing stream that ends, with one warning, where the data is damaged:
    the lines before the damage are kept."""

    def __init__(self, inner: BinaryIO, name: str, warn: Warn) -> None:
        self.inner, self.name, self.warn, self.failed = inner, name, warn, False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes, in small steps so that what precedes damage is returned."""
        if self.failed:
            return b""
        parts, want = [], size if size >= 0 else 1 << 62
        while want > 0:
            try:
                piece = self._read1(min(want, 1 << 16))
            except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError, ValueError) as exc:
                self.failed = True
                self.warn(f"{self.name}: damaged compressed data, read up to the damage ({exc})")
                break
            if not piece:
                break
            parts.append(piece)
            want -= len(piece)
        return b"".join(parts)

    def _read1(self, n: int) -> bytes:
        read1 = getattr(self.inner, "read1", None)
        return read1(n) if read1 is not None else self.inner.read(n)

    def close(self) -> None:
        self.inner.close()
        super().close()


@dataclass
class Collection:
    """The logs of one host: a tree, a sosreport, or the files named on the command line."""

    root: Path | None
    host: str | None = None
    files: list[LogFile] = field(default_factory=list)
    journal_files: list[Path] = field(default_factory=list)
    journal_names: dict[Path, str] = field(default_factory=dict)  # file read -> what reports show
    domain_xml: list[Path] = field(default_factory=list)
    sosreport: bool = False


def _logical_name(name: str) -> tuple[str, str | None]:
    for ext, kind in COMPRESSED.items():
        if name.endswith(ext):
            return name[: -len(ext)], kind
    return name, None


def rotation_key(path: str) -> tuple[str, int, int]:
    """Sort key putting a rotated set oldest first: dated, then numbered (highest first), then
    the live file."""
    base, _ = _logical_name(path)
    if m := DATE_SUFFIX.match(base):
        return m.group(1), 0, int(m.group(2))
    if m := NUM_SUFFIX.match(base):
        return m.group(1), 1, -int(m.group(2))
    return base, 2, 0


def _is_journal_file(name: str) -> bool:
    return _logical_name(name)[0].endswith((".journal", ".journal~"))


def spool(stream: BinaryIO, ws: Workspace) -> Path:
    """A pipe or terminal can be read only once, but a file is read twice (its format is detected
    from its head first): copy it into the workspace."""
    dest = ws.new() / "stdin"
    with open(dest, "wb") as out:
        while chunk := stream.read(1 << 20):
            ws.take(len(chunk), STDIN_NAME)  # a device that never ends stops at the cap
            out.write(chunk)
    return dest


def _magic_compression(p: Path) -> str | None:
    """Compression told by content, for a spooled pipe (it has no name with a suffix)."""
    with open(p, "rb") as f:
        head = f.read(6)
    return next((kind for magic, kind in MAGIC.items() if head.startswith(magic)), None)


def _add_file(col: Collection, p: Path, display: str, warn: Warn, ws: Workspace, explicit: bool = False) -> None:
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):  # /dev/stdin on a pipe, a FIFO, <(process substitution)
            with _open_regular_or_pipe(p) as stream:
                p = spool(stream, ws)
            st = p.stat()
    except OSError as exc:
        warn(f"{display}: cannot read: {exc.strerror or exc}")
        return
    if not explicit and ARCHIVE_RE.search(p.name):
        warn(f"{display}: an archive inside the input is not unpacked; unpack it and name its folder")
        return
    if _is_journal_file(p.name):
        logical, comp = _logical_name(p.name)
        if comp is None:
            col.journal_files.append(p)
            col.journal_names[p] = display
        elif (plain := _decompress_to(LogFile(p, display, st.st_mtime, comp), ws.new() / logical, warn, ws)):
            col.journal_files.append(plain)  # systemd reads journal files only from disk, uncompressed
            col.journal_names[plain] = display
        return
    if p.suffix == ".xml" and ("/qemu/" in f"/{display}" or "dumpxml" in display):
        col.domain_xml.append(p)
        return
    logical, comp = _logical_name(p.name)
    if comp is None and p.name == "stdin":
        comp = _magic_compression(p)
    col.files.append(LogFile(p, display, st.st_mtime, comp, explicit))


def _decompress_to(lf: LogFile, dest: Path, warn: Warn, ws: Workspace) -> Path | None:
    try:
        with lf.open(warn) as src, open(dest, "wb") as out:
            while chunk := src.read(1 << 20):
                ws.take(len(chunk), lf.name)
                out.write(chunk)
    except OSError as exc:
        warn(f"{lf.name}: cannot read: {exc}")
        dest.unlink(missing_ok=True)
        return None
    return dest


def _walk(root: Path, warn: Warn, display_root: str) -> Iterator[Path]:
    """Files under root in name order, depth-first without recursion (a 1,000-deep tree is
    fine); a folder that cannot be read is said, never skipped silently."""
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            rel = d.relative_to(root).as_posix()
            warn(f"{display_root.rstrip('/')}/{'' if rel == '.' else rel}: cannot read folder: "
                 f"{exc.strerror or exc}; its logs are missing from this analysis")
            continue
        dirs = []
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                dirs.append(Path(e.path))
            else:
                yield Path(e.path)
        stack.extend(reversed(dirs))


def collection_of_dir(root: Path, display_root: str, warn: Warn, ws: Workspace) -> Collection:
    sos = (root / "sos_commands").is_dir()
    col = Collection(root=root, sosreport=sos)
    for hostfile in (root / "hostname", root / "etc" / "hostname"):
        if hostfile.is_file():
            col.host = hostfile.read_text(errors="replace").strip().split(".")[0] or None
            break
    for p in _walk(root, warn, display_root):
        rel = p.relative_to(root).as_posix()
        if sos and not rel.startswith(SOS_KEEP) and rel != "hostname":
            continue
        if not p.is_file() or p.is_symlink() or rel in ("hostname", "etc/hostname"):
            continue
        _add_file(col, p, f"{display_root.rstrip('/')}/{rel}", warn, ws)
    return col


class Workspace:
    """A private temporary folder for unpacked archives, removed when analysis ends; what is
    unpacked into it is capped (`limit` bytes, LOGSENSE_MAX_UNPACK), so a bomb stops early."""

    def __init__(self, limit: int | None = None) -> None:
        self.dir: Path | None = None
        self.limit = UNPACK_LIMIT if limit is None else limit
        self.used = 0

    def take(self, size: int, name: str) -> None:
        """Account for `size` more bytes unpacked from `name`; UnpackLimit past the cap."""
        self.used += size
        if self.used > self.limit:
            raise UnpackLimit(f"unpacking would exceed {_size(self.limit)} (LOGSENSE_MAX_UNPACK); "
                              f"stopped in {name}")

    def new(self) -> Path:
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="logsense-"))
        return Path(tempfile.mkdtemp(dir=self.dir))

    def close(self) -> None:
        if self.dir is not None:
            remove_tree(self.dir)
            self.dir = None


def remove_tree(root: Path) -> None:
    """rm -rf without recursion (shutil.rmtree recurses once per level: a 1,000-deep archive)."""
    dirs, stack = [], [root]
    while stack:
        d = stack.pop()
        dirs.append(d)
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    else:
                        with contextlib.suppress(OSError):
                            os.unlink(e.path)
        except OSError:
            continue
    for d in reversed(dirs):
        with contextlib.suppress(OSError):
            os.rmdir(d)


def unpack_tar(path: Path, ws: Workspace, warn: Warn) -> Path | None:
    """Unpack a tarball into the workspace, refusing members that would land outside it. A damaged
    archive is unpacked member by member up to the damage, and what came before it is kept."""
    dest = ws.new()
    try:
        if path.name.endswith((".tar.zst",)):
            with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as z, \
                    tarfile.open(fileobj=z, mode="r|") as tar:
                return _extract_stream(tar, path.name, dest, ws, warn)
        with tarfile.open(path, mode="r|*") as tar:
            return _extract_stream(tar, path.name, dest, ws, warn)
    except UnpackLimit as exc:
        warn(f"{path}: {exc}; the part unpacked before is analyzed")
        return dest
    except (tarfile.TarError, OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        if any(dest.iterdir()):
            warn(f"{path}: damaged archive, read up to the damage ({exc})")
            return dest
        warn(f"{path}: cannot unpack archive: {exc}")
        return None


def _extract_stream(tar: tarfile.TarFile, name: str, dest: Path, ws: Workspace, warn: Warn) -> Path:
    """Members one at a time, in the archive's order (streaming: no member list held)."""
    for m in tar:
        if m.name.startswith("/") or ".." in Path(m.name).parts:
            warn(f"{name}: refused archive member with an unsafe name: {m.name!r}")
            continue
        if m.isfile() or m.isdir():
            ws.take(m.size if m.isfile() else 0, name)
            _make_dirs(dest, Path(m.name).parent.parts)  # os.makedirs recurses once per level
            tar.extract(m, dest, filter="data")
    return dest


def _make_dirs(base: Path, parts: tuple[str, ...]) -> None:
    d = base
    for part in parts:
        d = d / part
        if not d.is_dir():
            d.mkdir()


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _single_root(d: Path) -> Path:
    """An archive usually holds one top folder (sosreport-host-date/): use it as the root."""
    entries = [e for e in d.iterdir()]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return d


def discover(paths: list[str], ws: Workspace, warn: Warn) -> list[Collection]:
    """Collections for the given paths; an unreadable path is a warning, not an error."""
    loose = Collection(root=None)
    cols: list[Collection] = []
    for arg in paths:
        if arg == STDIN:
            _add_file(loose, spool(sys.stdin.buffer, ws), STDIN_NAME, warn, ws, explicit=True)
            continue
        p = Path(arg)
        if not p.exists():
            warn(f"{arg}: no such file or directory")
            continue
        if p.is_dir():
            cols.append(collection_of_dir(p, arg, warn, ws))
        elif TAR_RE.search(p.name):
            if (dest := unpack_tar(p, ws, warn)) is not None:
                root = _single_root(dest)
                label = f"{arg}:" + (root.name + "/" if root != dest else "")
                col = collection_of_dir(root, label, warn, ws)
                cols.append(col)
        else:
            _add_file(loose, p, arg, warn, ws, explicit=True)
    if loose.files or loose.journal_files or loose.domain_xml:
        cols.insert(0, loose)
    for col in cols:
        col.files.sort(key=lambda f: (str(Path(f.name).parent), rotation_key(Path(f.name).name)))
    return cols


def live_paths() -> list[str]:
    """The live host's logs, for `analyze` with no path."""
    return [p for p in LIVE_PATHS if os.path.exists(p)]
