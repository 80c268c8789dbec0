"""The ONNX Runtime backends of the packaged MiniLM: the same vectors as torch (fp32) or close
to them (int8), exported once into a cache that concurrent or crashed exports cannot corrupt.

The real export runs once per test session (about 20 s per backend), into a temporary cache.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from lexintel_core import embeddings, onnx_models
from lexintel_core.embeddings import (
    PACKAGED_MODEL,
    EmbeddingError,
    SentenceTransformerEmbedder,
    create_embedder,
    embedding_backend,
)
from lexintel_core.settings import EmbeddingBackend, Settings

pytest.importorskip("onnxruntime", reason="the semantic extra (onnxruntime) is not installed")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def legal_texts() -> list[str]:
    """Real legal sentences and pages: the legal corpus's queries and its documents' pages."""
    corpus = json.loads((FIXTURES / "legal_corpus.json").read_text(encoding="utf-8"))
    queries = [str(query["query"]) for query in corpus["queries"][:40]]
    pages = [str(page) for document in corpus["documents"][:8] for page in document["pages"]]
    return queries + pages


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def torch_vectors() -> list[list[float]]:
    import asyncio

    async def embed() -> list[list[float]]:
        embedder = SentenceTransformerEmbedder(PACKAGED_MODEL, device="cpu", batch_size=32)
        try:
            return await embedder.embed(legal_texts())
        finally:
            await embedder.aclose()

    return asyncio.run(embed())


async def _loaded(backend: EmbeddingBackend, cache: Path) -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder(
        PACKAGED_MODEL, device="cpu", batch_size=16, backend=backend, onnx_cache=cache
    )
    await embedder.load()
    return embedder


@pytest.fixture
async def onnx_fp32(onnx_cache: Path) -> AsyncIterator[SentenceTransformerEmbedder]:
    embedder = await _loaded("onnx", onnx_cache)  # exports on the session's first use
    yield embedder
    await embedder.aclose()


@pytest.fixture
async def onnx_int8(onnx_cache: Path) -> AsyncIterator[SentenceTransformerEmbedder]:
    embedder = await _loaded("onnx-int8", onnx_cache)
    yield embedder
    await embedder.aclose()


async def test_fp32_onnx_gives_torchs_vectors(
    onnx_fp32: SentenceTransformerEmbedder, torch_vectors: list[list[float]]
) -> None:
    vectors = await onnx_fp32.embed(legal_texts())
    assert onnx_fp32.dimension == 384
    assert min(map(cosine, vectors, torch_vectors)) >= 0.9999
    for vector in vectors:
        assert math.fsum(v * v for v in vector) == pytest.approx(1.0, abs=1e-5)
    # The same vectors: stored under the same model name, so they mix with torch's.
    assert onnx_fp32.model_name == PACKAGED_MODEL


async def test_int8_onnx_is_close_to_torch_and_named_apart(
    onnx_int8: SentenceTransformerEmbedder, torch_vectors: list[list[float]]
) -> None:
    vectors = await onnx_int8.embed(legal_texts())
    similarities = list(map(cosine, vectors, torch_vectors))
    # Measured: mean 0.993, lowest 0.98 (per-tensor scales gave 0.89).
    assert sum(similarities) / len(similarities) >= 0.99
    assert min(similarities) >= 0.97
    # Approximate vectors: never reused for, or searched with, torch's.
    assert onnx_int8.model_name == f"{PACKAGED_MODEL}+onnx-int8"


async def test_a_second_load_reuses_the_export(
    onnx_fp32: SentenceTransformerEmbedder, onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_models, "export", no_export)
    again = await _loaded("onnx", onnx_cache)
    try:
        assert len((await again.embed(["rent is due monthly"]))[0]) == 384
    finally:
        await again.aclose()


def _fake_export(model_path: Path, destination: Path, *, quantize: bool) -> None:
    destination.write_bytes(b"graph")


def test_a_crashed_export_leaves_nothing_that_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_path = Path(embeddings._resolve_model(PACKAGED_MODEL))

    def crash(model_path: Path, destination: Path, *, quantize: bool) -> None:
        destination.write_bytes(b"half a gr")
        raise OSError("disk full")

    monkeypatch.setattr(onnx_models, "export", crash)
    with pytest.raises(OSError, match="disk full"):
        onnx_models.cached_export(model_path, tmp_path, model_name=PACKAGED_MODEL, quantize=False)
    assert list(tmp_path.iterdir()) == []  # no final folder, no temporary left behind
    # A temporary folder left by a killed process is not taken for an export either.
    label = f"{PACKAGED_MODEL}-{onnx_models.fingerprint(model_path, quantize=False)}"
    (tmp_path / f".{label}.killed").mkdir()
    (tmp_path / f".{label}.killed" / onnx_models.MODEL_FILE).write_bytes(b"half")
    monkeypatch.setattr(onnx_models, "export", _fake_export)
    onnx_file = onnx_models.cached_export(
        model_path, tmp_path, model_name=PACKAGED_MODEL, quantize=False
    )
    assert onnx_file == tmp_path / label / onnx_models.MODEL_FILE
    assert onnx_file.read_bytes() == b"graph"


def test_a_concurrent_export_that_finished_first_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_path = Path(embeddings._resolve_model(PACKAGED_MODEL))
    label = f"{PACKAGED_MODEL}-int8-{onnx_models.fingerprint(model_path, quantize=True)}"

    def slower(model_path: Path, destination: Path, *, quantize: bool) -> None:
        (tmp_path / label).mkdir()  # the other worker renames its export into place
        (tmp_path / label / onnx_models.MODEL_FILE).write_bytes(b"theirs")
        destination.write_bytes(b"ours")

    monkeypatch.setattr(onnx_models, "export", slower)
    onnx_file = onnx_models.cached_export(
        model_path, tmp_path, model_name=PACKAGED_MODEL, quantize=True
    )
    assert onnx_file.read_bytes() == b"theirs"
    assert [path.name for path in tmp_path.iterdir()] == [label]


def test_the_fingerprint_follows_the_model_files_and_the_quantization(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    first = onnx_models.fingerprint(model, quantize=False)
    assert onnx_models.fingerprint(model, quantize=True) != first
    (model / "config.json").write_text('{"hidden_size": 8}')
    assert onnx_models.fingerprint(model, quantize=False) != first


def test_a_model_other_than_mean_pooling_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_Pooling").mkdir()
    modules = [
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    with pytest.raises(ValueError, match="mean Pooling"):
        onnx_models.cached_export(tmp_path, tmp_path / "cache", model_name="x", quantize=False)


# Settings


def test_the_backend_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEXINTEL_EMBEDDING_BACKEND", "onnx-int8")
    assert Settings(_env_file=None).embedding_backend == "onnx-int8"
    monkeypatch.setenv("LEXINTEL_EMBEDDING_BACKEND", "tensorrt")
    with pytest.raises(ValidationError, match="torch"):
        Settings(_env_file=None)
    monkeypatch.setenv("LEXINTEL_EMBEDDING_BACKEND", "onnx")
    monkeypatch.setenv("LEXINTEL_EMBEDDING_DEVICE", "cuda")
    with pytest.raises(ValidationError, match="CPU only"):
        Settings(_env_file=None)


def test_the_default_backend_is_the_one_the_measurement_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docs/BENCHMARKS.md, "Embedding backends": the fastest backend within 1 point of
    # torch's R@5 on the retrieval evaluation, for the packaged model on the CPU.
    settings = Settings(_env_file=None, embedding_provider="sentence-transformers")
    assert settings.embedding_backend == "auto"
    assert embedding_backend(settings) == "onnx-int8"
    embedder = create_embedder(settings)
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.backend == "onnx-int8"
    assert embedder.model_name == "all-MiniLM-L6-v2+onnx-int8"
    # Not measured, so torch: a GPU, another model, no onnxruntime.
    assert embedding_backend(settings.model_copy(update={"embedding_device": "cuda"})) == "torch"
    assert embedding_backend(settings.model_copy(update={"embedding_model": "org/other"})) == (
        "torch"
    )
    monkeypatch.setattr(embeddings, "onnx_runtime_available", lambda: False)
    assert embedding_backend(settings) == "torch"
    assert embedding_backend(settings.model_copy(update={"embedding_backend": "onnx"})) == "onnx"


def test_onnx_without_onnxruntime_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "onnx_runtime_available", lambda: False)
    settings = Settings(
        _env_file=None, embedding_provider="sentence-transformers", embedding_backend="onnx"
    )
    with pytest.raises(EmbeddingError, match="needs onnxruntime"):
        create_embedder(settings)


def test_create_embedder_caches_exports_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        embedding_provider="sentence-transformers",
        embedding_backend="onnx-int8",
        data_dir=tmp_path,
    )
    embedder = create_embedder(settings)
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.backend == "onnx-int8"
    assert embedder.onnx_cache == tmp_path / "onnx"
