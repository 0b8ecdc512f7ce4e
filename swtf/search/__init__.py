"""Student architecture search with keras-tuner, trained by distillation (see `swtf.search.tuning`)."""
