"""GraphiQL from the API itself: our page loads only same-origin assets, a fixed list of files
installed by npm, cached for good under a versioned URL; without them it says how to install
them. (tests/e2e/test_graphiql_browser.py drives it in Chromium with the network blocked.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

import lexintel_api.graphiql as graphiql
from tests.api.conftest import Api
from tests.tools import require_graphiql_assets

ROOT = Path(__file__).resolve().parents[2]
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
# Pinned in lexintel_api/graphiql/package.json: GraphiQL 3's UMD bundle wants React 18.
PINNED = {"react": "18.2.0", "react-dom": "18.2.0", "graphiql": "3.8.3"}


async def _page(api: Api) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api.url) as client:
        return await client.get("/graphql", headers=HTML)


def _nonce(response: httpx.Response) -> str:
    found = re.search(r"'nonce-([^']+)'", response.headers["content-security-policy"])
    assert found is not None
    return found.group(1)


def _loaded(page: str) -> list[str]:
    """Every URL the page loads: scripts, stylesheets, icons."""
    return re.findall(r'<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]*)"', page)


async def test_the_page_loads_only_assets_of_its_own_origin(api: Api) -> None:
    require_graphiql_assets()
    response = await _page(api)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    loaded = _loaded(response.text)
    assets = [url for url in loaded if not url.startswith("data:")]
    assert sorted(urlsplit(url).path for url in assets) == sorted(
        f"/graphql/assets/{name}" for name in graphiql.ASSETS
    )
    assert all(not urlsplit(url).netloc for url in loaded), loaded
    assert "unpkg" not in response.text
    # The browser refuses anything else: scripts from here or with this response's nonce.
    assert "default-src 'none'" in response.headers["content-security-policy"]
    nonce = _nonce(response)
    assert f'<script nonce="{nonce}">' in response.text
    assert _nonce(await _page(api)) != nonce  # one per response
    # The key: kept in the browser, sent as a header over HTTP and in connection_init.
    assert "localStorage" in response.text
    assert '"Bearer " + key' in response.text
    assert "wsConnectionParams: { authorization: bearer }" in response.text


def _assert_security_headers(response: httpx.Response) -> None:
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


async def test_the_page_is_not_framed_sniffed_or_referred(api: Api) -> None:
    require_graphiql_assets()
    _assert_security_headers(await _page(api))


async def test_each_asset_is_served_with_its_type_and_cached_for_good(api: Api) -> None:
    require_graphiql_assets()
    page = await _page(api)
    async with httpx.AsyncClient(base_url=api.url) as client:
        for url in _loaded(page.text):
            if url.startswith("data:"):
                continue
            name = urlsplit(url).path.rsplit("/", 1)[-1]
            asset = graphiql.ASSETS[name]
            response = await client.get(url)
            assert response.status_code == 200, url
            assert response.headers["content-type"].split(";")[0] == asset.media_type
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.content == graphiql.asset_file(name).read_bytes()
            # Without the current version in the URL: revalidated, not kept.
            stale = await client.get(f"/graphql/assets/{name}?v=0.0.1")
            assert stale.headers["cache-control"] == "no-cache"
        script = await client.get("/graphql/assets/graphiql.min.js")
    # The bundle has what the page uses: the fetcher with graphql-ws subscriptions.
    assert b"createFetcher" in script.content
    assert b"graphql-transport-ws" in script.content


@pytest.mark.parametrize(
    "name", ["package.json", "..%2Fpackage.json", "graphiql.js", "react.development.js", "x"]
)
async def test_nothing_but_the_listed_files_is_served(api: Api, name: str) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.get(f"/graphql/assets/{name}")
    assert response.status_code == 404


async def test_without_the_assets_the_page_says_how_to_install_them(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graphiql, "NODE_MODULES", tmp_path / "node_modules")
    response = await _page(api)
    assert response.status_code == 200
    assert "not installed" in response.text
    assert f"npm ci --prefix {graphiql.HERE}" in response.text
    assert "<script" not in response.text
    _assert_security_headers(response)
    assert "default-src 'none'" in response.headers["content-security-policy"]
    async with httpx.AsyncClient(base_url=api.url) as client:
        asset = await client.get("/graphql/assets/graphiql.min.js")
    assert asset.status_code == 404
    assert "npm ci --prefix" in asset.text


def test_the_assets_are_pinned_and_installed_from_the_lock() -> None:
    package = json.loads((graphiql.HERE / "package.json").read_text())
    assert package["dependencies"] == PINNED
    assert graphiql.VERSIONS == PINNED  # what the lock resolves, and the URLs carry
    require_graphiql_assets()
    for name, version in PINNED.items():
        installed = json.loads((graphiql.NODE_MODULES / name / "package.json").read_text())
        assert installed["version"] == version, f"stale node_modules: {graphiql.INSTALL_COMMAND}"


def test_the_image_and_the_install_path_get_every_asset() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    for asset in graphiql.ASSETS.values():
        assert f"{asset.package}/{asset.path}" in dockerfile
    assert "npm ci" in dockerfile
    assert "missing_assets()" in dockerfile  # the build fails when one is not there
    assert "npm ci --prefix" in (ROOT / "scripts" / "_env").read_text()
    assert "**/node_modules" in (ROOT / ".dockerignore").read_text().splitlines()
    assert "node_modules/" in (ROOT / ".gitignore").read_text().splitlines()
