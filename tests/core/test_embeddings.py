from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from lexintel_core import embeddings
from lexintel_core.embedded_servers import free_port
from lexintel_core.embeddings import (
    PACKAGED_MODEL,
    Embedder,
    EmbeddingError,
    HashingEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    check_embedding_dimension,
    create_embedder,
)
from lexintel_core.errors import FailureCode, RetryableError
from lexintel_core.settings import EmbeddingProviderName, Settings

ORIGINAL = "The tenant must pay rent monthly"
PARAPHRASE = "Rent is due from the lessee every month"
UNRELATED = "The court dismissed the appeal for lack of jurisdiction"


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


# sentence-transformers (the real packaged MiniLM model)


@pytest.fixture(scope="module")
async def minilm() -> AsyncIterator[SentenceTransformerEmbedder]:
    """The real model, loaded once for the module (about 10 s)."""
    embedder = SentenceTransformerEmbedder(PACKAGED_MODEL, device="cpu", batch_size=32)
    await embedder.load()
    yield embedder
    await embedder.aclose()


async def test_minilm_embeds_into_384_unit_vectors_with_semantics(
    minilm: SentenceTransformerEmbedder,
) -> None:
    assert minilm.dimension == 384
    assert minilm.model_name == PACKAGED_MODEL
    original, paraphrase, unrelated = await minilm.embed([ORIGINAL, PARAPHRASE, UNRELATED])
    for vector in (original, paraphrase, unrelated):
        assert len(vector) == 384
        assert all(isinstance(value, float) for value in vector)
        assert norm(vector) == pytest.approx(1.0, abs=1e-5)
    # Hardly a shared word with the paraphrase, yet it is the closer one.
    assert cosine(original, paraphrase) > cosine(original, unrelated) + 0.2
    assert await minilm.embed([]) == []


async def test_minilm_keeps_input_order_across_batches(
    minilm: SentenceTransformerEmbedder,
) -> None:
    texts = [
        f"Clause {number}: the lessee shall keep the premises in repair." for number in range(40)
    ]
    texts[33] = UNRELATED  # in the second batch of 32
    vectors = await minilm.embed(texts)
    alone = (await minilm.embed([UNRELATED]))[0]
    assert len(vectors) == 40
    assert vectors[33] == pytest.approx(alone, abs=1e-5)
    assert cosine(vectors[0], vectors[1]) > 0.9


async def test_minilm_inference_runs_off_the_event_loop(
    minilm: SentenceTransformerEmbedder,
) -> None:
    texts = [
        f"Exhibit {number}: the deposit is returned after the lease ends." for number in range(200)
    ]
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        vectors = await minilm.embed(texts)
    finally:
        done.set()
        await ticking
    elapsed = time.monotonic() - started
    assert len(vectors) == 200
    # Inference on the loop would leave the ticker one tick at the start and one at the end.
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert len(ticks) >= 20, (len(ticks), elapsed)
    assert max(gaps) < min(0.5, elapsed / 4), (max(gaps), elapsed)


async def test_minilm_dimension_is_known_only_after_load() -> None:
    embedder = SentenceTransformerEmbedder(PACKAGED_MODEL, device="cpu", batch_size=8)
    with pytest.raises(EmbeddingError, match=r"await embedder\.load\(\)"):
        _ = embedder.dimension
    await embedder.aclose()
    with pytest.raises(EmbeddingError, match="closed"):
        await embedder.embed(["too late"])


async def test_unknown_local_model_is_a_clear_error(tmp_path: Path) -> None:
    embedder = SentenceTransformerEmbedder(
        str(tmp_path / "no-such-model"), device="cpu", batch_size=8
    )
    try:
        with pytest.raises(EmbeddingError, match="cannot load embedding model"):
            await embedder.load()
    finally:
        await embedder.aclose()


# Hashing (lexical)


async def test_hashing_is_deterministic_normalised_and_honours_dimension() -> None:
    embedder = HashingEmbedder(256)
    assert embedder.dimension == 256
    assert embedder.model_name == "hashing-v1"
    first = await embedder.embed([ORIGINAL, UNRELATED])
    again = await HashingEmbedder(256).embed([ORIGINAL, UNRELATED])
    assert first == again
    for vector in first:
        assert len(vector) == 256
        assert norm(vector) == pytest.approx(1.0, abs=1e-9)
    assert first[0] != first[1]
    assert len((await HashingEmbedder(7).embed(["x"]))[0]) == 7
    assert await embedder.embed([]) == []


def test_hashing_is_identical_in_another_process() -> None:
    """The hash is stable (not Python's salted hash()): workers and API agree on vectors."""
    script = (
        "import json; from lexintel_core.embeddings import HashingEmbedder; "
        f"print(json.dumps(HashingEmbedder(64).embed_one({ORIGINAL!r})))"
    )
    # This process runs with a random hash seed (pytest does not fix it), the child with 12345.
    output = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout
    assert json.loads(output) == HashingEmbedder(64).embed_one(ORIGINAL)


async def test_hashing_scores_similar_texts_higher() -> None:
    embedder = HashingEmbedder(384)
    original, similar, unrelated = await embedder.embed(
        [
            "The tenant shall pay the rent monthly to the landlord",
            "The tenants must pay their rent to the landlord every month",
            "The court dismissed the appeal for lack of jurisdiction",
        ]
    )
    assert cosine(original, similar) > cosine(original, unrelated) + 0.2


@pytest.mark.parametrize("text", ["", "   ", "!?…—.,;", "\n\t"])
async def test_hashing_gives_a_fixed_unit_vector_for_text_without_words(text: str) -> None:
    embedder = HashingEmbedder(128)
    (vector,) = await embedder.embed([text])
    assert all(math.isfinite(value) for value in vector)
    assert norm(vector) == pytest.approx(1.0)
    assert vector == embedder.embed_one("")


def test_hashing_rejects_a_bad_dimension() -> None:
    with pytest.raises(EmbeddingError):
        HashingEmbedder(0)


# OpenAI-compatible endpoint, against a real local HTTP server


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeEmbeddingsServer:
    """A real HTTP server speaking the /v1/embeddings API. Vectors are (scaled, so the client
    must normalise) hashing vectors of the inputs; `replies` are served first, in order."""

    url: str = ""
    dimension: int = 16
    shuffle: bool = True
    replies: list[Reply] = field(default_factory=list)
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        with self.lock:
            self.requests.append((headers, body))
            if self.replies:
                return self.replies.pop(0)
        hashing = HashingEmbedder(self.dimension)
        data = [
            {
                "object": "embedding",
                "index": index,
                "embedding": [3 * x for x in hashing.embed_one(text)],
            }
            for index, text in enumerate(body["input"])
        ]
        if self.shuffle:
            random.Random(len(self.requests)).shuffle(data)
        return Reply(200, {"object": "list", "data": data, "model": body["model"]})


@pytest.fixture
def server() -> Iterator[FakeEmbeddingsServer]:
    fake = FakeEmbeddingsServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            assert self.path == "/v1/embeddings"
            reply = fake.answer({k.lower(): v for k, v in self.headers.items()}, body)
            # A str body goes out as plain text (proxies answer errors that way).
            raw = isinstance(reply.body, str)
            payload = (reply.body if raw else json.dumps(reply.body)).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/plain" if raw else "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1/"
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
async def make_openai() -> AsyncIterator[Callable[..., OpenAIEmbedder]]:
    """Builds OpenAIEmbedders with fast retries; closes them afterwards."""
    created: list[OpenAIEmbedder] = []

    def make(url: str, **overrides: Any) -> OpenAIEmbedder:
        options: dict[str, Any] = {
            "base_url": url,
            "api_key": "sk-test",
            "model": "text-embedding-test",
            "dimension": 16,
            "batch_size": 4,
            "max_retries": 3,
            "timeout": 5.0,
            "backoff_base": 0.001,
        }
        embedder = OpenAIEmbedder(**(options | overrides))
        created.append(embedder)
        return embedder

    yield make
    for embedder in created:
        await embedder.aclose()


async def test_openai_batches_orders_and_normalises(
    server: FakeEmbeddingsServer, make_openai: Callable[..., OpenAIEmbedder]
) -> None:
    embedder = make_openai(server.url)
    texts = [f"clause {number} of the lease" for number in range(10)]
    vectors = await embedder.embed(texts)

    assert len(server.requests) == math.ceil(10 / 4)
    assert [body["input"] for _, body in server.requests] == [texts[0:4], texts[4:8], texts[8:10]]
    for headers, body in server.requests:
        assert body["model"] == "text-embedding-test"
        assert headers["authorization"] == "Bearer sk-test"
    expected = [HashingEmbedder(16).embed_one(text) for text in texts]
    assert len(vectors) == 10
    for vector, wanted in zip(vectors, expected, strict=True):
        assert vector == pytest.approx(wanted, abs=1e-9)  # in order, and normalised again
    assert await embedder.embed([]) == []
    assert len(server.requests) == 3


async def test_openai_without_key_sends_no_authorization(
    server: FakeEmbeddingsServer, make_openai: Callable[..., OpenAIEmbedder]
) -> None:
    await make_openai(server.url, api_key=None).embed(["x"])
    assert "authorization" not in server.requests[0][0]


async def test_openai_retries_429_honouring_retry_after(
    server: FakeEmbeddingsServer, make_openai: Callable[..., OpenAIEmbedder]
) -> None:
    server.replies.append(
        Reply(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "0"})
    )
    # A 10 s backoff would be used if Retry-After: 0 were ignored.
    embedder = make_openai(server.url, backoff_base=10.0)
    started = time.monotonic()
    vectors = await embedder.embed(["the tenant", "the landlord"])
    assert time.monotonic() - started < 2
    assert len(server.requests) == 2
    assert vectors[0] == pytest.approx(HashingEmbedder(16).embed_one("the tenant"))


async def test_openai_retries_plain_text_502_with_http_date_retry_after(
    server: FakeEmbeddingsServer, make_openai: Callable[..., OpenAIEmbedder]
) -> None:
    server.replies.append(
        Reply(502, "Bad Gateway from the proxy", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    )
    server.replies.append(Reply(502, "Bad Gateway from the proxy"))
    embedder = make_openai(server.url, max_retries=1)
    with pytest.raises(RetryableError, match="HTTP 502: Bad Gateway from the proxy"):
        await embedder.embed(["anything"])
    assert len(server.requests) == 2


async def test_openai_waits_a_long_retry_after_only_up_to_the_cap(
    server: FakeEmbeddingsServer, make_openai: Callable[..., OpenAIEmbedder]
) -> None:
    server.replies.append(Reply(503, {"error": "overloaded"}, {"Retry-After": "3600"}))
    embedder = make_openai(server.url, backoff_max=0.5)
    started = time.monotonic()
    await embedder.embed(["anything"])
    # The backoff alone would have waited 0.001-0.002 s.
    assert 0.5 <= time.monotonic() - started < 5
    assert len(server.requests) == 2


async def test_openai_persistent_503_becomes_retryable_error(
    server: FakeEmbeddingsServer, make_openai: Callable[..., OpenAIEmbedder]
) -> None:
    server.replies += [Reply(503, {"error": "model is loading"}) for _ in range(10)]
    embedder = make_openai(server.url, max_retries=2)
    with pytest.raises(RetryableError) as raised:
        await embedder.embed(["anything"])
    assert len(server.requests) == 3  # first try + 2 retries
    assert raised.value.code is FailureCode.TRANSIENT
    assert "failed 3 times" in raised.value.message
    assert "HTTP 503: model is loading" in raised.value.message


async def test_openai_401_fails_at_once_with_the_server_message(
    server: FakeEmbeddingsServer, make_openai: Callable[..., OpenAIEmbedder]
) -> None:
    server.replies.append(Reply(401, {"error": {"message": "Incorrect API key provided"}}))
    with pytest.raises(EmbeddingError) as raised:
        await make_openai(server.url).embed(["anything"])
    assert len(server.requests) == 1
    assert "HTTP 401" in raised.value.message
    assert "Incorrect API key provided" in raised.value.message
    assert "sk-test" not in str(raised.value)
    assert not isinstance(raised.value, RetryableError)


async def test_openai_wrong_dimension_is_an_embedding_error(
    server: FakeEmbeddingsServer, make_openai: Callable[..., OpenAIEmbedder]
) -> None:
    server.dimension = 24
    with pytest.raises(EmbeddingError, match=r"returned 24-dimensional vectors, but 16"):
        await make_openai(server.url).embed(["anything"])


async def test_openai_malformed_answers_are_embedding_errors(
    server: FakeEmbeddingsServer, make_openai: Callable[..., OpenAIEmbedder]
) -> None:
    server.replies += [
        Reply(200, {"unexpected": True}),
        Reply(200, {"data": [{"index": 0, "embedding": [1.0] * 16}]}),  # 1 vector for 2 texts
        Reply(200, {"data": [{"index": 0, "embedding": [0.0] * 16}]}),
    ]
    embedder = make_openai(server.url)
    with pytest.raises(EmbeddingError, match="malformed answer"):
        await embedder.embed(["a"])
    with pytest.raises(EmbeddingError, match="returned 1 vectors for 2 inputs"):
        await embedder.embed(["a", "b"])
    with pytest.raises(EmbeddingError, match="zero"):
        await embedder.embed(["a"])


async def test_openai_unreachable_endpoint_is_retryable(
    make_openai: Callable[..., OpenAIEmbedder],
) -> None:
    embedder = make_openai(f"http://127.0.0.1:{free_port()}/v1", max_retries=1)
    with pytest.raises(RetryableError, match="failed 2 times; last error: ConnectError"):
        await embedder.embed(["anything"])


# Factory


def settings_with(provider: EmbeddingProviderName, **overrides: Any) -> Settings:
    return Settings(_env_file=None, embedding_provider=provider, **overrides)


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ("hashing", HashingEmbedder),
        ("sentence-transformers", SentenceTransformerEmbedder),
        ("auto", SentenceTransformerEmbedder),  # the semantic extra is installed here
    ],
)
async def test_create_embedder_picks_the_provider(
    provider: EmbeddingProviderName, expected: type[Embedder]
) -> None:
    embedder = create_embedder(settings_with(provider, embedding_dimension=384))
    try:
        assert isinstance(embedder, expected)
        assert embedder.model_name in {"hashing-v1", f"{PACKAGED_MODEL}+onnx-int8"}
    finally:
        await embedder.aclose()


async def test_create_embedder_openai_connects_to_nothing(server: FakeEmbeddingsServer) -> None:
    embedder = create_embedder(
        settings_with(
            "openai",
            openai_base_url=server.url,
            openai_api_key="sk-test",
            embedding_model="nomic-embed-text",
            embedding_dimension=16,
        )
    )
    try:
        assert isinstance(embedder, OpenAIEmbedder)
        assert (embedder.model_name, embedder.dimension) == ("nomic-embed-text", 16)
        await embedder.load()
        assert server.requests == []
        await embedder.embed(["one"])
        assert server.requests[0][0]["authorization"] == "Bearer sk-test"
    finally:
        await embedder.aclose()


async def test_without_the_semantic_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "semantic_extra_available", lambda model=PACKAGED_MODEL: False)
    fallback = create_embedder(settings_with("auto", embedding_dimension=384))
    assert isinstance(fallback, HashingEmbedder)
    assert fallback.dimension == 384
    with pytest.raises(EmbeddingError) as raised:
        create_embedder(settings_with("sentence-transformers"))
    assert "pip install 'lexintel[semantic]'" in raised.value.message
    assert "torch==2.13.0" in raised.value.message


# Start-up check against the real database (its column is vector(384))


async def test_check_embedding_dimension(
    engine: AsyncEngine, minilm: SentenceTransformerEmbedder
) -> None:
    await check_embedding_dimension(engine, minilm)
    await check_embedding_dimension(engine, HashingEmbedder(384))
    with pytest.raises(EmbeddingError) as raised:
        await check_embedding_dimension(engine, HashingEmbedder(768))
    message = raised.value.message
    assert "384-dimensional" in message
    assert "hashing-v1 produces 768" in message
    assert "LEXINTEL_EMBEDDING_DIMENSION" in message
