"""Wiring: config → teacher pool → verified pool → fused dataset directory.

Each stage caches its result under `paths.data_root`, keyed by a hash of what decides it, so
selector / length_policy / fusion sweeps never resample or re-verify:

    <data_root>/pools/<teacher>-<pool_id>/verified-<verifier_id>.jsonl.gz
    <data_root>/cache/verify.sqlite                     (every check, resumable)
    <data_root>/fused/<fusion>-<data_id>/{data.jsonl, manifest.json, stats.json, *.png}
"""

from __future__ import annotations

import functools
import logging
import math
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

from trajfusion import __version__
from trajfusion.data.teachers.replay import load_replay_pool
from trajfusion.data.calibration import alpha_identity, calibration_report, resolve_alpha
from trajfusion.cards import write_dataset_card
from trajfusion.config import BuildDataConfig, TeacherBackend
from trajfusion.console import stage
from trajfusion.core.build import FusionSettings, fuse_pools
from trajfusion.core.records import ProblemPool, Sample
from trajfusion.core.stats import group_answers
from trajfusion.core.verify import VERIFIER_VERSION, Verdict, normalize_answer
from trajfusion.io import (
    atomic_directory, content_hash, read_json, read_jsonl, resolve_path, sha256_file, write_json, write_jsonl,
)
from trajfusion.locks import output_lock
from trajfusion.data.problems import decontaminate, training_problems
from trajfusion.data.report import dataset_stats, summary_table
from trajfusion.data.sampling import merge_shards, sample_shard
from trajfusion.data.verification import VerifierPool, extract_pred, stats_delta

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- identities


def _data_root(cfg: BuildDataConfig) -> Path:
    return Path(cfg.paths.data_root).expanduser().resolve()


def _input_files(cfg: BuildDataConfig) -> dict[str, str]:
    paths = {p for p in (cfg.data.path, cfg.teacher.pool_path) if p}
    return {str(p): sha256_file(resolve_path(p)) for p in sorted(paths)}


# engine and batching knobs: they change speed, not samples
_TEACHER_RUNTIME_KEYS = ("pool_path", "tensor_parallel_size", "gpu_memory_utilization",
                         "enable_prefix_caching", "problems_per_batch")


def pool_identity(cfg: BuildDataConfig) -> dict:
    """What decides the teacher pool: problem and pool *contents* (not paths) and the teacher settings."""
    data = {k: v for k, v in asdict(cfg.data).items() if k != "path"}
    teacher = {k: v for k, v in asdict(cfg.teacher).items() if k not in _TEACHER_RUNTIME_KEYS}
    teacher["backend"] = cfg.teacher.backend.value
    return {"data": data, "teacher": teacher, "files": sorted(_input_files(cfg).values())}


def verifier_identity(cfg: BuildDataConfig) -> dict:
    return {"version": VERIFIER_VERSION, "strategies": list(cfg.verifier.strategies), "timeout_s": cfg.verifier.timeout_s}


def data_identity(cfg: BuildDataConfig, prompts: dict) -> dict:
    """What decides a dataset's bytes. RFT leaves out the knobs that do not shape its rows, so one
    RFT dataset serves every selector / length_policy sweep of the same pool."""
    lp = cfg.length_policy
    identity = {
        "pool": content_hash(pool_identity(cfg)),
        "verifier": content_hash(verifier_identity(cfg)),
        "fusion": {k: v for k, v in asdict(cfg.fusion).items() if k not in ("prompts_file", "loss_on_errors")},
        "prompts": content_hash(prompts),
        "budget": {"max_tokens": lp.max_tokens, "tokenizer": tokenizer_identity(budget_counter(lp.tokenizer)[1]),
                   "overhead_tokens": lp.overhead_tokens},
        "correct": cfg.selector.correct,
        "seed": cfg.seed,
    }
    if cfg.fusion.name != "rft":
        identity["selector"] = asdict(cfg.selector)
        identity["length_policy"] = {"name": lp.name, "k_max": lp.k_max, "alpha": alpha_identity(cfg)}
    return identity


def dataset_dir(cfg: BuildDataConfig, prompts: dict) -> tuple[str, Path]:
    data_id = content_hash(data_identity(cfg, prompts))
    return data_id, _data_root(cfg) / "fused" / f"{cfg.fusion.name}-{data_id}"


def pool_dir(cfg: BuildDataConfig) -> Path:
    return _data_root(cfg) / "pools" / f"{cfg.teacher.name}-{content_hash(pool_identity(cfg))}"


# ----------------------------------------------------------------------------- teacher pool


def _replay_rows(cfg: BuildDataConfig) -> tuple[list[dict], dict]:
    rows = load_replay_pool(
        cfg.teacher.pool_path,  # type: ignore[arg-type]
        id_field=cfg.data.id_field or "id", problem_field=cfg.data.problem_field, answer_field=cfg.data.answer_field,
        open_weights_only=cfg.teacher.open_weights_only, num_samples=cfg.teacher.num_samples,
    )
    rows, report = decontaminate(rows, list(cfg.data.decontaminate), cfg.data.ngram)
    return (rows[: cfg.data.limit] if cfg.data.limit else rows), report


def _teacher_factory(cfg: BuildDataConfig) -> Callable[[], object]:
    def make():
        if cfg.teacher.backend == TeacherBackend.vllm:
            from trajfusion.data.teachers.vllm import VLLMTeacher

            return VLLMTeacher(cfg.teacher)
        from trajfusion.data.teachers.hf import HFTeacher

        return HFTeacher(cfg.teacher)

    return make


def sampling_problems(cfg: BuildDataConfig) -> list[dict]:
    """The decontaminated, limited problem list of a sampled pool, fixed once in its directory so
    every shard works from the same list."""
    path = pool_dir(cfg) / "problems.jsonl.gz"
    if not path.exists():
        problems, report = training_problems(cfg.data)
        write_json(pool_dir(cfg) / "decontamination.json", report)
        write_jsonl(path, problems)
    return [row for _, row in read_jsonl(path)]


def sample(cfg: BuildDataConfig) -> dict:
    """stage=sample: sample this shard's missing problems (one SLURM array task)."""
    problems = sampling_problems(cfg)
    return sample_shard(_teacher_factory(cfg), problems, pool_dir(cfg), cfg.shard.index, cfg.shard.count,
                        cfg.teacher.problems_per_batch, cfg.progress)


def load_pool(cfg: BuildDataConfig, allow_sampling: bool = True) -> tuple[list[dict], dict]:
    """Pool rows (DESIGN §4) for the configured teacher, and the pool's report."""
    if cfg.teacher.backend == TeacherBackend.replay:
        rows, decon = _replay_rows(cfg)
        return rows, {"decontamination": decon}
    directory = pool_dir(cfg)
    pool_file, manifest_file = directory / "pool.jsonl.gz", directory / "pool_manifest.json"
    if pool_file.exists() and manifest_file.exists():
        log.info("reusing teacher pool %s", pool_file)
        return [row for _, row in read_jsonl(pool_file)], read_json(manifest_file)
    with output_lock(_data_root(cfg), f"pool-{directory.name}"):  # a concurrent build samples it once
        if pool_file.exists() and manifest_file.exists():
            stage("data     reusing teacher pool %s (built by another process)", pool_file)
            return [row for _, row in read_jsonl(pool_file)], read_json(manifest_file)
        return _sample_pool(cfg, directory, allow_sampling)


def _sample_pool(cfg: BuildDataConfig, directory: Path, allow_sampling: bool) -> tuple[list[dict], dict]:
    pool_file, manifest_file = directory / "pool.jsonl.gz", directory / "pool_manifest.json"
    if not allow_sampling:
        raise ValueError(
            f"no sampled pool for teacher {cfg.teacher.name!r} at {directory}; sample it first with "
            f"`python build_data.py data={cfg.data.name} teacher={cfg.teacher.name}` (or slurm/build_data.sh on a cluster)"
        )
    problems = sampling_problems(cfg)
    shards = [
        sample_shard(_teacher_factory(cfg), problems, directory, i, cfg.shard.count, cfg.teacher.problems_per_batch, cfg.progress)
        for i in range(cfg.shard.count)
    ]
    rows = merge_shards(directory, problems, cfg.shard.count)
    wall = sum(s["wall_time_s"] for s in shards)
    tokens = sum(s["generated_tokens"] for s in shards)
    manifest = {
        "teacher": cfg.teacher.name, "model": cfg.teacher.model, "problems": len(rows),
        "samples": sum(len(r["samples"]) for r in rows), "shards": shards, "sampling_wall_time_s": round(wall, 2),
        "generated_tokens": tokens, "tokens_per_s": round(tokens / wall, 2) if wall else None,
        "problems_per_s": round(len(rows) / wall, 4) if wall else None,
        "decontamination": read_json(directory / "decontamination.json"),
    }
    write_jsonl(pool_file, rows)
    write_json(manifest_file, manifest)
    return rows, manifest


# ----------------------------------------------------------------------------- verification


def _group_wrong_answers(rows: list[dict], verifier: VerifierPool) -> None:
    """Assign `group` to each wrong sample with an answer: verified equivalence, per problem."""
    per_problem = []
    pairs: list[tuple[str, str]] = []
    for row in rows:
        wrong = sorted({normalize_answer(s["pred"]) for s in row["samples"] if s["verdict"] == "incorrect" and s["pred"]})
        per_problem.append(wrong)
        pairs += [(wrong[i], wrong[j]) for j in range(len(wrong)) for i in range(j)]
    verdicts = verifier.check_many(pairs, desc="group wrong answers") if pairs else []
    same = {pair for pair, v in zip(pairs, verdicts) if v == Verdict.CORRECT}
    for row, wrong in zip(rows, per_problem):
        group_of = dict(zip(wrong, group_answers(wrong, lambda a, b: (a, b) in same)))
        for s in row["samples"]:
            s["group"] = group_of[normalize_answer(s["pred"])] if s["verdict"] == "incorrect" and s["pred"] else None


def verify_rows(rows: list[dict], cfg: BuildDataConfig, cache_path: Path | None) -> dict:
    """Add `pred`, `verdict`, `group` to every sample in place; return a report of the counts."""
    samples = [(row, s) for row in rows for s in row["samples"]]
    for _, s in samples:  # cut by the generation limit: no answer, so wrong for r and never fused
        s["pred"], error = extract_pred(s, tuple(cfg.verifier.strategies))
        if error:
            s["verdict"], s["unknown_reason"] = Verdict.UNKNOWN.value, error
    checked = [(row, s) for row, s in samples if s["pred"]]
    with VerifierPool(cfg.verifier.workers, cfg.verifier.timeout_s, cache_path, progress=cfg.progress) as verifier:
        verdicts = verifier.check_many([(row["answer"], s["pred"]) for row, s in checked], desc="verify answers")
        for (row, s), verdict in zip(checked, verdicts):
            s["verdict"] = verdict.value
            if verdict is Verdict.UNKNOWN:
                s["unknown_reason"] = verifier.reason_of(row["answer"], s["pred"])
        for _, s in samples:
            s.setdefault("verdict", Verdict.INCORRECT.value)  # no extractable answer: wrong (DESIGN §5.5)
        answer_checks = {k: dict(v) if isinstance(v, dict) else v for k, v in verifier.stats.items()}
        _group_wrong_answers(rows, verifier)
        grouping_checks = stats_delta(verifier.stats, answer_checks)
    verdict_counts = Counter(s["verdict"] for _, s in samples)
    judged = [s for _, s in samples if s.get("stored_correct") is not None and s["verdict"] != "unknown"]
    agree = sum((s["verdict"] == "correct") == bool(s["stored_correct"]) for s in judged)
    return {
        "problems": len(rows),
        "samples": len(samples),
        "verdicts": dict(sorted(verdict_counts.items())),
        "no_answer": sum(not s["pred"] for _, s in samples),
        "truncated": sum(bool(s.get("truncated")) for _, s in samples),
        "cut_by_length": sum(s.get("finish_reason") == "length" for _, s in samples),
        "unknown_reasons": dict(sorted(Counter(s["unknown_reason"] for _, s in samples if s["verdict"] == "unknown").items())),
        "stored_label_agreement": round(agree / len(judged), 4) if judged else None,
        "answer_checks": answer_checks,
        "grouping_checks": grouping_checks,  # an unknown pair counts as two different answers
    }


def verified_pool(cfg: BuildDataConfig, allow_sampling: bool = True) -> tuple[list[dict], dict, Path]:
    """The verified pool, from cache when this pool and verifier were seen before.

    With `allow_sampling=False` (training asks for a dataset) a pool that would need teacher
    sampling is an error that says which command builds it, never an implicit GPU job.
    """
    path = pool_dir(cfg) / f"verified-{content_hash(verifier_identity(cfg))}.jsonl.gz"
    report_path = path.with_name(path.name.replace(".jsonl.gz", ".report.json"))
    if path.exists() and report_path.exists():
        stage("pool     reusing verified pool %s", path)
        return [row for _, row in read_jsonl(path)], read_json(report_path), path
    with output_lock(_data_root(cfg), f"verified-{path.parent.name}-{path.name.removesuffix('.jsonl.gz')}"):
        if path.exists() and report_path.exists():
            stage("data     reusing verified pool %s (built by another process)", path)
            return [row for _, row in read_jsonl(path)], read_json(report_path), path
        return _verify_pool(cfg, allow_sampling, path, report_path)


def _verify_pool(cfg: BuildDataConfig, allow_sampling: bool, path: Path, report_path: Path) -> tuple[list[dict], dict, Path]:
    rows, pool_report = load_pool(cfg, allow_sampling)
    started = time.perf_counter()
    report = verify_rows(rows, cfg, _data_root(cfg) / "cache" / "verify.sqlite") | {"pool": pool_report}
    report["wall_time_s"] = round(time.perf_counter() - started, 2)
    write_jsonl(path, rows)
    write_json(report_path, report)
    stage("pool     verified %d samples of %d problems in %.1fs → %s", report["samples"], report["problems"], report["wall_time_s"], path)
    return rows, report, path


def to_problem_pools(rows: Sequence[dict]) -> list[ProblemPool]:
    return [
        ProblemPool(
            id=row["id"], problem=row["problem"], answer=row["answer"],
            samples=[
                Sample(
                    index=j, sample_id=s["sample_id"], text=s["text"], model=s["model"], verdict=Verdict(s["verdict"]),
                    pred=s["pred"], truncated=bool(s.get("truncated")), group=s.get("group"),
                )
                for j, s in enumerate(row["samples"])
            ],
        )
        for row in rows
    ]


# ----------------------------------------------------------------------------- fused dataset


def load_prompts(cfg: BuildDataConfig) -> dict:
    prompts = read_json(resolve_path(cfg.fusion.prompts_file))
    if len(prompts.get("reflections", [])) < 1 or len(prompts.get("feedback", [])) < 1:
        raise ValueError(f"{cfg.fusion.prompts_file}: needs non-empty 'reflections' and 'feedback' lists")
    return {k: prompts[k] for k in ("version", "reflections", "feedback")}


def _tokenizer_source(tokenizer: str) -> str:
    """A local tokenizer directory (absolute, or relative to cwd / the project), else a hub id as given."""
    local = resolve_path(tokenizer)
    return str(local) if local.exists() else tokenizer


def tokenizer_identity(tokenizer: str | None) -> str | None:
    """What the budget depends on: a local tokenizer's *content* (so data_id survives moving the data
    root), or the hub id."""
    if tokenizer is None:
        return None
    local = resolve_path(tokenizer)
    if not local.is_dir():
        return tokenizer
    files = sorted(p for p in local.iterdir() if p.is_file() and p.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")))
    return "sha256:" + content_hash({p.name: sha256_file(p) for p in files}, length=16)


PROXY_COUNTER = "bytes/3"


def token_counter(tokenizer: str | None) -> Callable[[str], int]:
    """Tokens of a text with the student's tokenizer, or a documented proxy: UTF-8 bytes / 3.

    BPE tokenizers average 3.5–4.5 bytes per token on English and LaTeX, so the proxy overestimates
    slightly and keeps rows within budget when the real tokenizer is not configured.
    """
    if tokenizer is None:
        return functools.lru_cache(maxsize=None)(lambda text: math.ceil(len(text.encode("utf-8")) / 3))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(_tokenizer_source(tokenizer))
    return functools.lru_cache(maxsize=None)(lambda text: len(tok(text, add_special_tokens=False)["input_ids"]))


@functools.lru_cache(maxsize=None)
def budget_counter(tokenizer: str | None) -> tuple[Callable[[str], int], str | None]:
    """(counter, the tokenizer it uses: None for the bytes/3 proxy). A configured tokenizer that does not
    load here (no hub, not in the local cache, gated) falls back to the proxy with a loud warning;
    data_id and the manifest say which counter was used, so the two cases never share a dataset."""
    if tokenizer is None:
        return token_counter(None), None
    try:
        return token_counter(tokenizer), tokenizer
    except Exception as exc:  # OSError (offline, gated, missing), ValueError (not a tokenizer), ImportError …
        bar = "!" * 100
        log.warning(
            "\n%s\nTOKEN BUDGET: the tokenizer %r does not load here (%s: %s).\nRows are budgeted with the bytes/3 "
            "proxy instead: real token counts may be higher, and training refuses rows that overflow unless "
            "training.drop_overlong=paired.\nFor an exact budget: run where the hub (or a local HF cache) has it, "
            "or set length_policy.tokenizer=/path/to/tokenizer_dir (student.tokenizer in train.py).\n%s",
            bar, tokenizer, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "", bar,
        )
        return token_counter(None), None


def fusion_settings(cfg: BuildDataConfig, prompts: dict, alpha: float | None = None, policy: str | None = None) -> FusionSettings:
    lp = cfg.length_policy
    return FusionSettings(
        fusion=cfg.fusion.name, selector=cfg.selector.name, correct_choice=cfg.selector.correct,
        length_policy=policy or lp.name, k_max=lp.k_max, alpha=alpha, max_tokens=lp.max_tokens,
        overhead_tokens=lp.overhead_tokens, use_truncated_errors=cfg.fusion.use_truncated_errors, seed=cfg.seed,
        system_prompt=cfg.fusion.system_prompt, reflections=tuple(prompts["reflections"]), feedback=tuple(prompts["feedback"]),
    )


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=resolve_path("."))
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def build_dataset(cfg: BuildDataConfig, resolved_config: dict | None = None, allow_sampling: bool = True) -> Path:
    """build_data.py: the dataset directory for this config (built, or reused when it exists).

    train.py calls it with `allow_sampling=False`: fusing a cached pool is cheap, sampling is not.
    """
    started = time.perf_counter()
    prompts = load_prompts(cfg)
    data_id, out_dir = dataset_dir(cfg, prompts)
    if (out_dir / "manifest.json").exists() and (out_dir / "data.jsonl").exists():
        stage("data     dataset %s exists: reusing %s", data_id, out_dir)
        if not (out_dir / "README.md").exists():  # built before datasets had cards
            write_dataset_card(out_dir)
        return out_dir
    with output_lock(_data_root(cfg), f"fused-{out_dir.name}"):  # a concurrent build of it waits, then reuses
        if (out_dir / "manifest.json").exists() and (out_dir / "data.jsonl").exists():
            stage("data     dataset %s was built by another process: reusing %s", data_id, out_dir)
            return out_dir
        return _build_dataset(cfg, resolved_config, allow_sampling, started, prompts, data_id, out_dir)


def _build_dataset(cfg: BuildDataConfig, resolved_config: dict | None, allow_sampling: bool, started: float,
                   prompts: dict, data_id: str, out_dir: Path) -> Path:
    rows, verify_report, verified_path = verified_pool(cfg, allow_sampling)
    if verify_report["verdicts"].get("unknown"):
        log.warning("%d of %d samples could not be judged (unknown: outside r, never fused): %s",
                    verify_report["verdicts"]["unknown"], verify_report["samples"],
                    ", ".join(f"{k}={v}" for k, v in verify_report.get("unknown_reasons", {}).items()))
    count, counter_used = budget_counter(cfg.length_policy.tokenizer)
    pools = to_problem_pools(rows)
    calibration_identity = {k: v for k, v in data_identity(cfg, prompts).items() if k != "pool"}
    alpha, alpha_record = resolve_alpha(cfg, pools, verified_path, fusion_settings(cfg, prompts, policy="none"), count,
                                        calibration_identity)
    settings = fusion_settings(cfg, prompts, alpha)
    fused, outcomes = fuse_pools(pools, settings, count)
    for row in fused:
        row["data_id"] = data_id
    stats = dataset_stats(outcomes, settings) | {"alpha_calibration": alpha_record}
    stats["unknown_reasons"] = verify_report.get("unknown_reasons", {})
    manifest = {
        "data_id": data_id,
        "identity": data_identity(cfg, prompts),
        "config": resolved_config if resolved_config is not None else OmegaConf.to_container(OmegaConf.structured(cfg)),
        "git_sha": _git_sha(),
        "trajfusion_version": __version__,
        "input_files": _input_files(cfg),
        "verified_pool": str(verified_path),
        "verification": verify_report,
        "alpha": alpha_record,
        "token_counter": {"configured": cfg.length_policy.tokenizer, "used": counter_used or PROXY_COUNTER},
        "counts": stats["counts"],
        "rows": len(fused),
        "wall_time_s": None,
    }
    with atomic_directory(out_dir) as tmp:
        write_jsonl(tmp / "data.jsonl", fused)
        write_json(tmp / "stats.json", stats)
        if cfg.plots:
            from trajfusion.data.plots import plot_dataset

            manifest["plots"] = plot_dataset(outcomes, settings, tmp)
        manifest["wall_time_s"] = round(time.perf_counter() - started, 2)
        write_json(tmp / "manifest.json", manifest)
        write_dataset_card(tmp, manifest, stats)  # README.md for the hub and load_dataset(DIR)
    log.info("\n%s", summary_table(stats, out_dir))
    stage("data     built %s: %d rows in %.1fs", out_dir.name, len(fused), manifest["wall_time_s"])
    from trajfusion.lineage import log_data_run

    log_data_run((resolved_config or {}).get("wandb"), out_dir, _data_root(cfg), (resolved_config or {}).get("run_name"))
    return out_dir


# ----------------------------------------------------------------------------- α calibration


def calibrate(cfg: BuildDataConfig) -> dict:
    """calibrate_alpha.py: mean #Err and P(#Err ≥ j) at every breakpoint of α, a grid view, and the α that
    `length_policy.alpha=auto` picks for the target (the same search, the same fused-count table)."""
    prompts = load_prompts(cfg)
    rows, _, verified_path = verified_pool(cfg)
    lp = cfg.length_policy
    result = calibration_report(cfg, to_problem_pools(rows), fusion_settings(cfg, prompts, policy="none"),
                                budget_counter(lp.tokenizer)[0])
    result["pool"] = str(verified_path)
    out = pool_dir(cfg) / f"calibration-curve-{cfg.selector.name}-kmax{lp.k_max}.json"
    write_json(out, result)
    header = "  alpha     mean#Err  " + "  ".join(f"P(#Err>={j})" for j in range(1, lp.k_max + 1))
    lines = [f"α calibration on {result['problems']} problems (selector={cfg.selector.name}, k_max={lp.k_max}, "
             f"target #Err={result['target']}, reachable max {result['reachable_max']})", "grid:", header]
    for p in result["grid"]:
        lines.append(f"  {p['alpha']:<8.4g}  {p['mean_errors']:8.3f}  " + "  ".join(f"{q:10.3f}" for q in p["p_at_least"]))
    lines.append(f"picked (closest of {len(result['curve'])} steps): α={result['alpha']}  mean #Err {result['mean_errors']}  "
                 f"P(#Err>=j) {result['p_at_least']}")
    if result["reachable_max"] < result["target"]:
        lines.append(f"WARNING: the pool cannot reach {result['target']}; at most {result['reachable_max']}")
    lines.append(f"every breakpoint in {out}; `length_policy.alpha=auto` (the default) uses this α when building")
    log.info("\n%s", "\n".join(lines))
    return result
