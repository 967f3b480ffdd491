"""Stop training once the model answers enough held-out problems: under-trained on purpose, at an accuracy.

    stop_at_accuracy: 0.65        # recipe keys, any stage with problems in its evaluation split
    stop_at_accuracy_steps: 10

Every `stop_at_accuracy_steps` optimizer steps, the callback answers a fixed, seeded sample of the stage's
evaluation split (greedy, with `mathalign eval`'s generation and checkers), logs it as `eval_greedy_accuracy` (to
trainer_state.json and, once attached with `attach_to`, to the run's reporters: TensorBoard, Trackio...), and ends
training at the first check that reaches the threshold. A warning says so when training ends without reaching it.

Why: the alignment lab needs a base model in a band (60-85% accuracy) where a small model's accuracy climbs by
~15 points an epoch, and not monotonically (77% at one step, 41% eighty steps later), and where it climbs moves with
the CPU, the thread count and the library versions (the same recipe read 65% after 20 epochs on one setup and 41%
on another). A threshold lands in the band on every setup; an epoch count does not.
"""

from __future__ import annotations

import logging

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class StopAtAccuracyCallback(TrainerCallback):
    """End training at the first check whose greedy accuracy on `dataset` reaches `threshold`.

    `dataset` holds problems (`prompt`, `answer`, `task` columns, as the `sft`, `preferences` and `rl` builders
    write); `num_samples` of them, drawn with `seed`, are answered every `every` steps. Every rank of a distributed
    run measures the same weights on the same problems, so all of them stop at the same step.

    >>> StopAtAccuracyCallback(tokenizer, data["validation"], threshold=0.65).attach_to(trainer)
    """

    def __init__(self, tokenizer, dataset, threshold: float, every: int = 10, num_samples: int = 256,
                 seed: int = 0, batch_size: int = 256):
        from .evaluation import check_columns

        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
            raise ValueError(f"stop_at_accuracy must be a share of problems between 0 and 1, got {threshold!r}.")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"stop_at_accuracy_steps must be an integer >= 1, got {every!r}.")
        if dataset is None or len(dataset) == 0:
            raise ValueError("stop_at_accuracy needs held-out problems: the stage's evaluation split "
                             "(dataset_test_split) is missing or empty.")
        check_columns(dataset, "evaluation")
        self.tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps its tokenizer
        self.dataset = dataset.shuffle(seed=seed).select(range(min(num_samples, len(dataset))))
        self.threshold, self.every, self.batch_size = float(threshold), every, batch_size
        self.last_check: tuple[int, float] | None = None  # (step, accuracy)
        self.callback_handler = None  # the trainer's, once attached: how a check reaches the reporters

    def attach_to(self, trainer) -> "StopAtAccuracyCallback":
        """Register with `trainer`, so that every check also reaches its reporters (TensorBoard, Trackio...)."""
        trainer.add_callback(self)
        self.callback_handler = trainer.callback_handler
        return self

    def measure(self, model) -> float:
        """Greedy accuracy of `model` on the sample (the model is left in the mode it was in)."""
        from .evaluation import evaluate_split

        was_training = model.training
        model.eval()
        try:
            metrics, _ = evaluate_split(model, self.tokenizer, self.dataset, "evaluation",
                                        batch_size=self.batch_size, progress=False)
        finally:
            model.train(was_training)
        return metrics["accuracy"]

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or state.global_step % self.every != 0:
            return
        accuracy = self.measure(model)
        self.last_check = (state.global_step, accuracy)
        logs = {"eval_greedy_accuracy": accuracy}
        state.log_history.append({**logs, "epoch": state.epoch, "step": state.global_step})
        if self.callback_handler is not None:
            # Straight to the callbacks, not through Trainer.log: TRL's trainers flush their averaged metrics there,
            # and a check between two logging steps would cut those averages short. The handler clears should_log,
            # which would drop this step's training log: keep it.
            should_log = control.should_log
            self.callback_handler.on_log(args, state, control, logs)
            control.should_log = should_log
        if accuracy >= self.threshold:
            logger.warning("Greedy accuracy %.1f%% on %d held-out problems reached stop_at_accuracy (%.1f%%) at "
                           "step %d: training stops here.", 100 * accuracy, len(self.dataset), 100 * self.threshold,
                           state.global_step)
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        if self.last_check is not None and self.last_check[1] >= self.threshold:
            return  # training stopped at that check
        step, accuracy = self.last_check or (None, None)
        last = "no check ran" if step is None else f"{100 * accuracy:.1f}% at step {step}"
        logger.warning("Training ended without reaching stop_at_accuracy (%.1f%%; last check: %s): train longer "
                       "(num_train_epochs, max_steps) or lower the threshold.", 100 * self.threshold, last)


__all__ = ["StopAtAccuracyCallback"]
