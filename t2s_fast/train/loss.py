"""The loss when TRL's own cannot run: cross-entropy on the labelled (SQL) positions only.

TRL 1.15's SFTTrainer always computes its loss through a fused LM head whose kernel is Triton
(trl/kernels/chunked_logprob.py), which cannot run without a GPU. The model's own loss would build logits for every
position over Qwen3's 151k-token vocabulary, which dominates a small CPU model's step. So where the kernel is
missing, the trainer computes the same quantity as TRL by projecting only the labelled positions through the LM
head, and says so in the log.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def trl_fused_loss_available() -> bool:
    """TRL's fused (Triton) loss can run here: a CUDA GPU and a TRL that has the kernel."""
    import torch

    try:
        from trl.trainer import utils as trl_utils
    except ImportError:
        return False
    return torch.cuda.is_available() and getattr(trl_utils, "_ChunkedLogProbFunction", None) is not None


def labelled_positions_loss(trainer, model, inputs, return_outputs, num_items_in_batch):
    """Sum of -log p(label) over labelled tokens divided by num_items_in_batch (the labelled tokens of the whole
    accumulated step), or their mean otherwise: TRL's quantity, with only the labelled positions projected."""
    import torch.nn.functional as F
    from transformers.modeling_outputs import CausalLMOutputWithPast

    labels = inputs["labels"]
    model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "seq_lengths")}
    # Positions whose next token is labelled in any row; `logits_to_keep` (an index tensor) makes the model
    # project only those through the LM head. The call goes through `model` itself, so a DDP wrapper sees
    # the forward it needs to all-reduce the gradients.
    keep = (labels[:, 1:] != -100).any(dim=0).nonzero().flatten()
    logits = model(**model_inputs, use_cache=False, logits_to_keep=keep).logits.float()
    targets = labels[:, keep + 1]
    mask = targets != -100
    loss_sum = F.cross_entropy(logits[mask], targets[mask], reduction="sum")
    if num_items_in_batch is not None and getattr(trainer, "model_accepts_loss_kwargs", False):
        loss = loss_sum / num_items_in_batch
        # num_items_in_batch counts the labelled tokens of ALL processes and DDP averages gradients over
        # them, so scale back up by the process count, as Trainer.compute_loss does (transformers trainer.py).
        if getattr(trainer.args, "average_tokens_across_devices", False) and trainer.accelerator.num_processes > 1:
            loss = loss * trainer.accelerator.num_processes
    else:
        loss = loss_sum / mask.sum().clamp(min=1)
    return (loss, CausalLMOutputWithPast(loss=loss)) if return_outputs else loss


class LabelledPositionsLoss:
    """Trainer piece: `compute_loss` by `labelled_positions_loss` instead of TRL's fused kernel."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return labelled_positions_loss(self, model, inputs, return_outputs, num_items_in_batch)


def loss_pieces() -> list[type]:
    """[LabelledPositionsLoss] where TRL's fused loss cannot run (logged), else [] (TRL's loss as is)."""
    if trl_fused_loss_available():
        return []
    log.info("TRL's fused loss kernel needs Triton on a CUDA GPU, not available here: the loss is computed on the "
             "labelled positions only (t2s_fast/train/loss.py), the same quantity")
    return [LabelledPositionsLoss]
