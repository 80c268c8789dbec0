"""All configuration, read from `LEXINTEL_*` environment variables and `.env`.

The defaults point at the embedded servers that `lexintel dev` starts (PostgreSQL with
pgvector on 127.0.0.1:5433, a Redis-compatible server on 127.0.0.1:6380, data under
`./.lexintel/`), so nothing needs configuring on a developer machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, NonNegativeInt, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EmbeddingProviderName = Literal["auto", "hashing", "sentence-transformers", "openai"]
EmbeddingBackend = Literal["torch", "onnx", "onnx-int8"]
# "auto": onnx-int8 for the packaged model on the CPU (the fastest backend within 1 point of
# torch's R@5, docs/BENCHMARKS.md), torch otherwise.
EmbeddingBackendSetting = Literal["auto", "torch", "onnx", "onnx-int8"]
BlobBackend = Literal["postgres", "filesystem"]
PdfEngineName = Literal["auto", "pypdf", "pypdfium2"]
OcrMode = Literal["auto", "off", "force"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEXINTEL_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Services
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5433/lexintel"
    redis_url: str = "redis://127.0.0.1:6380/0"
    data_dir: Path = Path(".lexintel")
    database_pool_size: int = Field(default=10, ge=1)

    # Database sessions (lexintel_core/db.py). TCP keepalive on the server side: PostgreSQL
    # drops the session of a client host that stopped answering (power loss, network cut)
    # after idle + interval x count seconds, with its transaction and locks, instead of the
    # kernel's ~2 h. A statement running longer, or a transaction left idle longer, than its
    # limit is cancelled by the server (0: no limit); the client stops waiting for a
    # statement 10 s after its limit (a database host that died answers nothing).
    database_keepalive_idle_seconds: int = Field(default=30, ge=1)
    database_keepalive_interval_seconds: int = Field(default=10, ge=1)
    database_keepalive_count: int = Field(default=3, ge=1)
    database_statement_timeout_seconds: float = Field(default=300.0, ge=0)
    database_idle_in_transaction_timeout_seconds: float = Field(default=60.0, ge=0)

    # Blob storage: PostgreSQL (default, readable from any machine) or a shared filesystem.
    blob_backend: BlobBackend = "postgres"
    blob_dir: Path | None = None  # default: <data_dir>/blobs
    blob_chunk_bytes: int = Field(default=1024 * 1024, ge=4096)

    # Embeddings. "auto" picks sentence-transformers when the `semantic` extra is installed,
    # otherwise the lexical hashing embedder.
    embedding_provider: EmbeddingProviderName = "auto"
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_dimension: int = Field(default=384, ge=1, le=16000)
    embedding_device: str = "cpu"
    # What runs a sentence-transformers model: torch, or ONNX Runtime on the CPU (exported
    # once into <data_dir>/onnx), in fp32 or int8 (docs/BENCHMARKS.md, "Embedding backends").
    embedding_backend: EmbeddingBackendSetting = "auto"
    embedding_batch_size: int = Field(default=32, ge=1)
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None

    # Chunking, in tokens of the embedding model (approximated by chunking.count_tokens). 224
    # leaves MiniLM's 256-token window room for its special tokens and estimate error.
    chunk_size_tokens: int = Field(default=224, ge=16)
    chunk_overlap_tokens: int = Field(default=32, ge=0)

    # Search: reciprocal-rank fusion constant and list weights for HYBRID, candidates each
    # list contributes, and the HNSW search breadth (recall versus speed). k and the weights
    # were tuned on tests/core/test_search_quality.py (legal corpus and court filings): MRR@10
    # 0.662 against 0.605 with the common k = 60 and equal weights (docs/BENCHMARKS.md).
    search_rrf_k: int = Field(default=3, ge=1)
    search_semantic_weight: float = Field(default=1.5, ge=0)
    search_keyword_weight: float = Field(default=1.0, ge=0)
    search_candidates: int = Field(default=50, ge=1, le=1000)
    search_ef_search: int = Field(default=100, ge=1, le=1000)
    # KEYWORD: BM25's term-frequency saturation k1 and length normalization b; a query word
    # in more than this share of the organization's chunks (and more than the depth) is
    # common: it only re-ranks the `search_common_depth` best chunks the rarer words found.
    search_bm25_k1: float = Field(default=1.2, ge=0)
    search_bm25_b: float = Field(default=0.75, ge=0, le=1)
    search_common_term_share: float = Field(default=0.05, gt=0, le=1)
    search_common_depth: int = Field(default=200, ge=1, le=10000)
    # Across a whole organization, BM25 reads at most this many postings per query word:
    # those of highest impact (tf against chunk length). Exact for a word in fewer chunks.
    search_term_depth: int = Field(default=1000, ge=1, le=100000)
    # Snippets: also compare each sentence of a hit with the query by embedding (one batch of
    # sentences per page of results; SEMANTIC and HYBRID), not only by the words it shares.
    search_snippet_similarity: bool = True

    # How long a Redis command keeps reconnecting through an outage (a restart, a failover)
    # before it fails; workers and the API wait instead of crashing or erroring at once.
    redis_retry_seconds: float = Field(default=60.0, ge=0)
    # Noticing a dead Redis connection (a host gone, packets dropped: no reset ever comes),
    # on every client (lexintel_core/connections.py). A TCP connect gives up after the
    # connect timeout; the kernel closes a connection whose sent data stays unacknowledged
    # for `redis_timeout_seconds` (TCP_USER_TIMEOUT, Linux), or that stops answering the
    # keepalive probes it gets after `redis_keepalive_seconds` idle (3, a third of that
    # apart); a command then reconnects and retries as above. The API's progress hub PINGs
    # its Pub/Sub connection after `redis_health_check_seconds` without a message and
    # replaces it when no reply comes within `redis_timeout_seconds` (so it notices within
    # the sum of the two); while Redis is unreachable it tries a new one every second or
    # so, each attempt given twice the connect timeout.
    redis_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    redis_timeout_seconds: float = Field(default=5.0, gt=0)
    redis_keepalive_seconds: int = Field(default=15, ge=3)
    redis_health_check_seconds: float = Field(default=2.0, gt=0)
    # `/readyz` and `lexintel worker --check` give each dependency this long to answer, all
    # at once, then answer (503, or exit 1, naming each that did not): a probe with a 2 s
    # timeout gets its answer. Each is asked once, without the retries above (Redis on a
    # connection of its own).
    readiness_timeout_seconds: float = Field(default=1.5, gt=0)

    # Uploads and jobs
    max_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    max_upload_files: int = Field(default=20, ge=1)
    # Uploads while they stream in (each file part is cut off at max_upload_bytes): new
    # uploads are refused (503) while the API's temp directory ($TMPDIR, where file parts
    # are spooled) has less free space than this, and (429) while the organization already
    # has this many in flight on all API processes together (counted in Redis).
    api_min_free_temp_bytes: int = Field(default=1024 * 1024 * 1024, ge=0)
    api_max_concurrent_uploads_per_org: int = Field(default=10, ge=1)
    job_timeout_seconds: float = Field(default=900.0, gt=0)
    extract_timeout_seconds: float = Field(default=120.0, gt=0)
    # A parser child process needs ~60 MB of address space before it reads anything.
    extract_memory_limit_mb: int = Field(default=1024, ge=256)
    # "auto": pypdfium2 when the `pdfium` extra is installed (about 14x faster on the sample
    # corpus), else pypdf, which is always installed.
    pdf_engine: PdfEngineName = "auto"
    # A page whose text layer (or converter output) takes longer than this is recorded as a
    # failed page and the extraction goes on with the next one in a fresh child process.
    extract_page_timeout_seconds: float = Field(default=30.0, gt=0)
    # OCR with Tesseract: "auto" reads pages whose text layer has no body text but which carry
    # images; "force" OCRs every page and uses the OCR text instead of the text layer; "off".
    ocr: OcrMode = "auto"
    ocr_languages: str = Field(default="eng", pattern=r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")
    # 200 dpi read court filings as well as 300 in two thirds of the time (docs/BENCHMARKS.md).
    ocr_dpi: int = Field(default=200, ge=72, le=600)
    # Tesseract processes at once per document (pages in parallel); each is single-threaded.
    # A document's second and later ones each need one of the worker's slots, one per CPU
    # (the Extractor's), so documents at once do not multiply them.
    ocr_jobs: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # One page's OCR; each OCR'd page also adds this much to the document's time limit.
    ocr_page_timeout_seconds: float = Field(default=60.0, gt=0)
    retry_delays_seconds: list[float] = Field(default_factory=lambda: [60.0, 120.0, 240.0])
    retry_jitter: float = Field(default=0.1, ge=0, le=1)
    worker_concurrency: int = Field(default=4, ge=1)
    worker_heartbeat_seconds: float = Field(default=10.0, gt=0)
    worker_takeover_seconds: float = Field(default=30.0, gt=0)
    worker_shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    # An unfinished document untouched this long with no job in Redis (Redis lost its data,
    # or the upload could not reach it) is queued again by the workers.
    recovery_after_seconds: float = Field(default=60.0, gt=0)
    # Serve the worker's Prometheus metrics on this port (all interfaces); unset: off.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # API: abuse limits, browser origins, tokens for plain SSE streams.
    api_allowed_origins: list[str] = Field(default_factory=list)
    api_max_query_depth: int = Field(default=10, ge=1)
    api_max_query_tokens: int = Field(default=2000, ge=1)
    api_max_aliases: int = Field(default=15, ge=1)
    api_max_subscriptions_per_connection: int = Field(default=50, ge=1)
    api_connection_init_timeout_seconds: float = Field(default=5.0, gt=0)
    api_legacy_graphql_ws: bool = False
    # Schema introspection (GraphiQL's docs and autocomplete) for holders of an API key;
    # false turns it off for everyone.
    api_introspection: bool = True
    # Signs short-lived SSE stream tokens; every API process must share it. Unset: a random
    # key per process (fine for one process, tokens die with it).
    api_secret_key: SecretStr | None = None
    api_stream_token_ttl_seconds: int = Field(default=300, ge=10)
    # Revocation: the longest a revoked API key keeps working over connections opened before
    # the revoke (WebSocket operations and subscriptions, SSE streams, stream tokens). Each
    # API process re-reads a key in use at most twice per this period.
    api_key_recheck_seconds: float = Field(default=5.0, gt=0)
    # Per-tenant limits, shared by all API processes through Redis (lexintel_api/limits.py).
    # Live progress subscriptions over every transport (WebSocket, GraphQL over SSE,
    # multipart, plain SSE) per organization and per API key; each holds a lease its process
    # renews, so those of a process that died stop counting after the lease.
    api_max_subscriptions_per_organization: int = Field(default=1000, ge=1)
    api_max_subscriptions_per_key: int = Field(default=500, ge=1)
    api_subscription_lease_seconds: float = Field(default=30.0, ge=3)
    # Requests per API key per second (an HTTP request, a WebSocket operation, an SSE stream).
    api_requests_per_key_per_second: int = Field(default=100, ge=1)
    # Failed authentications (unknown or revoked key, bad stream token) allowed from one
    # client address per window; then every authentication from it gets 429 until the window
    # ends.
    api_failed_auth_per_address: int = Field(default=30, ge=1)
    api_failed_auth_window_seconds: int = Field(default=60, ge=1)
    # Reverse proxies (addresses or networks; "*" for any) whose X-Forwarded-For names the
    # client address; empty: the TCP peer is the client. Run uvicorn with --no-proxy-headers
    # (as the shipped commands do) so this setting alone decides.
    api_trusted_proxies: list[str] = Field(default_factory=list)
    # The API's cyclic GC, whose pauses are the tail of progress latency (docs/BENCHMARKS.md):
    # gc.freeze() after start-up keeps the loaded code's objects out of every collection, and
    # higher thresholds than Python's (700, 10, 10) make collections rarer, full ones rare.
    api_gc_freeze: bool = True
    api_gc_threshold: tuple[NonNegativeInt, NonNegativeInt, NonNegativeInt] = (10_000, 50, 100)

    @field_validator("retry_delays_seconds")
    @classmethod
    def _delays_non_negative(cls, value: list[float]) -> list[float]:
        if any(delay < 0 for delay in value):
            raise ValueError("retry delays must be >= 0 seconds")
        return value

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Settings:
        if self.chunk_overlap_tokens >= self.chunk_size_tokens:
            raise ValueError("chunk_overlap_tokens must be smaller than chunk_size_tokens")
        if self.embedding_backend not in ("auto", "torch") and self.embedding_device != "cpu":
            raise ValueError(
                f"embedding_backend {self.embedding_backend} runs on the CPU only: set "
                f"embedding_backend=torch for embedding_device {self.embedding_device}"
            )
        if self.worker_heartbeat_seconds >= self.worker_takeover_seconds:
            raise ValueError(
                "worker_heartbeat_seconds must be smaller than worker_takeover_seconds"
            )
        return self

    @property
    def max_tries(self) -> int:
        """First try plus one per configured retry delay."""
        return len(self.retry_delays_seconds) + 1

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"
