"""A progress bar on stderr for long loops (dataset reading, graph building, screening)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

_err = Console(stderr=True, highlight=False)


class ProgressBar:
    """A rich progress bar on stderr, created on the first ``(done, total)`` call.

    Use as a context manager and pass the object as a ``progress(done, total)`` callback;
    ``quiet=True`` makes it a no-op.
    """

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label, self.quiet = label, quiet
        self.prog: Progress | None = None
        self.task = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        if self.prog is not None:
            self.prog.stop()

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.prog is None:
            self.prog = Progress(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=_err,
                transient=True,
            )
            self.prog.start()
            self.task = self.prog.add_task(self.label, total=total)
        self.prog.update(self.task, completed=done)


__all__ = ["ProgressBar"]
