"""Stream one file out of a request body straight to its destination, never buffering it whole.

Starlette's form parser spools every upload to a temporary file first; a package can be GBs, so
we parse the multipart body ourselves (with python-multipart, which Starlette uses too) and hand
the file's bytes on as they arrive. A raw body (`Content-Type: application/octet-stream` with
`?filename=`) works as well, for `curl --data-binary`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from slipway.core.errors import InputError

FIELD = "file"


class _FileField:
    def __init__(self) -> None:
        self.filename: str | None = None
        self.pending: list[bytes] = []
        self._in_file = False
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self.finished = False

    def on_part_begin(self) -> None:
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        is_file = options.get(b"name") == FIELD.encode() and self.filename is None
        self._in_file = is_file
        if is_file:
            self.filename = options.get(b"filename", b"").decode(errors="replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.pending.append(data[start:end])

    def on_part_end(self) -> None:
        if self._in_file:
            self.finished = True
        self._in_file = False

    def take(self) -> list[bytes]:
        chunks, self.pending = self.pending, []
        return chunks


async def file_from_request(
    request: Request, filename: str | None = None
) -> tuple[str, AsyncIterator[bytes]]:
    """The uploaded file's name and an iterator over its bytes."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    stream = request.stream()
    if content_type != b"multipart/form-data":
        if not filename:
            raise InputError(
                "send the package as multipart/form-data with a field named 'file', or as the "
                "raw body with ?filename=name_1.0.0_build.tar.gz",
                field="file",
            )
        return filename, stream
    boundary = options.get(b"boundary")
    if not boundary:
        raise InputError("the multipart body has no boundary", field="file")
    field = _FileField()
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": field.on_part_begin,
            "on_header_field": field.on_header_field,
            "on_header_value": field.on_header_value,
            "on_header_end": field.on_header_end,
            "on_headers_finished": field.on_headers_finished,
            "on_part_data": field.on_part_data,
            "on_part_end": field.on_part_end,
        },
    )
    async for chunk in stream:
        parser.write(chunk)
        if field.filename is not None:
            break
    if not field.filename:
        raise InputError(
            "the request has no file: send the package in a multipart field named 'file' "
            "with its file name",
            field="file",
        )

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in field.take():
            yield chunk
        async for raw in stream:
            parser.write(raw)
            for chunk in field.take():
                yield chunk
        parser.finalize()
        for chunk in field.take():
            yield chunk
        if not field.finished:
            raise InputError("the upload ended before the file did; send it again", field="file")

    return field.filename, chunks()
