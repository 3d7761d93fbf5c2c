"""rl_curves.png: reward (with the match rate), loss, the share of zero-variance groups and the completion length
against the optimizer step, from train_log.jsonl."""

from __future__ import annotations

from pathlib import Path

from t2s_fast.jsonl import read_jsonl

PANELS = (("reward", "mean reward", ("reward", "match_rate", "start_match_rate")), ("loss", "GRPO loss", ("loss",)),
          ("frac_reward_zero_std", "groups with zero reward variance", ("frac_reward_zero_std",)),
          ("completion_length", "mean completion length (tokens)", ("completion_length",)))


def plot_rl_curves(log_path: str | Path, png_path: str | Path, title: str = "") -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_jsonl(log_path, tolerate_torn_tail=True) if Path(log_path).is_file() else []
    rows = [r for r in rows if r.get("reward") is not None or r.get("loss") is not None]
    if not rows:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), dpi=110, sharex=True)
    for ax, (_, label, keys) in zip(axes.flat, PANELS):
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), lw=1.2, label=key.replace("_", " "))
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("optimizer step")
    fig.suptitle(title or "GRPO")
    fig.tight_layout()
    png_path = Path(png_path)
    tmp = png_path.with_name(png_path.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png_path)
    return png_path
