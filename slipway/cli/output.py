"""What CLI commands print besides plain lines: JSON, aligned tables, sizes and times."""

from __future__ import annotations

import json
from typing import Any


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def table(headers: list[str], rows: list[list[Any]]) -> None:
    """Columns as wide as their widest cell; None shows as '-'."""
    cells = [[str(headers[i]) for i in range(len(headers))]] + [
        ["-" if value is None or value == "" else str(value) for value in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def size(size_bytes: int) -> str:
    """A byte count as people read it: 512 B, 1.5 MiB."""
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size_bytes)


def short_time(value: str | None) -> str | None:
    """An API timestamp as `YYYY-MM-DD HH:MM:SS`."""
    return value[:19].replace("T", " ") if value else None
