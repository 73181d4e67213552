"""structlog, configured once per process: JSON off a terminal, key=value on one.

Every line about a message carries event id, type, topic, partition and offset (bound
with contextvars by the runtime). Personal data never reaches a log line: the redaction
processor masks names and passport numbers wherever a caller put them by mistake.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED_KEYS = frozenset(
    {"name", "holder_name", "passport_no", "passport", "holder", "date_of_birth", "family"}
)


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask values whose key names personal data (a passport number, a name)."""
    for key in REDACTED_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """Configure structlog for this process; call once from the composition root."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_personal_data,
            structlog.processors.format_exc_info if as_json else _passthrough,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # aiokafka and asyncpg log through the standard library; keep their warnings.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")


def _passthrough(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return event_dict


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger named after its module."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
