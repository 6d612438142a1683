"""A tiny causal LM built here, and trained with TRL, for running the loop on a CPU.

Nothing is downloaded: a byte-level BPE tokenizer is trained with `tokenizers` on the
problems (digits kept one per token), a chat template with an end-of-turn token is attached,
and a randomly initialised Qwen2-style model of about a million parameters is saved. `train`
runs TRL's SFTTrainer on a round's training file (prompt / completion in chat form), so the
loop's training command can be

    {python} -m curate.loop.tiny train {data_file} {policy} {output} --epochs 3

and `build` makes the starting point:

    python -m curate.loop.tiny build MODEL_DIR PROBLEMS.jsonl

Extra `train` (torch, transformers, trl).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from curate.generate.base import DEFAULT_TEMPLATE

END = "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|im_start|>assistant\n{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}\n"
    "{% else %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", END]
PHRASES = [  # what every prompt and answer repeats, so BPE learns it as a few tokens
    CHAT_TEMPLATE,
    DEFAULT_TEMPLATE,
    "<think>\n1+2+0=3\n</think>\n\nThe final answer is $\\boxed{3}$.",
]


def build(
    folder: Path, texts: list[str], hidden: int = 128, layers: int = 4, seed: int = 0
) -> Path:
    """Tokenizer trained on texts, chat template, random Qwen2 weights, saved in folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=None,
        eos_token=END,
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def train(
    data_file: Path,
    start: str,
    output: Path,
    epochs: float = 3,
    learning_rate: float = 2e-3,
    batch_size: int = 32,
    max_steps: int = -1,
    seed: int = 0,
) -> dict[str, Any]:
    """SFT (completion-only loss) from `start` on the round's training file; saved to output."""
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(1)  # on a busy 2-core machine one thread was 5-8x faster than two
    data = load_dataset("parquet", data_files=str(data_file), split="train")
    data = data.select_columns(["prompt", "completion"]).shuffle(seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(start)
    model = AutoModelForCausalLM.from_pretrained(start)
    config = SFTConfig(
        output_dir=str(output / "checkpoints"),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        bf16=False,
        use_cpu=True,
        logging_steps=25,
        save_strategy="no",
        report_to=[],
        seed=seed,
        max_length=512,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer)
    result = trainer.train()
    output.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(output))
    tokenizer.save_pretrained(output)
    summary = {"rows": len(data), "steps": result.global_step, "loss": result.training_loss}
    (output / "training.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m curate.loop.tiny")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="Build the tokenizer and a random model.")
    make.add_argument("folder", type=Path)
    make.add_argument("problems", type=Path, help="JSONL of problems; every string is used.")
    make.add_argument("--hidden", type=int, default=128)
    make.add_argument("--layers", type=int, default=4)
    fit = commands.add_parser("train", help="SFT on a round's training file.")
    fit.add_argument("data_file", type=Path)
    fit.add_argument("start", help="The model to start from.")
    fit.add_argument("output", type=Path)
    fit.add_argument("--epochs", type=float, default=3)
    fit.add_argument("--learning-rate", type=float, default=2e-3)
    fit.add_argument("--batch-size", type=int, default=32)
    fit.add_argument("--max-steps", type=int, default=-1)
    fit.add_argument("--seed", type=int, default=0, help="Shuffling and training seed.")
    args = parser.parse_args(argv)
    if args.command == "build":
        rows = [json.loads(line) for line in args.problems.read_text("utf-8").splitlines() if line]
        texts = [str(v) for row in rows for v in row.values()]
        build(args.folder, texts + PHRASES * 200, args.hidden, args.layers)
        print(f"built {args.folder}")
        return 0
    summary = train(
        args.data_file,
        args.start,
        args.output,
        args.epochs,
        args.learning_rate,
        args.batch_size,
        args.max_steps,
        args.seed,
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
