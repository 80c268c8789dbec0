"""GraphiQL served by the API itself, with no CDN: it works in a closed network.

`graphiql_page` is the page at `/graphql` for browsers (our own HTML); it loads React and
GraphiQL from `graphiql_asset` (`/graphql/assets/<name>`, a fixed list of four files), which
serves them from `node_modules` here. They come from the npm registry at install time, pinned by
package-lock.json: `npm ci --prefix lexintel_api/graphiql` (scripts/_env runs it;
docker/Dockerfile installs them in the image). Without them the page says how to install them.

The page asks once for an API key, keeps it in the browser's localStorage, pre-fills GraphiQL's
Headers pane with `{"Authorization": "Bearer <key>"}` and runs subscriptions over WebSocket
(graphql-transport-ws) at the same URL, the key in `connection_init`.
"""

from __future__ import annotations

import html
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
INSTALL_COMMAND = f"npm ci --prefix {HERE}"


@dataclass(frozen=True)
class Asset:
    package: str
    path: str  # inside the package
    media_type: str


# The URL name of each file the page loads -> where npm puts it. Nothing else is served.
ASSETS = {
    "react.production.min.js": Asset("react", "umd/react.production.min.js", "text/javascript"),
    "react-dom.production.min.js": Asset(
        "react-dom", "umd/react-dom.production.min.js", "text/javascript"
    ),
    "graphiql.min.js": Asset("graphiql", "graphiql.min.js", "text/javascript"),
    "graphiql.min.css": Asset("graphiql", "graphiql.min.css", "text/css"),
}

# An asset URL carries its package's version (?v=), so browsers may keep it for good.
_IMMUTABLE = "public, max-age=31536000, immutable"
_PAGE = (HERE / "page.html").read_text(encoding="utf-8")
_LOCK = json.loads((HERE / "package-lock.json").read_text(encoding="utf-8"))
VERSIONS = {
    package: str(_LOCK["packages"][f"node_modules/{package}"]["version"])
    for package in {asset.package for asset in ASSETS.values()}
}


def asset_file(name: str) -> Path:
    asset = ASSETS[name]
    return NODE_MODULES / asset.package / asset.path


def missing_assets() -> list[str]:
    """The files the page needs that are not installed (`npm ci` not run)."""
    return [name for name in ASSETS if not asset_file(name).is_file()]


def _content_security_policy(nonce: str) -> str:
    # Same origin only: a page that tried a CDN would fail here as it does in a closed
    # network. GraphiQL sets inline styles; its fonts and icons are data: URLs.
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self' 'unsafe-inline'",
            "font-src 'self' data:",
            "img-src 'self' data:",
            "connect-src 'self'",  # HTTP and WebSocket to this server
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _html_headers(policy: str) -> dict[str, str]:
    """The headers of our HTML pages: the CSP `policy` (frame-ancestors 'none' in it), and
    for browsers without CSP 2 X-Frame-Options; no MIME sniffing; no Referer sent from the
    page (the URLs it fetches carry nothing secret, but a pasted link might)."""
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def graphiql_page(request: Request) -> HTMLResponse:
    """GraphiQL for a browser at the GraphQL URL (Strawberry's `render_graphql_ide`)."""
    missing = missing_assets()
    if missing:
        # No script; an inline style.
        policy = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
        return HTMLResponse(_install_page(missing), headers=_html_headers(policy))
    nonce = secrets.token_urlsafe(16)
    page = _PAGE.replace("{{nonce}}", nonce)
    base = request.url.path.rstrip("/")
    for name, asset in ASSETS.items():
        url = f"{base}/assets/{name}?v={VERSIONS[asset.package]}"
        page = page.replace("{{" + name + "}}", html.escape(url))
    return HTMLResponse(page, headers=_html_headers(_content_security_policy(nonce)))


def graphiql_asset(request: Request) -> Response:
    """`/graphql/assets/{name}`: one of `ASSETS`, from node_modules (a sync endpoint:
    Starlette runs it in its thread pool, so its file checks do not block the loop)."""
    name = request.path_params["name"]
    if name not in ASSETS:
        return PlainTextResponse("Not Found", status_code=404)
    path = asset_file(name)
    if not path.is_file():
        return PlainTextResponse(
            f"GraphiQL's assets are not installed: {INSTALL_COMMAND}", status_code=404
        )
    asset = ASSETS[name]
    fresh = request.query_params.get("v") == VERSIONS[asset.package]
    return FileResponse(
        path,
        media_type=asset.media_type,
        headers={
            "Cache-Control": _IMMUTABLE if fresh else "no-cache",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _install_page(missing: list[str]) -> str:
    files = ", ".join(missing)
    command = html.escape(INSTALL_COMMAND)
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>LexIntel GraphiQL: assets not installed</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 46em; margin: 3em auto">
<h1>GraphiQL's assets are not installed</h1>
<p>This server serves GraphiQL itself (no CDN, so it works without internet access), from
files that npm installs from the npm registry. Missing: {html.escape(files)}.</p>
<p>Install them where LexIntel is installed, then reload this page:</p>
<pre><code>{command}</code></pre>
<p>(<code>scripts/test</code> and <code>scripts/demo</code> run it; the Docker image has
them.) The API works without them: send GraphQL to this URL with
<code>Authorization: Bearer &lt;key&gt;</code>.</p>
</body>
</html>
"""
