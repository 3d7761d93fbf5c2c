"""The run's trainer class is built from named pieces: the token count always, the labelled-positions loss only
where TRL's fused kernel cannot run, and that choice is logged."""

from __future__ import annotations

import logging

import torch

from t2s_fast.train import loss
from t2s_fast.train.budget import RunMeter
from t2s_fast.train.callbacks import CountTokens, CpuDistributedResume, trainer_class


class FakeTrainer:
    def training_step(self, model, inputs, *args, **kwargs):
        return "stepped"

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return "trl loss"


def test_without_the_fused_kernel_the_loss_piece_is_used_and_logged(monkeypatch, caplog):
    monkeypatch.setattr(loss, "trl_fused_loss_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="t2s_fast.train.loss"):
        cls = trainer_class(FakeTrainer, RunMeter(gpu_hourly_usd=1.0))
    assert cls.__mro__[1:4] == (loss.LabelledPositionsLoss, CountTokens, CpuDistributedResume)
    assert any("labelled positions only" in r.getMessage() for r in caplog.records)


def test_with_the_fused_kernel_trl_keeps_its_loss(monkeypatch, caplog):
    monkeypatch.setattr(loss, "trl_fused_loss_available", lambda: True)
    with caplog.at_level(logging.INFO, logger="t2s_fast.train.loss"):
        cls = trainer_class(FakeTrainer, RunMeter(gpu_hourly_usd=1.0))
    assert loss.LabelledPositionsLoss not in cls.__mro__
    assert cls().compute_loss(None, {}) == "trl loss"
    assert not caplog.records


def test_the_token_count_reaches_the_meter(monkeypatch):
    monkeypatch.setattr(loss, "trl_fused_loss_available", lambda: True)
    meter = RunMeter(gpu_hourly_usd=1.0)
    trainer = trainer_class(FakeTrainer, meter)()
    batch = {"input_ids": torch.ones(2, 4, dtype=torch.long),
             "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]),
             "labels": torch.tensor([[-100, 5, 6, -100], [-100, 7, -100, -100]])}
    assert trainer.training_step(None, batch) == "stepped"
    assert meter.take_pending() == (5, 3)


def test_the_projection_counts_earlier_sessions_apart_from_loading():
    from t2s_fast.train.trainer import spent_text

    assert spent_text(12.4, 0.0) == "12 s already spent loading"
    assert spent_text(312.0, 300.0) == "12 s already spent loading + 300 s of the earlier session(s)"
