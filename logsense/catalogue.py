"""The pattern catalogue: loading `patterns/*.toml` and classifying messages.

The catalogue is data (see patterns/README.md). Matching has two steps: a native
multi-pattern scan (Hyperscan, prefilter mode) over whole buffers decides which lines can
match at all, so benign lines cost no Python work; only those candidates run the full
`regex` patterns, each under a timeout. Where Hyperscan has no wheel, an Aho-Corasick scan for
literals every match must contain (logsense/prefilter.py) does the first step.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re as stdre
import shlex
import stat
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex

from logsense import bundled
from logsense.i18n import t as tr
from logsense.model import CATEGORIES, ROLES, SEVERITIES, SOURCES

try:
    import hyperscan

    # MULTILINE: `$` (end of the message) is the end of a line in a buffer of many
    HS_FLAGS = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_ALLOWEMPTY | hyperscan.HS_FLAG_MULTILINE
except ImportError:  # no wheel on this platform: the literal prefilter (Aho-Corasick) stands in
    hyperscan = None
try:
    from logsense import prefilter
except ImportError:  # neither: every line runs the full regexes
    prefilter = None  # type: ignore[assignment]

PREFILTERS = ("hyperscan", "aho", "none")  # LOGSENSE_PREFILTER forces one (tests, benchmarks)

REGEX_TIMEOUT = 0.05  # seconds; a line that takes longer is not matched (counted)
SITE_FILE_MAX = 4 << 20  # bytes: a site's pattern file larger than this is refused, not read
BIG_REPEAT_RE = stdre.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")  # {n}, {n,}, {,m}, {n,m}
MAX_REPEAT = 250  # larger bounded repeats make Hyperscan's prefilter build take seconds (or all memory)
TIME_LIMIT = 0.005  # seconds for one search over an adversarial 10 KB line: backtracking costs seconds, a linear
# regex on a busy machine up to ~1 ms (the slowest built-in one: 0.8 ms quiet), so the margin is 5x
ADVERSARIAL_SIZE = 10_000
ADVERSARIAL_SEEDS = ("a", " ", "'", "a'", "/a", "0", ": ", "a ", "x=1,")
BUILTIN_DIR = bundled("patterns", "patterns")
# Error-level lines the catalogue does not know still become events ("unrecognised errors"),
# so the fast path must pick them too.
ERROR_HINTS = {
    "libvirtd": rb": error : ",
    "qemu": rb"(?:^|\n)[^\n]{0,40}qemu-(?:system-[a-z0-9_]+|kvm): ",
}
FIELD_RE = stdre.compile(r"\{(\w+)\}")
# What a pattern's line says about a VM's or the host's life (logsense/lifecycle.py reads it)
LIFECYCLE = ("vm-start", "vm-stop", "vm-start-failed", "migrate-in", "host-boot", "host-shutdown", "daemon-start")


class CatalogueError(Exception):
    """The catalogue could not be loaded (one line each in `problems`); its text is one line."""

    def __init__(self, problems: list[str]) -> None:
        more = f" (and {len(problems) - 1} more; see logsense catalogue check)" if len(problems) > 1 else ""
        super().__init__((problems[0] if problems else "catalogue error") + more)
        self.problems = problems


@dataclass
class Example:
    line: str
    fields: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    journal: dict[str, str] = field(default_factory=dict)


@dataclass
class Pattern:
    id: str
    sources: tuple[str, ...]
    regex: str
    category: str
    severity: str
    role: str
    title: str
    cause: str
    remediation: list[str]
    diagnostics: list[str]
    scope: str = "vm"
    priority: int = 50
    lifecycle: str | None = None  # one of LIFECYCLE: the line starts or stops a VM, boots the host...
    examples: list[Example] = field(default_factory=list)
    near_misses: list[Example] = field(default_factory=list)
    file: str = ""
    compiled_regex: Any = field(default=None, repr=False, compare=False)  # see `compiled`
    translations: dict[str, dict[str, Any]] = field(default_factory=dict)  # lang -> title, cause, remediation

    @property
    def compiled(self) -> Any:
        """The `regex` form, compiled on first use: a run's prefilter passes most patterns no
        candidate line, and compiling all of them is a third of a start."""
        if self.compiled_regex is None:
            self.compiled_regex = regex.compile(self.regex)
        return self.compiled_regex

    def text(self, key: str, lang: str = "en") -> Any:
        """title, cause or remediation in `lang` where the catalogue has it, else English."""
        return self.translations.get(lang, {}).get(key) or getattr(self, key)

    recovery: bool = False  # a service back up: recovers the host's incident
    starts_vm: bool = False  # a VM being started (a restart may recover its incident)

    @property
    def is_recovery(self) -> bool:
        return self.recovery


@dataclass
class Match:
    pattern: Pattern
    fields: dict[str, str]
    span: int
    wrapper: Pattern | None = None  # the symptom whose line carries this cause ("closed the monitor: <cause>")


# -- filling advice templates (cause, remediation, diagnostics) --------------------------------
SENTENCE_END_RE = stdre.compile(r"(?<=[.!?])\s+(?=[A-Z(])|(?<=[。！？])")  # English, or Chinese (patterns/zh)
PROGRAM_RE = stdre.compile(r"(?:[A-Z_]+=\S*\s+)*(?:sudo\s+)?(?:/[\w./{}-]+|[a-z][\w.+-]*)(?:[\s;|&]|$)")
TEMPLATE_RE = stdre.compile(r"<[a-z][\w.-]*>")  # a value for a person to fill in: qemu-img check <image>


def quote_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, quote) of the '...' and "..." parts of a command. A quote opens only after a
    non-word character, so the apostrophe of prose ("the VM's disk") opens nothing."""
    spans, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c in "'\"" and (i == 0 or not text[i - 1].isalnum()):
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if c == '"' and text[j] == "\\" else 1
            spans.append((i, j, c))
            i = j + 1
            continue
        i += 1
    return spans


def _quoted_for(value: str, quote: str | None) -> str:
    """`value` as shell text where it stands: a word of its own, inside '...' or inside "..."."""
    if quote == "'":
        return value.replace("'", "'\\''")
    if quote == '"':
        return stdre.sub(r'([\\$`"])', r"\\\1", value)
    return shlex.quote(value)


def _fill(text: str, values: dict[str, Any], shell: bool) -> str | None:
    """`text` with every placeholder filled (shell-quoted with `shell`); None if one has no value."""
    spans = quote_spans(text) if shell else []
    missing = False

    def one(m: stdre.Match[str]) -> str:
        nonlocal missing
        value = values.get(m.group(1))
        if value is None or value == "":
            missing = True
            return m.group(0)
        if not shell:
            return str(value)
        quote = next((q for a, b, q in spans if a < m.start() < b), None)
        return _quoted_for(str(value), quote)

    out = FIELD_RE.sub(one, text)
    return None if missing else out


def render(text: str, values: dict[str, Any], shell: bool = False) -> str:
    """Fill `{field}` placeholders; a sentence naming a value the logs did not give is dropped
    (a reader never sees `{vm}`). `shell`: the text holds commands, so every value (log text,
    untrusted) is quoted for the shell where it stands ("" when every sentence was dropped)."""
    if not FIELD_RE.search(text):
        return text
    kept = [f for s in SENTENCE_END_RE.split(text) if s and (f := _fill(s, values, shell)) is not None]
    return "".join(("" if not n or kept[n - 1].endswith(("。", "！", "？")) else " ") + f for n, f in enumerate(kept))


def render_command(command: str, values: dict[str, Any]) -> str | None:
    """A diagnostic command with its values shell-quoted; None when a value is missing (a
    command with a hole would run on the wrong thing)."""
    return _fill(command, values, shell=True)


def is_command(text: str) -> bool:
    """A line someone can paste into a shell as it stands: it starts with a program name, parses
    as shell words, has no <value> left for a person to fill and does not read as a sentence
    (no closing full stop, no two-space aside; a comment is written `# ...`)."""
    if not PROGRAM_RE.match(text) or text.rstrip().endswith(".") or "  (" in text:
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    spans = quote_spans(text)
    return not any(not any(a < m.start() < b for a, b, _ in spans) for m in TEMPLATE_RE.finditer(text))


def render_advice(remediation: list[str], diagnostics: list[str], values: dict[str, Any], lang: str = "en"
                  ) -> tuple[list[str], list[str]]:
    """(remediation, diagnostics) ready for a reader: placeholders filled or dropped, values
    shell-quoted; diagnostics hold only runnable commands, so a template or a sentence written
    as a diagnostic moves to the end of the remediation as its own line."""
    fix = [r for s in remediation if (r := render(s, values, shell=True))]
    confirm = []
    for d in diagnostics:
        if (c := render_command(d, values)) is None:
            continue
        if is_command(c):
            confirm.append(c)
        elif TEMPLATE_RE.search(c) and PROGRAM_RE.match(c):
            fix.append(tr("fix.fill_in", lang, names=", ".join(dict.fromkeys(TEMPLATE_RE.findall(c))), command=c))
        else:
            fix.append(c)
    return fix, confirm


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value or []]


def _examples(items: Any) -> list[Example]:
    out = []
    for item in items or []:
        if isinstance(item, str):
            out.append(Example(line=item))
        else:
            out.append(Example(line=item.get("line", ""), fields={k: str(v) for k, v in
                                                                    item.get("fields", {}).items()},
                               source=item.get("source"), journal=item.get("journal", {})))
    return out


def parse_pattern(data: dict[str, Any], file: str, problems: list[str], vetted: bool = False) -> Pattern | None:
    """One `[[pattern]]` table, or None with the reasons appended to `problems`; `vetted`: this
    very text loaded without a problem before (ParsedCatalogue), so its regex compiles on first use."""
    pid = data.get("id")
    where = f"{file}: {pid or '<no id>'}"
    before = len(problems)
    for key in ("id", "sources", "regex", "category", "severity", "role", "title", "cause"):
        if not data.get(key):
            problems.append(f"{where}: missing '{key}'")
        elif key != "sources" and not isinstance(data[key], str):
            problems.append(f"{where}: '{key}' must be a string")
    for key in ("sources", "remediation", "diagnostics"):
        value = data.get(key)
        if value is not None and not isinstance(value, str) and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)):
            problems.append(f"{where}: '{key}' must be a string or a list of strings")
    for key in ("examples", "near_misses"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(
                isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("line", ""), str)
                                       and isinstance(v.get("fields", {}), dict)) for v in value):
            problems.append(f"{where}: '{key}' must be a list of lines or tables with a 'line'")
    if len(problems) > before:
        return None
    big = [int(b) for bounds in BIG_REPEAT_RE.findall(data["regex"]) for b in bounds if b and int(b) > MAX_REPEAT]
    if big:
        problems.append(f"{where}: bounded repeat {{..,{max(big)}}} makes the fast path slow to build; "
                        f"use * or + (with a class that excludes the delimiter) or a bound <= {MAX_REPEAT}")
        return None
    if not regex.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_-]+){2,}", pid):
        problems.append(f"{where}: id must be dotted lower-case like area.category.name")
    sources = tuple(_as_list(data["sources"]))
    for s in sources:
        if s not in SOURCES:
            problems.append(f"{where}: unknown source '{s}' (one of {', '.join(SOURCES)})")
    for key, allowed in (("category", CATEGORIES), ("severity", SEVERITIES), ("role", ROLES),
                         ("scope", ("vm", "host"))):
        value = data.get(key, "vm")
        if value not in allowed:
            problems.append(f"{where}: {key} '{value}' is not one of {', '.join(allowed)}")
    compiled = None
    if not vetted:
        try:
            compiled = regex.compile(data["regex"])
        except regex.error as exc:
            problems.append(f"{where}: regex does not compile: {exc}")
    for flag in ("recovery", "starts_vm"):
        if not isinstance(data.get(flag, False), bool):
            problems.append(f"{where}: {flag} must be true or false")
    lifecycle = data.get("lifecycle")
    if lifecycle is not None and lifecycle not in LIFECYCLE:
        problems.append(f"{where}: lifecycle '{lifecycle}' is not one of {', '.join(LIFECYCLE)}")
    priority = data.get("priority", 50)
    if not isinstance(priority, int) or not 0 <= priority <= 100:
        problems.append(f"{where}: priority must be an integer 0-100")
    if len(problems) > before:
        return None
    return Pattern(
        id=pid, sources=sources, regex=data["regex"], category=data["category"],
        severity=data["severity"], role=data["role"], title=data["title"], cause=data["cause"],
        remediation=_as_list(data.get("remediation")), diagnostics=_as_list(data.get("diagnostics")),
        scope=data.get("scope", "vm"), priority=priority, lifecycle=lifecycle, examples=_examples(data.get("examples")),
        near_misses=_examples(data.get("near_misses")), file=file, compiled_regex=compiled,
        recovery=data.get("recovery") is True, starts_vm=data.get("starts_vm") is True)


def adversarial_cost(compiled: Any, seeds: Iterable[str] = ADVERSARIAL_SEEDS) -> float:
    """Seconds the slowest of some long lines built to make a careless regex backtrack takes
    (best of three each: this machine is shared and noisy); inf when one times out."""
    worst = 0.0
    for seed in seeds:
        line = (seed * (ADVERSARIAL_SIZE // max(len(seed), 1) + 1))[:ADVERSARIAL_SIZE]
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            try:
                compiled.search(line, timeout=1.0)
            except TimeoutError:
                return float("inf")
            best = min(best, time.perf_counter() - t0)
        worst = max(worst, best)
    return worst


def read_pattern_file(path: Path) -> str:
    """A pattern file's text; refuses what is not a regular file (a FIFO would hang) or too big."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"not a regular file: {path}")
        if st.st_size > SITE_FILE_MAX:
            raise OSError(f"larger than {SITE_FILE_MAX >> 20} MiB: {path}")
        return f.read(SITE_FILE_MAX + 1).decode("utf-8")


LANGS = ("en", "zh")  # English is the catalogue's own text; the others are in <dir>/<lang>/*.toml
TRANSLATED = ("title", "cause", "remediation")


_PARSED: dict[bytes, dict[str, Any]] = {}  # a catalogue file's text digest -> its TOML data (read-only)
_VETTED: set[bytes] = set()  # digests of texts taken from a parsed copy written after a load with no problem
CACHE_FORMAT = b"catalogue-1"


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def read_toml(path: Path) -> tuple[dict[str, Any], bool]:
    """A catalogue file's data, parsed once per process (the patterns, the knowledge and a check
    all read the same files) or taken from the parsed copy on disk (ParsedCatalogue); and whether
    this very text is vetted (its regexes compiled when the copy was made)."""
    text = read_pattern_file(path)
    key = _digest(text)
    data = _PARSED.get(key)
    if data is None:
        data = _PARSED[key] = tomllib.loads(text)
    return data, key in _VETTED


class ParsedCatalogue:
    """The parsed catalogue files, kept on disk between runs: parsing TOML and compiling every
    regex is most of a start (~0.3 s of 0.6). Keyed by every file's text and the versions that
    read them, and written only after a load with no problem, so each text taken from it had
    every regex compiled: those are then compiled on first use. A file changed since the key was
    taken is another text, parsed and compiled afresh."""

    def __init__(self, files: list[Path]) -> None:
        self.digests: list[bytes] = []
        try:
            self.digests = [_digest(read_pattern_file(f)) for f in files]
        except (OSError, UnicodeDecodeError):
            self.path = None  # read_patterns says what is wrong with the file
            self.loaded = False
            return
        versions = f"{sys.version}/{regex.__version__}".encode()
        key = hashlib.sha256(CACHE_FORMAT + versions + b"".join(self.digests)).hexdigest()[:24]
        self.path = _cache_dir() / f"catalogue-{key}.marshal"
        self.loaded = self._load()

    def _load(self) -> bool:
        try:
            data = marshal.loads(self.path.read_bytes()) if self.path is not None else None
        except (OSError, EOFError, ValueError, TypeError):
            return False
        if not isinstance(data, dict) or set(data) != set(self.digests):
            return False
        _PARSED.update(data)
        _VETTED.update(data)
        return True

    def save(self) -> None:
        """Keep the parsed files (after a load with no problem); no cache is slower, not wrong."""
        if self.loaded or self.path is None or any(d not in _PARSED for d in self.digests):
            return
        try:
            blob = marshal.dumps({d: _PARSED[d] for d in self.digests})
        except ValueError:  # a value marshal cannot keep (a TOML date)
            return
        write_cache(self.path, blob)


def translation_files(dirs: Iterable[Path]) -> list[tuple[str, Path]]:
    """(language, file) of every `<dir>/<lang>/*.toml`, built-in folder first."""
    return [(lang, path) for d in dirs for lang in LANGS[1:] for path in sorted((Path(d) / lang).glob("*.toml"))]


def read_translations(dirs: Iterable[Path], patterns: list[Pattern], problems: list[str],
                      loaded: Iterable[Path] | None = None, disabled: Iterable[str] = ()) -> None:
    """Attach `<dir>/<lang>/*.toml` texts (`[[pattern]] id, title, cause, remediation`) to the
    patterns, built-in folder first, a site's after (a site may translate its own patterns). An id
    no pattern has is a problem, unless it is disabled or its file was replaced by a site's file
    of the same name (`loaded`: the pattern files read)."""
    loaded = None if loaded is None else set(loaded)
    disabled = set(disabled)
    by_id = {p.id: p for p in patterns}
    for lang, path in translation_files(dirs):
        where = f"{lang}/{path.name}"
        try:
            data, _ = read_toml(path)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            problems.append(f"{where}: cannot read: {exc}")
            continue
        for item in data.get("pattern", []) if isinstance(data.get("pattern"), list) else []:
            pid = item.get("id") if isinstance(item, dict) else None
            if pid not in by_id:
                if pid not in disabled and (loaded is None or path.parent.parent / path.name in loaded):
                    problems.append(f"{where}: {pid}: no such pattern")
                continue
            texts = {k: item[k] for k in TRANSLATED if k in item}
            if not all(isinstance(v, str) for k, v in texts.items() if k != "remediation") or not (
                    isinstance(texts.get("remediation", []), list)
                    and all(isinstance(v, str) for v in texts.get("remediation", []))):
                problems.append(f"{where}: {pid}: title and cause are strings, remediation a list")
                continue
            by_id[pid].translations[lang] = texts


def translation_problems(p: Pattern) -> list[str]:
    """What a pattern's translations lack: every language, every text, the same placeholders and
    as many remediation steps as the English."""
    out = []
    for lang in LANGS[1:]:
        tr = p.translations.get(lang)
        if tr is None:
            out.append(f"{p.file}: {p.id}: no {lang} text (patterns/{lang}/)")
            continue
        for key in TRANSLATED:
            if not tr.get(key):
                out.append(f"{p.file}: {p.id}: {lang} {key} missing")
                continue
            en, other = getattr(p, key), tr[key]
            if key == "remediation" and len(other) != len(en):
                out.append(f"{p.file}: {p.id}: {lang} remediation has {len(other)} steps, English {len(en)}")
            if set(FIELD_RE.findall(" ".join(_as_list(en)))) != set(FIELD_RE.findall(" ".join(_as_list(other)))):
                out.append(f"{p.file}: {p.id}: {lang} {key} has other {{placeholders}} than the English")
    return out


def pattern_files(extra_dirs: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Built-in files, with a site's file of the same name replacing the built-in one."""
    files: dict[str, Path] = {p.name: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}
    for d in extra_dirs:
        d = Path(d)
        if not d.is_dir():
            raise CatalogueError([f"catalogue directory not found: {d}"])
        files.update({p.name: p for p in sorted(d.glob("*.toml"))})
    return [files[name] for name in sorted(files)]


@dataclass(frozen=True)
class LibvirtCode:
    """A libvirt error code (journal field LIBVIRT_CODE) and what it says about the category."""

    code: int
    name: str
    category: str
    severity: str


def read_patterns(files: Iterable[Path], problems: list[str],
                  codes: dict[int, LibvirtCode] | None = None) -> list[Pattern]:
    patterns: dict[str, Pattern] = {}
    for path in files:
        try:
            data, vetted = read_toml(path)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            problems.append(f"{path.name}: cannot read: {exc}")
            continue
        if not isinstance(data.get("pattern", []), list) or not isinstance(data.get("libvirt_code", []), list):
            problems.append(f"{path.name}: 'pattern' and 'libvirt_code' must be arrays of tables ([[pattern]])")
            continue
        for item in data.get("libvirt_code", []):
            try:
                code = LibvirtCode(int(item["code"]), str(item["name"]), item["category"], item["severity"])
            except (KeyError, TypeError, ValueError):
                problems.append(f"{path.name}: libvirt_code needs code, name, category, severity: {item}")
                continue
            if code.category not in CATEGORIES or code.severity not in SEVERITIES:
                problems.append(f"{path.name}: libvirt_code {code.code}: unknown category or severity")
            elif codes is not None:
                codes[code.code] = code
        for item in data.get("pattern", []):
            if not isinstance(item, dict):
                problems.append(f"{path.name}: every pattern must be a table ([[pattern]])")
                continue
            p = parse_pattern(item, path.name, problems, vetted)
            if p is None:
                continue
            if p.id in patterns and patterns[p.id].file == p.file:
                problems.append(f"{p.file}: {p.id}: duplicate id")
            patterns[p.id] = p  # a later file (a site's) replaces a built-in id
    return list(patterns.values())


@dataclass(frozen=True)
class Outcome:
    """What the operator saw happen to the VM (`[[outcome]]`), told as "Result: <vm> <result>"."""

    result: str
    regex: Any  # re.Pattern, searched in an incident's cause and symptom lines
    examples: tuple[str, ...]
    texts: tuple[tuple[str, str], ...] = ()  # (lang, result) beside the English

    def text(self, lang: str = "en") -> str:
        return dict(self.texts).get(lang, self.result)


@dataclass(frozen=True)
class ChainStep:
    when: Any  # re.Pattern
    text: str
    texts: tuple[tuple[str, str], ...] = ()  # (lang, text) beside the English


@dataclass(frozen=True)
class Chain:
    """A known causal chain (`[[chain]]`), told as "Known chain: ..." when its conditions hold."""

    name: str
    category: str | None
    all: tuple[Any, ...]
    any: tuple[Any, ...]
    text: str
    steps: tuple[ChainStep, ...]
    example: tuple[str, ...]
    texts: tuple[tuple[str, str], ...] = ()  # (lang, text) beside the English

    def sentence(self, messages: list[str], category: str | None, lang: str = "en") -> str | None:
        """The chain told for an incident with these lines and root category; None if it does not hold."""
        if self.category is not None and category != self.category:
            return None
        if not all(any(rx.search(m) for m in messages) for rx in self.all):
            return None
        if self.any and not any(rx.search(m) for rx in self.any for m in messages):
            return None
        steps = [dict(s.texts).get(lang, s.text) for s in self.steps if any(s.when.search(m) for m in messages)]
        sep, end = ("，", "。") if lang == "zh" else (", ", ".")
        return sep.join([dict(self.texts).get(lang, self.text), *steps]) + end


@dataclass
class Knowledge:
    """Outcomes and causal chains, in the order they are tried."""

    outcomes: list[Outcome] = field(default_factory=list)
    chains: list[Chain] = field(default_factory=list)

    def outcome(self, messages: list[str]) -> Outcome | None:
        return next((o for o in self.outcomes if any(o.regex.search(m) for m in messages)), None)

    def chain(self, messages: list[str], category: str | None, lang: str = "en") -> str | None:
        for c in self.chains:
            if (text := c.sentence(messages, category, lang)) is not None:
                return text
        return None


def _regexes(values: Any, where: str, problems: list[str]) -> tuple[Any, ...]:
    out = []
    for text in _as_list(values):
        try:
            out.append(stdre.compile(text))
        except stdre.error as exc:
            problems.append(f"{where}: regex {text!r} does not compile: {exc}")
    return tuple(out)


def _lang_texts(item: dict[str, Any], key: str) -> tuple[tuple[str, str], ...]:
    """The other languages' texts of a knowledge entry: `<key>_zh = "..."` beside `<key>`."""
    return tuple((lang, str(item[f"{key}_{lang}"])) for lang in LANGS[1:] if item.get(f"{key}_{lang}"))


def read_knowledge(files: Iterable[Path], problems: list[str]) -> Knowledge:
    """The `[[outcome]]` and `[[chain]]` tables of the catalogue files."""
    k = Knowledge()
    for path in files:
        try:
            data, _ = read_toml(path)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue  # read_patterns reports it
        for item in data.get("outcome", []):
            where = f"{path.name}: outcome {item.get('result', '<no result>')!r}"
            if not item.get("result") or not item.get("regex") or not item.get("examples"):
                problems.append(f"{where}: needs result, regex and examples")
                continue
            rx = _regexes(item["regex"], where, problems)
            if rx:
                k.outcomes.append(Outcome(str(item["result"]), rx[0], tuple(_as_list(item["examples"])),
                                          _lang_texts(item, "result")))
        for item in data.get("chain", []):
            where = f"{path.name}: chain {item.get('name', '<no name>')!r}"
            if not item.get("name") or not item.get("all") or not item.get("text") or not item.get("example"):
                problems.append(f"{where}: needs name, all, text and example")
                continue
            if item.get("category") is not None and item["category"] not in CATEGORIES:
                problems.append(f"{where}: category {item['category']!r} is not one of {', '.join(CATEGORIES)}")
                continue
            steps = tuple(ChainStep(w[0], str(s.get("text", "")), _lang_texts(s, "text")) for s in item.get("steps", [])
                          if (w := _regexes(s.get("when"), where, problems)))
            k.chains.append(Chain(str(item["name"]), item.get("category"), _regexes(item["all"], where, problems),
                                  _regexes(item.get("any"), where, problems), str(item["text"]), steps,
                                  tuple(_as_list(item["example"])), _lang_texts(item, "text")))
    return k


def load_knowledge(extra_dirs: Iterable[str | os.PathLike] = ()) -> Knowledge:
    """Outcomes and chains of the built-in catalogue (and a site's files of the same name)."""
    return read_knowledge(pattern_files(extra_dirs), [])


class Catalogue:
    """The loaded patterns and the matcher over them."""

    def __init__(self, patterns: list[Pattern], problems: list[str] | None = None,
                 libvirt_codes: dict[int, LibvirtCode] | None = None, prefilter_kind: str | None = None) -> None:
        self.patterns = patterns
        self.problems = problems or []
        self.libvirt_codes = libvirt_codes or {}
        self.by_id = {p.id: p for p in patterns}
        self.knowledge = Knowledge()  # outcomes and chains (load_catalogue reads them)
        self.timeouts: Counter[str] = Counter()  # pattern id -> lines it timed out on (reported)
        self._by_source = {s: [i for i, p in enumerate(patterns) if s in p.sources] for s in SOURCES}
        self._source_sets = {s: frozenset(idx) for s, idx in self._by_source.items()}
        self.prefilter = choose_prefilter(prefilter_kind)
        self._db: Any = compile_database(patterns) if self.prefilter == "hyperscan" else None
        # our own scratch: the library's default one is shared by every database in the process
        self._scratch = hyperscan.Scratch(self._db) if self._db is not None else None
        self._aho = prefilter.LiteralPrefilter([p.regex for p in patterns], [p.sources for p in patterns]) \
            if self.prefilter == "aho" else None
        self.fast = self.prefilter != "none"

    def selector(self, source: str):
        """A function picking, in one native scan, the lines of a buffer that may match
        (start, end offsets); None when there is no fast path."""
        if self._aho is not None:
            return self._aho.selector(source)
        db = self._db
        if db is None:
            return None
        wanted = self._source_sets[source] | {HINT_BASE + SOURCES.index(source)}
        scratch = self._scratch

        def on_match(i: int, _f: int, to: int, _fl: int, _c: Any) -> None:
            if i in wanted:
                ends.append(to)

        def select(buf: bytes) -> list[tuple[int, int]]:
            ends.clear()
            db.scan(buf, match_event_handler=on_match, scratch=scratch)
            if not ends:
                return []
            spans = []
            last = -1
            for to in sorted(set(ends)):
                start = buf.rfind(b"\n", 0, max(to - 1, 0)) + 1
                if start == last:
                    continue
                last = start
                end = buf.find(b"\n", start)
                spans.append((start, end if end >= 0 else len(buf)))
            return spans

        ends: list[int] = []
        return select

    def _candidates(self, message: str, source: str) -> list[int]:
        if self._aho is not None:
            return sorted(self._aho.candidates(message) & self._source_sets[source])
        if self._db is None:
            return self._by_source.get(source, [])
        found: set[int] = set()
        self._db.scan(message.encode("utf-8", "replace"),
                      match_event_handler=lambda i, _f, _t, _fl, _c: found.add(i), scratch=self._scratch)
        return sorted(found & self._source_sets[source])

    def match(self, message: str, source: str) -> Match | None:
        """The best pattern for a message from `source`: highest priority, then the longest
        match, then catalogue order. A symptom that wraps a cause on the same line ("qemu
        unexpectedly closed the monitor: ...: Permission denied") yields to the best cause (or
        errno pattern) inside it, which keeps the symptom as its `wrapper`: the caller makes it
        the cause."""
        best: Match | None = None
        best_key: tuple[int, int, int] | None = None
        causes: list[tuple[tuple[int, int, int], int, Match]] = []  # (key, where it starts, match)
        # causes, and patterns that read an errno: what a wrapper wraps
        best_start = 0
        for i in self._candidates(message, source):
            p = self.patterns[i]
            try:
                m = p.compiled.search(message, timeout=REGEX_TIMEOUT)
            except TimeoutError:
                self.timeouts[p.id] += 1
                continue
            if m is None:
                continue
            key = (p.priority, m.end() - m.start(), -i)
            if best_key is None or key > best_key:
                best, best_key, best_start = Match(p, _fields(m), m.end() - m.start()), key, m.start()
            if p.role == "cause" or "errno" in m.groupdict():
                causes.append((key, m.start(), Match(p, _fields(m), m.end() - m.start())))
        if best is not None and best.pattern.role == "symptom" and "errno" not in best.fields \
                and best.pattern.lifecycle is None:
            # only a cause inside the text the symptom wraps: a prefix before it is the symptom's own;
            # a symptom that reads the errno itself ("End of file while reading data: EIO") keeps it,
            # and so does one that marks a VM's life (a failed autostart: lifecycle.py needs it)
            inner = [c for c in causes if c[1] > best_start]
            if inner:
                cause = max(inner, key=lambda c: c[0])[2]
                cause.wrapper = best.pattern
                return cause
        return best


def _fields(m: Any) -> dict[str, str]:
    return {k: v for k, v in m.groupdict().items() if v is not None}


def choose_prefilter(kind: str | None = None) -> str:
    """The first step of matching: `kind`, else LOGSENSE_PREFILTER, else the best one installed
    (Hyperscan, then the Aho-Corasick literal prefilter, then none: every line runs the regexes)."""
    kind = kind or os.environ.get("LOGSENSE_PREFILTER") or ""
    if not kind:
        return "hyperscan" if hyperscan is not None else "aho" if prefilter is not None else "none"
    if kind not in PREFILTERS:
        raise CatalogueError([f"LOGSENSE_PREFILTER={kind}: not one of {', '.join(PREFILTERS)}"])
    if kind == "hyperscan" and hyperscan is None or kind == "aho" and prefilter is None:
        raise CatalogueError([f"LOGSENSE_PREFILTER={kind}: its module is not installed on this machine"])
    return kind


HINT_BASE = 1 << 20  # ids of the error-line hints, one per source, after any pattern's


CACHE_KEPT = 8  # cached files of each kind kept (the newest): tests and site catalogues each make their own


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "logsense"


def write_cache(path: Path, blob: bytes) -> None:
    """Write a cache file whole (renamed into place) and drop the oldest of its kind (the name's
    part before the first '-') beyond CACHE_KEPT. A cache that cannot be written is slower, not wrong."""
    kind = path.name.split("-", 1)[0]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        same = sorted(path.parent.glob(f"{kind}-*"), key=lambda f: f.stat().st_mtime, reverse=True)
        for old in same[CACHE_KEPT:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def compile_database(patterns: list[Pattern]) -> Any:
    """One Hyperscan database for every pattern and the error-line hints. Building it takes
    seconds, so the compiled form is cached on disk, keyed by the exact expressions."""
    exprs = [prefilter_form(p.regex) for p in patterns]
    ids = list(range(len(patterns)))
    for s, hint in ERROR_HINTS.items():
        exprs.append(hint)
        ids.append(HINT_BASE + SOURCES.index(s))
    key = hashlib.sha256(b"\0".join(exprs) + repr(ids).encode() + hyperscan.__version__.encode()).hexdigest()[:24]
    cached = _cache_dir() / f"hs-{key}.db"
    try:
        return hyperscan.loadb(cached.read_bytes(), hyperscan.HS_MODE_BLOCK)
    except (OSError, hyperscan.error):
        pass
    db = hyperscan.Database()
    try:
        db.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=[HS_FLAGS] * len(exprs))
    except hyperscan.error:  # one bad expression fails the set: leave it out (check reports it)
        good = [k for k, x in enumerate(exprs) if hyperscan_problem(x) is None]
        db = hyperscan.Database()
        db.compile(expressions=[exprs[k] for k in good], ids=[ids[k] for k in good], elements=len(good),
                   flags=[HS_FLAGS] * len(good))
    write_cache(cached, hyperscan.dumpb(db))
    return db


def load_catalogue(extra_dirs: Iterable[str | os.PathLike] = (), disable: Iterable[str] = (),
                   vet_site: bool = True) -> Catalogue:
    """The built-in catalogue plus a site's directories, less the `disable`d pattern ids. A site's
    files pass the checks built-in files pass in CI (`catalogue check`: types, repeat bounds,
    examples, adversarial timing) before use, or CatalogueError; `vet_site=False` leaves that to
    the caller (`catalogue check` lists all). Invalid built-in patterns are left out and listed in
    `problems`."""
    problems: list[str] = []
    codes: dict[int, LibvirtCode] = {}
    files = pattern_files(extra_dirs)
    dirs = [BUILTIN_DIR, *map(Path, extra_dirs)]
    parsed = ParsedCatalogue(files + [path for _, path in translation_files(dirs)])
    patterns = read_patterns(files, problems, codes)
    off = set(disable)
    problems += [f"disable: no pattern with id {pid!r}" for pid in sorted(off - {p.id for p in patterns})]
    patterns = [p for p in patterns if p.id not in off]
    if not patterns:
        raise CatalogueError(problems or [f"no patterns found in {BUILTIN_DIR}"])
    knowledge = read_knowledge(files, problems)
    read_translations(dirs, patterns, problems, files, off)
    if not problems:
        parsed.save()
    cat = Catalogue(patterns, problems, codes)
    cat.knowledge = knowledge
    site = {f.name for f in files if f.parent != BUILTIN_DIR}
    if site and vet_site:
        from logsense.catalogue_check import check_catalogue  # the checker is built on this module

        if site_problems := check_catalogue(cat, files=site, translations=False):
            raise CatalogueError(site_problems)
    return cat


def prefilter_form(regex_text: str) -> bytes:
    """The expression the buffer scan uses: a message-start `^` is not a line start in a buffer
    (the line has its prefix), so it is dropped; the full regex still checks it."""
    text = regex_text
    if text.startswith("^"):
        text = text[1:]
    elif text.startswith("(?:^"):
        text = "(?:" + text[4:]
    return text.encode()


def hyperscan_problem(expr: bytes) -> str | None:
    """Why Hyperscan cannot take this expression for the fast path (None: it can)."""
    if hyperscan is None:
        return None
    try:
        hyperscan.Database().compile(expressions=[expr], ids=[0], elements=1, flags=[HS_FLAGS])
    except hyperscan.error as exc:
        return str(exc)
    return None


SHAPE_SUBS = [
    (stdre.compile(r"'[^']*'"), "'…'"),
    (stdre.compile(r'"[^"]*"'), '"…"'),
    (stdre.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"), "<uuid>"),
    (stdre.compile(r"(?<![\w.])/[^\s:,']+"), "<path>"),
    (stdre.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (stdre.compile(r"\d+"), "<n>"),
]


def message_shape(message: str) -> str:
    """The message with its variable parts masked, so unrecognised errors group by kind."""
    shape = message[:300]
    for rx, rep in SHAPE_SUBS:
        shape = rx.sub(rep, shape)
    return shape
