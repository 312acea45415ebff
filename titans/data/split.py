"""The held-out validation split of a document stream, by a stable hash of each document's id.

A document is held out when the first 8 bytes of BLAKE2b of its key (FineWeb-Edu's ``id``, ``<urn:uuid:...>``; its
text when the source has no id field), read as an unsigned integer, fall below ``val_fraction * 2**64``. The rule
depends on the document alone, never on the run: every variant, seed and data path (streaming or prepared shards)
holds out the same documents, so validation perplexities compare, and training never reads a held-out document.
The validation set is the first ``val_documents`` held-out documents in the source's order; the other held-out
documents are read by neither.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

SPLIT_HASH = "blake2b-64"


def check_val_fraction(val_fraction: float) -> float:
    val_fraction = float(val_fraction)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction} must be between 0 and 1 (the share of documents held out for "
                         f"validation, e.g. 0.01)")
    return val_fraction


def document_key(example: Mapping, id_field: str | None = "id", text_field: str = "text") -> str:
    """What the split hashes: the document's id when it has one, else its text."""
    if id_field and example.get(id_field) is not None:
        return str(example[id_field])
    return example[text_field]


def is_held_out(key: str, val_fraction: float) -> bool:
    """Whether the document with this key belongs to the validation split (see the module docstring)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < val_fraction * 2.0**64


def split_description(val_fraction: float, val_documents: int, id_field: str | None) -> dict:
    """The split as meta.json records it."""
    return {"hash": SPLIT_HASH, "key": id_field or "text", "val_fraction": val_fraction,
            "val_documents": val_documents}


__all__ = ["SPLIT_HASH", "check_val_fraction", "document_key", "is_held_out", "split_description"]
