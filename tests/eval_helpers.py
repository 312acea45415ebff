"""Tiny offline models and tokenizers for the tests of the evaluation code.

Any Hugging Face causal LM + tokenizer works with titans.eval; these build one in well under a
second without the network: a byte-level BPE tokenizer trained on a few sentences and a randomly
initialised 2-layer Llama.
"""

from __future__ import annotations

import os
from pathlib import Path

from titans.tasks.haystack import NOISE_SENTENCE

ROOT = Path(__file__).resolve().parents[1]

SAMPLE_TEXT = (
    "Mary moved to the bathroom. John went to the hallway. Daniel picked up the football there. "
    "The special magic number for the quiet river is 1234567. What is the special magic number? "
    "Question: Where is the apple? Answer: The apple is in the kitchen. " + NOISE_SENTENCE + " "
    "Now is the winter of our discontent made glorious summer by this sun of York. "
    "To be, or not to be, that is the question. All the world's a stage, and all the men and women merely players."
)

# a haystack text for the long-context tasks
ESSAY = " ".join(f"Sentence number {i} of the essay talks about the {w} and the river." for i, w in
                 enumerate(["king", "queen", "storm", "garden", "castle", "sea", "crown", "sword"] * 10))


def tiny_tokenizer(vocab_size: int = 400):
    """A PreTrainedTokenizerFast (byte-level BPE, bos <s>, eos </s>, pad <pad>) trained offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([SAMPLE_TEXT] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def tiny_llama(vocab_size: int, max_position_embeddings: int = 256, seed: int = 0, hidden_size: int = 32):
    """A randomly initialised 2-layer LlamaForCausalLM in float32, eval mode."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=max_position_embeddings, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def compose_eval_config(overrides: list[str]):
    """configs/eval.yaml composed with ``overrides`` as eval.py would."""
    from hydra import compose, initialize_config_dir

    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(config_name="eval", overrides=overrides)


def evaluate(overrides: list[str]):
    """eval.py in this process: the composed config's checkpoint evaluated; returns what evaluate_checkpoint does."""
    from titans.eval.runner import evaluate_checkpoint

    return evaluate_checkpoint(compose_eval_config(overrides))
