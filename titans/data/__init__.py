"""Data: the bundled corpus, tokenizers, language-model, BABILong and MQAR datamodules and the resumable sampler."""

from titans.data.babilong import BabilongDataModule
from titans.data.base import PackedLMDataModule, TokenDataModule
from titans.errors import DataUnavailableError
from titans.data.mqar import MQARDataModule
from titans.data.sampler import ResumableSampler
from titans.data.text import TextDataModule
from titans.data.tokenizers import build_tokenizer, tokenizer_fingerprint
from titans.data.vocab import check_vocab

__all__ = [
    "BabilongDataModule",
    "DataUnavailableError",
    "FineWebEduDataModule",
    "MQARDataModule",
    "PackedLMDataModule",
    "ResumableSampler",
    "TextDataModule",
    "TokenDataModule",
    "build_tokenizer",
    "check_vocab",
    "tokenizer_fingerprint",
]


def __getattr__(name):  # FineWebEduDataModule imports `datasets` lazily
    if name == "FineWebEduDataModule":
        from titans.data.fineweb import FineWebEduDataModule

        return FineWebEduDataModule
    raise AttributeError(name)
