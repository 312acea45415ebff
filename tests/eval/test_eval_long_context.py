"""S-NIAH and BABILong: generators are deterministic, place needles/facts where they say, score right."""

from __future__ import annotations

import re

import pytest

from titans.tasks.babilong import LOCATIONS, OBJECTS, make_babilong_sample, make_story
from titans.tasks.haystack import Haystack, split_sentences
from titans.eval.long_context import evaluate_babilong, evaluate_niah, markdown_table
from titans.eval.metrics import BABILONG_TASK_LABELS, babilong_correct, niah_contains, niah_exact_match
from titans.tasks.niah import make_niah_dataset, make_niah_sample
from titans.eval.plots import babilong_plot, niah_heatmap
from eval_helpers import ESSAY, SAMPLE_TEXT, tiny_llama, tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def haystack():
    return Haystack(ESSAY)


def _n_tokens(tokenizer, text):
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("task", ["niah_single_1", "niah_single_2", "niah_single_3"])
def test_niah_is_deterministic_and_fits_the_length(task, tokenizer, haystack):
    a = make_niah_sample(task, tokenizer, 1024, 0.3, index=2, seed=5, haystack=haystack)
    b = make_niah_sample(task, tokenizer, 1024, 0.3, index=2, seed=5, haystack=haystack)
    c = make_niah_sample(task, tokenizer, 1024, 0.3, index=2, seed=6, haystack=haystack)
    assert a == b
    assert (a.answer, a.key) != (c.answer, c.key)
    assert a.n_tokens == _n_tokens(tokenizer, a.prompt + " " + a.answer)
    assert 1024 - 40 < a.n_tokens <= 1024  # filled up to the length, within one haystack sentence


@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("task", ["niah_single_1", "niah_single_2"])
def test_niah_places_the_needle_at_the_depth(task, depth, tokenizer, haystack):
    sample = make_niah_sample(task, tokenizer, 2048, depth, seed=1, haystack=haystack)
    assert sample.prompt.count(sample.needle) == 1
    assert sample.prompt[sample.needle_char_start:].startswith(sample.needle)
    assert abs(sample.actual_depth - depth) < 0.03
    assert f"for {sample.key} is: {sample.answer}." in sample.needle
    assert sample.prompt.rstrip().endswith("mentioned in the provided text is")


def test_niah_value_types(tokenizer, haystack):
    number = make_niah_sample("passkey", tokenizer, 512, 0.5)
    uuid = make_niah_sample("niah_single_3", tokenizer, 512, 0.5, haystack=haystack)
    word = make_niah_sample("niah_single_3", tokenizer, 512, 0.5, haystack=haystack, value_type="words")
    assert re.fullmatch(r"\d{7}", number.answer)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uuid.answer)
    assert re.fullmatch(r"[a-z]+-[a-z]+", word.answer)
    with pytest.raises(ValueError, match="too short"):
        make_niah_sample("passkey", tokenizer, 32, 0.5)
    with pytest.raises(ValueError, match="Unknown S-NIAH task"):
        make_niah_sample("niah_multi", tokenizer, 512, 0.5)


def test_niah_scoring():
    assert niah_exact_match(" 1234567.", "1234567")
    assert niah_exact_match("1234567\nThe grass", "1234567")
    assert not niah_exact_match(" 1234568", "1234567")
    assert not niah_exact_match(" the number 1234567", "1234567")
    assert not niah_exact_match("", "1234567")
    assert niah_contains(" the number 1234567", "1234567")
    assert not niah_contains(" 123456", "1234567")


def _solve(facts: list[str], question: str) -> str:
    """An independent reader of the story: replays the facts and answers the question."""
    person_at, holder, history = {}, {}, {o: [] for o in OBJECTS}

    def place(obj, location):
        if not history[obj] or history[obj][-1] != location:
            history[obj].append(location)

    for fact in facts:
        words = fact.rstrip(".").split()
        person = words[0]
        if words[-1] == "there":  # "<person> took the <object> there."
            holder[words[-2]] = person
            place(words[-2], person_at[person])
        elif words[-1] in LOCATIONS:  # "<person> went to the <location>."
            person_at[person] = words[-1]
            for obj, who in holder.items():
                if who == person:
                    place(obj, words[-1])
        else:  # "<person> dropped the <object>."
            assert words[-1] in OBJECTS and holder.get(words[-1]) == person, fact
            holder[words[-1]] = None
    words = question.rstrip("?").split()
    if question.startswith("Where was the"):  # qa3: "Where was the <object> before the <location>?"
        trail = history[words[3]]
        return trail[len(trail) - 1 - trail[::-1].index(words[-1]) - 1]
    if words[-1] in OBJECTS:  # qa2: "Where is the <object>?"
        return history[words[-1]][-1]
    return person_at[words[-1]]  # qa1: "Where is <person>?"


@pytest.mark.parametrize("task", ["qa1", "qa2", "qa3"])
def test_babilong_stories_answer_their_question(task):
    import random

    for seed in range(40):
        story = make_story(task, random.Random(seed))
        assert story.answer in LOCATIONS
        assert story.answer == _solve(story.facts, story.question), (seed, story)
        assert story.supporting == sorted(set(story.supporting)) and story.supporting[-1] < len(story.facts)
        supporting = [story.facts[i] for i in story.supporting]
        if task == "qa1":  # the answer is where the person went last: one supporting fact, that move
            person = story.question.split()[-1].rstrip("?")
            last = [f for f in story.facts if f.startswith(person + " ")][-1]
            assert supporting == [last] and last.endswith(f"the {story.answer}.")
        if task == "qa2":  # who took the object, and where that person went last
            obj = story.question.split()[-1].rstrip("?")
            assert len(supporting) == 2 and obj in supporting[0] and supporting[1].endswith(f"the {story.answer}.")
        if task == "qa3":  # the take, the arrival before and the arrival at the location named in the question
            obj, after = story.question.split()[3], story.question.rstrip("?").split()[-1]
            assert story.question.startswith("Where was the") and story.answer not in story.question
            assert 2 <= len(supporting) <= 3 and any(obj in f for f in supporting)
            assert supporting[-1].endswith(f"the {after}.") or obj in supporting[-1]


@pytest.mark.parametrize("task", ["qa1", "qa2", "qa3"])
def test_babilong_hides_facts_in_order(task, tokenizer, haystack):
    a = make_babilong_sample(task, tokenizer, 1024, index=3, seed=7, haystack=haystack)
    assert a == make_babilong_sample(task, tokenizer, 1024, index=3, seed=7, haystack=haystack)
    assert a.n_tokens <= 1024 and a.n_tokens > 1024 - 40
    assert a.fact_char_starts == sorted(a.fact_char_starts)
    for fact, start in zip(a.facts, a.fact_char_starts):
        assert a.prompt[start:].startswith(fact)
    assert a.prompt.endswith(f"Question: {a.question}\nAnswer:")
    bare = make_babilong_sample(task, tokenizer, 0, index=3, seed=7)
    assert bare.prompt.split("\nQuestion:")[0] == " ".join(bare.facts)
    background = [s for s in split_sentences(a.prompt.split("\nQuestion:")[0]) if s not in a.facts]
    assert background and all(s in ESSAY for s in background)


def test_babilong_scoring():
    labels = BABILONG_TASK_LABELS["qa1"]
    assert babilong_correct("kitchen", " kitchen", "Where is Mary?", labels)
    assert babilong_correct("kitchen", "The most recent location of Mary is kitchen. Then garden", "Where is Mary?",
                            labels)
    assert not babilong_correct("kitchen", " garden", "Where is Mary?", labels)
    assert not babilong_correct("kitchen", " kitchen or garden", "Where is Mary?", labels)
    # labels mentioned in the question never count
    assert babilong_correct("hallway", " hallway, not the kitchen", "Where was the milk before the kitchen?",
                            BABILONG_TASK_LABELS["qa3"])


def test_runners_tables_and_plots(tokenizer, haystack, tmp_path):
    model = tiny_llama(len(tokenizer), max_position_embeddings=512)
    niah = evaluate_niah(model, tokenizer, make_niah_dataset("passkey", tokenizer, [256, 384], [0.0, 1.0]))
    assert len(niah) == 4 and {r["exact_match"] for r in niah} <= {0.0, 1.0}
    table = markdown_table(niah, "exact_match")
    assert table.splitlines()[0] == "| task | 256 | 384 |" and "niah_single_1" in table
    assert niah_heatmap(niah, tmp_path / "niah.png").stat().st_size > 1000
    samples = [make_babilong_sample("qa1", tokenizer, n, i, haystack=haystack) for n in (0, 300) for i in range(2)]
    babilong = evaluate_babilong(model, tokenizer, samples)
    assert [r["acc"] for r in babilong] == [
        float(babilong_correct(r["answer"], r["prediction"], r["question"], BABILONG_TASK_LABELS["qa1"]))
        for r in babilong]
    assert babilong_plot(babilong, tmp_path / "babilong.png").stat().st_size > 1000


def test_haystack_wraps_and_sample_text_is_usable():
    haystack = Haystack(SAMPLE_TEXT)
    n = len(haystack.sentences)
    assert haystack.take(3, n - 1) == [haystack.sentences[-1], haystack.sentences[0], haystack.sentences[1]]


def test_qa_training_example_supervises_only_the_answer(tokenizer):
    from titans.tasks.qa import qa_training_example

    sample = make_niah_sample("passkey", tokenizer, 300, 0.5)
    example = qa_training_example(sample.prompt, sample.answer, tokenizer, add_eos=True)
    assert len(example["input_ids"]) == len(example["labels"])
    supervised = [label for label in example["labels"] if label != -100]
    n = len(supervised)
    assert example["input_ids"][-n:] == supervised and example["labels"][:-n] == [-100] * (len(example["labels"]) - n)
    assert supervised[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(supervised[:-1]) == " " + sample.answer
    prompt_ids = tokenizer(sample.prompt, add_special_tokens=False)["input_ids"]
    assert example["input_ids"][: len(prompt_ids)] == prompt_ids
