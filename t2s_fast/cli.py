"""The `t2s-fast` command line: a thin layer that parses flags into a config and calls one function.

Subcommands are imported lazily, so `t2s-fast --help` and `t2s-fast score` never import torch, and GPU-only
engines (unsloth, bitsandbytes, vllm) are imported only inside the code paths that use them.
"""

from __future__ import annotations

import importlib
import sys

import click

from t2s_fast import __version__
from t2s_fast.errors import T2SError

# name -> "module:attribute" of a click command (or group)
COMMANDS = {
    "prepare": ("t2s_fast.data.cli:prepare_command",
                "Spider 1.0/2.0 files on disk -> chat-format JSONL for stage 1 and 2."),
    "prepare-repair": ("t2s_fast.evaluate.cli:prepare_repair_command",
                       "Repair-turn training examples from a model's real failures on training data."),
    "train": ("t2s_fast.train.cli:train_command", "QLoRA fine-tuning (Unsloth on a GPU, transformers+PEFT otherwise)."),
    "rl": ("t2s_fast.rl.cli:rl_command", "Stage 3: GRPO on an execution reward, continuing an SFT adapter."),
    "infer": ("t2s_fast.train.cli:infer_command", "Answer one question against a schema; prints only the SQL."),
    "merge": ("t2s_fast.train.cli:merge_command", "Fold a LoRA adapter into its base model (bfloat16)."),
    "eval": ("t2s_fast.evaluate.cli:eval_command",
             "Batch-generate SQL on Spider dev for several adapters and score EX."),
    "report": ("t2s_fast.evaluate.cli:report_command", "Re-render evaluation runs and compare them side by side."),
    "ablate": ("t2s_fast.evaluate.cli:ablate_command",
               "Many eval settings (arms) in one engine; choose per group on held-out EX."),
    "sweep": ("t2s_fast.sweep.cli:sweep_command",
              "Train variants under one dollar cap; choose by held-out EX; report on Spider dev."),
    "score": ("t2s_fast.sql.cli:score_command", "Score predicted SQL by execution accuracy (sqlglot + SQLite)."),
    "bench": ("t2s_fast.benchmarks.cli:bench_group",
              "Throughput, memory and cost benchmarks (train, generate, score)."),
    "demo": ("t2s_fast.demo.cli:demo_command", "The whole pipeline on an embedded default, on a laptop CPU."),
    "run": ("t2s_fast.pipeline.cli:run_command", "The whole runbook as one resumable command under one dollar cap."),
    "status": ("t2s_fast.pipeline.cli:status_command", "Where a `t2s-fast run` stands: stage, progress, ETA, dollars."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("t2s_fast"):
                raise click.ClickException(f"'{name}' is not available in this build ({exc})") from None
            raise
        return getattr(module, attr)

    def format_commands(self, ctx, formatter):
        # Short help from the table above, so listing commands imports nothing heavy.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="t2s-fast")
def cli():
    """t2s-fast: fine-tune an open LLM into a text-to-SQL model on one GPU, and prove how good it is."""


def main(argv: list[str] | None = None) -> None:
    """Entry point. A T2SError (a user mistake) prints one clear line and exits with code 2."""
    try:
        cli.main(args=argv, prog_name="t2s-fast", standalone_mode=False)
    except T2SError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
