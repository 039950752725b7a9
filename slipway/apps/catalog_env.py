"""Reading and rewriting an app template's `.env` the way docker compose reads it.

Values keep their `$VAR` / `${VAR}` references raw: compose resolves them when it runs. Quotes
are removed (single quotes literal, double quotes with `\\n`-style escapes), comments skipped,
`export ` accepted. A line compose could not read is an error naming its line number.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping

from dotenv.parser import parse_stream

_REFERENCE = re.compile(r"^\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)$")
_BARE = re.compile(r"^[A-Za-z0-9_./:@+,%=-]+$")


class EnvFileError(ValueError):
    """A `.env` line that cannot be read; `line` is 1-based."""

    def __init__(self, line: int, text: str) -> None:
        super().__init__(f"line {line} of .env cannot be read: {text.strip()[:80]!r}")
        self.line = line


def parse_env(text: str) -> dict[str, str]:
    """The variables of a `.env` text, in file order (a repeated name keeps its last value)."""
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise EnvFileError(binding.original.line, binding.original.string)
        if binding.key is not None:
            values.pop(binding.key, None)
            values[binding.key] = binding.value if binding.value is not None else ""
    return values


def is_reference(value: str) -> bool:
    """True when the value is only a reference to another variable (`$W9_POWER_PASSWORD`)."""
    return bool(_REFERENCE.match(value))


def quote_env_value(value: str) -> str:
    """`value` written so that compose reads it back unchanged and never interpolates it."""
    if _BARE.match(value):
        return value
    if "'" not in value and "\n" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("$", "$$") + '"'


def render_env(text: str, values: Mapping[str, str]) -> str:
    """`text` with the assignments of `values` replaced in place (comments, order and every other
    line kept) and the names it did not have appended at the end."""
    pending = dict(values)
    out: list[str] = []
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        if binding.key is not None and binding.key in values:
            newline = "\n" if original.endswith("\n") else ""
            if binding.key in pending:
                out.append(f"{binding.key}={quote_env_value(pending.pop(binding.key))}{newline}")
            continue
        out.append(original)
    if pending:
        if out and not out[-1].endswith("\n"):
            out.append("\n")
        out.extend(f"{name}={quote_env_value(value)}\n" for name, value in pending.items())
    return "".join(out)
