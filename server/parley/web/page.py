"""The chat page and the JavaScript SDK, served as static files with a strict CSP.

``/parley.js`` is the SDK's one file, ``clients/js/parley.js``: read from the repository in a
checkout, and from the copy the wheel build places at ``parley/static/parley.js`` when
installed. No other copy exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC: Final = Path(__file__).resolve().parent.parent / "static"

# No inline script or style, nothing from elsewhere but https images (product pictures
# the marketplace hosts); sockets only back to this origin.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' https:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def sdk_path() -> Path:
    """The SDK's file: inside the installed package, or clients/js/ in a checkout."""
    for candidate in (STATIC / "parley.js", STATIC.parents[2] / "clients" / "js" / "parley.js"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"parley.js is neither in {STATIC} nor in clients/js/")


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers=HEADERS | {"Cache-Control": "no-cache"})


async def sdk(request: Request) -> Response:
    return FileResponse(
        sdk_path(), media_type="text/javascript", headers=HEADERS | {"Cache-Control": "no-cache"}
    )


async def favicon(request: Request) -> Response:
    # Browsers ask for /favicon.ico whatever the page says.
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml", headers=HEADERS)


class _StaticWithHeaders(StaticFiles):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
                message["headers"] = headers
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def routes() -> list[BaseRoute]:
    return [
        Route("/", index),
        Route("/parley.js", sdk),
        Route("/favicon.ico", favicon),
        Mount("/static", _StaticWithHeaders(directory=STATIC), name="static"),
    ]
