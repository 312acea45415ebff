"""What ``train.py`` and ``eval.py`` do with an expected error: one line on stderr and exit status 2.

Expected errors are the ones a user can fix from the message (a config value, a missing file or data set,
an unreachable hub, a checkpoint that does not fit, a vocabulary mismatch, a diverging loss): they print

    error: <what was wrong and what to do>

and nothing else. ``HYDRA_FULL_ERROR=1`` brings the traceback back. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import functools
import os
import sys

from titans.errors import DataUnavailableError

EXIT_USAGE = 2


#: what a user can fix from the message (titans.errors): ValueError covers bad config values and the
#: CheckpointError family, DataUnavailableError the HubUnavailableError
EXPECTED_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, ConnectionError, FloatingPointError,
                   DataUnavailableError)


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text


def report_expected_errors(fn):
    """Decorate a Hydra task function: expected errors become ``error: ...`` and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or not isinstance(err, EXPECTED_ERRORS):
                raise
            print(f"error: {one_line(err)}", file=sys.stderr, flush=True)
            raise SystemExit(EXIT_USAGE) from None

    return wrapper
