"""Stage 3: reinforcement learning on an execution reward (GRPO), continuing a stage-1 or stage-2 adapter.

- `config.py`: `RLConfig`, every setting of `t2s-fast rl` with its help;
- `reward.py`: the execution reward, scored by the project's sandboxed executor as `eval` scores;
- `prompts.py`: the training prompts, and the filter that keeps those the starting adapter answers right
  sometimes (not always, not never): only they give a group of completions any reward variance to learn from;
- `engines.py`: the model and trainer setup per engine (TRL with colocated vLLM, or Unsloth's fast inference);
- `callbacks.py`: the per-step record (reward, zero-variance fraction, completion length, where the time went);
- `trainer.py`: `train_rl(cfg)`, the run: filter, train under the dollar meter, save, plot, run.json.
"""
