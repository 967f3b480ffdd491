"""TRL's `SFTTrainer`, with the model's own loss on CPUs.

TRL 1.16 always computes the SFT loss through its "fused LM head" (a chunked log-softmax that recomputes the
LM-head matmul in the backward pass). With Triton on a GPU that saves memory on large vocabularies; on a CPU it runs
as many small ops and costs a small model about a quarter of its step time (`benchmarks/train_throughput.py
--breakdown`). On CPUs this subclass takes the same loss from the model's own forward (the transformers loss
function, normalised by the same `num_items_in_batch`) and logs the same entropy, token accuracy and token count.
Everything else (GPUs, label smoothing, custom loss functions, DFT, MoE aux losses, evaluation outputs) is TRL's.
"""

import torch
from trl import SFTTrainer


class MathAlignSFTTrainer(SFTTrainer):
    def _uses_own_loss(self, inputs, return_outputs: bool) -> bool:
        return (
            inputs["input_ids"].device.type == "cpu"
            and not return_outputs
            and not self.aux_loss_enabled
            and self.args.loss_type == "nll"
            and self.compute_loss_func is None
            and self.label_smoother is None
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self._uses_own_loss(inputs, return_outputs):
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        inputs["use_cache"] = False
        outputs = model(**inputs, num_items_in_batch=num_items_in_batch)
        loss = outputs.loss
        # As TRL (and Trainer) do: num_items_in_batch counts every rank's tokens, and DDP averages gradients.
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        self._log_token_metrics(mode, inputs, outputs.logits)
        return loss

    @torch.no_grad()
    def _log_token_metrics(self, mode: str, inputs, logits) -> None:
        """Entropy, top-1 token accuracy and tokens seen, as TRL's `compute_loss` logs them."""
        gather = self.accelerator.gather_for_metrics
        labels = inputs["labels"][:, 1:]
        mask = labels != -100
        logits = logits[:, :-1][mask].float()
        log_probs = logits.log_softmax(-1)
        num_valid = gather(mask.sum()).sum()
        entropy_sum = gather(-(log_probs.exp() * log_probs).sum()).sum()
        num_correct = gather((logits.argmax(-1) == labels[mask]).sum()).sum()
        self._metrics[mode]["entropy"].append((entropy_sum / num_valid).item() if num_valid > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((num_correct / num_valid).item() if num_valid > 0 else 0.0)
        if mode == "train":
            if "attention_mask" in inputs:
                seen = gather(inputs["attention_mask"].sum()).sum().item()
            else:  # padding-free batches carry position_ids instead
                seen = gather(torch.tensor(inputs["position_ids"].size(1))).sum().item()
            self._total_train_tokens += seen // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
