"""Log text is untrusted: escape what could act on a terminal or a reader before showing it.

Control characters (ESC starts every CSI/OSC sequence: colours, title changes, OSC 52
clipboard writes, screen clears; C1 has its own CSI/OSC bytes), bidi overrides and isolates
(which reorder what a reader sees: "Trojan Source") and line separators are shown as escapes,
so the text stays readable and inert. Also the small wording helpers every report shares.
"""

from __future__ import annotations

import re

# C0 but tab and newline, DEL, C1; bidi embeddings/overrides/isolates and marks; line/paragraph
# separators (a line break to some viewers)
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: str) -> str:
    """`text` with control characters (ESC, BEL, CR, C1 ...) and bidi controls shown as
    \\xNN / \\uNNNN; newlines and tabs kept (for multi-line text of our own)."""
    return CONTROL_RE.sub(_escape, text)


def one_line(text: str) -> str:
    """`safe` for one line of a report: a newline or tab inside a log value is shown as \\n or
    \\t, so a log line can never start a line of its own (a fake heading, a closed fence)."""
    return safe(str(text).replace("\n", "\\n").replace("\t", "\\t"))


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 file', '2 files' ('1 entry', '3 entries' with `many`)."""
    return f"{n} {word if n == 1 else many or word + 's'}"
