"""Genomics (Table 4): the DNA tokenizer, FASTA and benchmark readers, the planted-motif task, the classifier,
configs, and an offline pretrain -> fine-tune run that writes its accuracy."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from titans.data import DataUnavailableError, build_tokenizer
from titans.data.dna import DNA_VOCAB, dna_tokenizer, encode_dna, read_fasta
from titans.tasks.dna_motifs import MOTIFS, planted_motif_sample
from titans.data.genomics import (
    GENOMIC_BENCHMARKS,
    DNACorpusDataModule,
    GenomicsDataModule,
    pad_batch,
    read_benchmark_dir,
)
from titans.models.classification import SequenceClassifier, masked_mean
from numerics import assert_within_reference_error, float64_copy
from recipes import composing
from train_helpers import ROOT
from train_helpers import compose_train_config as _compose

TINY = {"n_layers": 2, "d_model": 32, "n_heads": 2, "n_persistent": 4, "memory": {"chunk_size": 8}}


def test_dna_tokenizer_round_trip():
    tok = dna_tokenizer()
    assert len(tok) == 7 and tok.eos_token_id == 0 and tok.pad_token_id == 0
    rng = np.random.default_rng(0)
    for length in (1, 17, 300):
        sequence = "".join(rng.choice(list("ACGTN"), size=length))
        ids = tok(sequence)["input_ids"]
        assert len(ids) == length and all(2 <= i <= 6 for i in ids)
        assert tok.decode(ids) == sequence
    assert tok("acgtn")["input_ids"] == [DNA_VOCAB[c] for c in "ACGTN"]
    assert tok.decode(tok("ACRYKMX")["input_ids"]) == "ACNNNNN"  # IUPAC codes read as N
    mixed = "acgtNRYkmACGTTTGAxn" * 3
    assert encode_dna(mixed).tolist() == tok(mixed)["input_ids"]  # the corpus' fast path gives the same ids
    built = build_tokenizer(kind="dna")
    assert built.titans_config == {"kind": "dna"} and built("GATTACA")["input_ids"] == tok("GATTACA")["input_ids"]


def test_read_fasta_plain_and_gzip(tmp_path):
    text = ">seq1 chr2L:1-10\nacgt\nNNac\n>seq2\nGGRT\n"
    (tmp_path / "a.fa").write_text(text)
    with gzip.open(tmp_path / "a.fa.gz", "wt") as f:
        f.write(text)
    for name in ("a.fa", "a.fa.gz"):
        assert read_fasta(tmp_path / name) == [("seq1", "ACGTNNAC"), ("seq2", "GGNT")]
    (tmp_path / "bad.fa").write_text("ACGT\n")
    with pytest.raises(ValueError, match="not a FASTA"):
        read_fasta(tmp_path / "bad.fa")


def test_planted_motifs_are_deterministic_and_carry_their_class_motif():
    labels = []
    for i in range(200):
        sequence, label = planted_motif_sample(3, 0, i, length=120, num_classes=3)
        assert (sequence, label) == planted_motif_sample(3, 0, i, length=120, num_classes=3)
        assert len(sequence) == 120 and set(sequence) <= set("ACGT")
        if label:
            assert MOTIFS[label - 1] in sequence
        labels.append(label)
    assert set(labels) == {0, 1, 2} and min(np.bincount(labels)) > 40
    assert planted_motif_sample(3, 1, 0, 120, 3) != planted_motif_sample(3, 0, 0, 120, 3)


def test_benchmark_directory_layout_and_held_out_validation(tmp_path):
    for split, n in (("train", 10), ("test", 4)):
        for cls in ("positive", "negative"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                (tmp_path / split / cls / f"{i}.txt").write_text("ACGT" * (i + 1) + ("A" if cls == "positive" else "C"))
    sequences, labels, classes = read_benchmark_dir(tmp_path, "train")
    assert classes == ["negative", "positive"] and labels.count(0) == labels.count(1) == 10
    assert all(s.endswith("C") for s, y in zip(sequences, labels) if y == 0)
    dm = GenomicsDataModule(task="my_task", source="local", root=str(tmp_path), val_fraction=0.2, batch_size=4)
    assert dm.net_inputs == {"vocab_size": 7, "num_classes": 2}
    sizes = {split: len(dm.splits[split]) for split in ("train", "val", "test")}
    assert sizes == {"train": 16, "val": 4, "test": 8}
    train_seqs = set(dm.splits["train"].sequences)
    assert not train_seqs & set(dm.splits["val"].sequences)
    batch = next(iter(dm.val_dataloader()))
    assert batch["input_ids"].shape[0] == 4 and set(batch) == {"input_ids", "lengths", "labels"}


def test_pad_batch_right_pads_with_eos():
    items = [{"input_ids": torch.tensor([2, 3, 4]), "label": 1}, {"input_ids": torch.tensor([5]), "label": 0}]
    batch = pad_batch(items, pad_id=0)
    assert batch["input_ids"].tolist() == [[2, 3, 4], [5, 0, 0]]
    assert batch["lengths"].tolist() == [3, 1] and batch["labels"].tolist() == [1, 0]


def test_padding_does_not_change_the_logits_of_a_causal_backbone(tol_seed):
    """Padded and batched logits within 8x the error of the unpadded float32 ones against the float64 net's
    (tests/numerics.py)."""
    torch.manual_seed(tol_seed)
    net = SequenceClassifier(vocab_size=7, num_classes=3, variant="lmm", **TINY).eval()
    net64 = float64_copy(net)
    short, long = torch.tensor([[2, 3, 4, 5, 2]]), torch.tensor([[3, 3, 5, 6, 2, 4, 4, 5, 2, 3, 5]])
    batch = pad_batch([{"input_ids": short[0], "label": 0}, {"input_ids": long[0], "label": 1}], pad_id=0)
    with torch.no_grad():
        together = net(batch["input_ids"], batch["lengths"])
        alone = torch.cat([net(short), net(long)])
        alone64 = torch.cat([net64(short), net64(long)])
    assert_within_reference_error(together, alone64, alone, what="logits")
    hidden = torch.randn(2, 4, 3)
    means = torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)])
    means64 = torch.stack([hidden.double()[0, :2].mean(0), hidden.double()[1].mean(0)])
    assert_within_reference_error(masked_mean(hidden, torch.tensor([2, 4])), means64, means, what="masked mean")


def test_a_few_classifier_steps_lower_the_loss():
    torch.manual_seed(0)
    dm = GenomicsDataModule(batch_size=16, length=64, train_samples=64, test_samples=16)
    batch = next(iter(dm.train_dataloader()))
    net = SequenceClassifier(vocab_size=7, num_classes=2, variant="lmm", dropout=0.0, **TINY)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(net(batch["input_ids"], batch["lengths"]), batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_hub_sources_stop_at_once_offline_with_the_offline_alternative(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as err:
        GenomicsDataModule(task="human_nontata_promoters", source="hub")
    assert "genomics_planted_motifs" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataUnavailableError, match="data.source=synthetic"):
        DNACorpusDataModule(source="hub", tokenizer={"kind": "dna"})
    with pytest.raises(DataUnavailableError, match="prepare_dna_data.py"):
        DNACorpusDataModule(source="fasta", files=["/nonexistent.fa"], tokenizer={"kind": "dna"})


def test_dna_corpus_windows_from_a_fasta(tmp_path):
    records = "".join(f">r{i}\n{'ACGT' * 30}\n" for i in range(40))
    (tmp_path / "c.fa").write_text(records)
    dm = DNACorpusDataModule(source="fasta", files=[str(tmp_path / "c.fa")], seq_len=64, batch_size=2,
                             tokenizer={"kind": "dna"})
    dm.setup()
    # 38 training records (every 20th is validation) of 120 nt + EOS each
    assert len(dm.train_set) == (38 * 121) // 64 and len(dm.val_set) == (2 * 121) // 64
    window = dm.train_set[0]["input_ids"]
    assert window[:8].tolist() == [2, 3, 4, 5] * 2
    assert dm.train_set[1]["input_ids"][120 - 64].item() == 0  # EOS after the first record


# the experiments that declare the fine-tuning recipe (configs/recipe/genomics.yaml), whatever their names
GENOMICS_EXPERIMENTS = sorted(composing("genomics"))


def test_there_is_a_finetuning_experiment_per_table4_task(tmp_path, monkeypatch):
    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    tasks = {_compose(tmp_path, [f"experiment={name}"]).data.task for name in GENOMICS_EXPERIMENTS}
    assert set(GENOMIC_BENCHMARKS) <= tasks


@pytest.mark.parametrize("name", [*GENOMICS_EXPERIMENTS, "dna_pretrain_lmm", "dna_pretrain_smoke"])
def test_genomics_experiments_compose_and_instantiate(name, tmp_path, monkeypatch):
    import hydra

    monkeypatch.setenv("PROJECT_ROOT", str(ROOT))
    cfg = _compose(tmp_path, [f"experiment={name}"])
    assert cfg.task_name == name and cfg.tokenizer.kind == "dna"
    if name in GENOMICS_EXPERIMENTS:
        assert cfg.test is True and cfg.init_from_required is True
        module = hydra.utils.instantiate(cfg.model, net={"vocab_size": 7, "num_classes": 3}, _convert_="all")
        assert module.net.head.out_features == 3 and module.pretrained_net is module.net.lm
        # the fine-tuning backbone has the pretraining model's shapes, so init_from loads
        pretrain = _compose(tmp_path, ["experiment=dna_pretrain_lmm"])
        lm = hydra.utils.instantiate(pretrain.model, net={"vocab_size": 7}, tokens_per_step=1, _convert_="all").net
        own, theirs = module.pretrained_net.state_dict(), lm.state_dict()
        assert own.keys() == theirs.keys() and all(own[k].shape == theirs[k].shape for k in own)
    else:
        module = hydra.utils.instantiate(cfg.model, net={"vocab_size": 7}, tokens_per_step=1, _convert_="all")
        assert module.net.config.vocab_size == 7


@pytest.mark.slow
def test_offline_pretrain_then_finetune_writes_the_accuracy(tmp_path):
    model = ["++model.net.n_layers=2", "++model.net.d_model=32", "++model.net.n_heads=2", "model.net.memory.compile=false"]
    common = ["logger=csv", "callbacks.progress_bar.refresh_rate=0", *model]
    pretrain = [*common, "data.seq_len=64", "data.batch_size=4", "data.synthetic_sequences=40",
                "data.synthetic_length=200", "trainer.max_steps=4", "trainer.val_check_interval=2",
                "trainer.limit_val_batches=1", "callbacks.model_checkpoint.every_n_train_steps=2"]
    finetune = [*common, "trainer.max_epochs=1", "+trainer.limit_train_batches=4", "data.batch_size=8",
                "data.length=64", "data.train_samples=60", "data.test_samples=24"]
    env_cmd = [sys.executable, str(ROOT / "scripts" / "run_genomics.py"), "--pretrain", "dna_pretrain_smoke",
               "--tasks", "planted_motifs", "--name", "smoke", "--out", str(tmp_path / "results"),
               "--log-dir", str(tmp_path / "logs"), "--pretrain-set", *pretrain, "--finetune-set", *finetune]
    proc = subprocess.run(env_cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "smoke.json").read_text())
    assert record["suite"] == "genomics" and record["pretrain"]["global_step"] == 4
    task = record["tasks"]["planted_motifs"]
    assert 0.0 <= task["test/acc"] <= 1.0 and task["global_step"] == 4
    log = (tmp_path / "logs").glob("*/planted_motifs/genomics_planted_motifs.log")  # the run's Hydra log
    assert "initialised the model's weights from" in next(log).read_text()
    # what it wrote on stdout; a progress bar over the two train.py jobs on stderr
    assert f"Results written to {tmp_path / 'results' / 'smoke.json'}" in proc.stdout
    assert "Checkpoints written under" in proc.stdout and "last.ckpt" in proc.stdout
    assert "genomics: 100%" in proc.stderr and "[genomics] planted_motifs: done" in proc.stderr
