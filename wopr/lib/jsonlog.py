"""LOG_FORMAT=json: one JSON object a line, for the control plane and for gunicorn.

Every line has `time` (ISO 8601, UTC), `level`, `logger` and `message`; `exception` holds the
traceback text when there is one, and any `extra={...}` of the call is there under its own
name. gunicorn's access lines add the request's fields (`remote`, `method`, `path`, `status`,
`bytes`, `duration_ms`, ...).

Two formatters: `JsonLineFormatter` needs nothing configured (gunicorn's master process has no
Django settings); `RedactingJsonFormatter`, the console's under Django, also redacts every
string it writes, since the redact filter (wopr.lib.redact) only covers message and traceback
and JSON shows the extras the text format never printed.
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from wopr.lib.redact import redact

RENAMED = {"levelname": "level", "name": "logger", "exc_info": "exception", "stack_info": "stack"}
# Record attributes never written: Django's request loggers attach the HttpRequest (its text
# quotes the query string, which the message leaves out) and the server's socket.
SKIPPED = [*RESERVED_ATTRS, "taskName", "request", "server_time", "color_message"]
# gunicorn's access atoms worth a field of their own (atom: field).
ACCESS_FIELDS = {
    "h": "remote",
    "m": "method",
    "U": "path",
    "q": "query",
    "H": "protocol",
    "s": "status",
    "B": "bytes",
    "M": "duration_ms",
    "f": "referer",
    "a": "user_agent",
}


class JsonLineFormatter(JsonFormatter):
    """time, level, logger, message, then the exception and every extra, as one JSON line."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", RENAMED)
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("reserved_attrs", SKIPPED)
        super().__init__("{levelname}{name}{message}", style="{", **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        # A traceback a filter already prepared (and redacted) in exc_text is written as it
        # is: formatting exc_info again would bring back what the filter took out.
        if record.exc_text and record.exc_info:
            exc_info, record.exc_info = record.exc_info, None
            try:
                return super().format(record)
            finally:
                record.exc_info = exc_info
        return super().format(record)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            for atom, field in ACCESS_FIELDS.items():
                value = record.args.get(atom)
                if value not in (None, "-", ""):
                    log_data[field] = (
                        int(value) if atom in "sBM" and str(value).isdigit() else value
                    )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """`time` first (it is added last), for people reading the lines."""
        return {"time": log_data.pop("time", None), **log_data}


class RedactingJsonFormatter(JsonLineFormatter):
    """JsonLineFormatter whose every string value passes through `redact` (Django only)."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        ordered = super().process_log_record(log_data)
        return {key: _redacted(value) for key, value in ordered.items()}


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value
