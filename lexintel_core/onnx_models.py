"""A sentence-transformers model run by ONNX Runtime: exported once, cached, optionally int8.

sentence-transformers' own `backend="onnx"` needs optimum-onnx, whose only release requires
transformers < 4.58; so the export is done here, with `torch.onnx.export` of the model's
transformer (eager attention: the SDPA graph carries NaN guards that cost a fifth of the
run time), fused by ONNX Runtime's transformer optimizer (Attention, SkipLayerNormalization,
BiasGelu), and, for `onnx-int8`, dynamically quantized (8-bit weights per output channel,
unsigned: cosine 0.993 to torch on legal text, against 0.990 signed and 0.89 per tensor).
Mean pooling and L2 normalisation run in numpy, with the model's own tokenizer and maximum
sequence length, so the vectors are those of sentence-transformers (fp32: cosine >= 0.9999).

The export is cached under `<data_dir>/onnx/<model>-<fingerprint>/model.onnx`; the
fingerprint covers the model's files, the export code's version, the quantization and the
onnxruntime version (its optimizer writes the graph). An export is written into a temporary
folder beside it and renamed into place in one step, so concurrent workers never read half an
export: the first rename wins, the others discard theirs.

Only models made of a Transformer, mean Pooling and Normalize (the packaged MiniLM) are
supported; others raise `ValueError` (use the torch backend).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

# Bump when the exported graph changes (export options, optimization, quantization).
EXPORT_VERSION = "2"
MODEL_FILE = "model.onnx"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_SUPPORTED_MODULES = [
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _check_supported(model_path: Path) -> None:
    try:
        modules = json.loads((model_path / "modules.json").read_text(encoding="utf-8"))
        types = [str(module["type"]) for module in modules]
        pooling_path = model_path / str(modules[1]["path"]) / "config.json"
        pooling = json.loads(pooling_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"{model_path} is not a local sentence-transformers model: {exc}") from exc
    mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
        value
        for key, value in pooling.items()
        if key.startswith("pooling_mode_") and "mean_tokens" not in key
    )
    if types != _SUPPORTED_MODULES or not mean_only:
        raise ValueError(
            f"the ONNX backends run Transformer + mean Pooling + Normalize models only; "
            f"{model_path} has {types} with pooling {pooling}"
        )


def fingerprint(model_path: Path, *, quantize: bool) -> str:
    """16 hex digits over the model's files (names and contents), the export version, the
    quantization and the onnxruntime version."""
    import onnxruntime

    digest = hashlib.sha256(f"{EXPORT_VERSION}\0{quantize}\0{onnxruntime.__version__}\0".encode())
    for path in sorted(p for p in model_path.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(model_path)).encode() + b"\0")
        with path.open("rb") as file:
            while block := file.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:16]


def cached_export(model_path: Path, cache_root: Path, *, model_name: str, quantize: bool) -> Path:
    """The cached ONNX file for the model, exported (and quantized) first if absent.

    Raises `ValueError` for an unsupported model; export errors propagate."""
    _check_supported(model_path)
    label = _UNSAFE.sub("_", model_name.rsplit("/", 1)[-1]) + ("-int8" if quantize else "")
    target = cache_root / f"{label}-{fingerprint(model_path, quantize=quantize)}"
    if (target / MODEL_FILE).is_file():
        return target / MODEL_FILE
    cache_root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    workspace = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_root))
    try:
        export(model_path, workspace / MODEL_FILE, quantize=quantize)
        try:
            workspace.rename(target)
        except OSError:
            if not (target / MODEL_FILE).is_file():
                raise
            # Another process renamed its export into place first: use that one.
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    logger.info("exported %s to ONNX in %.1f s: %s", model_name, time.monotonic() - started, target)
    return target / MODEL_FILE


def export(model_path: Path, destination: Path, *, quantize: bool) -> None:
    """Write the model's transformer as an optimized (and, with `quantize`, int8) ONNX graph
    to `destination`; intermediate files go beside it. Needs torch and transformers."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    sample = tokenizer(
        ["an example", "a longer example sentence"], padding=True, return_tensors="pt"
    )

    class _LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            output: torch.Tensor = self.model(**dict(zip(_INPUTS, inputs, strict=True)))[0]
            return output

    plain = destination.with_name("plain.onnx")
    axes = {"batch": 0, "sequence": 1}
    # The TorchScript exporter: torch.export's needs onnxscript, and ONNX Runtime's optimizer
    # knows this graph's patterns. It warns that it is deprecated, and traces with warnings.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(),
            tuple(sample[name] for name in _INPUTS),
            str(plain),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes={
                name: {v: k for k, v in axes.items()} for name in [*_INPUTS, "last_hidden_state"]
            },
            opset_version=17,
            dynamo=False,
        )
    optimized = optimize_model(
        str(plain),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
    )
    if not quantize:
        optimized.save_model_to_file(str(destination))
        return
    fused = destination.with_name("fused.onnx")
    optimized.save_model_to_file(str(fused))
    quantize_dynamic(
        fused,
        destination,
        weight_type=QuantType.QUInt8,
        per_channel=True,
        # The fused operators are outside ONNX's shape inference: their outputs are floats.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


class OnnxSentenceEncoder:
    """Tokenizer + ONNX Runtime session (all cores) + mean pooling + L2 normalisation.

    `encode(texts)` returns a float32 array of shape (len(texts), dimension) whose rows have
    length 1; texts longer than the model's maximum sequence length are truncated, as
    sentence-transformers does.
    """

    def __init__(self, onnx_file: Path, model_path: Path, *, threads: int | None = None) -> None:
        import onnxruntime
        from transformers import AutoTokenizer

        self._tokenizer: Any = AutoTokenizer.from_pretrained(model_path)
        config = json.loads((model_path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self._max_length = int(config.get("max_seq_length") or self._tokenizer.model_max_length)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        self._session = onnxruntime.InferenceSession(
            str(onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {item.name for item in self._session.get_inputs()}
        self.dimension = int(self._session.get_outputs()[0].shape[-1])

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        encoded = self._tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self._max_length,
            return_tensors="np",
        )
        feeds = {name: encoded[name].astype(np.int64) for name in _INPUTS if name in self._inputs}
        hidden: npt.NDArray[np.float32] = self._session.run(None, feeds)[0]
        mask = encoded["attention_mask"][..., None].astype(np.float32)
        summed = (hidden * mask).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: npt.NDArray[np.float32] = pooled / np.clip(norms, 1e-12, None)
        return vectors
