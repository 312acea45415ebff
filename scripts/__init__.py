"""The command-line scripts (``python scripts/<name>.py``), importable as ``scripts.<name>`` from the repository root
(the tests do, with ``pythonpath = [".", "tests"]`` in pyproject.toml). Each script that needs ``titans`` puts the
repository root on ``sys.path`` itself, so it also runs from a checkout without an install."""
