"""Run Python in a subprocess where ``titans`` cannot be imported: how a user without the package loads a saved
directory (trust_remote_code=True) or runs lm-eval's stock command line on it.

The subprocess is the test run's own interpreter in isolated mode (``-I``: no PYTHONPATH, no current directory on
sys.path), started outside the repository, with a finder at the front of ``sys.meta_path`` that refuses every
``titans`` module (the package is installed in the virtual environment, so leaving it off sys.path is not enough).
Remote code goes to a fresh HF_MODULES_CACHE under the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BLOCK_TITANS = '''\
import importlib.abc
import sys


class _NoTitans(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "titans" or name.startswith("titans."):
            raise ModuleNotFoundError(f"No module named {name!r} (this process runs without titans)")


sys.meta_path.insert(0, _NoTitans())
try:
    import titans  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("titans is importable: the blocker does not work")
'''

NO_TITANS_LOADED = '''
_loaded = [m for m in sys.modules if m == "titans" or m.startswith("titans.")]
assert not _loaded, _loaded
'''

# job: {name: {"dir", "input_ids", "max_new_tokens", "resave" (optional)}} -> {name: {"module", "logits", "generated",
# "resaved_logits" (with resave)}}
LOAD_AND_RUN = '''
import json
import torch
from transformers import AutoModelForCausalLM

job = json.loads(open(sys.argv[1]).read())
out = {}
for name, spec in job.items():
    model = AutoModelForCausalLM.from_pretrained(spec["dir"], trust_remote_code=True).eval()
    ids = torch.tensor(spec["input_ids"])
    with torch.no_grad():
        out[name] = {"module": type(model).__module__, "logits": model(input_ids=ids).logits,
                     "generated": model.generate(ids, max_new_tokens=spec["max_new_tokens"], do_sample=False)}
        if spec.get("resave"):  # the remote classes save themselves (transformers copies the bundled code)
            model.save_pretrained(spec["resave"])
            again = AutoModelForCausalLM.from_pretrained(spec["resave"], trust_remote_code=True).eval()
            out[name]["resaved_logits"] = again(input_ids=ids).logits
torch.save(out, sys.argv[2])
'''

LM_EVAL_CLI = '''
from lm_eval.__main__ import cli_evaluate  # what the `lm_eval` console script runs

sys.argv = ["lm_eval", *sys.argv[1:]]
code = cli_evaluate()
'''


def run_without_titans(code: str, args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    script = tmp_path / "without_titans.py"
    script.write_text(BLOCK_TITANS + code + NO_TITANS_LOADED, encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", HF_MODULES_CACHE=str(tmp_path / "hf_modules"))
    proc = subprocess.run([sys.executable, "-I", str(script), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"the titans-free process failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


def load_and_run_without_titans(job: dict, tmp_path: Path) -> dict:
    import torch

    job_file, out_file = tmp_path / "job.json", tmp_path / "out.pt"
    job_file.write_text(json.dumps({k: {**v, "dir": str(v["dir"])} for k, v in job.items()}), encoding="utf-8")
    run_without_titans(LOAD_AND_RUN, [str(job_file), str(out_file)], tmp_path)
    return torch.load(out_file, weights_only=True)
