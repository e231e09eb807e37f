"""HTTP answers the adapters share: the one error shape, JSON bodies, and a body read no
further than a limit."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """Every HTTP error Parley answers: ``{"error": {"code", "message"}}``."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(payload), status, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` bytes (read no further than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isascii() or not declared.isdigit()):
        return None
    if declared is not None and int(declared[:20]) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def streamed_json(
    pool: asyncpg.Pool[Any],
    pieces_on: Callable[[Any], Awaitable[AsyncGenerator[bytes, None]]],
    filename: str,
) -> Response:
    """A JSON document written out in pieces as ``pieces_on(connection)`` makes them, on a
    connection of its own that goes back to the pool when the last piece is out or the client
    leaves; whatever ``pieces_on`` raises before the first piece is raised here."""
    conn = await pool.acquire()
    try:
        pieces = await pieces_on(conn)
    except BaseException:
        await pool.release(conn)
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            async for piece in pieces:
                yield piece
        finally:
            await pieces.aclose()
            await pool.release(conn)

    disposition = f'attachment; filename="{filename}"'
    return StreamingResponse(
        body(), media_type="application/json", headers={"content-disposition": disposition}
    )
