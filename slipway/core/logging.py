"""Process logging: console plus a file in the log dir rotated at midnight."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from slipway.core.config import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(settings: Settings, *, process: str) -> None:
    """Log to stderr and to `<log dir>/<process>.log`, keeping `log_retention_days` old files."""
    settings.logs_path.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter(FORMAT)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(formatter)
    daily = logging.handlers.TimedRotatingFileHandler(
        settings.logs_path / f"{process}.log",
        when="midnight",
        backupCount=settings.log_retention_days,
        encoding="utf-8",
        utc=True,
    )
    daily.setFormatter(formatter)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(console)
    root.addHandler(daily)
    root.setLevel(settings.log_level.upper())
    # uvicorn's own access log would duplicate slipway's request lines.
    logging.getLogger("uvicorn.access").disabled = True
    # Alembic announces its plugins and context on every start and schema-revision read.
    logging.getLogger("alembic").setLevel(logging.WARNING)
