"""A sentence-transformer as an int8 ONNX Runtime model, for embedding on CPUs.

The model folder (a sentence-transformers folder: a BERT-like transformer, mean or CLS
pooling, normalisation) is exported to ONNX once with torch, each layer's attention, layer
norms and GELU fused into ONNX Runtime's own operators, its weights quantised to int8
(dynamic, per channel) with ONNX Runtime, and the result kept under CURATE_HOME/onnx by the
folder's files and this module's version: no download, and no export on later runs. Texts
are tokenised with the folder's own fast tokenizer, sorted by length and batched, each batch
padded to its own longest text only (padding is most of the work otherwise). Dynamic int8
takes its activation scales from a whole batch, so a text's vector moves slightly with its
batch-mates (cosine 0.99 or more; length-sorted batches keep them alike).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import RecipeError
from curate.records import stable_hash

EXPORT_VERSION = "2"  # bump when the exported graph or its quantisation changes
OPSET = 17


def available() -> bool:
    """Whether ONNX Runtime is installed (the fast CPU path needs it)."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


class OnnxEncoder:
    """Unit-length embeddings from an int8 ONNX export of a sentence-transformers folder."""

    def __init__(self, folder: str, max_tokens: int, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder).expanduser()
        if not (self.folder / "tokenizer.json").is_file():
            raise RecipeError(
                f"decontaminate.semantic.model: {folder} has no tokenizer.json (the int8 path "
                "needs a local sentence-transformers folder; engine: torch takes a Hub id)"
            )
        self.pooling = pooling_mode(self.folder)
        self.max_tokens = min(max_tokens, model_max_tokens(self.folder))
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's choice (all cores)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(quantised_model(self.folder)), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(texts)
        order = np.argsort([len(e.ids) for e in encoded], kind="stable")
        out = np.empty((len(texts), self.dimension()), np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._batch([encoded[r] for r in rows])
        return out

    def dimension(self) -> int:
        shape = self.session.get_outputs()[0].shape
        return int(shape[-1])

    def _batch(self, encoded: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encoded)
        ids = np.zeros((len(encoded), width), np.int64)
        mask = np.zeros((len(encoded), width), np.int64)
        for row, item in enumerate(encoded):
            ids[row, : len(item.ids)] = item.ids
            mask[row, : len(item.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feed)[0]
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, 1e-12), np.float32)


def pooling_mode(folder: Path) -> str:
    """mean or cls, as the folder's pooling module says (mean where it says nothing)."""
    for config in folder.glob("*_Pooling/config.json"):
        settings = json.loads(config.read_text(encoding="utf-8"))
        if settings.get("pooling_mode_cls_token"):
            return "cls"
        if not settings.get("pooling_mode_mean_tokens", True):
            raise RecipeError(
                f"{config}: only mean or CLS pooling has an int8 path; use engine: torch"
            )
    return "mean"


def model_max_tokens(folder: Path) -> int:
    """The longest input the sentence-transformer reads (its own setting, else 512)."""
    path = folder / "sentence_bert_config.json"
    if path.is_file():
        return int(json.loads(path.read_text(encoding="utf-8")).get("max_seq_length", 512))
    return 512


def quantised_model(folder: Path) -> Path:
    """The int8 ONNX file for a folder, made once and kept by the folder's files."""
    target = onnx_cache() / folder_key(folder) / "model.int8.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    plain = target.with_name(f"model.{os.getpid()}.onnx")
    quantised = target.with_name(f"model.int8.{os.getpid()}.onnx")
    try:
        with quiet():  # the exporter's and the quantiser's advice is not the user's to read
            export(folder, plain)
            fused = fuse(plain, folder)
            quantise(fused or plain, quantised)
        quantised.replace(target)  # whole or not at all: another process may be reading
    finally:
        fused_file = plain.with_suffix(".fused.onnx")
        for leftover in (plain, quantised, plain.with_suffix(".onnx.data"), fused_file):
            leftover.unlink(missing_ok=True)
    return target


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Warnings and log lines of the libraries that export and quantise, held back."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def folder_key(folder: Path) -> str:
    """Changes with any file of the model folder, and with how this module exports."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    stamps = [f"{p.relative_to(folder)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    return stable_hash(EXPORT_VERSION, str(folder.resolve()), *stamps, size=16)


def onnx_cache() -> Path:
    root = os.environ.get("CURATE_HOME") or Path.home() / ".cache" / "curate"
    return Path(root) / "onnx"


def export(folder: Path, target: Path) -> None:
    """The folder's transformer as ONNX (fp32), its token states as the one output."""
    try:
        import torch
        from transformers import AutoModel
    except ImportError:
        raise RecipeError(
            "making the int8 encoder needs torch and transformers once: pip install "
            "'curate[semantic]'"
        ) from None
    # eager attention exports the plain pattern that ONNX Runtime fuses (see fuse)
    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in model.forward.__code__.co_varnames:
        names.append("token_type_ids")

    class States(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    sample = torch.ones((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    with torch.inference_mode():
        torch.onnx.export(
            States(),
            tuple(sample for _ in names),
            str(target),
            input_names=names,
            output_names=["token_states"],
            dynamic_axes={**axes, "token_states": {0: "batch", 1: "tokens"}},
            opset_version=OPSET,
            dynamo=False,
        )


FUSED_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "electra"}


def fuse(source: Path, folder: Path) -> Path | None:
    """The graph with each layer's attention, layer norms and GELU as single ONNX Runtime
    operators (quantised, attention runs as one int8 kernel: fewer passes over the
    activations), or None where the model is not a BERT-like encoder or nothing fused."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    heads, hidden = config.get("num_attention_heads"), config.get("hidden_size")
    if config.get("model_type") not in FUSED_TYPES or not heads or not hidden:
        return None
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        model = optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=hidden)
    except Exception:  # an unexpected graph: the plain export still serves, unfused
        return None
    if not model.get_fused_operator_statistics().get("Attention"):
        return None
    target = source.with_suffix(".fused.onnx")
    model.save_model_to_file(str(target))
    return target


def quantise(source: Path, target: Path) -> None:
    """int8 weights, dynamic per-channel quantisation (activations quantised as they come)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        # fused operators have no ONNX type inference; their outputs are float
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
