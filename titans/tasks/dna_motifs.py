"""Planted motifs: the offline stand-in for GenomicBenchmarks' classification tasks.

A sequence is i.i.d. uniform over ACGT; a class-c sequence (c >= 1) carries ``copies`` copies of motif c at
random positions; class 0 carries none. Every sample is a pure function of (seed, split, index).
"""

from __future__ import annotations

import numpy as np

#: motifs planted by the offline classification task (class c >= 1 carries MOTIFS[c - 1])
MOTIFS = ("TATAAAAG", "GGGCGGGG", "CACGTGAC", "TTGACATT")


def random_sequence(rng: np.random.Generator, length: int) -> str:
    return "".join(np.array(list("ACGT"))[rng.integers(0, 4, size=length)])


def planted_motif_sample(seed: int, split: int, index: int, length: int = 200, num_classes: int = 2,
                         copies: int = 2) -> tuple[str, int]:
    """(sequence, label): uniform random ACGT; label c >= 1 plants ``copies`` copies of MOTIFS[c - 1] at
    random (possibly overlapping) positions, label 0 plants none. Labels are balanced in expectation."""
    if not 2 <= num_classes <= len(MOTIFS) + 1:
        raise ValueError(f"planted motifs: num_classes must be in 2..{len(MOTIFS) + 1}, got {num_classes}")
    rng = np.random.default_rng([seed, split, index])
    label = int(rng.integers(0, num_classes))
    sequence = list(random_sequence(rng, length))
    if label:
        motif = MOTIFS[label - 1]
        if len(motif) > length:
            raise ValueError(f"planted motifs: length={length} is shorter than the motif ({len(motif)})")
        for start in rng.integers(0, length - len(motif) + 1, size=copies):
            sequence[start:start + len(motif)] = motif
    return "".join(sequence), label
