"""Progress bars for jobs longer than a few seconds, on stderr: stdout holds a command's results only.

``progress`` is tqdm on stderr. On a terminal it redraws twice a second; into a file or pipe (a log, a test) it
writes at most one update every 30 s besides the first and the last, so logs stay short. ``TITANS_PROGRESS=0``
turns the bars off. ``heartbeat`` redraws a bar every few seconds while one long step runs (a ``train.py`` job),
so its elapsed time moves.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager


def progress(iterable=None, *, desc: str, total: int | None = None, unit: str = "it", enabled: bool = True,
             **kwargs):
    """A tqdm bar on stderr (see the module docstring); ``enabled=False`` gives a silent one."""
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    options = dict(desc=desc, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True,
                   mininterval=0.5 if tty else 30.0,
                   disable=not enabled or os.environ.get("TITANS_PROGRESS", "1") == "0")
    options.update(kwargs)
    return tqdm(iterable, **options)


@contextmanager
def heartbeat(bar, seconds: float | None = None):
    """Redraw ``bar`` every ``seconds`` (default: 5 on a terminal, 60 into a file) until the block ends."""
    if seconds is None:
        seconds = 5.0 if sys.stderr.isatty() else 60.0
    stop = threading.Event()

    def beat():
        while not stop.wait(seconds):
            bar.refresh()

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield bar
    finally:
        stop.set()
        thread.join()


def map_with_progress(fn, items, *, jobs: int = 1, desc: str, unit: str = "job") -> list:
    """``[fn(item) for item in items]``, ``jobs`` at a time (threads; each item typically a subprocess), in order,
    with a progress bar counting the finished ones."""
    from concurrent.futures import ThreadPoolExecutor

    items = list(items)
    with progress(desc=desc, total=len(items), unit=unit) as bar, heartbeat(bar):
        def one(item):
            result = fn(item)
            bar.update()
            return result

        with ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:
            return list(pool.map(one, items))
