"""lm-eval's command line with the ``titans`` model registered.

lm-eval 0.4.13 has no plugin (entry point) discovery for models: a model class is known only once
the module that calls ``register_model`` is imported. This wrapper imports ``titans.eval`` and
then runs lm-eval's own CLI, so every lm-eval option works unchanged:

    python -m titans.eval.lm_eval_cli run --model titans --model_args pretrained=PATH --tasks piqa
    titans-lm-eval run --model titans --model_args pretrained=PATH,batch_size=8 --tasks wikitext

An expected error (a missing, corrupt or unsafe checkpoint, a Hugging Face directory whose weights are a pickle,
a missing data set) is one ``error: ...`` line on stderr and exit status 2, as in train.py and eval.py
(titans.cli); ``HYDRA_FULL_ERROR=1`` brings the traceback back.
"""

from __future__ import annotations

import sys


from titans.cli import report_expected_errors


@report_expected_errors
def main(argv: list[str] | None = None) -> None:
    import titans.eval  # noqa: F401  (registers the `titans` model)
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()
