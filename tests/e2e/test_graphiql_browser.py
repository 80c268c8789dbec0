"""Real browsers against the real API, with Debian's Chromium (/usr/bin/chromium) through
Playwright (never `playwright install`: no browser download) and every request that is not to
this machine blocked, as in a closed network: GraphiQL loads, runs a query with the key pasted
once and receives a subscription over WebSocket; an `EventSource` gets every progress event,
and after READY its stream ends and it does not reconnect.

Screenshots: graphiql-query.png, graphiql-subscription.png and eventsource.png in the test's
tmp_path (with `--basetemp=DIR`: DIR/test_<name>0/).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Request,
    Route,
    WebSocket,
    async_playwright,
)

from lexintel_core.settings import Settings
from tests.api.conftest import Api, Tenant, create_case, execute, running_worker, upload
from tests.jobs.conftest import make_pdf
from tests.tools import require_binary, require_graphiql_assets

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TIMEOUT_MS = 30_000
# Chromium's EventSource reconnects 3 s after a stream ends (sse-starlette sends no `retry:`).
RECONNECT_SECONDS = 3.0

STREAM = "mutation($id: UUID!) { createProgressStream(documentId: $id) { url } }"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = require_binary("chromium", package="chromium fonts-liberation")
    require_graphiql_assets()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


class Offline:
    """A browser context that reaches only this machine, noting what it tried elsewhere and
    the errors its pages raised."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.blocked: list[str] = []
        self.errors: list[str] = []

    async def _only_local(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            await route.continue_()
        else:
            self.blocked.append(route.request.url)
            await route.abort("internetdisconnected")

    async def new_page(self) -> Page:
        page = await self.context.new_page()
        await page.route("**/*", self._only_local)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        return page


@pytest.fixture
async def offline(browser: Browser) -> AsyncIterator[Offline]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        yield Offline(context)
    finally:
        await context.close()


async def _document(api: Api, key: str) -> str:
    """A document with no worker running yet: it waits QUEUED."""
    case_id = await create_case(api, key, name="Doe v. Roe")
    return await upload(api, key, case_id, make_pdf(["Settlement memorandum."]), "memo.pdf")


QUERY_EDITOR = "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"


async def _run_in_graphiql(page: Page, query: str) -> None:
    await page.evaluate(f"query => {QUERY_EDITOR}.setValue(query)", query)
    # GraphiQL parses the query 100 ms after an edit; until then it would send the last one's
    # kind of request (a subscription over HTTP instead of the WebSocket).
    await page.wait_for_function(
        f"query => {QUERY_EDITOR}.documentAST?.loc?.source?.body === query",
        arg=query,
        timeout=TIMEOUT_MS,
    )
    await page.click(".graphiql-execute-button")


async def _response_shows(page: Page, text: str) -> None:
    await page.wait_for_function(
        "text => (document.querySelector('.graphiql-response')?.innerText ?? '').includes(text)",
        arg=text,
        timeout=TIMEOUT_MS,
    )


async def test_graphiql_runs_a_query_and_a_subscription_with_the_network_blocked(
    api: Api,
    api_settings: Settings,
    tenant: Callable[[str], Awaitable[Tenant]],
    offline: Offline,
    tmp_path: Path,
) -> None:
    acme = await tenant("Acme LLP")
    document_id = await _document(api, acme.key)
    page = await offline.new_page()
    sockets: list[str] = []
    sent: list[str] = []

    def on_websocket(socket: WebSocket) -> None:
        sockets.append(socket.url)
        socket.on("framesent", lambda payload: sent.append(str(payload)))

    page.on("websocket", on_websocket)

    await page.goto(api.graphql_url)
    await page.wait_for_selector("text=No API key", timeout=TIMEOUT_MS)
    await page.fill("#lexintel-api-key", f"Bearer {acme.key}")  # "Bearer " is dropped
    await page.click("#lexintel-key-use")
    await page.wait_for_selector(".graphiql-container", timeout=TIMEOUT_MS)
    # Pasted once: kept in the browser, and the Headers pane is filled from it.
    await page.reload()
    await page.wait_for_selector(".graphiql-container", timeout=TIMEOUT_MS)
    assert await page.evaluate("localStorage.getItem('lexintel.apiKey')") == acme.key
    headers = await page.evaluate(
        "[...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')]"
        ".map(editor => editor.CodeMirror.getValue())"
    )
    assert {"Authorization": f"Bearer {acme.key}"} in [
        json.loads(text) for text in headers if "Authorization" in text
    ]

    await _run_in_graphiql(page, "{ cases { nodes { id name } } }")
    await _response_shows(page, "Doe v. Roe")
    # The schema came too (introspection needs the key): its docs open.
    await page.click("[aria-label='Show Documentation Explorer']")
    await page.wait_for_selector(".graphiql-doc-explorer >> text=Root Types", timeout=TIMEOUT_MS)
    await page.screenshot(path=tmp_path / "graphiql-query.png")

    await _run_in_graphiql(
        page,
        f'subscription {{ documentProgress(documentId: "{document_id}") '
        "{ seq status stage percent } }",
    )
    await _response_shows(page, "QUEUED")  # the snapshot, over the WebSocket
    async with running_worker(api_settings):
        await _response_shows(page, "READY")
    await page.screenshot(path=tmp_path / "graphiql-subscription.png")
    # Over graphql-transport-ws at the same URL, the key in connection_init.
    assert sockets == [api.ws_url]
    init = json.loads(sent[0])
    assert init["type"] == "connection_init"
    assert init["payload"]["authorization"] == f"Bearer {acme.key}"

    assert offline.blocked == [], "the page tried to leave this machine"
    assert offline.errors == []


# Collects an EventSource's events and counts its opens and errors, shown on the page too.
FOLLOW = """
url => {
  const seen = { opens: 0, errors: 0, states: [], messages: [] };
  const source = new EventSource(url);
  const show = () => {
    document.body.innerHTML = "";
    const pre = document.createElement("pre");
    pre.textContent = [
      `EventSource ${url.split("?")[0]}`,
      `readyState ${["CONNECTING", "OPEN", "CLOSED"][source.readyState]}`,
      `opens ${seen.opens}, errors ${seen.errors}`,
      ...seen.messages.map(m => `message id=${m.id} ${JSON.stringify(m.data)}`),
    ].join("\\n");
    document.body.append(pre);
  };
  source.onopen = () => { seen.opens += 1; show(); };
  source.onmessage = event => {
    seen.messages.push({ id: event.lastEventId, data: JSON.parse(event.data) });
    show();
  };
  source.onerror = () => { seen.errors += 1; seen.states.push(source.readyState); show(); };
  window.seen = seen;
  window.source = source;
  window.show = show;
  show();
}
"""


async def test_an_eventsource_gets_every_event_and_stops_after_ready(
    api: Api,
    api_settings: Settings,
    tenant: Callable[[str], Awaitable[Tenant]],
    offline: Offline,
    tmp_path: Path,
) -> None:
    acme = await tenant("Acme LLP")
    document_id = await _document(api, acme.key)
    url = (await execute(api, acme.key, STREAM, id=document_id))["createProgressStream"]["url"]
    page = await offline.new_page()
    requests: list[Request] = []
    page.on(
        "request", lambda request: requests.append(request) if "/progress" in request.url else None
    )

    await page.goto(f"{api.url}/healthz")  # any page of the API's origin
    await page.evaluate(FOLLOW, url)
    await page.wait_for_function("window.seen.messages.length > 0", timeout=TIMEOUT_MS)
    async with running_worker(api_settings):
        await page.wait_for_function(
            "window.seen.messages.some(m => m.data.status === 'READY')", timeout=TIMEOUT_MS
        )
    # The stream ends; the EventSource tries once to resume, gets 204 and stops for good.
    await page.wait_for_function(
        "window.source.readyState === EventSource.CLOSED", timeout=TIMEOUT_MS
    )
    await asyncio.sleep(RECONNECT_SECONDS + 2)
    await page.evaluate("window.show()")
    await page.screenshot(path=tmp_path / "eventsource.png", full_page=True)

    seen: dict[str, Any] = await page.evaluate("window.seen")
    assert await page.evaluate("window.source.readyState") == 2  # CLOSED
    messages = seen["messages"]
    statuses = [message["data"]["status"] for message in messages]
    assert statuses[0] == "QUEUED"
    assert statuses[-1] == "READY"
    assert statuses.count("READY") == 1
    seqs = [message["data"]["seq"] for message in messages]
    assert seqs == list(range(1, len(seqs) + 1))  # every event, in order, once
    assert [int(message["id"]) for message in messages] == seqs
    assert seen["opens"] == 1
    # Its errors: the end of the stream (it goes on CONNECTING), then the 204 (CLOSED).
    assert seen["states"] == [0, 2]
    assert len(requests) == 2, [request.url for request in requests]
    # The resume carried Last-Event-ID (Chromium adds it below what Playwright sees): only a
    # resume from the terminal event gets 204, which an EventSource does not retry.
    response = await requests[1].response()
    assert response is not None
    assert response.status == 204
    assert offline.blocked == []
