"""Release package archives, inspected and read without extracting anything.

A package is read as one gzip stream. Every member header is checked before its data is
decompressed, bytes are metered while decompressing (so a gzip bomb stops at the limit), and no
member data is ever written to disk. Refusals, by code and `details.reason`:

    bad_package_name    the file name is not `<name>_<X.Y.Z>_<build>.tar.gz` (or `.tgz`)
    bad_archive         not_gzip, corrupt (not tar, truncated, bad checksum) or empty
    unsafe_archive      absolute_path, parent_reference, backslash, control_character,
                        bad_encoding, path_too_long, device, fifo, unsupported_type, setuid,
                        setgid, absolute_link, link_escapes, link_loop, empty_link_target,
                        hardlink_target, hardlinked_config, through_symlink,
                        parent_not_directory, duplicate_conflict, bad_root, oversized_header,
                        too_many_members, member_too_large, too_large, compression_ratio
    bad_package_layout  ambiguous scripts, or a `current` link that is not a version directory
    bad_db_package      not version dirs of increment/ and rollback/ holding N_*.sql files

Decisions: a same-kind duplicate is allowed and the later member wins, as on extraction; a path
that changes kind (file, directory, link) is refused. setuid/setgid files are refused because
they would run with another user's rights on the target; a setgid directory, sticky bits and
world-writable modes only produce `warnings`, since the deployer sets modes itself.

File names are checked by `package_names`, member paths by `archive_tree` and the layout by
`archive_layout`.
"""

from __future__ import annotations

import dataclasses
import gzip
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from slipway.core.errors import InputError
from slipway.releases.archive_layout import (
    compile_globs,
    detect_layout,
    find_config_files,
    find_db_versions,
    find_scripts,
)
from slipway.releases.archive_tree import SHRINK_FIX, ArchiveLimits, Tree, path_parts, unsafe
from slipway.releases.package_names import EXAMPLE_NAME

# tarfile copies its leftover buffer on every header read: small reads keep that cheap.
_CHUNK = 1 << 16
# tarfile reads pax and GNU long-name headers whole into memory; real ones are tiny.
_MAX_META_BYTES = 1 << 20
_META_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE)
_META_TYPES += (tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


@dataclass
class ArchiveReport:
    """What an inspected package holds; paths are relative to `content_root`."""

    members: int
    expanded_bytes: int
    layout: str
    content_root: str
    scripts: dict[str, Any]
    config_files: list[str]
    db_versions: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _Meter:
    """The decompressed stream tarfile reads: counts bytes and stops at the limits."""

    def __init__(self, raw: BinaryIO, limits: ArchiveLimits) -> None:
        self._raw = raw
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")
        self._limits = limits
        self.expanded = 0
        self.member = ""

    def read(self, size: int = -1) -> bytes:
        data = self._gzip.read(_CHUNK if size < 0 else min(size, _CHUNK))
        self.expanded += len(data)
        limits = self._limits
        # Header checks catch oversize members first; this also bounds padding and metadata.
        if self.expanded > limits.max_expanded_bytes + 1024 * limits.max_members:
            raise unsafe(self.member, "too_large", "expands past the size limit", SHRINK_FIX)
        if self.expanded > limits.ratio_floor_bytes:
            if self.expanded / max(self._raw.tell(), 1) > limits.max_ratio:
                problem = f"expands over {limits.max_ratio:g} times its compressed size"
                fix = "this looks like a gzip bomb; if the data is real, raise the package limits"
                raise unsafe(self.member, "compression_ratio", problem, fix)
        return data

    def drain(self) -> None:
        """Read to the end so that the gzip checksum and length are verified."""
        while self.read(_CHUNK):
            pass


class _HeaderError(tarfile.TarError):
    """A broken header, which tarfile itself would take as a quiet end of the archive."""


class _CheckedTarInfo(tarfile.TarInfo):
    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
        try:
            return super().frombuf(buf, encoding, errors)
        except tarfile.EOFHeaderError:
            raise  # the zero block that ends a well-formed archive
        except tarfile.HeaderError as exc:
            raise _HeaderError(f"{exc}: truncated or corrupt") from None

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _META_TYPES and self.size > _MAX_META_BYTES:
            raise unsafe(self.name, "oversized_header", "has an oversized extended header")
        return super()._proc_member(archive)  # type: ignore[misc, no-any-return]


def _bad_archive(path: Path, problem: str, reason: str) -> InputError:
    return InputError(
        f"{path.name} {problem}; upload the .tar.gz built from the release directory "
        f"(tar -C <release dir> -czf {EXAMPLE_NAME} .)",
        code="bad_archive",
        details={"field": "file", "reason": reason},
    )


@contextmanager
def _open_stream(path: Path, limits: ArchiveLimits) -> Iterator[tuple[tarfile.TarFile, _Meter]]:
    with path.open("rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            raise _bad_archive(path, "is not gzip-compressed", "not_gzip")
        raw.seek(0)
        meter = _Meter(raw, limits)
        try:
            with tarfile.open(
                fileobj=meter,  # type: ignore[arg-type]
                mode="r|",
                bufsize=_CHUNK,
                tarinfo=_CheckedTarInfo,
                encoding="utf-8",
                errors="surrogateescape",
            ) as archive:
                yield archive, meter
            meter.member = "(after the last member)"
            meter.drain()
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            problem = f"is not a complete tar.gz archive ({exc})"
            raise _bad_archive(path, problem, "corrupt") from None


def inspect_archive(
    path: Path,
    *,
    is_db: bool,
    config_globs: Sequence[str] = ("conf/**",),
    limits: ArchiveLimits = ArchiveLimits(),
) -> ArchiveReport:
    """Check every member of a package in one streaming pass and describe its layout."""
    matchers = compile_globs(config_globs)
    tree = Tree(limits)
    with _open_stream(path, limits) as (archive, meter):
        for info in archive:
            meter.member = info.name
            tree.add(info)
            # Stream mode needs no history; keeping 10^5 TarInfo objects only feeds the GC.
            archive.members.clear()
    if not tree.entries:
        raise _bad_archive(path, "holds no files", "empty")
    tree.finish()
    report = ArchiveReport(
        members=tree.members,
        expanded_bytes=tree.expanded,
        layout="db",
        content_root="",
        scripts={"deploy": [], "start": None, "stop": None},
        config_files=[],
        warnings=tree.warnings,
    )
    if is_db:
        report.content_root, report.db_versions = find_db_versions(tree)
        return report
    report.layout, report.content_root = detect_layout(tree)
    report.scripts = find_scripts(tree, report.content_root)
    report.config_files = find_config_files(tree, report.content_root, matchers)
    return report


def read_members(
    path: Path,
    names: Iterable[str],
    *,
    limits: ArchiveLimits = ArchiveLimits(),
    max_total_bytes: int = 64 * 2**20,
) -> dict[str, bytes]:
    """The bytes of the named regular files (archive paths; `./` optional), in one pass.

    Names that are not regular files in the archive are left out; of two same-named members
    the later wins, as on extraction.
    """
    wanted = {"/".join(path_parts(name)) for name in names}
    found: dict[str, bytes] = {}
    with _open_stream(path, limits) as (archive, meter):
        for info in archive:
            archive.members.clear()  # as in inspect_archive
            name = "/".join(path_parts(info.name))
            meter.member = info.name
            if name not in wanted or not info.isreg():
                continue
            total = sum(len(data) for key, data in found.items() if key != name) + info.size
            if total > max_total_bytes:
                problem = f"takes the files read past {max_total_bytes} bytes"
                raise unsafe(name, "too_large", problem, "render smaller config files")
            member = archive.extractfile(info)
            found[name] = member.read() if member is not None else b""
    return found
