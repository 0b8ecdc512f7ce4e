"""Progress of swtf's long steps: a bar with an ETA on a terminal, one plain line per step otherwise.

Every long step (training epochs, attacks and certificates per model, pruning rounds, search trials)
reports through `Progress`, so redirected output stays a readable log (no escape codes, no carriage
returns) and `--quiet` silences all of it in one place. The bar goes to stderr, a terminal; the plain lines
go to stdout, so that stderr carries nothing but errors (one line, see `swtf.main`) in a log.
"""

import sys
import time

from tqdm import tqdm


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Reports the steps of one job, e.g. `with Progress("teacher", 40, unit="epoch") as bar: ... bar.step(...)`.

    Args:
      label: what is running, e.g. "teacher" or "attack"; starts every line.
      total: the number of steps, or None when unknown (no ETA then).
      unit: what one step is, for the bar's rate ("epoch", "model", "trial").
      quiet: report nothing.
      lines: without a terminal, write one line per step (False where the caller logs each step itself).
      stream: where to write (default: a bar on `sys.stderr` if it is a terminal, else lines on `sys.stdout`).
    """

    def __init__(self, label, total=None, *, unit="step", quiet=False, lines=True, stream=None):
        self.label, self.total, self.quiet, self.lines = label, total, quiet, lines
        self.stream = stream or sys.stderr
        self.line_stream = stream or sys.stdout
        self.done = 0
        self.start = time.monotonic()
        self.bar = None
        if not quiet and _is_terminal(self.stream):
            # leave=None: a bar nested in another (an epoch bar inside a pruning round) vanishes when done.
            self.bar = tqdm(total=total, desc=label, unit=unit, file=self.stream, leave=None, dynamic_ncols=True)

    def step(self, what, note=""):
        """Marks one step done: `what` names it ("epoch 3", "teacher eps 0.1"), `note` its result."""
        self.done += 1
        if self.quiet:
            return
        text = f"{what}: {note}" if note else what
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update()
        elif self.lines:
            print(f"{self.label} [{self._count()}] {text} ({self._timing()})", file=self.line_stream, flush=True)

    def summary(self, note):
        """Without a terminal, one line for the whole job (where a line per step would flood a log); on a
        terminal the bar has shown it."""
        if not self.quiet and self.bar is None:
            print(f"{self.label}: {note} ({time.monotonic() - self.start:.1f} s)", file=self.line_stream, flush=True)

    def write(self, line):
        """Prints a result line on stdout without breaking the bar (it is redrawn below the line)."""
        if self.bar is not None:
            tqdm.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def _count(self):
        return f"{self.done}/{self.total}" if self.total else str(self.done)

    def _timing(self):
        elapsed = time.monotonic() - self.start
        if not self.total or self.done >= self.total:
            return f"{elapsed:.1f} s"
        return f"{elapsed:.1f} s, about {elapsed / self.done * (self.total - self.done):.0f} s left"

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
