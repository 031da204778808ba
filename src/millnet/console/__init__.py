"""The web console: static files the node serves at ``/console/`` (docs/console.md).

No build step: hand-written ES modules and CSS, and uPlot vendored (``static/vendor``, MIT).
They are package data, so an installed node serves them as a checkout does. Every answer here
carries a strict Content-Security-Policy: scripts and styles only from this origin, no inline
script, nothing framed; together with rendering every name and value as text (never as HTML)
a device named ``<script>...`` stays a name.
"""

from __future__ import annotations

from os import PathLike, stat_result
from pathlib import Path

from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"
PATH = "/console"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'; object-src 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidated on every load (ETag): a node upgraded in place serves its new console.
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """The console's static files, each answered with the console's security headers."""

    def file_response(self, full_path: str | PathLike[str], stat: stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat, scope, status_code)
        response.headers.update(HEADERS)
        return response


async def _to_console(_: object) -> Response:
    return RedirectResponse(PATH + "/", status_code=308)


def routes() -> list[Route | Mount]:
    """``/console`` (redirects) and ``/console/...`` (index.html for the directory)."""
    return [Route(PATH, _to_console, methods=["GET", "HEAD"], include_in_schema=False),
            Mount(PATH, app=ConsoleFiles(directory=STATIC, html=True), name="console")]
