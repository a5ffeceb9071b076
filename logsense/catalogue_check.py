"""`logsense catalogue check`: the catalogue is code, and this is its compiler and test runner.

Every example line is parsed by the parser of its source, as a real file would be, and must be
classified by its own pattern with the stated fields; every near-miss must be classified by none.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC

from logsense import parsers
from logsense.catalogue import (
    ADVERSARIAL_SEEDS,
    TIME_LIMIT,
    Catalogue,
    Example,
    Knowledge,
    Pattern,
    adversarial_cost,
    hyperscan_problem,
    prefilter,
    translation_problems,
)
from logsense.ingest.formats import new_parser
from logsense.model import Record


def example_record(ex: Example, pattern: Pattern | None) -> Record:
    """The record a real file would give for an example line."""
    source = ex.source or (pattern.sources[0] if pattern else "libvirtd")
    if source == "journal":
        return Record(ts=parsers.EPOCH, source="journal", message=ex.line, raw=ex.line,
                      extra=dict(ex.journal))
    fmt = "syslog" if source == "syslog" else source
    ctx = parsers.FileContext(file="<example>", tz=UTC, year=2024, month=12, vm="example")
    parser = new_parser(fmt, ctx)
    rec = parser.parse(ex.line, 1)
    if rec is None:  # a line that begins a multi-line record (a QEMU command line)
        rec = parser.flush()
    if rec is None:
        rec = Record(ts=parsers.EPOCH, source=source, message=ex.line, raw=ex.line)
    rec.source = source
    return rec


def selected_in_buffer(cat: Catalogue, line: str, source: str) -> bool:
    """Whether the whole-buffer scan picks the line out of a file around it, as in real reading."""
    select = cat.selector(source)
    if select is None:
        return True
    before = b"2024-03-05 10:00:00.000+0000: 1: info : f:1 : benign line before\n"
    buf = before + line.encode() + b"\nbenign line after\n"
    return any(start == len(before) for start, _ in select(buf))


def holds_literal(literals: frozenset[tuple[str, bool]], message: str) -> bool:
    """Whether a message holds one of a pattern's necessary literals (the portable prefilter's test)."""
    raw = message.encode("utf-8", "replace")
    return any(t.encode("utf-8") in (raw.lower() if ci else raw) for t, ci in literals)


def without_literal(cat: Catalogue) -> list[str]:
    """Ids of the patterns the portable prefilter has no literal for (always candidates: slow)."""
    if prefilter is None:
        return []
    return [p.id for p in cat.patterns if prefilter.necessary_literals(p.regex) is None]


def slowest_search(p: Pattern) -> float:
    """The adversarial cost, with the pattern's own first example as one more seed."""
    seeds = list(ADVERSARIAL_SEEDS)
    if p.examples:
        seeds.append(example_record(p.examples[0], p).message[:200])
    return adversarial_cost(p.compiled, seeds)


def check_catalogue(cat: Catalogue, timing: bool = True, files: set[str] | None = None,
                    translations: bool = True, untranslated_ok: Collection[str] = ()) -> list[str]:
    """One line per problem; empty when the catalogue is sound. `files`: check only the patterns
    (and loading problems) of these file names; `translations`: every pattern speaks every language,
    except those of the files in `untranslated_ok` (a site's own: English is their fallback)."""
    problems = [p for p in cat.problems if files is None or p.split(":", 1)[0] in files]
    seen: dict[str, str] = {}
    for p in cat.patterns:
        if files is not None and p.file not in files:
            continue
        where = f"{p.file}: {p.id}"
        if p.id in seen and seen[p.id] != p.file:
            problems.append(f"{where}: id also used in {seen[p.id]}")
        seen[p.id] = p.file
        if (why := hyperscan_problem(p.regex.encode())) is not None:
            problems.append(f"{where}: regex is not usable by the fast path (Hyperscan): {why}")
        literals = prefilter.necessary_literals(p.regex) if prefilter is not None else None
        if not p.examples:
            problems.append(f"{where}: no examples: every pattern needs real lines it must match")
        if not p.remediation:
            problems.append(f"{where}: no remediation")
        if not p.diagnostics:
            problems.append(f"{where}: no diagnostics")
        if translations and p.file not in untranslated_ok:
            problems.extend(translation_problems(p))
        for n, ex in enumerate(p.examples, 1):
            if ex.source and ex.source not in p.sources:
                problems.append(f"{where}: example {n}: source '{ex.source}' is not in the pattern's sources")
                continue
            rec = example_record(ex, p)
            m = cat.match(rec.message, rec.source)
            if m is None:
                problems.append(f"{where}: example {n} matches no pattern: {ex.line[:120]}")
                continue
            if m.pattern.id != p.id:
                problems.append(f"{where}: example {n} is classified as {m.pattern.id} instead")
                continue
            if rec.source != "journal" and not selected_in_buffer(cat, ex.line, rec.source):
                problems.append(f"{where}: example {n} is missed by the fast path's buffer scan "
                                "(an anchor or construct Hyperscan reads differently?)")
            if literals is not None and not holds_literal(literals, rec.message):
                problems.append(f"{where}: example {n} holds none of the literals the portable prefilter "
                                f"derived: {sorted(t for t, _ in literals)[:5]}")
            for key, want in ex.fields.items():
                got = m.fields.get(key)
                if got != want:
                    problems.append(f"{where}: example {n}: field {key} is {got!r}, expected {want!r}")
        for n, ex in enumerate(p.near_misses, 1):
            rec = example_record(ex, p)
            if (m := cat.match(rec.message, rec.source)) is not None:
                problems.append(f"{where}: near-miss {n} is matched by {m.pattern.id}: {ex.line[:120]}")
        if timing and (t := slowest_search(p)) > TIME_LIMIT:
            problems.append(f"{where}: regex takes {t * 1000:.1f} ms on a 10 KB adversarial line "
                            f"(limit {TIME_LIMIT * 1000:.0f} ms)")
    return problems + check_knowledge(cat.knowledge)


def check_knowledge(k: Knowledge) -> list[str]:
    """Every outcome's examples give that outcome; every chain holds on its example lines."""
    problems = []
    for o in k.outcomes:
        for n, line in enumerate(o.examples, 1):
            if (got := k.outcome([line])) is not o:
                told = got.result if got else None
                problems.append(f"outcome {o.result!r}: example {n} gives {told!r}: {line[:120]}")
    for c in k.chains:
        if c.sentence(list(c.example), c.category) is None:
            problems.append(f"chain {c.name!r}: does not hold on its own example lines")
    return problems
