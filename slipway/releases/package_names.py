"""Release package file names: `<name>_<X.Y.Z>_<build>.tar.gz`, parsed and checked.

A name that does not follow the rule is refused with `bad_package_name` and `details.reason`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from slipway.core.errors import InputError

NAME_RULE = "<name>_<X.Y.Z>_<build>.tar.gz"
EXAMPLE_NAME = "wecube-core_1.0.0_20191101001.tar.gz"
EXAMPLE_DB_NAME = "wecube-core-db_1.0.1_20191101001.tar.gz"
_EXTENSIONS = (".tar.gz", ".tgz")
_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_VERSION = re.compile(r"\d{1,9}\.\d{1,9}\.\d{1,9}")


@dataclass(frozen=True)
class PackageName:
    """A parsed package file name; `name` is the application's, without `-db`."""

    name: str
    version: str
    build: str
    is_db: bool
    filename: str

    @property
    def version_key(self) -> tuple[int, int, int]:
        major, minor, patch = (int(part) for part in self.version.split("."))
        return major, minor, patch


def show(text: str) -> str:
    """A name as a message can show it: quoted, escaped, cut short."""
    return repr(text if len(text) <= 120 else text[:120] + "...")


def _bad_name(filename: str, problem: str, reason: str) -> InputError:
    return InputError(
        f"package file name {show(filename)} {problem}; name packages {NAME_RULE} "
        "(name of letters, digits, '.' and '-'; version of exactly three dotted numbers), "
        f"e.g. {EXAMPLE_NAME} or, for a database package, {EXAMPLE_DB_NAME}",
        code="bad_package_name",
        details={"field": "file", "filename": filename[:300], "reason": reason},
    )


def parse_package_name(filename: str, *, expect_db: bool | None = None) -> PackageName:
    """Parse `name_X.Y.Z_build.tar.gz`; `expect_db` refuses the other kind of package."""
    if "/" in filename or "\\" in filename or filename in ("", ".", ".."):
        raise _bad_name(filename, "is a path, not a file name", "path")
    if len(filename) > 255:
        raise _bad_name(filename, "is longer than 255 characters", "too_long")
    extension = next((ext for ext in _EXTENSIONS if filename.endswith(ext)), None)
    if extension is None:
        raise _bad_name(filename, "does not end in .tar.gz or .tgz", "extension")
    parts = filename[: -len(extension)].split("_")
    if len(parts) == 2 and _VERSION.fullmatch(parts[1]):
        raise _bad_name(filename, "has no build number after the version", "no_build")
    if len(parts) != 3:
        raise _bad_name(filename, "does not have exactly two '_' separators", "separators")
    name, version, build = parts
    if not _VERSION.fullmatch(version):
        problem = f"has version {show(version)}, not three dotted numbers like 1.0.0"
        raise _bad_name(filename, problem, "version")
    if not _NAME_PART.fullmatch(name):
        raise _bad_name(filename, f"has an invalid name part {show(name)}", "name")
    if not _NAME_PART.fullmatch(build):
        raise _bad_name(filename, f"has an invalid build part {show(build)}", "build")
    words = name.split("-")
    is_db = len(words) > 1 and words[-1].lower() == "db"
    if expect_db is True and not is_db:
        problem = "names an application package where a database package (…-db_) is expected"
        raise _bad_name(filename, problem, "expected_db")
    if expect_db is False and is_db:
        problem = "names a database package (ends in -db) where an application package is expected"
        raise _bad_name(filename, problem, "expected_app")
    app = "-".join(words[:-1]) if is_db else name
    return PackageName(name=app, version=version, build=build, is_db=is_db, filename=filename)
