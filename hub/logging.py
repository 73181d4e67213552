"""structlog, configured once per process: JSON off a terminal, key=value on one.

Every line about a message carries event id, type, topic, partition and offset (bound
with contextvars by the runtime). Personal data never reaches a log line
(`hub.redaction`): the redaction processor masks personal keys at any depth and scrubs
SSN- and passport-like tokens from every string; tracebacks are rendered without locals,
each exception by `describe_error`. The standard library's loggers (aiokafka, asyncpg)
go through the same processors on the root handler, so their lines are rendered and
redacted like ours.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from hub.redaction import PERSONAL_KEYS, REDACTED, ExcInfo, format_exception, redact, scrub_text

_NOT_REDACTED = frozenset({"exc_info", "stack_info", "_record", "_from_structlog", "level",
                           "timestamp", "logger"})
"""Keys the processors themselves add or consume (the stdlib record, the exception before
`render_exception` turns it into text)."""


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask personal data in a log line: personal keys' values at any depth, and SSN- and
    passport-like tokens in any string (`hub.redaction`)."""
    for key, value in event_dict.items():
        if key in _NOT_REDACTED:
            continue
        if key.lower() in PERSONAL_KEYS:
            event_dict[key] = REDACTED
        elif type(value) is str:  # the common case first: one regex scan
            event_dict[key] = scrub_text(value)
        elif not (value is None or type(value) in (int, float, bool)):
            event_dict[key] = redact(value)
    return event_dict


render_exception = structlog.processors.ExceptionRenderer(format_exception)
"""`exc_info` as an `exception` text without locals or messages that may echo values."""


class _Stderr:
    """The process's stderr as it is when a line is written, not when logging was set up:
    a test or a command runner that swaps `sys.stderr` gets every line, structlog's and the
    standard library's, and none goes to a stream closed since."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _StderrHandler(logging.Handler):
    """The root handler: one rendered line per record on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # logging must never break the caller (as logging.StreamHandler)
            self.handleError(record)


def _console_exception(sio: TextIO, exc_info: ExcInfo) -> None:
    # Only reached if an exc_info got past `render_exception`; never Rich's locals.
    sio.write("\n" + format_exception(exc_info))


def configure_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """Configure structlog and the standard library's root logger for this process; call
    once from the composition root."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(),
                                           exception_formatter=_console_exception)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        render_exception,
        redact_personal_data,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # aiokafka and asyncpg log through the standard library: their warnings, through the
    # same processors, so no line of theirs escapes redaction or renders another way.
    handler = _StderrHandler()
    handler.setFormatter(stdlib_formatter(renderer, shared))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_hub_logging", False)]:
        root.removeHandler(old)
    handler._hub_logging = True  # type: ignore[attr-defined]  # replaced on reconfiguration
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def stdlib_formatter(renderer: Any, shared: list[Any]) -> structlog.stdlib.ProcessorFormatter:
    """A formatter that renders standard-library records with structlog's processors."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger named after its module."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
