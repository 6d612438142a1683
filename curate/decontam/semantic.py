"""Semantic matching for paraphrased copies: sentence embeddings and cosine similarity.

Needs the `semantic` extra (sentence-transformers and torch); imported only when used.
N-gram methods miss nearly every rephrased copy; this one retrieves the nearest benchmark
items, and the answers decide (a rephrase keeps its answer, an innocent neighbour
does not).

Each benchmark item is embedded whole and by its closing sentences (a rephrase often keeps
the question and drops a long passage before it); an item's score is its best part's.
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import Field

from curate.decontam import onnx_encoder
from curate.errors import CurateWarning, RecipeError
from curate.records import stable_hash
from curate.stage import Config

FULL = 512  # tokens: benchmark items are embedded whole (up to the model's own limit)
SENTENCE_END = re.compile(r"(?<=[.?!:\"])\s+")


class SemanticMethod(Config):
    """Embedding similarity with benchmark items (catches paraphrases)."""

    model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="Sentence-transformers model: a local folder or a Hub id.",
    )
    threshold: float = Field(
        0.9, gt=0, le=1, description="Cosine that marks contamination by itself."
    )
    borderline: float = Field(0.8, gt=0, le=1, description="Cosine that marks a row for review.")
    same_answer: float = Field(
        0.45,
        gt=0,
        le=1,
        description="Cosine at which a near item with the same distinctive answer is a copy "
        "(answers: decide, and the row has a reference).",
    )
    common_answer: float = Field(
        0.7,
        gt=0,
        le=1,
        description="The same, for an answer that says little (an integer, two characters "
        "or fewer, or one 3 to 9 benchmark items share; from 10 items on, the borderline cosine).",
    )
    candidates: int = Field(5, ge=1, description="Nearest benchmark items compared per text.")
    batch_size: int = Field(
        16, ge=1, description="Texts embedded at once (length-sorted; small batches pad least)."
    )
    engine: Literal["auto", "int8", "torch"] = Field(
        "auto",
        description="int8: the model exported to ONNX and quantised here, once (3x faster "
        "on CPUs, same recall); torch: sentence-transformers; auto: torch on a GPU, else "
        "int8 where onnxruntime is installed and the model is a local folder.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where torch embeds (auto: the GPU when torch sees one)."
    )
    max_tokens: int = Field(
        160,
        ge=8,
        description="Tokens embedded of each text checked (benchmark items are embedded "
        "whole, up to the model's own limit, once): the encoder's cost grows with it.",
    )
    answer_gate: bool = Field(
        True,
        description="A row whose reference is no benchmark item's answer (as spelt or as "
        "an exact number) is not embedded: a rephrased copy keeps its answer (rephrases "
        "caught and innocent rows dropped as without it, 1.4x to 2.3x the rows/s). Given up for "
        "those rows: the cosine-only rules (threshold, borderline). Off where an indexed "
        "benchmark gives no answers (private ones), with answers: off, and for rows "
        "without a reference.",
    )

    threads: int | None = Field(
        None,
        ge=1,
        description="Threads of the int8 encoder (default: every core; a cluster task, its share).",
    )

    volatile = frozenset({"batch_size", "device", "threads"})

    def floor(self) -> float:
        """The lowest cosine any rule acts on."""
        return min(self.same_answer, self.common_answer, self.borderline)


def unavailable(model: str) -> str | None:
    """Why the model cannot be used here without a download, or None when it can."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return "sentence-transformers is not installed (pip install 'curate[semantic]')"
    if Path(model).expanduser().is_dir():
        return None
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return None
    return f"{model} is not on this machine (download it once, or name a local folder)"


class Encoder(Protocol):
    def encode(self, texts: list[str], batch_size: int) -> np.ndarray: ...


class SentenceEncoder:
    """sentence-transformers in this process, on the CPU or a GPU."""

    def __init__(self, name: str, device: str = "cpu", tokens: int = FULL) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise RecipeError(
                "decontaminate.semantic needs the semantic extra: pip install 'curate[semantic]'"
            ) from None
        try:
            self.model: Any = SentenceTransformer(name, device=device)
        except (OSError, ValueError) as exc:
            raise RecipeError(
                f"decontaminate.semantic.model: cannot load {name!r} ({exc})"
            ) from None
        self.model.max_seq_length = min(tokens, self.model.max_seq_length or tokens)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)


def engine_of(method: SemanticMethod) -> tuple[str, str]:
    """(engine, device) that embed the method's texts on this machine."""
    device = method.device if method.device != "auto" else ("cuda" if gpu() else "cpu")
    if method.engine != "auto":
        return method.engine, device
    if device == "cuda" or local_folder(method.model) is None:
        return "torch", device
    if not onnx_encoder.available():
        warn_no_onnxruntime()
        return "torch", device
    return "int8", "cpu"


@cache
def local_folder(model: str) -> str | None:
    """The model's folder on this machine: the path given, or a Hub id's cached snapshot
    (never a download); None when it is not here."""
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser())
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached, or not a repository id at all: both mean "not here"
        return None


@cache
def warn_no_onnxruntime() -> None:
    """Said once per process, however many batches are embedded."""
    warnings.warn(
        "decontaminate.semantic: onnxruntime is not installed, so texts are embedded with "
        "sentence-transformers (about a third of the int8 speed): pip install onnxruntime",
        CurateWarning,
        stacklevel=4,
    )


def gpu() -> bool:
    """Whether torch is installed and sees a GPU; torch (seconds to import) is imported
    only on a machine with an NVIDIA driver."""
    driver = Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()
    if not driver or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


@cache
def load_model(
    name: str, engine: str = "torch", device: str = "cpu", tokens: int = 256, threads: int = 0
) -> Encoder:
    if engine == "int8":
        folder = local_folder(name)
        if folder is None:
            raise RecipeError(
                f"decontaminate.semantic.model: {name} is not on this machine; the int8 engine "
                "needs its folder (name a local folder, or engine: torch)"
            )
        return onnx_encoder.OnnxEncoder(folder, tokens, threads or None)
    return SentenceEncoder(name, device, tokens)


def embed(method: SemanticMethod, texts: list[str], tokens: int | None = None) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text, of its first `tokens` tokens
    (default: the method's max_tokens; FULL: as many as the model reads)."""
    if not texts:
        return np.empty((0, 0), np.float32)
    engine, device = engine_of(method)
    length = tokens or method.max_tokens
    model = load_model(method.model, engine, device, length, method.threads or 0)
    return model.encode(texts, method.batch_size)


def segments(text: str) -> list[str]:
    """The parts of a benchmark item that are embedded: the whole text, and, when it has
    several sentences, its last two and its last one."""
    sentences = [part for part in SENTENCE_END.split(text.strip()) if part.strip()]
    if len(sentences) < 2:
        return [text]
    return [text, " ".join(sentences[-2:]), sentences[-1]]


def embed_items(method: SemanticMethod, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, owner item of each vector) for every part of every item. Kept on disk by
    model and texts (CURATE_HOME, else ~/.cache/curate), so a run embeds a benchmark once."""
    owners = [item for item, text in enumerate(texts) for _ in segments(text)]
    parts = [part for text in texts for part in segments(text)]
    local = Path(method.model).expanduser()
    stamp = str(local.stat().st_mtime_ns) if local.exists() else ""
    engine, _ = engine_of(method)
    key = stable_hash(method.model, stamp, engine, *parts, size=16)
    path = vector_cache() / f"{key}.npy"
    if path.exists():
        vectors = np.load(path)
        if vectors.shape[0] == len(parts):
            return vectors.astype(np.float32), np.array(owners, np.int32)
    vectors = embed(method, parts, FULL).astype(np.float16).astype(np.float32)  # as kept
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    with open(partial, "wb") as handle:
        np.save(handle, vectors.astype(np.float16))
    partial.replace(path)
    return vectors, np.array(owners, np.int32)


def vector_cache() -> Path:
    root = os.environ.get("CURATE_HOME") or Path.home() / ".cache" / "curate"
    return Path(root) / "vectors"


def nearest(
    queries: np.ndarray,
    vectors: np.ndarray,
    owners: np.ndarray,
    count: int = 1,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """(items, cosines), each of shape (queries, count): the nearest items per query, best
    first, an item scored by its best part. Parts of one item must be consecutive."""
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    items_of = owners[starts]
    count = min(count, len(starts))
    best = np.empty((len(queries), count), np.int64)
    score = np.empty((len(queries), count), np.float32)
    for first in range(0, len(queries), chunk):
        sims = np.maximum.reduceat(queries[first : first + chunk] @ vectors.T, starts, axis=1)
        top = np.argpartition(-sims, count - 1, axis=1)[:, :count]
        top_scores = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_scores, axis=1)
        best[first : first + chunk] = items_of[np.take_along_axis(top, order, axis=1)]
        score[first : first + chunk] = np.take_along_axis(top_scores, order, axis=1)
    return best, score
