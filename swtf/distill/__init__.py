"""Knowledge distillation: losses, the student trainer, temperature ranging and the factors study."""
