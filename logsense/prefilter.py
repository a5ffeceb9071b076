"""The portable prefilter: literal strings and an Aho-Corasick automaton, where Hyperscan has no wheel.

Each pattern gets a *necessary literal set*: strings such that every text the regex matches
contains at least one of them. They are derived from the regex's parse tree (the stdlib's
`re._parser`, which reads the catalogue's `regex` syntax for the constructs it uses; anything it
reads differently fails to parse and so gets no literal). One automaton per source over those
literals scans a whole buffer in C; the lines it hits are the candidates, a superset of the lines
the regexes match. A pattern with no literal of at least MIN_LITERAL characters is "always a
candidate": every line of its sources is picked (correct, slow; `catalogue check` lists them).

Case-insensitive parts give lower-cased literals, found in a buffer lowered by `bytes.lower()`
(ASCII only, so offsets stay put); letters whose case partners include non-ASCII characters under
Unicode matching (k: KELVIN SIGN, s: LONG S, i: DOTTED CAPITAL I) are never part of one.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import ahocorasick

MIN_LITERAL = 3
MAX_SET = 64  # an exact-set cross product larger than this is cut into separate runs
MAX_CLASS = 4  # a class like [Dd] counts as literal alternatives up to this many characters
CI_UNSAFE = set("kKsSiI")  # case partners outside ASCII (K, ſ, İ): no ASCII literal covers them
_C = sre_parse  # the opcode names (LITERAL, BRANCH, ...) live in the parser's namespace
NAMED_GROUP_RE = re.compile(r"(?<!\\)\(\?P?<\w+>")

Lit = tuple[str, bool]  # (text, case-insensitive: then text is lower-case)
LitSet = frozenset[Lit]
Spans = list[tuple[int, int]]


@dataclass(frozen=True)
class Info:
    """What a piece of a regex says: `exact`, every string it can match (None: too many to list);
    `need`, a necessary literal set (None: none known)."""

    exact: LitSet | None
    need: LitSet | None


NOTHING = Info(None, None)
EMPTY: LitSet = frozenset({("", False)})


def _score(s: LitSet | None) -> tuple[bool, bool, int, int]:
    """Long enough first; then case-sensitive (a case-insensitive literal costs a second scan, of
    the lowered buffer); then the longer shortest literal (fewer false hits); then fewer literals."""
    if not s:
        return (False, False, -1, 0)
    shortest = min(len(t) for t, _ in s)
    return (shortest >= MIN_LITERAL, not any(ci for _, ci in s), shortest, -len(s))


def _best(*sets: LitSet | None) -> LitSet | None:
    usable = [s for s in sets if s and all(t for t, _ in s)]
    return max(usable, key=_score) if usable else None


def _join(a: Lit, b: Lit) -> Lit:
    if a[1] or b[1]:
        return (a[0].lower() + b[0].lower(), True)
    return (a[0] + b[0], False)


def _char(code: int, ci: bool) -> Info:
    c = chr(code)
    if c == "\n":
        return NOTHING  # a buffer's lines hold no newline
    if not ci or c.lower() == c.upper():
        return Info(frozenset({(c, False)}), None)
    if c in CI_UNSAFE or not c.isascii():
        return NOTHING
    return Info(frozenset({(c.lower(), True)}), None)


def _class(items: list, ci: bool) -> Info:
    chars: set[Lit] = set()
    for op, av in items:
        if op is not _C.LITERAL:
            return NOTHING
        lit = _char(av, ci).exact
        if lit is None:
            return NOTHING
        chars |= lit
    return Info(frozenset(chars), None) if 0 < len(chars) <= MAX_CLASS else NOTHING


def _seq(items: Iterable, ci: bool) -> Info:
    """A concatenation: adjacent exact sets multiply into longer literals (runs); the best of the
    runs and of the items' own necessary sets is the sequence's."""
    run: LitSet = EMPTY
    best: LitSet | None = None
    whole: LitSet | None = EMPTY
    for op, av in items:
        info = _node(op, av, ci)
        best = _best(best, info.need)
        if info.exact is None:
            best, run, whole = _best(best, run), EMPTY, None
            continue
        if len(run) * len(info.exact) > MAX_SET:
            best, run = _best(best, run), EMPTY
        run = frozenset(_join(a, b) for a in run for b in info.exact)
        if whole is not None:
            whole = frozenset(_join(a, b) for a in whole for b in info.exact) \
                if len(whole) * len(info.exact) <= MAX_SET else None
    best = _best(best, run)
    return Info(whole, best)


def _node(op, av, ci: bool) -> Info:
    if op is _C.LITERAL:
        return _char(av, ci)
    if op is _C.IN:
        return _class(av, ci)
    if op in (_C.AT, _C.ASSERT, _C.ASSERT_NOT):
        return Info(EMPTY, None)  # zero width: matches the empty string
    if op is _C.SUBPATTERN:
        _group, add, delete, sub = av
        inner = (ci or bool(add & sre_parse.SRE_FLAG_IGNORECASE)) and not delete & sre_parse.SRE_FLAG_IGNORECASE
        return _seq(sub, inner)
    if op is getattr(_C, "ATOMIC_GROUP", None):
        return _seq(av, ci)
    if op is _C.BRANCH:
        alts = [_seq(sub, ci) for sub in av[1]]
        exact = None
        if all(a.exact is not None for a in alts):
            exact = frozenset().union(*(a.exact for a in alts))  # type: ignore[misc]
            exact = exact if len(exact) <= MAX_SET else None
        needs = [_best(a.need, a.exact) for a in alts]
        need = frozenset().union(*needs) if all(needs) else None  # type: ignore[arg-type]
        return Info(exact, need)
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT, getattr(_C, "POSSESSIVE_REPEAT", None)):
        lo, hi, sub = av
        inner = _seq(sub, ci)
        if lo == hi == 1:
            return inner
        if lo == 0:
            return Info(EMPTY | inner.exact if hi == 1 and inner.exact is not None else None, None)
        return Info(None, _best(inner.need, inner.exact))
    return NOTHING  # ANY, NOT_LITERAL, CATEGORY, GROUPREF, GROUPREF_EXISTS, ...


def necessary_literals(pattern: str) -> LitSet | None:
    """Literals (text, case-insensitive) one of which every match of `pattern` contains; None when
    no safe set of literals of >= MIN_LITERAL characters can be derived."""
    try:
        tree = sre_parse.parse(pattern)
    except re.error:
        try:  # the `regex` module allows a group name twice (in different branches)
            tree = sre_parse.parse(NAMED_GROUP_RE.sub("(", pattern))
        except re.error:
            return None
    ci = bool(tree.state.flags & sre_parse.SRE_FLAG_IGNORECASE)
    info = _seq(list(tree), ci)
    lits = _best(info.need, info.exact)
    if lits is None or min(len(t) for t, _ in lits) < MIN_LITERAL:
        return None
    return lits


# the error-line hints (catalogue.ERROR_HINTS) as literals: a superset of what those regexes pick
HINT_LITERALS = {"libvirtd": [": error : "], "qemu": ["qemu-system-", "qemu-kvm: "]}


def _automaton(words: Iterable[str]) -> ahocorasick.Automaton | None:
    auto = ahocorasick.Automaton()
    for w in set(words):
        auto.add_word(w, w)
    if len(auto) == 0:
        return None
    auto.make_automaton()
    return auto


class LiteralPrefilter:
    """Aho-Corasick over the patterns' necessary literals; the same contracts as the Hyperscan
    path: `selector(source)` -> spans of a buffer's candidate lines, `candidates(message)`."""

    def __init__(self, regexes: list[str], sources: list[tuple[str, ...]]) -> None:
        self.literals: list[LitSet | None] = [necessary_literals(r) for r in regexes]
        self.always = [i for i, lits in enumerate(self.literals) if lits is None]
        self._sources = sources
        self._owners: dict[Lit, list[int]] = {}
        for i, lits in enumerate(self.literals):
            for lit in lits or ():
                self._owners.setdefault(lit, []).append(i)
        self._cs = _automaton(t for t, ci in self._owners if not ci)
        self._ci = _automaton(t for t, ci in self._owners if ci)
        self._selectors: dict[str, Callable[[bytes], Spans]] = {}  # built once: a run opens many files

    def without_literal(self) -> list[int]:
        """Indexes of the patterns every line is a candidate for."""
        return list(self.always)

    def candidates(self, message: str) -> set[int]:
        """Indexes of the patterns whose literals the message holds, and the always-candidates."""
        raw = message.encode("utf-8", "replace")
        found = set(self.always)
        for auto, hay, ci in ((self._cs, raw, False), (self._ci, raw.lower(), True)):
            if auto is not None:
                for _end, word in auto.iter(hay.decode("latin-1")):
                    found.update(self._owners[(word, ci)])
        return found

    def selector(self, source: str) -> Callable[[bytes], Spans]:
        """A function picking the lines of a buffer (start, end offsets) that hold a literal of a
        pattern of `source`, or its error hint; every line when one of its patterns has none."""
        if source not in self._selectors:
            self._selectors[source] = self._build_selector(source)
        return self._selectors[source]

    def _build_selector(self, source: str) -> Callable[[bytes], Spans]:
        mine = [i for i, s in enumerate(self._sources) if source in s]
        if any(self.literals[i] is None for i in mine):
            return _every_line
        lits = {lit for i in mine for lit in self.literals[i] or ()}
        cs = _automaton([t for t, ci in lits if not ci] + HINT_LITERALS.get(source, []))
        ci = _automaton(t for t, ci in lits if ci)

        def select(buf: bytes) -> Spans:
            starts: set[int] = set()
            if cs is not None:
                starts |= _hit_lines(cs, buf.decode("latin-1"))
            if ci is not None:
                starts |= _hit_lines(ci, buf.lower().decode("latin-1"))
            spans = []
            for start in sorted(starts):
                end = buf.find(b"\n", start)
                spans.append((start, end if end >= 0 else len(buf)))
            return spans

        return select


def _hit_lines(auto: ahocorasick.Automaton, text: str) -> set[int]:
    """Start offsets of the lines holding a hit. One `iter` over the whole text: each call copies
    the text into the library's own form, so restarting it per line would cost more than the scan."""
    starts: set[int] = set()
    line_end = -1
    for end, _word in auto.iter(text):  # `end`: index of the hit's last character
        if end < line_end:
            continue  # another hit on a line already picked
        starts.add(text.rfind("\n", 0, end) + 1)
        line_end = text.find("\n", end)
        if line_end < 0:
            break
    return starts


def _every_line(buf: bytes) -> Spans:
    spans, start = [], 0
    while start < len(buf):
        end = buf.find(b"\n", start)
        if end < 0:
            end = len(buf)
        spans.append((start, end))
        start = end + 1
    return spans
