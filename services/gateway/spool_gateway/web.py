"""The dashboard: static files (`dashboard/`, plain HTML, CSS and JavaScript modules, no build
step) served at `/dashboard/`. The pages call the public API with the token the user signs in
with, like the SDK does; nothing here reads the store. `/` redirects to the dashboard.

The answers carry a strict Content-Security-Policy (scripts, styles and requests only from this
origin, no inline script, no framing), so text from the API that a page shows can never run
as code even if a page forgot to treat it as text.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

ROOT = Path(__file__).with_name("dashboard")
PREFIX = "/dashboard"

SECURITY_HEADERS = {
    b"content-security-policy": (
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
        b"frame-ancestors 'none'"
    ),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    # Revalidate each load (the ETag makes that a 304), so a new version shows at once.
    b"cache-control": b"no-cache",
}


class _Dashboard(StaticFiles):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS.items() if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await super().__call__(scope, receive, with_headers)


def install_dashboard(app: FastAPI) -> None:
    app.mount(PREFIX, _Dashboard(directory=ROOT, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/")
