"""Log text is untrusted: escape control characters before it reaches a terminal."""

from __future__ import annotations

import re

CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: str) -> str:
    """`text` with control characters (ESC, BEL, CR, C1 ...) shown as \\xNN."""
    return CONTROL_RE.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)
