"""TRL's trainers read what curate publishes as it is: one short step each of SFT (with the
assistant-only loss mask checked), DPO and GRPO (rewarded by curate.rewards), on a tiny model
and tokenizer built here (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import add_stage_commands, app
from curate.publish.repo import stage_repository

pytestmark = pytest.mark.extras
trl = pytest.importorskip("trl")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
datasets = pytest.importorskip("datasets")

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}<|im_start|>assistant\n"
    "{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}\n"
    "{% else %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trl")
    problems = root / "problems.jsonl"
    problems.write_text(
        "".join(
            f'{{"question": "What is {i} + {i + 1}?", "answer": "{2 * i + 1}"}}\n'
            for i in range(24)
        )
    )
    recipe = root / "r.yaml"
    recipe.write_text(
        "name: trl\n"
        f"source: {{kind: files, path: {problems}, columns: {{problem: question}}}}\n"
        "teacher: {backend: simulated, samples: 4, max_tokens: 256, wrong_rate: 0.4, "
        "mean_steps: 2}\n"
        "verify: {kind: math, workers: 1}\n"
        "select: {policy: all_correct}\n"
    )
    add_stage_commands()
    result = CliRunner().invoke(app, ["run", str(recipe), "--run-dir", str(root / "run")])
    assert result.exit_code == 0, result.output
    return stage_repository(root / "run").path


@pytest.fixture(scope="module")
def tiny_model(published: Path, tmp_path_factory) -> Path:
    """A one-layer Qwen2 and a byte-level BPE tokenizer trained on the published text."""
    folder = tmp_path_factory.mktemp("tiny-model")
    texts = [
        message["content"]
        for row in load(published, "default", folder)
        for message in row["messages"]
    ]
    raw = tokenizers.Tokenizer(tokenizers.models.BPE())
    raw.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(texts, trainer)
    raw.add_tokens(["<think>", "</think>"])  # plain added tokens: they survive decoding
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(config).save_pretrained(folder)
    torch.set_num_threads(1)
    return folder


def load(folder: Path, config: str, tmp: Path):
    cache = tmp / f"cache-{config}"
    return datasets.load_dataset(str(folder), config, split="train", cache_dir=str(cache))


def common(output: Path) -> dict:
    return {
        "output_dir": str(output),
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "use_cpu": True,
        "bf16": False,
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 1,
    }


def test_sft_trains_on_the_reasoning_and_answer_only(published, tiny_model, tmp_path):
    data = load(published, "default", tmp_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    args = trl.SFTConfig(**common(tmp_path / "sft"), assistant_only_loss=True, max_length=2048)
    trainer = trl.SFTTrainer(
        model=str(tiny_model), args=args, train_dataset=data, processing_class=tokenizer
    )
    batch = trainer.data_collator([trainer.train_dataset[0]])  # what the loss sees
    ids = batch["input_ids"][0].tolist()
    mask = (batch["labels"][0] != -100).long().tolist()
    trained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    ignored = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    row = data[0]
    assert sum(mask) > 0
    assert "<think>" in trained and row["solution"].strip() in trained
    assert row["reasoning"].strip()[:40] in trained
    assert row["problem"][:20] in ignored and row["problem"][:20] not in trained
    assert trained.rstrip().endswith("<|im_end|>")  # the model learns to stop
    result = trainer.train()
    assert result.training_loss > 0


def test_dpo_reads_the_preference_pairs(published, tiny_model, tmp_path):
    data = load(published, "preference", tmp_path)
    assert data.num_rows > 0
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    args = trl.DPOConfig(**common(tmp_path / "dpo"), max_length=1024)
    trainer = trl.DPOTrainer(
        model=str(tiny_model), args=args, train_dataset=data, processing_class=tokenizer
    )
    assert trainer.train().training_loss > 0


def test_grpo_is_rewarded_by_curate_on_the_rl_config(published, tiny_model, tmp_path):
    from curate.rewards import VerifierReward

    data = load(published, "rl", tmp_path)
    assert {"prompt", "reference", "domain"} <= set(data.features)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    seen: list[list[float | None]] = []
    reward = VerifierReward("auto", workers=1)

    def recorded(**kwargs):
        scores = reward(**kwargs)
        seen.append(scores)
        return scores

    recorded.__name__ = "curate_auto"
    args = trl.GRPOConfig(**common(tmp_path / "grpo"), num_generations=2, max_completion_length=8)
    try:
        trainer = trl.GRPOTrainer(
            model=str(tiny_model),
            reward_funcs=[recorded],
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
        )
        trainer.train()
    finally:
        reward.close()
    assert seen and all(score in (0.0, 1.0) for batch in seen for score in batch)
