"""The one warning path: the `logging` module's `logsense` logger, shown on stderr as
`logsense: warning: ...` (a one-line message, never a traceback). Batch and live both warn
here; callers that also collect warnings (the report's list) add their own handler."""

from __future__ import annotations

import logging
import sys

LOG = logging.getLogger("logsense")


class _StderrHandler(logging.StreamHandler):
    """Looks up sys.stderr at each message, so a redirected stderr (tests, the CLI runner) is used."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("logsense: %(levelname_lower)s: %(message)s"))

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        record.levelname_lower = record.levelname.lower()
        super().emit(record)


def _setup() -> None:
    if not any(isinstance(h, _StderrHandler) for h in LOG.handlers):
        LOG.addHandler(_StderrHandler())
        LOG.setLevel(logging.INFO)
        LOG.propagate = False


def warn(message: str) -> None:
    _setup()
    LOG.warning(message)
