"""One training row per problem: statistics → k → selection → token budget → layout (paper §3).

Pure: token counting comes in as a function, randomness from `seeded_rng(seed, problem id, purpose)`,
so a row depends only on its problem's pool and the settings — never on order, sharding or process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from trajfusion.core.fusion import FUSIONS, FusedText, lay_out
from trajfusion.core.length import LENGTH_POLICIES
from trajfusion.core.records import ProblemPool, Sample, seeded_rng
from trajfusion.core.select import CORRECT_CHOICES, SELECTORS, choose_correct, eligible_errors, ranked_groups
from trajfusion.core.stats import ProblemStats, problem_stats

TokenCounter = Callable[[str], int]

DROP_REASONS = ("no_judged_samples", "no_correct", "correct_too_long")


def _check_choice(kind: str, value: str, supported: Iterable[str]) -> None:
    if value not in supported:
        raise ValueError(f"unknown {kind} {value!r}; supported: {', '.join(sorted(supported))}")


@dataclass(frozen=True)
class FusionSettings:
    """Everything that decides a row, already validated by the config layer."""

    fusion: str = "adaptive"
    selector: str = "diverse"
    correct_choice: str = "shortest"
    length_policy: str = "adaptive"
    k_max: int = 4
    alpha: float | None = 1.0  # None: not used (a policy other than adaptive, α left to calibration)
    max_tokens: int = 4096
    overhead_tokens: int = 16
    use_truncated_errors: bool = False
    seed: int = 0
    system_prompt: str = ""
    reflections: tuple[str, ...] = ()
    feedback: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_choice("fusion", self.fusion, FUSIONS)
        _check_choice("selector", self.selector, SELECTORS)
        _check_choice("length_policy", self.length_policy, LENGTH_POLICIES)
        _check_choice("correct-trajectory choice", self.correct_choice, CORRECT_CHOICES)
        if self.length_policy == "adaptive" and self.alpha is None and FUSIONS[self.fusion].uses_errors:
            raise ValueError("the adaptive length policy needs a number for alpha")
        if self.k_max < 0 or (self.alpha or 0) < 0 or self.max_tokens <= 0:
            raise ValueError(f"need k_max >= 0, alpha >= 0, max_tokens > 0; got {self.k_max}, {self.alpha}, {self.max_tokens}")
        if not self.reflections or not self.feedback:
            raise ValueError("the prompt repository needs at least one reflection and one feedback phrase")

    @property
    def uses_errors(self) -> bool:
        return FUSIONS[self.fusion].uses_errors


@dataclass
class Outcome:
    """What happened to one problem: the inputs of stats.json and of every plot."""

    problem_id: str
    stats: ProblemStats
    k: int = 0  # the length policy's k, before the u-cap and the budget
    n_errors: int = 0  # errors actually fused
    errors_dropped_for_budget: int = 0
    eligible_groups: int = 0
    dropped: str | None = None
    n_tokens: int | None = None  # this dataset's row
    rft_tokens: int | None = None  # the same problem's RFT row, for the length comparison
    error_models: list[str] = field(default_factory=list)


def _row_tokens(prompt_tokens: int, fused: FusedText, settings: FusionSettings, count: TokenCounter) -> int:
    # Additive count: one extra token per segment boundary covers tokenizer merges across joins.
    return prompt_tokens + settings.overhead_tokens + sum(count(text) + 1 for _, text in fused.pieces())


def _fit_budget(
    errors: list[Sample], group_sizes: Sequence[int], layout: Callable[[list[Sample]], FusedText], fits: Callable[[FusedText], bool]
) -> tuple[list[Sample], FusedText, int]:
    """Drop errors from the least frequent group first until the sample fits (DESIGN §5.8)."""
    dropped = 0
    fused = layout(errors)
    while errors and not fits(fused):
        victim = min(range(len(errors)), key=lambda i: (group_sizes[errors[i].group], -i))  # type: ignore[index]
        errors = errors[:victim] + errors[victim + 1 :]
        dropped += 1
        fused = layout(errors)
    return errors, fused, dropped


def fuse_problem(pool: ProblemPool, settings: FusionSettings, count: TokenCounter) -> tuple[dict | None, Outcome]:
    """The training row for one problem (or None, with the reason in the outcome)."""
    stats = problem_stats(pool.samples)
    outcome = Outcome(pool.id, stats)
    if stats.n_judged == 0:
        outcome.dropped = "no_judged_samples"
        return None, outcome
    correct = choose_correct(pool.samples, settings.correct_choice, seeded_rng(settings.seed, pool.id, "correct"))
    if correct is None:
        outcome.dropped = "no_correct"  # paper §4.1: dropped from both arms
        return None, outcome

    feedback = seeded_rng(settings.seed, pool.id, "feedback").choice(settings.feedback)
    reflection_rng = seeded_rng(settings.seed, pool.id, "reflection")
    reflections = [reflection_rng.choice(settings.reflections) for _ in range(settings.k_max)]
    prompt_tokens = count(settings.system_prompt) + count(pool.problem)

    def layout(errors: list[Sample]) -> FusedText:
        return lay_out([e.text for e in errors], reflections[: len(errors)], correct.text, feedback, correct.pred or "")

    def fits(fused: FusedText) -> bool:
        return _row_tokens(prompt_tokens, fused, settings, count) <= settings.max_tokens

    rft = layout([])
    outcome.rft_tokens = _row_tokens(prompt_tokens, rft, settings, count)
    if not fits(rft):
        outcome.dropped = "correct_too_long"  # never truncate y*
        return None, outcome

    candidates = eligible_errors(pool.samples, settings.use_truncated_errors)
    outcome.eligible_groups = len(ranked_groups(candidates, stats.group_sizes))
    errors: list[Sample] = []
    if settings.uses_errors:
        outcome.k = LENGTH_POLICIES[settings.length_policy](stats, settings.k_max, settings.alpha)
        selector = SELECTORS[settings.selector]
        errors = selector(candidates, stats.group_sizes, outcome.k, seeded_rng(settings.seed, pool.id, "errors"))
    errors, fused, outcome.errors_dropped_for_budget = _fit_budget(errors, stats.group_sizes, layout, fits)
    outcome.n_errors = len(errors)
    outcome.n_tokens = _row_tokens(prompt_tokens, fused, settings, count)
    outcome.error_models = [e.model for e in errors]
    return _row(pool, settings, stats, outcome, errors, correct, fused), outcome


def _row(
    pool: ProblemPool, settings: FusionSettings, stats: ProblemStats, outcome: Outcome, errors: list[Sample], correct: Sample, fused: FusedText
) -> dict:
    """The fused-dataset row of DESIGN §4; RFT rows leave out the knobs that do not shape them."""
    messages = [{"role": "user", "content": pool.problem}, {"role": "assistant", "content": fused.text}]
    if settings.system_prompt:
        messages.insert(0, {"role": "system", "content": settings.system_prompt})
    sources = [
        {"kind": kind, "sample_id": s.sample_id, "model": s.model, "pred": s.pred, "group": s.group}
        for kind, s in [*(("error", e) for e in errors), ("correct", correct)]
    ]
    row = {
        "id": pool.id,
        "problem_id": pool.id,
        "answer": pool.answer,
        "messages": messages,
        "segments": [s.as_dict() for s in fused.segments],
        "sources": sources,
        "K": stats.K,
        "n_correct": stats.n_correct,
        "n_wrong": stats.n_wrong,
        "n_unknown": stats.n_unknown,
        "r": stats.error_rate,
        "u": stats.u,
        "entropy_bits": stats.entropy_bits,
        "eligible_groups": outcome.eligible_groups,
        "n_errors": outcome.n_errors,
        "n_tokens": outcome.n_tokens,
        "max_tokens": settings.max_tokens,
        "fusion": settings.fusion,
        "correct_choice": settings.correct_choice,
        "seed": settings.seed,
    }
    if settings.uses_errors:
        row |= {
            "k": outcome.k,
            "alpha": settings.alpha,
            "k_max": settings.k_max,
            "selector": settings.selector,
            "length_policy": settings.length_policy,
            "errors_dropped_for_budget": outcome.errors_dropped_for_budget,
        }
    return row


def fuse_pools(pools: Iterable[ProblemPool], settings: FusionSettings, count: TokenCounter) -> tuple[list[dict], list[Outcome]]:
    """Rows (in pool order) and one outcome per problem."""
    rows, outcomes = [], []
    for pool in pools:
        row, outcome = fuse_problem(pool, settings, count)
        outcomes.append(outcome)
        if row is not None:
            rows.append(row)
    return rows, outcomes
