"""The ablation file (`t2s-fast ablate --config FILE`): shared EvalConfig settings, the arms (each a few EvalConfig
fields to override), who chooses, the GPU price, and the optional final report. Every arm's EvalConfig is built
and checked here, before anything is generated: a typo in the last arm fails at once.

The arms share ONE engine, so an arm may not change what the engine is (the model, the adapters, the backend and
its memory, dtype, cache...) nor the question set the arms are compared on. ``seed`` is allowed: it is a
per-request sampling seed (`GenSettings.seed` + each request's own seed), not an engine setting; the engine is
opened with the shared settings' seed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

from t2s_fast.configs import setting as _f
from t2s_fast.errors import T2SError
from t2s_fast.evaluate.config import EvalConfig
from t2s_fast.evaluate.lazy_engine import ENGINE_FIELDS  # the same for every arm (set in "eval" only)

# The question set every arm is compared on (set in "eval" only; "final" replaces it for the final report).
QUESTION_FIELDS = ("suite", "questions", "spider_dir", "split", "db_root", "limit", "dbs")
ABLATION_OWNED = ("out_dir", "checkpoints")  # set by the ablation / a selection of its own
ARM_EXTRA = ("name", "group")
FINAL_DEFAULTS = {"suite": "spider1", "split": "dev"}
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class AblationConfig:
    FILE_SECTIONS = {"eval": (EvalConfig, ()), "arms": (EvalConfig, ARM_EXTRA), "final": (EvalConfig, ("groups",))}

    out_dir: str = _f("", "Ablation folder: arms/<arm>/ (one eval run each), final/<arm>/, ablation.json/md/png.")
    eval: dict = _f({},
                    "EvalConfig settings shared by every arm, keyed by eval's flags: base_model, adapter (NAME=PATH "
                    "list), backend, "
                        "suite (default heldout; Spider dev is refused), questions, workers, vllm_cache_dir, "
                        "repair (eval's default, auto, unless set: \"none\" keeps a baseline arm greedy; an arm's "
                        "own repair overrides it), ...", cli="file")
    arms: list = _f([], "The arms, in order: each a name (letters, digits, '.', '_', '-'), a group, and the "
                        "EvalConfig fields it changes (repair, repair_k, n_samples, temperature, question_values, "
                        "repetition_guard, ...). A group's first arm is its baseline.", cli="file")
    choose_adapter: str | None = _f(None, "The adapter whose held-out EX chooses each group's arm (default: the "
                                          "first adapter; the base model when there is none).")
    gpu_hourly_usd: float = _f(3.44, "Price of one GPU hour: each arm's dollars are its wall seconds at this rate "
                                     "(times the engine's GPUs).")
    final: dict | None = _f(None, "Optional final report: {suite, spider_dir, split, ..., groups: [group, ...]}: each "
                                  "listed group's baseline and winner on this set (default spider1 dev), in the same "
                                  "engine. Never used to choose.", cli="file")
    source: str = _f("", "The config file this came from (set when loaded).", cli=False)


@dataclass
class AblationRun:
    """How `t2s-fast ablate` runs the file (not an ablation setting)."""

    dry_run: bool = _f(False, "Check the file and list the arms; generate nothing.")


@dataclass(frozen=True)
class Arm:
    name: str
    group: str
    overrides: dict  # EvalConfig fields that differ from the shared settings


def _where(cfg: AblationConfig) -> str:
    return cfg.source or "ablation config"


def parse_arms(cfg: AblationConfig) -> list[Arm]:
    """The arms in file order; names unique and usable as folder names; no engine or question-set field."""
    where, allowed = _where(cfg), {f.name for f in fields(EvalConfig)}
    if not cfg.out_dir:
        raise T2SError(f"{where}: out_dir is required")
    if not cfg.arms:
        raise T2SError(f"{where}: arms is empty; list at least one arm")
    for key in ABLATION_OWNED:
        if key in cfg.eval:
            raise T2SError(f"{where}: eval.{key} is set by the ablation; remove it")
    for key, value in cfg.eval.items():
        if key not in allowed:
            raise T2SError(f"{where}: eval: unknown setting {key!r} (an EvalConfig field)")
        _checked(f"{where}: eval", key, value)
    if cfg.gpu_hourly_usd < 0:
        raise T2SError(f"{where}: gpu_hourly_usd must be at least 0")
    out, seen = [], set()
    for i, raw in enumerate(cfg.arms):
        if not isinstance(raw, dict):
            raise T2SError(f"{where}: arms[{i}] must be an object of settings")
        name = str(raw.get("name", ""))
        if not _NAME_OK.match(name) or name in (".", "..") or name in seen:
            raise T2SError(f"{where}: arms[{i}]: name {name!r} is {'used twice' if name in seen else 'not usable'} "
                           "(letters, digits, '.', '_', '-'); give each arm a unique name")
        seen.add(name)
        overrides = {k: v for k, v in raw.items() if k not in ARM_EXTRA}
        for key in overrides:
            if key in ENGINE_FIELDS or key in QUESTION_FIELDS or key in ABLATION_OWNED:
                what = ("the one engine's" if key in ENGINE_FIELDS else
                        "the question set's" if key in QUESTION_FIELDS else "the ablation's")
                raise T2SError(f"{where}: arm {name}: {key} is {what} setting, shared by every arm; set it in "
                               "\"eval\", not in an arm")
            if key not in allowed:
                raise T2SError(f"{where}: arm {name}: unknown setting {key!r} (an EvalConfig field, or name/group)")
            overrides[key] = _checked(f"{where}: arm {name}", key, overrides[key])
        out.append(Arm(name, str(raw.get("group") or "default"), overrides))
    return out


def _checked(what: str, key: str, value):
    """The arm's value as EvalConfig's field wants it (the config files' one type check)."""
    from t2s_fast.configs import _Mismatch, check_value, field_hints

    f = next(f for f in fields(EvalConfig) if f.name == key)
    try:
        value = check_value(value, field_hints(EvalConfig)[key], f.metadata.get("sep"))
    except _Mismatch as exc:
        raise T2SError(f"{what}: {key}: expected {exc}, got {value!r}") from None
    if f.metadata.get("choices") and value not in f.metadata["choices"]:
        raise T2SError(f"{what}: {key}: {value!r} is not one of {', '.join(f.metadata['choices'])}")
    return value


def _build(cfg: AblationConfig, settings: dict, out_dir: Path, *, what: str, check_files: bool) -> EvalConfig:
    if not check_files:  # dry run: the adapter folders need not exist yet
        settings = {**settings, "adapters": {}, "include_base": True}
    try:
        return EvalConfig(out_dir=str(out_dir), **settings)
    except (TypeError, T2SError) as exc:
        raise T2SError(f"{_where(cfg)}: {what}: {exc}") from None


def arm_config(cfg: AblationConfig, arm: Arm, *, check_files: bool = True) -> EvalConfig:
    """The arm's EvalConfig: the shared settings (default suite heldout), then the arm's own."""
    settings = {"suite": "heldout", **cfg.eval, **arm.overrides}
    return _build(cfg, settings, Path(cfg.out_dir) / "arms" / arm.name, what=f"arm {arm.name}",
                  check_files=check_files)


def final_config(cfg: AblationConfig, arm: Arm, *, check_files: bool = True) -> EvalConfig:
    """The arm on the final set: its settings with the question set replaced by the final section's."""
    section = {k: v for k, v in (cfg.final or {}).items() if k != "groups"}
    settings = {k: v for k, v in {**cfg.eval, **arm.overrides}.items() if k not in QUESTION_FIELDS}
    return _build(cfg, {**settings, **FINAL_DEFAULTS, **section}, Path(cfg.out_dir) / "final" / arm.name,
                  what=f"final, arm {arm.name}", check_files=check_files)


def _check_final(cfg: AblationConfig, arms: list[Arm]) -> None:
    where = _where(cfg)
    if not isinstance(cfg.final.get("groups", []), list):
        raise T2SError(f"{where}: final.groups must be a list of group names")
    for key in cfg.final:
        if key != "groups" and key not in QUESTION_FIELDS:
            raise T2SError(f"{where}: final.{key}: the final section sets only the question set "
                           f"({', '.join(QUESTION_FIELDS)}) and groups; every other setting is the arm's")
    groups = {a.group for a in arms}
    for g in cfg.final.get("groups", []):
        if g not in groups:
            raise T2SError(f"{where}: final.groups: no arm is in group {g!r} (groups: {', '.join(sorted(groups))})")


def check_ablation(cfg: AblationConfig, *, check_files: bool = True) -> tuple[list[Arm], dict[str, EvalConfig]]:
    """Every arm (and the final set) builds a valid EvalConfig, and the arms' set is not Spider dev; returns
    the arms and their EvalConfigs. ``check_files=False`` (dry run) does not need the adapter folders."""
    from t2s_fast.evaluate.selection import refuse_spider_dev

    arms = parse_arms(cfg)
    configs = {a.name: arm_config(cfg, a, check_files=check_files) for a in arms}
    first = configs[arms[0].name]
    refuse_spider_dev(suite=first.suite, split=first.split, questions=first.questions, spider_dir=first.spider_dir,
                      what=f"ablate ({_where(cfg)}: eval)")
    names = evaluated_names(cfg)
    if cfg.choose_adapter is not None and cfg.choose_adapter not in names:
        raise T2SError(f"{_where(cfg)}: choose_adapter {cfg.choose_adapter!r} is not evaluated "
                       f"(evaluated: {', '.join(names)})")
    if cfg.final is not None:
        _check_final(cfg, arms)
        for a in arms:
            final_config(cfg, a, check_files=check_files)
    return arms, configs


def evaluated_names(cfg: AblationConfig) -> list[str]:
    """The adapter names every arm evaluates, from the shared settings alone (no folder needed): the base first
    when included, then the adapters as given."""
    from t2s_fast.evaluate.names import parse_adapter_specs
    from t2s_fast.generate.base import BASE_ADAPTER

    adapters = list(parse_adapter_specs(cfg.eval.get("adapters") or {}))
    return ([BASE_ADAPTER] if cfg.eval.get("include_base") or not adapters else []) + adapters
