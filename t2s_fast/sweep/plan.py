"""From the sweep file to the plain configs the existing functions take: a TrainConfig per variant (its
folder, its share of the budget, its replay mix) and the EvalConfigs of the held-out and final evaluations."""

from __future__ import annotations

from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.evaluate.config import EvalConfig
from t2s_fast.sweep.config import SweepConfig, Variant
from t2s_fast.train.config import TrainConfig


def run_dir(cfg: SweepConfig, name: str) -> Path:
    return Path(cfg.out_dir) / "runs" / name


def heldout_dir(cfg: SweepConfig) -> Path:
    """The held-out evaluation's run folder (its report.json is what the sweep chooses from)."""
    return Path(cfg.out_dir) / "eval" / "heldout"


def replay_files(cfg: SweepConfig, ratio: float) -> tuple[str, str]:
    """This ratio's stage2_mixed_{train,valid}.jsonl, written once under <out_dir>/data/replay-<ratio>/ by the
    function `prepare` itself mixes with (so they are the lines `prepare --stage2-replay-ratio` writes)."""
    from t2s_fast.data.prepare import MIXED_TRAIN, MIXED_VALID, write_replay_mix

    folder = Path(cfg.out_dir) / "data" / f"replay-{ratio:g}"
    if not ((folder / MIXED_TRAIN).is_file() and (folder / MIXED_VALID).is_file()):
        write_replay_mix(cfg.stage2_prepared_dir, ratio, folder)
    return str(folder / MIXED_TRAIN), str(folder / MIXED_VALID)


def train_config(cfg: SweepConfig, variant: Variant, *, budget: float | None, resume: bool,
                 write_files: bool = True) -> TrainConfig:
    """The variant's TrainConfig: shared settings, its overrides, its own folder and budget. With
    cfg.checkpoints every checkpoint is kept (save_total_limit None), since each one is a candidate."""
    settings = {**cfg.train, **{k: v for k, v in variant.overrides.items() if k != "replay_ratio"}}
    where = f"{cfg.source or 'sweep config'}: variant {variant.name}"
    ratio = variant.overrides.get("replay_ratio")
    if ratio is not None:
        if not settings.get("adapter_path") or not cfg.stage2_prepared_dir:
            raise T2SError(f"{where}: replay_ratio is a stage-2 setting: it needs train.adapter_path (the stage-1 "
                           "adapter) and stage2_prepared_dir (the `prepare` folder to mix from)")
        if write_files:
            settings["train_file"], mixed_valid = replay_files(cfg, float(ratio))
            settings.setdefault("eval_file", mixed_valid)
        else:
            settings.setdefault("train_file", "<replay mix>")
    if cfg.checkpoints:
        settings["save_total_limit"] = None
    try:
        tc = TrainConfig(**settings, output_dir=str(run_dir(cfg, variant.name)), resume=resume, max_cost_usd=budget)
    except TypeError as exc:
        raise T2SError(f"{where}: {exc}") from None
    try:
        return tc.validate()
    except T2SError as exc:
        raise T2SError(f"{where}: {exc}") from None


def eval_config(cfg: SweepConfig, section: dict, out_dir: Path, adapters: dict[str, str], *, what: str,
                defaults: dict, **overrides) -> EvalConfig:
    """An EvalConfig of the sweep's base model: shared eval settings, then the section's, then overrides."""
    where = f"{cfg.source or 'sweep config'}: {what}"
    settings = {**defaults, **cfg.eval, **section, **overrides}
    for key in ("base_model", "out_dir", "adapters", "checkpoints"):
        if key in cfg.eval or key in section:
            raise T2SError(f"{where}: {key} is set by the sweep; remove it")
    model = cfg.train.get("model_name") or TrainConfig.model_name
    settings.setdefault("tokenizer", cfg.train.get("tokenizer"))
    try:
        return EvalConfig(base_model=model, out_dir=str(out_dir), adapters=dict(adapters),
                          include_base=settings.pop("include_base", False) or not adapters, **settings)
    except TypeError as exc:
        raise T2SError(f"{where}: {exc}") from None
    except T2SError as exc:
        raise T2SError(f"{where}: {exc}") from None


# The sweep chooses on greedy held-out EX and reports the choice greedy (then maj@K): no repair pass unless the
# sweep file sets "repair" (eval's own default, --repair auto, would repair on these SQLite suites).
EVAL_DEFAULTS = {"repair": "none"}
HELDOUT_DEFAULTS = {**EVAL_DEFAULTS, "suite": "heldout"}
FINAL_DEFAULTS = {**EVAL_DEFAULTS, "suite": "spider1", "split": "dev"}


def heldout_config(cfg: SweepConfig, adapters: dict[str, str]) -> EvalConfig:
    return eval_config(cfg, cfg.heldout, heldout_dir(cfg), adapters, what="heldout",
                       defaults=HELDOUT_DEFAULTS)


def final_configs(cfg: SweepConfig, adapters: dict[str, str]) -> list[tuple[str, EvalConfig]]:
    """[("greedy", cfg), ("maj@K", cfg)]: the adapters given (the chosen one, and its baseline), greedy, then
    self-consistency if asked."""
    if cfg.final is None:
        return []
    section = dict(cfg.final)
    k = int(section.pop("n_samples", 1))
    temperature = section.pop("temperature", 0.7)
    final_dir = Path(cfg.out_dir) / "final"
    out = [("greedy", eval_config(cfg, section, final_dir / "greedy", adapters, what="final",
                                  defaults=FINAL_DEFAULTS, n_samples=1, temperature=0.0))]
    if k > 1:
        out.append((f"maj@{k}", eval_config(cfg, section, final_dir / f"maj{k}", adapters, what="final",
                                            defaults=FINAL_DEFAULTS, n_samples=k, temperature=temperature)))
    return out


def check_plan(cfg: SweepConfig, variants: list[Variant]) -> None:
    """Every variant's TrainConfig and both evaluations are valid, the held-out set is not Spider dev, and
    max_eval_loss names a variant (and every variant has an eval loss to compare), before anything is trained."""
    from t2s_fast.evaluate.selection import refuse_spider_dev

    held = heldout_config(cfg, {})
    refuse_spider_dev(suite=held.suite, split=held.split, questions=held.questions, spider_dir=held.spider_dir,
                      what=f"sweep ({cfg.source or 'sweep config'}: heldout)")
    where = cfg.source or "sweep config"
    names = [v.name for v in variants]
    if isinstance(cfg.max_eval_loss, str) and cfg.max_eval_loss not in names:
        raise T2SError(f"{where}: max_eval_loss {cfg.max_eval_loss!r} is neither a number nor a variant of this file "
                       f"(variants: {', '.join(names)})")
    for v in variants:
        tc = train_config(cfg, v, budget=cfg.max_cost_usd, resume=False, write_files=False)
        for flag, f in (("train_file", tc.train_file), ("eval_file", tc.eval_file)):
            if f and f != "<replay mix>" and not Path(f).is_file():
                raise T2SError(f"{where}: variant {v.name}: {flag} {f} not found")
        if cfg.max_eval_loss is not None and not tc.eval_file and "replay_ratio" not in v.overrides:
            raise T2SError(f"{where}: variant {v.name}: max_eval_loss chooses by eval loss, but the variant has no "
                           "eval_file (set train.eval_file)")
    if cfg.final is not None:
        from t2s_fast.evaluate.lazy_engine import ENGINE_FIELDS

        shared = sorted(set(cfg.final) & set(ENGINE_FIELDS))
        if shared:
            raise T2SError(f"{where}: final.{shared[0]} is an engine setting, and the final report runs through the "
                           "held-out evaluation's engine: set it in \"eval\"")
        final_configs(cfg, {})  # the settings only: the chosen adapter is not known yet
