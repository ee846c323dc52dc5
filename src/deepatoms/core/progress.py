"""A progress bar on stderr for long loops (dataset reading, graph building, screening)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich import progress as rich_progress
from rich.console import Console

_err = Console(stderr=True, highlight=False)


class ProgressBar:
    """A rich progress bar on stderr, created on the first ``(done, total)`` call.

    Use as a context manager and pass the object as a ``progress(done, total)`` callback;
    ``quiet=True`` makes it a no-op.
    """

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label, self.quiet = label, quiet
        self.prog: rich_progress.Progress | None = None
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
            self.prog = rich_progress.Progress(
                rich_progress.TextColumn(self.label),
                rich_progress.BarColumn(),
                rich_progress.MofNCompleteColumn(),
                rich_progress.TimeRemainingColumn(),
                console=_err,
                transient=True,
            )
            self.prog.start()
            self.task = self.prog.add_task(self.label, total=total)
        self.prog.update(self.task, completed=done)


def note(text: str) -> None:
    """Print one informational line on stderr (beside the progress bars)."""
    _err.print(text, markup=False)


#: A ``progress(done, total)`` callback.
Progress = Callable[[int, int], None]


@contextlib.contextmanager
def reporting(progress: bool | Progress | None, label: str) -> Iterator[Progress | None]:
    """``progress`` as a callback for a loop: a :class:`ProgressBar` named ``label`` for True,
    the callable itself, or None for False/None."""
    if callable(progress):
        yield progress
    elif progress:
        with ProgressBar(label) as bar:
            yield bar
    else:
        yield None


__all__ = ["Progress", "ProgressBar", "note", "reporting"]
