"""HTTP plumbing shared by the handlers: bounded body reads, msgspec decode with errors in words,
and JSON responses encoded once by msgspec.

BlackSheep's own JSON binding would bypass msgspec validation, so handlers read bytes and decode them
with decoders built once at import time.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from blacksheep import Content, Request, Response
from blacksheep.exceptions import MessageAborted

from memtrace.api import wording
from memtrace.errors import Invalid, TooLarge

T = TypeVar("T")

JSON = b"application/json"
_encoder = msgspec.json.Encoder()
# msgspec stops at Python's recursion limit (~1,000 levels); no valid request comes near it.
TOO_DEEP = "malformed JSON: nested too deeply"
INCOMPLETE_BODY = "malformed request body: it could not be read to its end (bad chunked encoding?)"


def json_response(status: int, payload: Any) -> Response:
    return Response(status, None, Content(JSON, _encoder.encode(payload)))


def error_response(status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None,
                   **extra: Any) -> Response:
    return Response(status, headers, Content(JSON, _encoder.encode({"error": message, **extra})))


async def read_body(request: Request, cap: int) -> bytes:
    """The whole body, refusing (413) anything over `cap` bytes before buffering it."""
    declared = request.get_first_header(b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise Invalid("invalid Content-Length header") from None
        if size > cap:
            raise TooLarge(f"request body is {size} bytes; the limit is {cap}")
    try:
        if declared is not None:
            return await request.read() or b""
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():  # type: ignore[attr-defined]
            total += len(chunk)
            if total > cap:
                raise TooLarge(f"request body exceeds the limit of {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    except MessageAborted:
        # The server could not read the body to its end: malformed chunked encoding, or a client gone midway.
        raise Invalid(INCOMPLETE_BODY) from None


def decode(decoder: msgspec.json.Decoder[T], body: bytes, root: Any = None, label: str = "") -> T:
    """`body` decoded, or `Invalid` in words (`api/wording.py`); `root` is the type the words are read from
    (default the decoder's), `label` the name of the decoded value in messages (default: its fields' names)."""
    if not body.strip():
        raise Invalid("request body is empty; a JSON object is required")
    return decoded(decoder, body, root, label)


def decoded(decoder: msgspec.json.Decoder[T], body: bytes | msgspec.Raw, root: Any = None, label: str = "") -> T:
    """`decode` of a part of a body (a `Raw` cut out of it), which cannot be empty."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise Invalid(wording.validation(exc, decoder.type if root is None else root, label)) from None
    except msgspec.DecodeError as exc:
        raise Invalid(wording.malformed(exc, len(memoryview(body)))) from None
    except RecursionError:
        raise Invalid(TOO_DEEP) from None


def convert(data: dict[str, Any], cls: type[T]) -> T:
    """Validate query parameters (strings) into a Struct, coercing numbers."""
    try:
        return msgspec.convert(data, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise Invalid(wording.validation(exc, cls)) from None


def path_param(request: Request, name: str) -> str:
    value = request.route_values.get(name)
    assert value is not None, f"route has no parameter {name}"
    return value


def query_params(request: Request) -> dict[str, str]:
    """Last value of each query parameter (repeated keys: the last one wins)."""
    return {key: values[-1] for key, values in request.query.items() if values}
