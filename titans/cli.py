"""What ``train.py`` and ``eval.py`` do with an expected error: one line on stderr and exit status 2.

Expected errors are the ones a user can fix from the message (a config value, a missing file or data set,
an unreachable hub, a checkpoint that does not fit, a vocabulary mismatch, a diverging loss): they print

    error: <what was wrong and what to do>

and nothing else. ``HYDRA_FULL_ERROR=1`` brings the traceback back. Anything else is a bug and keeps its
traceback.

Hydra's own composition errors (an unknown config group option such as ``model=foo``, a key that is not in the
config such as ``trainer.max_step=5``, an override it cannot parse) are reported the same way, with the closest
valid names (:func:`report_hydra_errors`, installed by train.py and eval.py).
"""

from __future__ import annotations

import difflib
import functools
import os
import sys

from titans.errors import CheckpointWriteError, DataUnavailableError

EXIT_USAGE = 2


#: what a user can fix from the message (titans.errors): ValueError covers bad config values and the
#: CheckpointError family, DataUnavailableError the HubUnavailableError, CheckpointWriteError a full disk
EXPECTED_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, ConnectionError, FloatingPointError,
                   DataUnavailableError, CheckpointWriteError)


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


def closest(name: str, choices, n: int = 3) -> list[str]:
    """The ``n`` names of ``choices`` closest to ``name`` (difflib's ratio), best first."""
    choices = [str(c) for c in choices]
    return difflib.get_close_matches(str(name), choices, n=n, cutoff=0.0) if choices else []


def _group_choices_line(err) -> str:
    """``experiment=does_not_exist``: hydra.errors.MissingConfigException, with the group's options."""
    missing = str(getattr(err, "missing_cfg_file", "") or "")
    options = list(getattr(err, "options", None) or [])
    if "/" in missing and options:
        group, name = missing.rsplit("/", 1)
        near = ", ".join(closest(name, options))
        return (f"{group}={name}: there is no configs/{group}/{name}.yaml; closest: {near} "
                f"({len(options)} choices in configs/{group}/)")
    return " ".join(str(err).split("\n\n")[0].split())


def _unknown_key_line(err) -> str | None:
    """``trainer.max_step=5``: Hydra's "Could not override" with OmegaConf's ConfigAttributeError/KeyError as cause."""
    cause = err.__cause__
    full_key = getattr(cause, "full_key", None)
    parent = getattr(cause, "parent_node", None)
    if not full_key or parent is None or not hasattr(parent, "keys"):
        return None
    prefix, _, key = str(full_key).rpartition(".")
    near = closest(key, list(parent.keys()))
    where = f"{prefix}." if prefix else ""
    suggestion = f"did you mean {', '.join(where + k for k in near)}?" if near else f"{prefix or 'the config'} has no keys"
    return (f"{full_key} is not a config key: {suggestion} (to add a new key on purpose, write +{full_key}=...)")


def hydra_error_line(err: BaseException) -> str:
    """One line for a Hydra composition or override-parsing error."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(err, MissingConfigException):
        return _group_choices_line(err)
    if isinstance(err, OverrideParseException):
        return f"cannot parse the override: {one_line(err).split(' See https://')[0]}"
    return _unknown_key_line(err) or one_line(err)


def report_hydra_errors() -> None:
    """Make Hydra report its composition errors (raised before the task function runs, so
    :func:`report_expected_errors` never sees them) as one ``error: ...`` line and exit status 2, instead of its
    multi-line report and status 1. Wraps ``hydra._internal.utils.run_and_report`` (Hydra 1.3), which runs the
    composition and the job; any other error still goes through Hydra's own report."""
    import hydra._internal.utils as hydra_utils
    from hydra.errors import ConfigCompositionException, OverrideParseException

    original = hydra_utils.run_and_report
    if getattr(original, "_titans", False):
        return

    def run_and_report(func):
        def guarded():
            try:
                return func()
            except (ConfigCompositionException, OverrideParseException) as err:
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                print(f"error: {hydra_error_line(err)}", file=sys.stderr, flush=True)
                raise SystemExit(EXIT_USAGE) from None

        return original(guarded)

    run_and_report._titans = True
    hydra_utils.run_and_report = run_and_report
