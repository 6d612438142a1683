import asyncio
from collections import Counter

from curate.generate.base import Request, split_reasoning
from curate.generate.simulated import SimulatedConfig, SimulatedTeacher, wrong_answer


def samples(config: SimulatedConfig, problems: int = 200, k: int = 4):
    teacher = SimulatedTeacher(config)
    out = []
    for i in range(problems):
        messages = config.messages(f"What is {i} + 1?")
        request = Request(f"p{i}", messages, list(range(k)), teacher.gen_key(messages), str(i + 1))
        out.extend((request, s) for s in asyncio.run(teacher.sample(request)))
    return out


def test_same_seed_same_traces_and_seed_changes_them():
    config = SimulatedConfig(seed=1)
    first = [s for _, s in samples(config, 20)]
    assert first == [s for _, s in samples(config, 20)]
    other = [s for _, s in samples(SimulatedConfig(seed=2), 20)]
    assert first != other


def test_traces_follow_the_format_and_say_simulated():
    config = SimulatedConfig(truncate_rate=0, unboxed_rate=0, wrong_rate=0, repeat_rate=0)
    for request, sample in samples(config, 30):
        assert sample.finish_reason == "stop"
        assert sample.completion.startswith("The final answer is $\\boxed{")
        assert f"\\boxed{{{request.reference}}}" in sample.completion
        assert sample.reasoning.startswith("Okay") and "\\boxed" not in sample.reasoning
    assert config.model == "simulated"


def test_rates_are_roughly_honoured():
    config = SimulatedConfig(
        wrong_rate=0.3,
        truncate_rate=0.1,
        unboxed_rate=0.1,
        repeat_rate=0.1,
        language_mix_rate=0.1,
        max_tokens=100_000,
    )
    out = samples(config, 500)
    total = len(out)
    loops = [s for _, s in out if "Let me reconsider the previous step" in s.reasoning[-200:]]
    truncated = sum(s.finish_reason == "length" for _, s in out) - len(loops)
    assert all(s.finish_reason == "length" for s in loops)  # a loop runs to max_tokens
    finished = [(r, s) for r, s in out if s.finish_reason == "stop"]
    unboxed = sum("\\boxed" not in s.completion for _, s in finished)
    wrong = sum(
        f"{{{r.reference}}}" not in s.completion and "\\boxed" in s.completion for r, s in finished
    )
    foreign = sum(any("\u4e00" <= c <= "\u9fff" for c in s.reasoning) for _, s in out)
    looping = sum(s.reasoning.count("Let me reconsider the previous step") >= 30 for _, s in out)
    assert 0.07 < truncated / total < 0.13
    assert 0.07 < unboxed / len(finished) < 0.13
    assert 0.22 < wrong / len(finished) < 0.38
    assert 0.07 < foreign / total < 0.13
    assert 0.07 < looping / total < 0.13


def test_lengths_spread_and_max_tokens_truncates():
    out = samples(SimulatedConfig(truncate_rate=0, repeat_rate=0), 200)
    lengths = sorted(s.completion_tokens for _, s in out)
    assert lengths[-1] > 2 * lengths[0]
    short = samples(SimulatedConfig(max_tokens=30, truncate_rate=0), 20)
    assert all(s.finish_reason == "length" and s.completion == "" for _, s in short)
    assert all(len(s.reasoning) <= 30 * 4 for _, s in short)


def test_problems_differ_in_difficulty():
    out = samples(SimulatedConfig(wrong_rate=0.4, truncate_rate=0, unboxed_rate=0), 200, k=8)
    wrong = Counter(r.problem_id for r, s in out if f"{{{r.reference}}}" not in s.completion)
    solved_always = 200 - len(wrong)
    hard = sum(1 for n in wrong.values() if n >= 5)
    assert solved_always > 20 and hard > 10


def test_wrong_answer_differs():
    import random

    rng = random.Random(0)
    for answer in ["12", "-3", "3/4", "0.5", "\\frac{1}{2}", "x+1"]:
        assert wrong_answer(answer, rng) != answer


def test_split_reasoning_styles():
    tags = ("<think>", "</think>")
    assert split_reasoning("<think>a b</think> final", tags) == ("a b", "final", True)
    assert split_reasoning("a b</think>final", tags) == ("a b", "final", True)
    assert split_reasoning("<think>never closed", tags) == ("never closed", "", False)
    assert split_reasoning("just an answer", tags) == ("", "just an answer", True)


def test_stream_guards_stop_loops_and_language_drift_only():
    from collections import Counter

    guarded = SimulatedConfig(repeat_rate=0.2, language_mix_rate=0.2, guards={})
    reasons = Counter(s.finish_reason for _, s in samples(guarded, 150))
    assert reasons["guard_repetition"] > 20 and reasons["guard_language"] > 20
    clean = SimulatedConfig(repeat_rate=0, language_mix_rate=0, mean_steps=30, guards={})
    assert not any((s.finish_reason or "").startswith("guard_") for _, s in samples(clean, 150))
    for _, sample in samples(guarded, 50):
        if sample.finish_reason == "guard_repetition":
            assert sample.completion == "" and sample.completion_tokens < guarded.max_tokens


def test_the_live_note_counts_the_whole_stage_not_a_shard(tmp_path):
    """The progress note's prompts and rate are the stage's, across its shards (it once
    divided a shard's count by the stage's time)."""
    import polars as pl

    from curate.generate.stage import GenerateStage
    from curate.progress import NoTask, QuietProgress
    from curate.stage import StageContext

    notes: list[str] = []

    class Noted(NoTask):
        def note(self, text: str) -> None:
            notes.append(text)

    class Recording(QuietProgress):
        def task(self, description: str, total, unit: str = "rows") -> Noted:
            return Noted()

    config = SimulatedConfig(samples=2)
    stage = GenerateStage(config, StageContext(tmp_path, progress=Recording()))
    stage.plan(6)
    for shard in range(2):
        rows = [
            {"problem_id": f"p{shard}{i}", "problem": f"What is {i}+{shard}?", "reference": "1"}
            for i in range(3)
        ]
        stage.process(pl.DataFrame(rows))
    assert notes[-1].startswith("6 prompts")
