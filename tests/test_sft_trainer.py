"""MathAlignSFTTrainer: on a CPU it trains with the model's own loss, which must equal TRL's fused-head loss."""

import pytest
import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from conftest import make_tiny_model
from mathalign.sft_trainer import MathAlignSFTTrainer

ROWS = {"prompt": ["12+7=?", "x-3=9, x=?", "72/4=?", "5*6=?"] * 4,
        "completion": [" The answer is 19.", " The answer is 12.", " The answer is 18.", " The answer is 30."] * 4}


def make(trainer_class, tokenizer, tmp_path, **config):
    args = SFTConfig(output_dir=str(tmp_path / trainer_class.__name__), per_device_train_batch_size=8,
                     max_steps=3, learning_rate=1e-2, report_to="none", use_cpu=True, bf16=False, logging_steps=1,
                     save_strategy="no", seed=0, activation_checkpointing=False, **config)
    return trainer_class(model=make_tiny_model(tokenizer), args=args, train_dataset=Dataset.from_dict(ROWS),
                         processing_class=tokenizer)


@pytest.mark.parametrize("completion_only", [True, False])  # SFT (prompt masked) and plain LM loss
def test_own_loss_and_metrics_equal_trls(tiny_tokenizer, tmp_path, completion_only):
    ours = make(MathAlignSFTTrainer, tiny_tokenizer, tmp_path, completion_only_loss=completion_only)
    theirs = make(SFTTrainer, tiny_tokenizer, tmp_path, completion_only_loss=completion_only)
    batch = next(iter(ours.get_train_dataloader()))
    losses = []
    for trainer in (ours, theirs):
        trainer.model.train()
        losses.append(trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=None))
    assert ours._uses_own_loss(batch, return_outputs=False)
    assert losses[0].item() == pytest.approx(losses[1].item(), rel=1e-5)
    for key in ("entropy", "mean_token_accuracy"):
        assert ours._metrics["train"][key][-1] == pytest.approx(theirs._metrics["train"][key][-1], rel=1e-4), key
    assert ours._metrics["train"]["num_tokens"] == theirs._metrics["train"]["num_tokens"]


def test_training_with_it_matches_trl_step_for_step(tiny_tokenizer, tmp_path):
    histories = []
    for trainer_class in (MathAlignSFTTrainer, SFTTrainer):
        trainer = make(trainer_class, tiny_tokenizer, tmp_path)
        trainer.train()
        histories.append([h["loss"] for h in trainer.state.log_history if "loss" in h])
    assert len(histories[0]) == 3
    assert histories[0] == pytest.approx(histories[1], rel=1e-4)  # same updates, not just the same first loss
    assert histories[0][-1] < histories[0][0]  # and it learns


def test_falls_back_to_trl_where_trl_does_more(tiny_tokenizer, tmp_path):
    trainer = make(MathAlignSFTTrainer, tiny_tokenizer, tmp_path, loss_type="dft")  # TRL's DFT loss
    batch = next(iter(trainer.get_train_dataloader()))
    assert not trainer._uses_own_loss(batch, return_outputs=False)
    assert torch.isfinite(trainer.compute_loss(trainer.model, dict(batch)))
