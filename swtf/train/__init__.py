"""Training: the custom loop every stage shares (`fit`) and inference helpers."""

from swtf.train.loop import History, TrainOptions, accuracy, cross_entropy_loss, fit, predict_logits

__all__ = ["History", "TrainOptions", "accuracy", "cross_entropy_loss", "fit", "predict_logits"]
