"""Logging for the shells (the core never logs): structlog, configured once.

``configure(level)`` renders JSON lines (one object per event: ``event``,
``level``, ``timestamp`` and the bound fields) when stderr is not a terminal
-- what a log shipper wants -- and a coloured console format on a terminal.
``get_logger(name)`` returns a structlog logger with ``logger=name`` bound.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog

__all__ = ["LEVELS", "configure", "get_logger"]

LEVELS = ("debug", "info", "warning", "error", "critical")


def configure(level: str | int = "info", *, stream: IO[str] | None = None, json: bool | None = None) -> None:
    """Set up structlog for the process.

    ``level``: a name from ``LEVELS`` or a ``logging`` number.  ``stream``:
    where to write (default stderr).  ``json``: force JSON lines (True) or the
    console renderer (False); by default JSON unless ``stream`` is a TTY.
    """
    if isinstance(level, str):
        name = level.lower()
        if name not in LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
        num = getattr(logging, name.upper())
    else:
        num = int(level)
    out = stream if stream is not None else sys.stderr
    if json is None:
        try:
            json = not out.isatty()
        except (AttributeError, ValueError):
            json = True
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if json:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer(default=str)]
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=_colors(out))]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(num),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def _colors(out: IO[str]) -> bool:
    """Colours on a terminal only (and on Windows only with colorama)."""
    try:
        if not out.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    if sys.platform == "win32":
        try:
            import colorama  # noqa: F401
        except ImportError:
            return False
    return True


def get_logger(name: str = "acd", **fields: Any) -> Any:
    """A structlog logger with ``logger=name`` (and ``fields``) bound."""
    return structlog.get_logger().bind(logger=name, **fields)
