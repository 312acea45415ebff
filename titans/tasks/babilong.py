"""bAbI-style stories whose supporting facts are hidden in long background text (BABILong's format), and the
prompt both BABILong's training and evaluation use.

``make_babilong_sample`` generates stories offline for qa1 (single supporting fact), qa2 (two supporting facts) and
qa3 (three supporting facts), with the facts spread in order over sentences of a haystack, sized in tokens of the
given tokenizer; deterministic in (task, length, index, seed). For tests, CPU demonstrations and fine-tuning without
the hub, not a substitute for the benchmark. ``sample_from_hub_row`` formats a row of the real data sets
(RMT-team/babilong, RMT-team/babilong-train-5k-samples; loaded by titans.eval.babilong and titans.data.babilong).

Prompts (``prompt_style``): "finetuned" (default), the format of the fine-tuned setting,
"{context}\nQuestion: {question}\nAnswer:", completed by " {answer}"; "few_shot", the benchmark's few-shot input
(instruction, examples, answer format, then the context: titans.tasks.babilong_prompts).
Scoring: ``titans.eval.metrics.babilong_correct`` (the benchmark's answer-word rule).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from titans.tasks.babilong_prompts import few_shot_prompt
from titans.tasks.haystack import Haystack, most_that_fit, n_tokens

PEOPLE = ("Mary", "John", "Daniel", "Sandra")
LOCATIONS = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
OBJECTS = ("apple", "football", "milk")
MOVE_VERBS = ("moved to", "went to", "journeyed to", "travelled to", "went back to")
TAKE_VERBS = ("picked up", "got", "grabbed", "took")
DROP_VERBS = ("dropped", "discarded", "put down", "left")

OFFLINE_TASKS = ("qa1", "qa2", "qa3")
PROMPT = "{context}\nQuestion: {question}\nAnswer:"
PROMPT_STYLES = ("finetuned", "few_shot")


def format_prompt(task: str, context: str, question: str, style: str = "finetuned") -> str:
    """The model's input for one sample: the fine-tuned setting's format or the benchmark's few-shot prompt."""
    if style == "finetuned":
        return PROMPT.format(context=context, question=question)
    if style == "few_shot":
        return few_shot_prompt(task, context, question)
    raise ValueError(f"BABILong prompt style must be one of {PROMPT_STYLES}, got {style!r}")


@dataclass
class Story:
    facts: list[str]
    question: str
    answer: str
    supporting: list[int]  # indices into facts


@dataclass
class BabilongSample:
    task: str
    context_length: int  # requested length in tokens (prompt + " " + answer fits in it); 0 = facts only
    index: int
    seed: int
    prompt: str
    question: str
    answer: str
    facts: list[str]
    supporting: list[int]
    fact_char_starts: list[int] = field(default_factory=list)  # prompt[start:].startswith(fact)
    n_tokens: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class _World:
    """A tiny bAbI world: people move between rooms, carry objects, drop them."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.person_at: dict[str, str] = {}
        self.holder: dict[str, str | None] = {o: None for o in OBJECTS}
        self.object_at: dict[str, str | None] = {o: None for o in OBJECTS}
        self.object_history: dict[str, list[tuple[str, int]]] = {o: [] for o in OBJECTS}  # (location, fact index)
        self.last_move: dict[str, int] = {}
        self.last_take: dict[str, int] = {}
        self.facts: list[str] = []

    def _place(self, obj: str, location: str, fact: int) -> None:
        self.object_at[obj] = location
        history = self.object_history[obj]
        if not history or history[-1][0] != location:
            history.append((location, fact))

    def move(self, person: str) -> None:
        choices = [loc for loc in LOCATIONS if loc != self.person_at.get(person)]
        location = self.rng.choice(choices)
        fact = len(self.facts)
        self.facts.append(f"{person} {self.rng.choice(MOVE_VERBS)} the {location}.")
        self.person_at[person] = location
        self.last_move[person] = fact
        for obj, holder in self.holder.items():
            if holder == person:
                self._place(obj, location, fact)

    def take(self, person: str, obj: str) -> None:
        fact = len(self.facts)
        self.facts.append(f"{person} {self.rng.choice(TAKE_VERBS)} the {obj} there.")
        self.holder[obj] = person
        self.last_take[obj] = fact
        self._place(obj, self.person_at[person], fact)

    def drop(self, obj: str) -> None:
        person = self.holder[obj]
        self.facts.append(f"{person} {self.rng.choice(DROP_VERBS)} the {obj}.")
        self.holder[obj] = None

    def step(self, with_objects: bool) -> None:
        rng = self.rng
        placed = [p for p in PEOPLE if p in self.person_at]
        action = rng.random()
        if with_objects and placed and action < 0.35:
            person = rng.choice(placed)
            here = (None, self.person_at[person])
            free = [o for o in OBJECTS if self.holder[o] is None and self.object_at[o] in here]
            if free:
                self.take(person, rng.choice(free))
                return
        if with_objects and action > 0.9:
            held = [o for o in OBJECTS if self.holder[o] is not None]
            if held:
                self.drop(rng.choice(held))
                return
        self.move(rng.choice(PEOPLE))


def make_story(task: str, rng: random.Random, max_attempts: int = 1000) -> Story:
    """A bAbI-style story + question for qa1, qa2 or qa3 (answers are locations)."""
    if task not in OFFLINE_TASKS:
        raise ValueError(f"The offline generator covers {OFFLINE_TASKS}; got {task!r}. "
                         f"qa4/qa5 come from the hub (load_babilong_hub).")
    n_steps = {"qa1": (4, 10), "qa2": (8, 16), "qa3": (12, 24)}[task]
    for _ in range(max_attempts):
        world = _World(rng)
        for _ in range(rng.randint(*n_steps)):
            world.step(with_objects=task != "qa1")
        if task == "qa1":
            person = rng.choice(sorted(world.person_at))
            return Story(world.facts, f"Where is {person}?", world.person_at[person], [world.last_move[person]])
        if task == "qa2":
            held = [o for o in OBJECTS if world.holder[o] is not None
                    and world.last_move.get(world.holder[o], -1) > world.last_take[o]]
            if held:
                obj = rng.choice(held)
                person = world.holder[obj]
                return Story(world.facts, f"Where is the {obj}?", world.object_at[obj],
                             [world.last_take[obj], world.last_move[person]])
        if task == "qa3":
            moved = [o for o in OBJECTS if len(world.object_history[o]) >= 2]
            if moved:
                obj = rng.choice(moved)
                history = world.object_history[obj]
                (before, _), (after, fact) = history[-2], history[-1]
                # "before the X" is ambiguous when the object was in X more than once: skip those.
                if [loc for loc, _ in history].count(after) == 1:
                    return Story(world.facts, f"Where was the {obj} before the {after}?", before,
                                 sorted({world.last_take[obj], history[-2][1], fact}))
    raise RuntimeError(f"Could not generate a {task} story in {max_attempts} attempts.")


def _assemble(facts: list[str], background: list[str], fractions: list[float]) -> tuple[str, list[int]]:
    """Insert facts, in order, between background sentences at the given fractions; return text + fact offsets."""
    positions = [int(round(f * len(background))) for f in fractions]
    pieces, starts, offset, cursor = [], [], 0, 0
    for fact, position in zip(facts, positions):
        for sentence in background[cursor:position]:
            pieces.append(sentence)
            offset += len(sentence) + 1
        cursor = max(cursor, position)
        starts.append(offset)
        pieces.append(fact)
        offset += len(fact) + 1
    pieces.extend(background[cursor:])
    return " ".join(pieces), starts


def length_in_tokens(length) -> int:
    """0, 512, "0k", "2k" or "1M" (BABILong's length splits) as a number of tokens (k = 1024, M = 1024 * 1024)."""
    text = str(length).strip()
    try:
        if text[-1:] in ("k", "K"):
            return int(text[:-1]) * 1024
        if text[-1:] in ("m", "M"):
            return int(text[:-1]) * 1024 * 1024
        return int(text)
    except ValueError:
        raise ValueError(f"a BABILong length must be a number of tokens or a split like 2k, got {length!r}") from None


def make_babilong_sample(task: str, tokenizer, context_length: int, index: int = 0, seed: int = 0,
                         haystack: Haystack | None = None, bare_if_too_short: bool = False,
                         prompt_style: str = "finetuned") -> BabilongSample:
    """One offline BABILong-style sample: the story's facts spread over background text.

    ``context_length=0`` gives the bare bAbI story (BABILong's "0k" split). A story longer than
    ``context_length`` on its own raises ValueError, or with ``bare_if_too_short`` comes back bare.
    ``context_length`` counts the whole prompt (``prompt_style``'s) and the answer.
    """
    rng = random.Random(f"babilong|{task}|{context_length}|{index}|{seed}")
    story = make_story(task, rng)
    fractions = sorted(rng.random() for _ in story.facts)
    start = rng.randrange(len(haystack.sentences)) if haystack is not None else 0

    def build(n: int):
        background = haystack.take(n, start) if n else []
        context, starts = _assemble(story.facts, background, fractions)
        return format_prompt(task, context, story.question, prompt_style), starts

    def length_with(n: int) -> int:
        return n_tokens(tokenizer, build(n)[0] + " " + story.answer)

    n = 0
    if context_length > 0:
        if haystack is None:
            raise ValueError("context_length > 0 needs background text: pass haystack=Haystack(load_haystack_text()).")
        too_short = length_with(0) > context_length
        if too_short and not bare_if_too_short:
            raise ValueError(f"context_length={context_length} tokens is too short for this {task} story "
                             f"({length_with(0)} tokens without background text).")
        if not too_short:
            n = most_that_fit(length_with, context_length)
    prompt, starts = build(n)
    return BabilongSample(task=task, context_length=context_length, index=index, seed=seed, prompt=prompt,
                          question=story.question, answer=story.answer, facts=story.facts,
                          supporting=story.supporting, fact_char_starts=starts,
                          n_tokens=n_tokens(tokenizer, prompt + " " + story.answer))


def make_babilong_dataset(tasks, tokenizer, lengths, samples_per_cell: int = 10, seed: int = 0,
                          haystack: Haystack | None = None, prompt_style: str = "finetuned") -> list[BabilongSample]:
    return [make_babilong_sample(task, tokenizer, int(length), index, seed, haystack, prompt_style=prompt_style)
            for task in tasks for length in lengths for index in range(samples_per_cell)]


def sample_from_hub_row(row: dict, task: str, length: str, index: int, prompt_style: str = "finetuned"
                        ) -> BabilongSample:
    """A BABILong data set row (``input``, ``question``, ``target``) as a sample with the prompt of
    ``prompt_style`` (the fine-tuned setting's by default).

    Shared by evaluation (RMT-team/babilong, titans.eval.babilong) and fine-tuning (RMT-team/babilong-train-5k-samples,
    titans.data.babilong), so both format a row identically.
    """
    prompt = format_prompt(task, row["input"].strip(), row["question"].strip(), prompt_style)
    return BabilongSample(task=task, context_length=length_in_tokens(length), index=index, seed=0, prompt=prompt,
                          question=row["question"], answer=row["target"], facts=[], supporting=[])
