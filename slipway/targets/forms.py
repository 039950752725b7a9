"""Reading an endpoint from a request: multipart/form-data with files, or a JSON object.

In a form, `labels` is JSON text and the TLS material comes as the files `ca`, `cert` and `key`
or one `tls_bundle`; in JSON the PEMs are text. Either way the result is the schema's fields and
a `TLSUpload` of raw bytes that the service checks.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from slipway.core.errors import InputError
from slipway.targets.schemas import DockerEndpointCreate, DockerEndpointUpdate
from slipway.targets.tls import MAX_UPLOAD_BYTES, TLSUpload, too_large

FILE_FIELDS = ("ca", "cert", "key", "tls_bundle")
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
# Four files at their cap plus the text fields.
MAX_REQUEST_BYTES = 4 * MAX_UPLOAD_BYTES + (64 << 10)

Model = TypeVar("Model", bound=BaseModel)


async def _part_bytes(field: str, value: UploadFile | str) -> bytes | None:
    """A file field's content; None for an empty file input left blank in a browser form."""
    if isinstance(value, str):
        if not value:
            return None
        data = value.encode()
    else:
        if not value.filename and not value.size:
            return None
        data = await value.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise too_large(field)
    return data


def _validated(model: type[Model], data: dict[str, Any]) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None


async def _read_form(request: Request, model: type[Model]) -> tuple[Model, TLSUpload]:
    form = await request.form(max_files=len(FILE_FIELDS), max_fields=32)
    data: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    seen: set[str] = set()
    for field, value in form.multi_items():
        if field in seen:
            raise InputError(f"{field} is given twice: send it once", field=field)
        seen.add(field)
        if field in FILE_FIELDS:
            content = await _part_bytes(field, value)
            if content is not None:
                files[field] = content
        elif isinstance(value, str):
            data[field] = value
        else:
            raise InputError(f"{field} is a text field: send it as text, not a file", field=field)
    if "labels" in data:
        text = data["labels"].strip()
        try:
            data["labels"] = json.loads(text) if text else {}
        except ValueError:
            raise InputError(
                'labels is not valid JSON: send a JSON object of strings, e.g. {"team": "web"}',
                field="labels",
            ) from None
    fields = _validated(model, data)
    upload = TLSUpload(
        ca=files.get("ca"),
        cert=files.get("cert"),
        key=files.get("key"),
        bundle=files.get("tls_bundle"),
    )
    return fields, upload


async def _read_json(request: Request, model: type[Model]) -> tuple[Model, TLSUpload]:
    try:
        data = json.loads(await request.body())
    except ValueError:
        raise InputError(
            "the request body is not valid JSON; send a JSON object, or multipart/form-data",
            field="body",
        ) from None
    if not isinstance(data, dict):
        raise InputError("the request body must be a JSON object", field="body")
    fields = _validated(model, data)
    pems = {name: getattr(fields, name) for name in ("ca", "cert", "key")}
    upload = TLSUpload(**{name: t.encode() if t is not None else None for name, t in pems.items()})
    return fields, upload


async def _read_input(request: Request, model: type[Model]) -> tuple[Model, TLSUpload]:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        raise InputError(
            f"the request is larger than {MAX_REQUEST_BYTES >> 20} MiB: send only the endpoint's "
            "fields and its CA, certificate and key",
            field="body",
            code="upload_too_large",
        )
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in FORM_TYPES:
        return await _read_form(request, model)
    if media_type in ("application/json", ""):
        return await _read_json(request, model)
    raise InputError(
        f"content type {media_type!r} is not accepted: send multipart/form-data (with files) or "
        "application/json",
        field="body",
        code="unsupported_media_type",
    )


async def create_input(request: Request) -> tuple[DockerEndpointCreate, TLSUpload]:
    return await _read_input(request, DockerEndpointCreate)


async def update_input(request: Request) -> tuple[DockerEndpointUpdate, TLSUpload]:
    return await _read_input(request, DockerEndpointUpdate)
