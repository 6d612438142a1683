"""The published configs, each a view of the ledger: default (SFT), all, rl and preference.

One meaning per column name in every view (and in the run's dataset/): `prompt` is the chat
messages sent, `completion` the assistant turn a model is trained to write (the reasoning in
<think> tags, then the solution), `messages` the two together, `reasoning` the chain of
thought, `solution` the text after it, `extracted_answer` the final answer the verifier read.
The ledger keeps the working name: its `completion` is the text after the reasoning.
"""

from __future__ import annotations

from typing import Any

import polars as pl

SFT_COLUMNS = (
    "messages",
    "prompt",
    "completion",
    "reasoning",
    "solution",
    "problem",
    "reference",
    "source",
    "domain",
    "model",
    "verdict",
    "round",
    "problem_id",
)
ALL_COLUMNS = (
    "problem_id",
    "problem",
    "reference",
    "source",
    "domain",
    "model",
    "round",
    "sample_idx",
    "prompt",
    "completion",
    "reasoning",
    "solution",
    "finish_reason",
    "completion_tokens",
    "verdict",
    "verdict_reason",
    "extracted_answer",
    "verifier",
    "verdict_tier",
    "flags",
    "borderline",
    "pass_rate",
    "selected",
    "dropped",
    "dropped_at",
)
RL_COLUMNS = (
    "prompt",
    "problem",
    "reference",
    "domain",
    "tests",
    "metadata",
    "pass_rate",
    "source",
    "problem_id",
)


def assistant_text(reasoning: str | None, completion: str | None, think: bool) -> str:
    """The assistant turn a model is trained to write: the reasoning inside <think> tags,
    then the answer (or the answer alone when think is off)."""
    answer = (completion or "").strip()
    if not think or not (reasoning or "").strip():
        return answer
    return f"<think>\n{(reasoning or '').strip()}\n</think>\n\n{answer}"


def traces(ledger: pl.DataFrame) -> pl.DataFrame:
    """Rows that are generated traces (problem-level drops before generation have none)."""
    return ledger.filter(pl.col("sample_idx").is_not_null())


def sft_config(
    ledger: pl.DataFrame, think: bool = True, extra: tuple[str, ...] = ()
) -> pl.DataFrame:
    """default: one row per kept trace in both of TRL's conversational layouts: `messages`,
    and `prompt` + `completion` (the assistant turn), which SFTTrainer prefers when present
    and trains on the completion only; `reasoning` and `answer` as plain text."""
    kept = conversation(traces(ledger).filter(pl.col("dropped").is_null()), think)
    return kept.select(_present(kept, (*SFT_COLUMNS, *extra)))


def conversation(rows: pl.DataFrame, think: bool = True) -> pl.DataFrame:
    """Ledger rows in the views' names: the ledger's `completion` (the text after the
    reasoning) as `solution`; `completion` the assistant turn; `messages` prompt and turn
    (made as columns: at real trace lengths a row at a time took half the dataset's time)."""
    answer = pl.col("completion").fill_null("").str.strip_chars(PY_WHITESPACE)
    reasoning = pl.col("reasoning").fill_null("").str.strip_chars(PY_WHITESPACE)
    text = answer
    if think:  # as assistant_text writes it
        wrapped = pl.concat_str([pl.lit("<think>\n"), reasoning, pl.lit("\n</think>\n\n"), answer])
        text = pl.when(reasoning == "").then(answer).otherwise(wrapped)
    kind = rows["prompt"].dtype
    turn = pl.concat_list([pl.struct(pl.lit("assistant").alias("role"), text.alias("content"))])
    turn = turn.cast(kind)
    messages = pl.concat_list([pl.col("prompt").fill_null(pl.lit([], dtype=kind)), turn])
    return rows.with_columns(messages.alias("messages"), turn.alias(TURN)).rename(
        {"completion": "solution", TURN: "completion"}
    )


TURN = "_curate_turn"
# what Python's str.strip() takes for whitespace (polars' own set lacks \x1c-\x1f)
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def all_config(
    ledger: pl.DataFrame, extra: tuple[str, ...] = (), think: bool = True
) -> pl.DataFrame:
    """all: every generated trace with its verdict, reason, flags, drop stage and pass rate,
    in the same names as default (its `completion` is the assistant turn of each trace)."""
    rows = conversation(traces(ledger), think)
    return rows.select(_present(rows, (*ALL_COLUMNS, *extra)))


def rl_config(ledger: pl.DataFrame) -> pl.DataFrame:
    """rl: one row per problem that reached generation, with what a reward needs."""
    rows = traces(ledger).sort("problem_id", "sample_idx")
    first = rows.group_by("problem_id", maintain_order=True).agg(
        pl.exclude("pass_rate").first(), pl.col("pass_rate").max()
    )
    return first.select(_present(first, RL_COLUMNS))


def preference_config(ledger: pl.DataFrame, think: bool = True) -> pl.DataFrame:
    """preference: (prompt, chosen, rejected) from a kept correct trace and an incorrect one
    of the same problem; a problem without an incorrect trace gives no pair."""
    rows = traces(ledger)
    chosen = rows.filter(pl.col("dropped").is_null() & (pl.col("verdict") == "correct"))
    rejected = rows.filter(pl.col("verdict") == "incorrect")
    pairs: list[dict[str, Any]] = []
    wrong_by_problem: dict[str, list[dict[str, Any]]] = {}
    for row in rejected.sort("problem_id", "sample_idx").iter_rows(named=True):
        wrong_by_problem.setdefault(row["problem_id"], []).append(row)
    for row in chosen.sort("problem_id", "sample_idx").iter_rows(named=True):
        wrong = wrong_by_problem.get(row["problem_id"])
        if not wrong:
            continue
        bad = wrong.pop(0)  # each incorrect trace is used once
        pairs.append(
            {
                "prompt": row["prompt"],
                "chosen": [_assistant(row, think)],
                "rejected": [_assistant(bad, think)],
                "problem_id": row["problem_id"],
                "reference": row["reference"],
                "domain": row["domain"],
            }
        )
    if not pairs:
        return pl.DataFrame(schema=_preference_schema(rows))
    return pl.DataFrame(pairs, schema=_preference_schema(rows))


def _assistant(row: dict[str, Any], think: bool) -> dict[str, str]:
    return {
        "role": "assistant",
        "content": assistant_text(row["reasoning"], row["completion"], think),
    }


def _preference_schema(rows: pl.DataFrame) -> dict[str, pl.DataType]:
    messages = rows.schema["prompt"]
    return {
        "prompt": messages,
        "chosen": messages,
        "rejected": messages,
        "problem_id": pl.String(),
        "reference": pl.String(),
        "domain": pl.String(),
    }


def _present(frame: pl.DataFrame, columns: tuple[str, ...]) -> list[str]:
    return [c for c in columns if c in frame.columns]
