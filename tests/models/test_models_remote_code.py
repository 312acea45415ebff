"""A saved model is a self-contained Hugging Face directory: its code is generated from the package's sources
(titans.models.remote_code), it loads with ``trust_remote_code=True`` where titans cannot be imported and gives the
package's logits and generated tokens, and lm-eval's stock ``hf`` model scores it as our ``titans`` model does."""

from __future__ import annotations

import ast
import json
import re

import pytest
import torch

from eval_helpers import tiny_tokenizer
from numerics import assert_within_reference_error, float64_copy
from remote_helpers import LM_EVAL_CLI, load_and_run_without_titans, run_without_titans

from titans.models import TitansForCausalLM, build_causal_lm, remote_code
from titans.models.remote_code import AUTO_MAP, BundleError, bundle_sources, flat_name, source_file

VARIANTS = {  # together every block type: mac, mag, lmm + swa (mal), attn (transformer)
    "mac": dict(segment_len=8, n_persistent=4),
    "mag": dict(window=8, n_persistent=4),
    "mal": dict(window=8, n_persistent=0),
    "transformer": dict(),
}


def tiny(variant: str, vocab_size: int = 300, **overrides) -> TitansForCausalLM:
    torch.manual_seed(0)
    return build_causal_lm(variant, "tiny", vocab_size=vocab_size, n_layers=2,
                           **{**VARIANTS[variant], **overrides}).eval()


def _module_of(file_name: str) -> str:
    """The package module a bundled file comes from (its header names the source)."""
    return next(m for m in _bundled_modules() if flat_name(m) + ".py" == file_name)


def _bundled_modules() -> list[str]:
    modules = []
    for path in sorted(remote_code.PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(remote_code.PACKAGE_DIR.parent).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def test_the_bundle_is_the_package_source_line_for_line():
    """Every bundled module is its source with one header line and only its package imports rewritten (same line
    count, same lines elsewhere); stand-ins replace exactly the modules STANDINS names; nothing imports titans."""
    files = bundle_sources()
    assert {"titans_models_modeling.py", "titans_models_config.py", "titans_memory_scan.py", "titans_memory_step.py",
            "titans_layers_flex_ops.py", "titans_layers.py", "titans_memory.py"} <= set(files)
    assert not any(name.startswith(("titans_data", "titans_eval", "titans_training")) for name in files)
    import_line = re.compile(r"^\s*from \.titans_\w+ import ")
    for name, text in files.items():
        module = _module_of(name)
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level:
                assert not (node.module or "").startswith("titans"), (name, node.lineno)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("titans") for a in node.names), (name, node.lineno)
        header, *lines = text.splitlines()
        assert header.startswith("# Generated from titans/") and "do not edit" in header
        if module in remote_code.STANDINS:
            assert "\n".join(lines) + "\n" == remote_code.STANDINS[module]
            continue
        source_text = source_file(module).read_text(encoding="utf-8")
        source = source_text.splitlines()
        assert len(lines) == len(source), name
        spans, first_lines = set(), set()  # the lines of the source's imports of the package (relative or absolute)
        for node in ast.walk(ast.parse(source_text)):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("titans")):
                spans |= set(range(node.lineno, node.end_lineno + 1))
                first_lines.add(node.lineno)
        changed = {i for i, (new, old) in enumerate(zip(lines, source), start=1) if new != old}
        assert changed <= spans and first_lines <= changed, name
        assert all(import_line.match(lines[i - 1]) for i in first_lines), name
    # every package module the bundle names exists in it
    for text in files.values():
        for flat in re.findall(r"from \.(titans_\w+) import", text):
            assert flat + ".py" in files


def test_transformers_finds_every_file_of_the_bundle(tmp_path):
    """transformers copies what its own import scan finds from the auto_map modules; that must be the whole bundle,
    and the bundle may need nothing but torch, transformers and the standard library."""
    from transformers.dynamic_module_utils import get_imports, get_relative_import_files

    written = remote_code.write_remote_code(tmp_path)
    assert sorted(p.name for p in written) == sorted(bundle_sources())
    for entry in AUTO_MAP.values():
        entry_file = tmp_path / (entry.split(".")[0] + ".py")
        found = {entry_file.name} | {p.rpartition("/")[2] for p in get_relative_import_files(str(entry_file))}
        assert found <= {p.name for p in written}
        if entry.endswith("TitansForCausalLM"):
            assert found == {p.name for p in written}
    third_party = set().union(*(get_imports(str(p)) for p in written)) - set(__import__("sys").stdlib_module_names)
    assert third_party <= {"torch", "transformers"}, third_party


def test_the_bundler_refuses_what_it_cannot_carry(tmp_path, monkeypatch):
    package = tmp_path / "titans"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / "__init__.py").write_text("")
    (package / "models" / "modeling.py").write_text("import lightning\n")
    (package / "models" / "config.py").write_text("x = 1\n")
    monkeypatch.setattr(remote_code, "PACKAGE_DIR", package)
    with pytest.raises(BundleError, match="imports lightning: the bundled code may use only torch, transformers"):
        bundle_sources()
    (package / "models" / "modeling.py").write_text("import titans.models.config\n")
    with pytest.raises(BundleError, match="cannot be bundled"):
        bundle_sources()
    (package / "models" / "modeling.py").write_text("import os; from .config import x\n")
    with pytest.raises(BundleError, match="lines of its own"):
        bundle_sources()


def test_save_pretrained_writes_auto_map_and_the_code_and_keeps_the_config(tmp_path):
    model = tiny("mac")
    stale = tmp_path / "titans_memory_old.py"
    stale.write_text(remote_code.HEADER.format(source="titans/memory/old.py"))
    mine = tmp_path / "titans_notes.py"
    mine.write_text("# not generated\n")
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP and config["model_type"] == "titans"
    assert set(bundle_sources()) <= {p.name for p in tmp_path.glob("titans_*.py")}
    assert not stale.exists() and mine.exists()  # an earlier bundle's file goes, a file of the user's stays
    assert (tmp_path / "model.safetensors").is_file()
    assert not hasattr(model.config, "auto_map")  # the in-memory config is unchanged (checkpoints compare configs)
    from transformers import AutoModelForCausalLM

    assert isinstance(AutoModelForCausalLM.from_pretrained(tmp_path), TitansForCausalLM)  # with titans: the package


def test_saved_directories_load_and_generate_without_titans(tmp_path, single_thread):
    """Each block type, loaded by transformers from the directory alone in a process that cannot import titans,
    gives the package model's logits and greedy tokens; a model loaded that way saves itself again."""
    ids = torch.randint(0, 300, (2, 19), generator=torch.Generator().manual_seed(1))
    job, expected = {}, {}
    for variant in VARIANTS:
        model = tiny(variant)
        model.save_pretrained(tmp_path / variant)
        with torch.no_grad():
            expected[variant] = (model(input_ids=ids).logits,
                                 model.generate(ids, max_new_tokens=6, do_sample=False))
        job[variant] = {"dir": tmp_path / variant, "input_ids": ids.tolist(), "max_new_tokens": 6}
    job["mac"]["resave"] = str(tmp_path / "mac_resaved")
    out = load_and_run_without_titans(job, tmp_path)
    for variant, (logits, generated) in expected.items():
        assert out[variant]["module"].startswith("transformers_modules.") and "titans_models_modeling" in \
            out[variant]["module"]
        torch.testing.assert_close(out[variant]["logits"], logits, rtol=0, atol=0)
        assert torch.equal(out[variant]["generated"], generated), variant
        assert generated.shape[1] == ids.shape[1] + 6
    torch.testing.assert_close(out["mac"]["resaved_logits"], expected["mac"][0], rtol=0, atol=0)
    resaved = json.loads((tmp_path / "mac_resaved" / "config.json").read_text())
    assert resaved["auto_map"] == AUTO_MAP


@pytest.mark.slow
@pytest.mark.numerics
def test_stock_lm_eval_hf_model_scores_like_the_titans_model(tmp_path, single_thread):
    """`lm_eval run --model hf --model_args pretrained=DIR,trust_remote_code=True`, run without titans on the local
    offline tasks, gives the loglikelihoods (and greedy flags) and generations our `titans` model gives for the same
    requests: its float32 loglikelihoods within 8x our float32 model's error against our model in float64
    (tests/numerics.py)."""
    from lm_eval.api.instance import Instance

    from titans.eval import TitansLM
    from titans.eval.local_tasks import write_local_tasks

    tokenizer = tiny_tokenizer()
    model = tiny("mac", vocab_size=len(tokenizer), max_position_embeddings=128)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    write_local_tasks(tmp_path / "tasks")
    tasks = {"titans_local_loglikelihood": "loglikelihood", "titans_local_multiple_choice": "loglikelihood",
             "titans_local_generate": "generate_until"}
    run_without_titans(LM_EVAL_CLI, [
        "run", "--model", "hf", "--model_args", f"pretrained={tmp_path / 'model'},trust_remote_code=True,dtype=float32",
        "--tasks", ",".join(tasks), "--include_path", str(tmp_path / "tasks"), "--device", "cpu", "--batch_size", "1",
        "--output_path", str(tmp_path / "out"), "--log_samples"], tmp_path)

    ours = TitansLM(pretrained=model, tokenizer=tokenizer, device="cpu")
    ours64 = TitansLM(pretrained=float64_copy(model), tokenizer=tokenizer, device="cpu")
    for task, kind in tasks.items():
        (samples_file,) = (tmp_path / "out").rglob(f"samples_{task}_*.jsonl")
        samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
        assert len(samples) >= 2, task
        requests, stock = [], []
        for sample in samples:  # one request per choice; the CLI writes each response as strings
            for args, response in zip(sample["arguments"].values(), sample["resps"]):
                requests.append(Instance(kind, sample["doc"], (args["arg_0"], args["arg_1"]), len(requests)))
                stock.append(response[0])
        if kind == "loglikelihood":
            for (logprob, greedy), (logprob64, _), (stock_logprob, stock_greedy) in zip(
                    ours.loglikelihood(requests), ours64.loglikelihood(requests), stock):
                assert_within_reference_error(float(stock_logprob), logprob64, logprob, what=task)
                assert str(greedy) == stock_greedy
        else:
            assert ours.generate_until(requests) == stock
