"""DB packages: the version directories of a `name-db_X.Y.Z_build.tar.gz`, read and checked.

A DB package (WeCube's 数据库发布包) holds one directory per application version that changed
the schema::

    app_v1.0/increment/1_create_tables.sql   run in number order to go up to 1.0
    app_v1.0/rollback/1_delete_data.sql      run in number order to undo 1.0
    app_v1.1/...

Scripts are split into statements with `sqlparse.split`, so a failure can name its statement.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import sqlparse

from slipway.core.errors import InputError

INCREMENT = "increment"
ROLLBACK = "rollback"

# What a version directory and a script may be called: the upload's inspection
# (archive_layout) and the deployment (load_versions) read names with these same two patterns,
# so a package that passes at upload is never refused at deploy time for its names.
# Directories: `app_v1.0` (WeCube's example), `app-1.0`, `v1.0`, `1.0`. Scripts: `1_create.sql`,
# `1-create.sql`, `1.sql`.
VERSION_DIR = re.compile(r"(?:.*[_-])?[vV]?(?P<version>\d{1,9}(?:\.\d{1,9}){0,3})")
SCRIPT_NAME = re.compile(r"(?P<number>\d{1,6})(?:[_-][^/]*)?\.sql", re.IGNORECASE)
_VERSION = re.compile(r"^[vV]?(\d+(?:\.\d+)*)$")


@dataclass(frozen=True)
class DbScript:
    version: str
    action: str  # INCREMENT | ROLLBACK
    name: str
    path: str
    checksum: str  # sha256 hex of the file's bytes
    sql: str


@dataclass(frozen=True)
class DbVersion:
    dir: str
    version: str
    key: tuple[int, ...]
    increment: list[DbScript]
    rollback: list[DbScript]


def version_key(version: str) -> tuple[int, ...]:
    """The sort key of a version: "1.0" → (1, 0, 0); "1.0", "1.0.0" and "1.0.0.0" are equal."""
    match = _VERSION.match(version.strip())
    if not match:
        raise InputError(
            f"{version!r} is not a version (numbers separated by dots, like 1.2.0)",
            code="bad_version",
            details={"version": version},
        )
    parts = [int(part) for part in match.group(1).split(".")]
    while len(parts) > 3 and parts[-1] == 0:
        parts.pop()
    return tuple(parts + [0] * (3 - len(parts)))


def split_statements(sql: str) -> list[str]:
    """The statements of a script, without pieces that hold only comments or semicolons."""
    statements = []
    for piece in sqlparse.split(sql):
        if sqlparse.format(piece, strip_comments=True).strip().strip(";").strip():
            statements.append(piece.strip())
    return statements


def load_versions(files: Mapping[str, bytes]) -> list[DbVersion]:
    """The version directories of a DB package, oldest first; refuses a malformed package with
    every problem found, not just the first."""
    problems: list[str] = []
    scripts: dict[tuple[str, str], dict[str, list[tuple[int, DbScript]]]] = {}  # (dir, version)
    for raw_path in sorted(files):
        path = raw_path.removeprefix("./").strip("/")
        parts = path.split("/")
        directory = parts[0]
        dir_match = VERSION_DIR.fullmatch(directory)
        if not dir_match:
            problems.append(f"{directory}: not a version directory (expected a name like app_v1.0)")
            continue
        if len(parts) != 3 or parts[1] not in (INCREMENT, ROLLBACK):
            problems.append(f"{path}: scripts belong in {directory}/increment/ or /rollback/")
            continue
        action, name = parts[1], parts[2]
        name_match = SCRIPT_NAME.fullmatch(name)
        if not name.lower().endswith(".sql"):
            problems.append(f"{path}: not an SQL script (only .sql files are allowed)")
            continue
        if not name_match:
            problems.append(f"{path}: no number prefix giving its order (like 1_create.sql)")
            continue
        data = files[raw_path]
        try:
            sql = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            problems.append(f"{path}: not UTF-8 text")
            continue
        if not sql.strip():
            problems.append(f"{path}: empty script")
            continue
        script = DbScript(
            version=dir_match.group("version"),
            action=action,
            name=name,
            path=path,
            checksum=hashlib.sha256(data).hexdigest(),
            sql=sql,
        )
        by_action = scripts.setdefault((directory, script.version), {INCREMENT: [], ROLLBACK: []})
        by_action[action].append((int(name_match.group("number")), script))

    versions: list[DbVersion] = []
    seen: dict[tuple[int, ...], str] = {}
    for (directory, version), by_action in scripts.items():
        key = version_key(version)
        if key in seen:
            problems.append(f"{directory}: the same version as {seen[key]}")
            continue
        seen[key] = directory
        if not by_action[INCREMENT]:
            problems.append(f"{directory}: no increment scripts")
        for action, numbered in by_action.items():
            numbers = [number for number, _ in numbered]
            for number in sorted({n for n in numbers if numbers.count(n) > 1}):
                problems.append(f"{directory}/{action}: more than one script numbered {number}")
        versions.append(
            DbVersion(
                dir=directory,
                version=version,
                key=key,
                increment=[s for _, s in sorted(by_action[INCREMENT], key=lambda n: n[0])],
                rollback=[s for _, s in sorted(by_action[ROLLBACK], key=lambda n: n[0])],
            )
        )
    if not files:
        problems.append("the package holds no files")
    elif not versions and not problems:
        problems.append("no version directories (like app_v1.0/increment/1_create.sql)")
    if problems:
        unique = list(dict.fromkeys(problems))
        more = f" (and {len(unique) - 1} more)" if len(unique) > 1 else ""
        raise InputError(
            f"bad DB package: {unique[0]}{more}",
            code="bad_db_package",
            details={"problems": unique},
        )
    return sorted(versions, key=lambda v: v.key)
