"""Count what reaches the root logger's handlers, the way a deployment's log sink sees it.

pytest's `caplog` attaches its handler directly to non-propagating loggers, which would bypass
the rate limiting this project puts on the `opentelemetry` logger; a root handler does not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def root_log_records(level: int = logging.WARNING) -> Iterator[list[logging.LogRecord]]:
    root = logging.getLogger()
    handler = _Collect()
    handler.setLevel(level)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, old_level) if old_level else level)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
