"""/docs (Swagger UI) and /redoc, served whole by paysys: they work with no internet.

FastAPI's own pages load their scripts, styles, favicon and (ReDoc) fonts from CDNs, so
they are blank on a machine without internet, and tell third parties who reads the docs.
Here the assets are paysys's own files, served under /docs/static/: `docs_assets/swagger-ui/`
from swagger-ui-dist 5.35.0 and `docs_assets/redoc/` ReDoc 2.5.4's standalone bundle, each
as published on npm, with its licence (to update, replace them with the same files of the
new versions' packages). ReDoc uses the browser's fonts.

Both pages are sent with a Content-Security-Policy that lets them load nothing from
anywhere else: ReDoc's sidebar shows a logo from Redocly's CDN whatever its options, and
the browser now never asks for it (the image hides itself when it does not load).
`tests/test_docs_offline.py` renders both pages in a browser that may reach nothing but
paysys.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS = Path(__file__).parent / "docs_assets"
STATIC = "/docs/static"
# Inline scripts and styles: FastAPI's pages start the UIs with an inline script, ReDoc
# injects its styles; data: images are Swagger UI's icons; ReDoc's search runs in a worker
# made from a blob.
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'self'"
)


def install(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets. The app is created with `docs_url=None` and
    `redoc_url=None` (FastAPI's pages would load their assets from CDNs)."""
    app.mount(STATIC, StaticFiles(directory=ASSETS), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC}/swagger-ui/favicon-32x32.png",
            oauth2_redirect_url=None,  # API keys, no OAuth
            # No badge from the online validator (a request to swagger.io); the
            # operationIds shown, as generated clients name their methods.
            swagger_ui_parameters={"validatorUrl": None, "displayOperationId": True},
        )
        page.headers["Content-Security-Policy"] = POLICY
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = POLICY
        return page
