"""/api/v1/mirror-profiles: viewers read, admins add, change and delete.

Built-in profiles are listed with the saved ones (`source` says which); a PUT on a built-in
profile saves an override, a DELETE of an override brings the built-in back.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from slipway.api.deps import Admin, SessionDep, Viewer
from slipway.api.pagination import decode_cursor, encode_cursor, next_cursor
from slipway.builds import mirrors
from slipway.builds.mirror_schemas import (
    MirrorProfileCreate,
    MirrorProfileList,
    MirrorProfileRead,
    MirrorProfileRevisionList,
    MirrorProfileRevisionRead,
    MirrorProfileUpdate,
)

router = APIRouter(prefix="/mirror-profiles", tags=["builds"])

Limit = Annotated[int, Query(ge=1, le=500)]
PROFILE = "/{type}/{file_name}"


def _read(profile: mirrors.ResolvedMirror) -> MirrorProfileRead:
    overrides = (
        profile.source == mirrors.SAVED
        and (profile.type, profile.file_name) in mirrors.builtin_profiles()
    )
    return MirrorProfileRead.of(profile, overrides_builtin=overrides)


@router.get("", response_model=MirrorProfileList)
def list_mirror_profiles(
    _: Viewer,
    session: SessionDep,
    type: Annotated[str | None, Query(description="only this mirror, e.g. ali")] = None,
    manager: Annotated[str | None, Query(pattern="^(apt|yum)$")] = None,
    limit: Limit = 100,
    cursor: str | None = None,
) -> MirrorProfileList:
    """Every profile in effect, built-in and saved, by type then file name."""
    after = decode_cursor(cursor, str)
    items = [
        profile
        for profile in mirrors.list_profiles(session, kind=type, manager=manager)
        if after is None or f"{profile.type}/{profile.file_name}" > str(after)
    ]
    page = items[:limit]
    next_cursor = (
        encode_cursor(f"{page[-1].type}/{page[-1].file_name}") if len(items) > limit else None
    )
    return MirrorProfileList(items=[_read(item) for item in page], next_cursor=next_cursor)


@router.post("", response_model=MirrorProfileRead, status_code=status.HTTP_201_CREATED)
def create_mirror_profile(
    principal: Admin, session: SessionDep, body: MirrorProfileCreate
) -> MirrorProfileRead:
    """Add a profile; 409 when one of that name exists (built-in or saved: use PUT)."""
    profile = mirrors.create_profile(
        session,
        kind=body.type,
        file_name=body.file_name,
        content=body.content,
        description=body.description,
        actor=principal.name,
    )
    session.commit()
    return _read(profile)


@router.get(PROFILE, response_model=MirrorProfileRead)
def get_mirror_profile(
    _: Viewer, session: SessionDep, type: str, file_name: str
) -> MirrorProfileRead:
    return _read(mirrors.get_profile(session, type, file_name))


@router.put(PROFILE, response_model=MirrorProfileRead)
def put_mirror_profile(
    principal: Admin, session: SessionDep, type: str, file_name: str, body: MirrorProfileUpdate
) -> MirrorProfileRead:
    """Replace a profile's content (a new revision); on a built-in profile, save an override."""
    profile = mirrors.update_profile(
        session,
        kind=type,
        file_name=file_name,
        content=body.content,
        description=body.description,
        actor=principal.name,
    )
    session.commit()
    return _read(profile)


@router.delete(PROFILE, status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_mirror_profile(_: Admin, session: SessionDep, type: str, file_name: str) -> None:
    """Remove a saved profile (a built-in one of that name applies again); 409 for a built-in."""
    mirrors.delete_profile(session, kind=type, file_name=file_name)
    session.commit()


@router.get(f"{PROFILE}/revisions", response_model=MirrorProfileRevisionList)
def list_mirror_profile_revisions(
    _: Viewer,
    session: SessionDep,
    type: str,
    file_name: str,
    limit: Limit = 100,
    cursor: str | None = None,
) -> MirrorProfileRevisionList:
    """Every saved state of the profile, newest (the one in effect) first."""
    before = decode_cursor(cursor, int)
    items = mirrors.profile_revisions(
        session,
        type,
        file_name,
        limit=limit + 1,
        before=before,  # type: ignore[arg-type]
    )
    return MirrorProfileRevisionList(
        items=[MirrorProfileRevisionRead.of(item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "revision"),
    )
