"""The study: stages that take a teacher to a verdict, cached by settings and resumable."""
