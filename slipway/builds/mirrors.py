"""Mirror profiles: the apt sources list / yum .repo file a build's image gets.

A profile is named like FastBuild's source directory: a `type` (the mirror: `ali`, `163`,
`qinghua`, `ustc`, `official`, or any name an admin adds) and a `file_name` (`ubuntu-18.04.list`,
`centos-7.repo`). The built-in library (`mirror_library/<type>/<file_name>`, shipped with
slipway) covers the common Ubuntu, Debian and CentOS releases on those mirrors; profiles saved
through the API add to it or override a built-in one of the same name, each save a new revision
(the newest wins). Deleting a saved override brings the built-in back.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.builds import spec_patterns as p
from slipway.builds.mirror_models import MirrorProfile, MirrorProfileRevision
from slipway.builds.spec import BuildSpec
from slipway.core.db import utcnow
from slipway.core.errors import ConflictError, InputError, NotFoundError

LIBRARY_DIR = Path(__file__).resolve().parent / "mirror_library"
MAX_CONTENT = 64 * 1024
MAX_DESCRIPTION = 2048
BUILTIN = "built-in"
SAVED = "saved"

_APT_OPTION = r"[a-zA-Z][a-zA-Z-]*[+-]?=[A-Za-z0-9_./,:+-]+"
_APT_LINE = re.compile(
    rf"^(?:deb|deb-src)\s+(?:\[\s*{_APT_OPTION}(?:\s+{_APT_OPTION})*\s*\]\s+)?"
    r"(?P<url>\S+)\s+[A-Za-z0-9._/-]+(?:\s+[A-Za-z0-9._-]+)*\s*$"
)
_APT_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%+/-]*)?$")
_YUM_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%+/$&?=-]*)?$")


@dataclass(frozen=True)
class ResolvedMirror:
    """A profile's content as a build uses it."""

    type: str
    file_name: str
    manager: str  # "apt" | "yum"
    content: str
    source: str = BUILTIN  # "built-in" or "saved"
    description: str = ""
    revision: int = 0  # 0 for a built-in profile
    created_at: datetime | None = None
    updated_at: datetime | None = None


# --- the built-in library -------------------------------------------------------------------------


@lru_cache(maxsize=1)
def builtin_profiles() -> dict[tuple[str, str], ResolvedMirror]:
    """Every profile of the shipped library, by (type, file_name)."""
    found = {}
    for path in sorted(LIBRARY_DIR.glob("*/*")):
        kind, name = path.parent.name, path.name
        if p.MIRROR_TYPE.match(kind) and p.MIRROR_FILE_NAME.match(name):
            found[(kind, name)] = ResolvedMirror(
                type=kind, file_name=name, manager=p.mirror_manager(name), content=path.read_text()
            )
    return found


# --- content checks -------------------------------------------------------------------------------


def check_content(manager: str, content: str, *, field: str = "content") -> str:
    """An apt sources list (`deb`/`deb-src` lines, http(s) URLs, `[options]`) or a yum .repo file
    (ini sections, each with an http(s) baseurl or mirrorlist). Newlines normalized to \\n."""
    content = content.replace("\r\n", "\n")
    if not content.strip() or len(content.encode()) > MAX_CONTENT or "\x00" in content:
        raise InputError(f"{field} must be 1 byte to 64 KiB of text", field=field)
    if not content.endswith("\n"):
        content += "\n"
    if manager == "apt":
        _check_apt(content, field)
    else:
        _check_yum(content, field)
    return content


def _check_apt(content: str, field: str) -> None:
    lines = 0
    for number, line in enumerate(content.splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        match = _APT_LINE.match(text)
        if not match or not _APT_URL.match(match.group("url")):
            raise InputError(
                f"{field} line {number} is not an apt source: use "
                "`deb [option=value ...] http(s)://host/path suite [component ...]`, e.g. "
                "`deb http://mirrors.aliyun.com/ubuntu/ bionic main`",
                field=field,
                details={"field": field, "line": number},
            )
        lines += 1
    if not lines:
        raise InputError(f"{field} has no deb line; an apt profile needs at least one", field=field)


def _check_yum(content: str, field: str) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        parser.read_string(content)
    except configparser.Error as exc:
        raise InputError(
            f"{field} is not a yum .repo file (ini sections such as [base] with baseurl=): "
            f"{str(exc).splitlines()[0][:200]}",
            field=field,
        ) from None
    if not parser.sections():
        raise InputError(f"{field} has no [section]; a yum profile needs at least one", field=field)
    for section in parser.sections():
        urls = [
            url
            for key in ("baseurl", "mirrorlist", "metalink")
            for url in parser.get(section, key, fallback="").split()
        ]
        if not urls or not all(_YUM_URL.match(url) for url in urls):
            raise InputError(
                f"{field} section [{section}] needs a baseurl (or mirrorlist) of http(s) URLs, "
                "e.g. baseurl=http://mirrors.aliyun.com/centos-vault/7.9.2009/os/$basearch/",
                field=field,
                details={"field": field, "section": section},
            )


def _check_names(kind: str, file_name: str) -> None:
    for field, check, value in (
        ("type", p.check_mirror_type, kind),
        ("file_name", p.check_mirror_file_name, file_name),
    ):
        try:
            check(value)
        except ValueError as exc:
            raise InputError(f"{field}: {exc}", field=field) from None


def _check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InputError(f"description is longer than {MAX_DESCRIPTION} characters",
                         field="description")  # fmt: skip
    return description


# --- reading --------------------------------------------------------------------------------------


def _row(session: Session, kind: str, file_name: str) -> MirrorProfile | None:
    return session.scalar(
        select(MirrorProfile).where(
            MirrorProfile.type == kind, MirrorProfile.file_name == file_name
        )
    )


def _resolved(row: MirrorProfile) -> ResolvedMirror:
    return ResolvedMirror(
        type=row.type,
        file_name=row.file_name,
        manager=row.manager,
        content=row.content,
        source=SAVED,
        description=row.description,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def find_profile(session: Session, kind: str, file_name: str) -> ResolvedMirror | None:
    """The profile in effect: the saved one, else the built-in one, else None."""
    row = _row(session, kind, file_name)
    if row is not None:
        return _resolved(row)
    return builtin_profiles().get((kind, file_name))


def list_profiles(
    session: Session, *, kind: str | None = None, manager: str | None = None
) -> list[ResolvedMirror]:
    """Every profile in effect (saved ones over built-in ones), by type then file name."""
    merged = dict(builtin_profiles())
    for row in session.scalars(select(MirrorProfile)):
        merged[(row.type, row.file_name)] = _resolved(row)
    return [
        profile
        for key, profile in sorted(merged.items())
        if (kind is None or profile.type == kind)
        and (manager is None or profile.manager == manager)
    ]


def get_profile(session: Session, kind: str, file_name: str) -> ResolvedMirror:
    """The profile in effect; NotFoundError naming `type` (no such mirror) or `file_name`."""
    profile = find_profile(session, kind, file_name)
    if profile is not None:
        return profile
    files = [m.file_name for m in list_profiles(session, kind=kind)]
    if not files:
        kinds = sorted({m.type for m in list_profiles(session)})
        raise NotFoundError(
            f"no mirror profile type {kind!r}; known types: {', '.join(kinds)} "
            "(add one with POST /api/v1/mirror-profiles)",
            code="mirror_profile_not_found",
            details={"field": "type", "type": kind},
        )
    raise NotFoundError(
        f"mirror {kind!r} has no profile {file_name!r}; it has {', '.join(files)} "
        "(add one with POST /api/v1/mirror-profiles)",
        code="mirror_profile_not_found",
        details={"field": "file_name", "type": kind, "file_name": file_name},
    )


def check_mirrors(session: Session, spec: BuildSpec) -> ResolvedMirror | None:
    """The profile a spec's apt/yum section names (None without one); an unknown one is an
    InputError naming the request's field (`…source.type` or `…source.file_name`)."""
    section = spec.system
    if section is None or section.mirror is None:
        return None
    manager = "apt" if spec.apt is not None else "yum"
    try:
        return get_profile(session, section.mirror.type, section.mirror.file_name)
    except NotFoundError as exc:
        field = spec.request_field(manager, "mirror", exc.details["field"])
        raise InputError(
            f"{field}: {exc.message}", field=field, code="unknown_mirror_profile"
        ) from None


def profile_revisions(
    session: Session,
    kind: str,
    file_name: str,
    *,
    limit: int | None = None,
    before: int | None = None,
) -> list[MirrorProfileRevision]:
    """A profile's saved revisions, newest first (none for a built-in never overridden)."""
    row = _row(session, kind, file_name)
    if row is None:
        get_profile(session, kind, file_name)  # 404 for a profile that does not exist at all
        return []
    query = (
        select(MirrorProfileRevision)
        .where(MirrorProfileRevision.profile_id == row.id)
        .order_by(MirrorProfileRevision.revision.desc())
    )
    if before is not None:
        query = query.where(MirrorProfileRevision.revision < before)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


# --- writing --------------------------------------------------------------------------------------


def _add_revision(
    session: Session, row: MirrorProfile, changes: list[str], actor: str | None
) -> None:
    session.add(
        MirrorProfileRevision(
            profile_id=row.id,
            revision=row.revision,
            content=row.content,
            description=row.description,
            changes=changes,
            actor=actor,
            created_at=row.updated_at,
        )
    )


def create_profile(
    session: Session,
    *,
    kind: str,
    file_name: str,
    content: str,
    description: str = "",
    actor: str | None = None,
) -> ResolvedMirror:
    """Save a new profile (revision 1); 409 when one of that name exists (change it with PUT)."""
    _check_names(kind, file_name)
    content = check_content(p.mirror_manager(file_name), content)
    description = _check_description(description)
    if find_profile(session, kind, file_name) is not None:
        raise _exists_error(kind, file_name)
    return _insert(session, kind, file_name, content, description, actor)


def _exists_error(kind: str, file_name: str) -> ConflictError:
    return ConflictError(
        f"mirror profile {kind}/{file_name} exists; change it with "
        f"PUT /api/v1/mirror-profiles/{kind}/{file_name}",
        code="mirror_profile_exists",
        details={"field": "file_name"},
    )


def _insert(
    session: Session, kind: str, file_name: str, content: str, description: str, actor: str | None
) -> ResolvedMirror:
    now = utcnow()
    row = MirrorProfile(
        type=kind,
        file_name=file_name,
        manager=p.mirror_manager(file_name),
        content=content,
        description=description,
        revision=1,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise _exists_error(kind, file_name) from None
    builtin = (kind, file_name) in builtin_profiles()
    _add_revision(
        session, row, ["created", "overrides built-in"] if builtin else ["created"], actor
    )
    session.flush()
    return _resolved(row)


def update_profile(
    session: Session,
    *,
    kind: str,
    file_name: str,
    content: str,
    description: str | None = None,
    actor: str | None = None,
) -> ResolvedMirror:
    """Replace a profile's content: a new revision of a saved profile, or a saved override of a
    built-in one (created for any valid name, as PUT does)."""
    _check_names(kind, file_name)
    content = check_content(p.mirror_manager(file_name), content)
    row = _row(session, kind, file_name)
    if row is None:
        return _insert(session, kind, file_name, content, _check_description(description or ""),
                       actor)  # fmt: skip
    session.refresh(row, with_for_update=True)
    changes = [] if content == row.content else ["content"]
    if description is not None and _check_description(description) != row.description:
        changes.append("description")
        row.description = description
    if not changes:
        return _resolved(row)
    row.content = content
    row.revision += 1
    row.updated_at = utcnow()
    _add_revision(session, row, changes, actor)
    session.flush()
    return _resolved(row)


def delete_profile(session: Session, *, kind: str, file_name: str) -> None:
    """Remove a saved profile and its revisions (a built-in one of that name applies again);
    a built-in profile itself cannot be deleted."""
    row = _row(session, kind, file_name)
    if row is None:
        get_profile(session, kind, file_name)
        raise ConflictError(
            f"{kind}/{file_name} is a built-in profile and cannot be deleted; override it with "
            f"PUT /api/v1/mirror-profiles/{kind}/{file_name}",
            code="mirror_profile_builtin",
        )
    session.delete(row)
    session.flush()
