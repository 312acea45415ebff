"""Evaluation: lm-eval adapter (model ``titans``), S-NIAH, BABILong, result files.

Importing this package registers the lm-eval model class ``titans``.
"""

import lm_eval.models  # noqa: F401  (registers lm-eval's own models first; see lm_eval.api.registry.get_model)

from titans.errors import CheckpointError
from titans.eval.lm_adapter import TitansLM
from titans.eval.loading import load_model_and_tokenizer

__all__ = ["TitansLM", "CheckpointError", "load_model_and_tokenizer"]
