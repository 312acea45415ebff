"""The project's expected errors: a user can fix each from its message, so ``train.py``, ``eval.py`` and the scripts
print it as one line (``titans.cli``) instead of a traceback.

``DataUnavailableError``   data (a corpus, a data set, a tokenizer) is missing here or cannot be loaded;
``HubUnavailableError``    ... because it needs the Hugging Face Hub, which is offline or unreachable (see titans.hub);
``CheckpointError``        a path that is missing or is not a checkpoint this project can read; its two kinds are
                           ``CorruptCheckpointError`` (truncated, not a torch file) and ``UnsafeCheckpointError`` (the
                           pickle asks for code to run).
``CheckpointWriteError``   a checkpoint could not be written (full disk, no permission); the previous file of that
                           name is still there and loadable (checkpoints are written to a temporary file, then
                           renamed).
"""

from __future__ import annotations


class DataUnavailableError(RuntimeError):
    """Data that is missing here or cannot be loaded; the message says what to do instead."""


class HubUnavailableError(DataUnavailableError):
    """Something needs the Hugging Face Hub, which is offline or unreachable here."""


class CheckpointError(ValueError):
    """The path is missing or is not a checkpoint this project can read."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated or is not a torch checkpoint at all."""


class UnsafeCheckpointError(CheckpointError):
    """The file asks the unpickler for objects beyond tensors and plain containers (it could run code)."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (the disk is full, the directory is not writable)."""


def first_line(err: BaseException | str, limit: int = 200) -> str:
    """The first non-empty line of an error message (its type name when the message is empty), at most ``limit``
    characters: what a one-line message quotes of an error raised by a library."""
    text = str(err).strip()
    if not text:
        return type(err).__name__ if isinstance(err, BaseException) else "unknown error"
    return text.splitlines()[0][:limit]
