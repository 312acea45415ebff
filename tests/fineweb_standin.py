"""A small local stand-in for FineWeb-Edu: documents with its fields (`text`, `id` as `<urn:uuid:...>`, `url`, ...),
written as parquet files (the hub's format) or JSON lines, read through the `datasets` library's local builders."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

WORDS = ("the neural memory learns to memorize at test time with momentum and weight decay while attention "
         "reads the recent past and persistent tokens hold what the task needs").split()


def fineweb_documents(n: int, seed: int = 0) -> list[dict]:
    """``n`` documents; each text starts with "Document <i>." so that a decoded window says which it came from."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        text = f"Document {i}. " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 50)))
        docs.append({"text": text, "id": f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}>",
                     "dump": "CC-MAIN-2024-10", "url": f"https://example.org/{i}", "language": "en",
                     "token_count": len(text.split()), "score": 3.2, "int_score": 3})
    return docs


def write_parquet(docs: list[dict], directory: Path, files: int = 3) -> list[str]:
    """The documents in ``files`` parquet files (in order), like the hub's ``sample/10BT/000_00000.parquet``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    per_file = -(-len(docs) // files)
    paths = []
    for f in range(files):
        part = docs[f * per_file: (f + 1) * per_file]
        path = directory / f"{f:03d}_00000.parquet"
        pq.write_table(pa.Table.from_pylist(part), path)
        paths.append(str(path))
    return paths


def write_jsonl(docs: list[dict], path: Path) -> str:
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    return str(path)


def packed_bytes(texts, eos: int = 256) -> list[int]:
    """What the bytes tokenizer makes of documents joined with EOS."""
    stream = []
    for text in texts:
        stream += list(text.encode()) + [eos]
    return stream


def decoded_documents(tokens, eos: int = 256) -> list[str]:
    """The complete documents (followed by EOS) in a bytes-tokenized stream; a cut-off first or last one is left out
    when ``tokens`` is a window of a longer stream (the caller decides which ends are whole)."""
    out, current = [], []
    for t in tokens:
        if t == eos:
            out.append(bytes(current).decode())
            current = []
        else:
            current.append(int(t))
    return out
