"""PNG plots of a dataset: what a table hides (the paper's Figure 1 and the length cost of fusion)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from trajfusion.core.build import FusionSettings
from trajfusion.data.report import Outcomes, spearman


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_dataset(outcomes: Outcomes, settings: FusionSettings, out_dir: Path) -> list[str]:
    """Write the four plots into `out_dir`; returns their file names."""
    plt = _pyplot()
    judged = [o for o in outcomes.problems if o.n_judged]
    erring = [o for o in judged if o.n_wrong]
    kept = [o for o in outcomes.problems if o.dropped is None]
    written = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=110, metadata={"Software": None})
        plt.close(fig)
        written.append(name)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist([o.error_rate for o in judged], bins=20, range=(0, 1), color="#4c72b0", edgecolor="white")
    ax.set(xlabel="error rate r = wrong / K", ylabel="problems", title=f"Teacher error rate ({len(judged)} problems)")
    save(fig, "error_rate_hist.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    rho = spearman([o.error_rate for o in erring], [o.entropy_bits for o in erring])
    ax.scatter([o.error_rate for o in erring], [o.entropy_bits for o in erring], s=8, alpha=0.5, color="#dd8452")
    ax.set(xlabel="error rate r", ylabel="entropy of wrong answers (bits)", title=f"Error diversity vs error rate (Spearman ρ = {rho})")
    save(fig, "entropy_vs_error_rate.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    policy_k, used = Counter(o.k for o in kept), Counter(o.n_errors for o in kept)
    ks = range(0, settings.k_max + 1)
    ax.bar([k - 0.2 for k in ks], [policy_k.get(k, 0) for k in ks], width=0.4, label="k from the length policy")
    ax.bar([k + 0.2 for k in ks], [used.get(k, 0) for k in ks], width=0.4, label="errors fused (after caps)")
    ax.set(xlabel="k", ylabel="rows", title=f"{settings.fusion}: k_max={settings.k_max}, α={settings.alpha}")
    ax.legend()
    save(fig, "k_distribution.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    rft = [o.rft_tokens for o in kept if o.rft_tokens]
    fused = [o.n_tokens for o in kept if o.n_tokens]
    top = max(rft + fused + [1])
    ax.hist(rft, bins=40, range=(0, top), alpha=0.6, label="RFT layout")
    ax.hist(fused, bins=40, range=(0, top), alpha=0.6, label=f"{settings.fusion} rows")
    ax.axvline(settings.max_tokens, color="black", linestyle="--", linewidth=1, label="token budget")
    ax.set(xlabel="tokens per row", ylabel="rows", title="Row length: RFT vs this dataset")
    ax.legend()
    save(fig, "token_lengths.png")
    return written
