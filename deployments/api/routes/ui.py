"""The chat page: plain HTML, CSS and JS from `deployments/api/static`, no build step. It
calls the public routes (/ask/stream, /search, /feedback) like any client, with the user's API
key; the page itself needs none. Not part of the API schema."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"
# Only our own files may run or be fetched: the page sets every service text as plain text,
# and this forbids inline script and foreign origins besides.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    """The chat page is the front door for people; clients use the API routes."""
    return RedirectResponse("/ui", status_code=307)


@router.get("/ui")
async def page() -> FileResponse:
    """The chat page."""
    return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS, media_type="text/html")


def install_ui(app: FastAPI) -> None:
    """The page's route and its static files (/ui/static/...)."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
