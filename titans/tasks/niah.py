"""S-NIAH: RULER's single-needle-in-a-haystack tasks (paper Table 2), generated in the project.

    niah_single_1 (S-NIAH-PK): a 7-digit number needle in repeated noise sentences ("passkey")
    niah_single_2 (S-NIAH-N):  a 7-digit number needle in essay text
    niah_single_3 (S-NIAH-W):  a uuid (RULER) or word needle in essay text

The needle is RULER's sentence "One of the special magic {numbers} for {key} is: {value}." placed at
a sentence boundary at the requested depth (0 = start of the haystack, 1 = end). The prompt is
sized in tokens of the given tokenizer so that prompt + " " + answer fits the context length.
Everything is a function of (task, length, depth, index, seed): generation is deterministic.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import asdict, dataclass

from titans.tasks.haystack import NOISE_SENTENCE, Haystack, most_that_fit, n_tokens, split_sentences

TASKS = {
    "niah_single_1": {"haystack": "repeat", "value_type": "numbers"},
    "niah_single_2": {"haystack": "essay", "value_type": "numbers"},
    "niah_single_3": {"haystack": "essay", "value_type": "uuids"},
}
ALIASES = {"passkey": "niah_single_1", "pk": "niah_single_1", "s-niah-1": "niah_single_1",
           "number": "niah_single_2", "n": "niah_single_2", "s-niah-2": "niah_single_2",
           "word": "niah_single_3", "w": "niah_single_3", "uuid": "niah_single_3", "s-niah-3": "niah_single_3"}
VALUE_TYPES = ("numbers", "uuids", "words")

NEEDLE = "One of the special magic {type_v} for {key} is: {value}."
TEMPLATE = (
    "A special magic {type_v1} is hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {type_v1} afterwards.\n{context}\n"
    "What is the special magic {type_v1} for {key} mentioned in the provided text?\n"
    "Answer: The special magic {type_v1} for {key} mentioned in the provided text is"
)

_ADJECTIVES = ("ancient", "bitter", "brave", "calm", "clever", "crimson", "curious", "damp", "eager", "fancy",
               "fierce", "gentle", "glossy", "golden", "grumpy", "hollow", "humble", "icy", "jolly", "kind",
               "lively", "loud", "lucky", "mellow", "misty", "noble", "odd", "pale", "proud", "quiet",
               "rapid", "rusty", "shiny", "silent", "silly", "sleepy", "smooth", "sour", "swift", "tame",
               "tender", "tiny", "vast", "wary", "wicked", "witty", "young", "zealous")
_NOUNS = ("anchor", "apple", "badger", "basket", "beacon", "bottle", "bridge", "candle", "castle", "cloud",
          "comet", "copper", "desert", "dragon", "engine", "falcon", "feather", "forest", "garden", "glacier",
          "hammer", "harbor", "island", "jacket", "kettle", "ladder", "lantern", "meadow", "mirror", "needle",
          "orchard", "parrot", "pepper", "pillow", "pocket", "puzzle", "rabbit", "river", "saddle", "shadow",
          "spoon", "thunder", "tiger", "tunnel", "valley", "violin", "wagon", "window")


def resolve_task(name: str) -> str:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in TASKS:
        raise ValueError(f"Unknown S-NIAH task {name!r}: use one of {sorted(TASKS)} or aliases {sorted(ALIASES)}.")
    return key


def random_word(rng: random.Random) -> str:
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"


def random_value(value_type: str, rng: random.Random) -> str:
    if value_type == "numbers":
        return str(rng.randint(1_000_000, 9_999_999))
    if value_type == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if value_type == "words":
        return random_word(rng)
    raise ValueError(f"Unknown needle value type {value_type!r}: use one of {VALUE_TYPES}.")


@dataclass
class NIAHSample:
    task: str
    context_length: int  # requested length in tokens (prompt + " " + answer fits in it)
    depth: float  # requested needle depth in [0, 1]
    index: int
    seed: int
    prompt: str
    answer: str
    key: str
    needle: str
    needle_char_start: int  # prompt[needle_char_start:].startswith(needle)
    actual_depth: float  # fraction of haystack characters before the needle
    n_tokens: int  # tokens of prompt + " " + answer

    def to_dict(self) -> dict:
        return asdict(self)


def _build(sentences: list[str], separator: str, depth: float, needle: str, template_kwargs: dict):
    """Prompt with ``needle`` inserted between sentences at fraction ``depth`` of the haystack."""
    position = int(round(depth * len(sentences)))
    before, after = separator.join(sentences[:position]), separator.join(sentences[position:])
    parts = [p for p in (before, needle, after) if p]
    context = separator.join(parts)
    prompt = TEMPLATE.format(context=context, **template_kwargs)
    context_start = prompt.index(context)
    needle_in_context = len(before) + (len(separator) if before else 0)
    actual_depth = needle_in_context / max(1, len(context) - len(needle))
    return prompt, context_start + needle_in_context, actual_depth


def make_niah_sample(task: str, tokenizer, context_length: int, depth: float, index: int = 0, seed: int = 0,
                     haystack: Haystack | None = None, value_type: str | None = None) -> NIAHSample:
    """One S-NIAH sample of at most ``context_length`` tokens (prompt + " " + answer)."""
    task = resolve_task(task)
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"needle depth must lie in [0, 1], got {depth}")
    spec = TASKS[task]
    value_type = value_type or spec["value_type"]
    rng = random.Random(f"niah|{task}|{context_length}|{depth:.6f}|{index}|{seed}")
    key = random_word(rng)
    value = random_value(value_type, rng)
    needle = NEEDLE.format(type_v=value_type, key=key, value=value)
    template_kwargs = {"type_v1": value_type[:-1], "key": key}

    if spec["haystack"] == "repeat":
        # RULER repeats the whole noise line; cycling its five sentences sizes the prompt and places
        # the needle more finely.
        separator = " "
        noise = split_sentences(NOISE_SENTENCE)
        take = lambda n: [noise[i % len(noise)] for i in range(n)]  # noqa: E731
    else:
        if haystack is None:
            raise ValueError(f"{task} needs essay text: pass haystack=Haystack(load_haystack_text(...)).")
        separator = " "
        start = rng.randrange(len(haystack.sentences))
        take = lambda n: haystack.take(n, start)  # noqa: E731

    def length_with(n: int) -> int:
        prompt, _, _ = _build(take(n), separator, depth, needle, template_kwargs)
        return n_tokens(tokenizer, prompt + " " + value)

    if length_with(0) > context_length:
        raise ValueError(f"context_length={context_length} tokens is too short for the S-NIAH template and needle "
                         f"({length_with(0)} tokens without any haystack).")
    prompt, needle_start, actual_depth = _build(take(most_that_fit(length_with, context_length)), separator, depth,
                                                needle, template_kwargs)
    return NIAHSample(task=task, context_length=context_length, depth=depth, index=index, seed=seed, prompt=prompt,
                      answer=value, key=key, needle=needle, needle_char_start=needle_start,
                      actual_depth=actual_depth, n_tokens=n_tokens(tokenizer, prompt + " " + value))


def make_niah_dataset(task: str, tokenizer, lengths, depths, samples_per_cell: int = 1, seed: int = 0,
                      haystack: Haystack | None = None, value_type: str | None = None) -> list[NIAHSample]:
    """Samples for every (length, depth) cell of the heatmap."""
    return [make_niah_sample(task, tokenizer, int(length), float(depth), index, seed, haystack, value_type)
            for length in lengths for depth in depths for index in range(samples_per_cell)]


def default_depths(n: int = 11) -> list[float]:
    """``n`` evenly spaced depths from 0 to 1 (RULER uses 40; 11 keeps CPU runs short)."""
    return [round(i / (n - 1), 4) for i in range(n)] if n > 1 else [0.5]
