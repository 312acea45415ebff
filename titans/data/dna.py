"""DNA as tokens: the character-level tokenizer and FASTA reading (the planted-motif task is titans.tasks.dna_motifs).

Tokenizer (``build_tokenizer(kind="dna")``, HyenaDNA's character-level scheme): one token per nucleotide.

    id 0 <|endoftext|> (EOS, also padding)   1 <unk>   2 A   3 C   4 G   5 T   6 N

Input is upper-cased (genome files mark repeats in lower case) and any other IUPAC code (R, Y, K, ...) becomes
N, so ``decode(encode(s)) == s.upper()`` with every non-ACGT letter read as N.

"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
UNK_TOKEN = "<unk>"
NUCLEOTIDES = "ACGTN"
DNA_VOCAB = {EOS_TOKEN: 0, UNK_TOKEN: 1, **{c: 2 + i for i, c in enumerate(NUCLEOTIDES)}}


def dna_tokenizer() -> PreTrainedTokenizerFast:
    """The character-level DNA tokenizer (vocabulary in the module docstring)."""
    backend = Tokenizer(models.WordLevel(vocab=dict(DNA_VOCAB), unk_token=UNK_TOKEN))
    # upper case (tokenizers has no Uppercase normalizer), then every letter but A/C/G/T reads as N; special tokens
    # are split off before the normalizer runs
    rules = [normalizers.Replace(c, c.upper()) for c in "abcdefghijklmnopqrstuvwxyz"]
    backend.normalizer = normalizers.Sequence([*rules, normalizers.Replace(Regex("[BD-FH-SU-Z]"), "N")])
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN,
                                   unk_token=UNK_TOKEN)


_LOOKUP = np.full(256, DNA_VOCAB["N"], dtype=np.uint8)  # any other letter reads as N
_LETTER = np.zeros(256, dtype=bool)
_LETTER[[ord(c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"]] = True
for _c in "ACGTN":
    _LOOKUP[ord(_c)] = _LOOKUP[ord(_c.lower())] = DNA_VOCAB[_c]


def encode_dna(sequence: str) -> np.ndarray:
    """The DNA tokenizer's ids of a sequence of letters, by table lookup (fast for whole genomes; the tests hold
    it equal to the tokenizer)."""
    raw = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    if not _LETTER[raw].all():
        raise ValueError("encode_dna takes letters only (A, C, G, T, N, IUPAC codes); strip whitespace first")
    return _LOOKUP[raw]


_TO_N = str.maketrans({c: "N" for c in "BDEFHIJKLMOPQRSUVWXYZ"})


def normalise_sequence(sequence: str) -> str:
    """Upper case, every letter other than A/C/G/T read as N, whitespace removed (what the tokenizer sees)."""
    return "".join(sequence.split()).upper().translate(_TO_N)


def read_fasta(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(name, sequence) records of a FASTA file (plain or .gz), sequences upper-cased and normalised."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    records, name, parts = [], None, []
    with opener(path, "rt", encoding="ascii") as f:
        for line in f:
            line = line.strip()
            if line.startswith(">"):
                if name is not None:
                    records.append((name, normalise_sequence("".join(parts))))
                name, parts = line[1:].split()[0] if len(line) > 1 else "", []
            elif line:
                if name is None:
                    raise ValueError(f"{path}: sequence data before the first '>' header: not a FASTA file")
                parts.append(line)
    if name is not None:
        records.append((name, normalise_sequence("".join(parts))))
    return records
