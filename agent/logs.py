"""One line per event, `level component event key=value`, with secrets masked."""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

_SECRET = re.compile(r"(pass|secret|token|key|sig|credential)", re.I)
_NEEDS_QUOTES = re.compile(r'[\s="]')


def _fmt_value(key: str, value: Any) -> str:
    if _SECRET.search(key) and not key.endswith(("_file", "_path", "_id")):
        return "***"
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    if len(text) > 300:
        text = text[:300] + "…"
    if not text or _NEEDS_QUOTES.search(text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def kv(event: str, fields: dict[str, Any]) -> str:
    """Render an event and its fields as one log line body."""
    parts = [event] + [f"{k}={_fmt_value(k, v)}" for k, v in fields.items() if v is not None]
    return " ".join(parts)


class KvLogger:
    """A thin wrapper so every call site writes `log.info("event", key=value)`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._log = logging.getLogger(name)

    def child(self, suffix: str) -> KvLogger:
        return KvLogger(f"{self.name}.{suffix}")

    def debug(self, event: str, **fields: Any) -> None:
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug(kv(event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self._log.info(kv(event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self._log.warning(kv(event, fields))

    def error(self, event: str, **fields: Any) -> None:
        self._log.error(kv(event, fields))

    def exception(self, event: str, exc: BaseException, **fields: Any) -> None:
        """Log a crash with its exception on the same line; the traceback only at DEBUG."""
        fields["error"] = f"{type(exc).__name__}: {exc}"
        self._log.error(kv(event, fields), exc_info=exc if self._log.isEnabledFor(logging.DEBUG) else None)


def get_logger(name: str) -> KvLogger:
    return KvLogger(name)


class _LineFormatter(logging.Formatter):
    def __init__(self, with_time: bool) -> None:
        fmt = "%(asctime)s %(levelname)s %(name)s %(message)s" if with_time else "%(levelname)s %(name)s %(message)s"
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace("\n", " | ")


def setup_logging(level: str = "INFO", overrides: dict[str, str] | None = None) -> None:
    """Log to stderr; under journald (JOURNAL_STREAM set) journald adds the time itself."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter(with_time="JOURNAL_STREAM" not in os.environ))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, lvl in (overrides or {}).items():
        logging.getLogger(name).setLevel(lvl.upper())
    for noisy in ("pysnmp", "pymodbus", "zeep", "urllib3", "scapy", "pyroute2"):
        if noisy not in (overrides or {}):
            logging.getLogger(noisy).setLevel(logging.WARNING)
