"""Tokenizer / model vocabulary agreement."""

from __future__ import annotations


def check_vocab(tokenizer, model_vocab_size: int) -> None:
    """Raise ValueError (one line) if `tokenizer` can produce ids >= model_vocab_size (the model's embedding
    rows). A model vocabulary larger than the tokenizer's (padding to a multiple of 64, say) is fine."""
    needed = len(tokenizer)
    top_special = max((i for i in tokenizer.all_special_ids if i is not None), default=-1)
    needed = max(needed, top_special + 1)
    if needed > model_vocab_size:
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '') or type(tokenizer).__name__} produces ids up to "
            f"{needed - 1} but the model has vocab_size={model_vocab_size}: set the model's vocab_size >= {needed} "
            f"(len(tokenizer)) or use the tokenizer the model was trained with"
        )


def net_vocab_kwargs(model_cfg, data_vocab_size: int, tokenizer=None) -> dict:
    """The network's vocabulary as data module's ``model_kwargs`` give it: ``{"vocab_size": data_vocab_size}``, or
    nothing when ``model_cfg`` (the LightningModule config) already sets ``net.vocab_size`` (a padded vocabulary,
    say), which must then hold every id of the data (of ``tokenizer`` when there is one)."""
    net = (model_cfg or {}).get("net") or {}
    requested = net.get("vocab_size")
    if requested is None:
        return {"vocab_size": int(data_vocab_size)}
    if tokenizer is not None:
        check_vocab(tokenizer, int(requested))
    elif int(requested) < data_vocab_size:
        raise ValueError(f"model.net.vocab_size={requested} is smaller than the data's {data_vocab_size} tokens: "
                         f"remove the override or raise it")
    return {}
