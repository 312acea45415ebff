"""Answer scoring for the long-context tasks.

S-NIAH: exact match of the greedy generation (its first word, trailing punctuation removed, must be
the needle value); RULER's own metric (the value occurs in the output) is reported beside it.
BABILong: the answer-word rule of the BABILong benchmark (booydar/babilong, babilong/metrics.py):
the target label must be the only task label in the first sentence of the output, not counting
labels that already occur in the question.
"""

from __future__ import annotations

_STRIP = ".,;:!?'\"()[]{}<>`"

# The label vocabulary of each bAbI task (BABILong metrics.py).
BABILONG_TASK_LABELS = {
    "qa1": ["bathroom", "bedroom", "garden", "hallway", "kitchen", "office"],
    "qa2": ["bathroom", "bedroom", "garden", "hallway", "kitchen", "office"],
    "qa3": ["bathroom", "bedroom", "garden", "hallway", "kitchen", "office"],
    "qa4": ["bathroom", "bedroom", "garden", "hallway", "kitchen", "office"],
    "qa5": ["Bill", "Fred", "Jeff", "Mary", "apple", "football", "milk"],
}


def niah_exact_match(prediction: str, answer: str) -> bool:
    """True when the first word of ``prediction`` is ``answer`` (case-sensitive, punctuation-trimmed)."""
    words = prediction.split()
    return bool(words) and words[0].strip(_STRIP) == answer.strip()


def niah_contains(prediction: str, answer: str) -> bool:
    """RULER's string_match_all for one needle: the value occurs anywhere in the output (case-insensitive)."""
    return answer.strip().lower() in prediction.lower()


def babilong_preprocess_output(output: str) -> str:
    output = output.lower().split(".")[0]
    # Same markers as BABILong ("Question" never matches after lower(); kept for identical scores).
    for marker in ("<context>", "<example>", "Question"):
        output = output.split(marker)[0]
    return output


def babilong_correct(target: str, output: str, question: str, task_labels) -> bool:
    """BABILong's compare_answers for single-word targets (qa1-qa5)."""
    output = babilong_preprocess_output(output)
    target = target.strip().lower()
    labels = {label.lower() for label in task_labels}
    in_question = {label for label in labels if label in question.lower()}
    in_output = {label for label in labels if label in output} - in_question
    return target in in_output and len(in_output) == 1
