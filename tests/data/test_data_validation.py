"""Data files are checked before use: a bad token shard or CSV is a ValueError naming the file (and the line and
column of a bad cell), never a segfault or a NaN loss blamed on the learning rate."""

import json

import numpy as np
import pytest

from data_helpers import write_tiny_shards
from titans.data.shards import read_meta, shard_windows
from titans.data.timeseries import ForecastingDataModule, read_series_csv
from train_helpers import ROOT, assert_one_error_line, run_train


def _edit_meta(root, **changes):
    path = root / "meta.json"
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))
    return meta


@pytest.mark.parametrize("dtype", ["O", "float32", "<U8", "bool", "complex64", 7, None])
def test_a_shard_dtype_outside_the_integer_whitelist_is_refused_before_mapping(tmp_path, dtype):
    """meta.json's "dtype": "O" used to memory-map the shard as object pointers: exit 139 (segfault)."""
    write_tiny_shards(tmp_path)
    meta = _edit_meta(tmp_path, dtype=dtype)
    with pytest.raises(ValueError, match=r'meta.json: "dtype" is .*not a token id type'):
        read_meta(tmp_path)
    with pytest.raises(ValueError, match="not a token id type"):  # a meta dict given directly is checked too
        shard_windows(tmp_path, meta, "train", 16)


def test_a_dtype_too_narrow_for_the_vocabulary_is_refused(tmp_path):
    write_tiny_shards(tmp_path)  # bytes tokenizer: 257 ids
    _edit_meta(tmp_path, dtype="uint8")
    with pytest.raises(ValueError, match="uint8 cannot hold the ids of \"vocab_size\" 257"):
        read_meta(tmp_path)


def test_shard_sizes_must_match_meta_json(tmp_path):
    write_tiny_shards(tmp_path)
    meta = read_meta(tmp_path)
    first = tmp_path / meta["splits"]["train"][0]["file"]
    first.write_bytes(first.read_bytes()[:-6])  # truncated: 3 uint16 tokens short
    with pytest.raises(ValueError, match=rf"shard {first} has 122 bytes, but meta.json says 64 uint16 tokens"):
        read_meta(tmp_path)
    write_tiny_shards(tmp_path)
    meta = _edit_meta(tmp_path, splits={"train": [{"file": "train-00000.bin", "tokens": 10**9}], "validation": []})
    with pytest.raises(ValueError, match="meta.json says 1000000000 uint16 tokens"):
        shard_windows(tmp_path, meta, "train", 16)
    for bad in ({"file": "../outside.bin", "tokens": 1}, {"file": "train-00000.bin", "tokens": -1}, {"tokens": 4}):
        _edit_meta(tmp_path, splits={"train": [bad]})
        with pytest.raises(ValueError, match="meta.json"):
            read_meta(tmp_path)


def test_malformed_meta_json_names_the_file(tmp_path):
    write_tiny_shards(tmp_path)
    (tmp_path / "meta.json").write_text('{"format": 2, "dtype": ')
    with pytest.raises(ValueError, match=r"meta.json is not valid JSON"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text('{"format": 2}')
    with pytest.raises(ValueError, match="meta.json"):
        read_meta(tmp_path)


def test_token_ids_beyond_the_vocabulary_are_named_when_read(tmp_path):
    write_tiny_shards(tmp_path)
    meta = _edit_meta(tmp_path, vocab_size=100)  # the shards hold ids up to 256
    windows = shard_windows(tmp_path, meta, "train", 16)
    with pytest.raises(ValueError, match=r"train-00000.bin holds token id \d+ .* vocab_size 100"):
        [windows[i] for i in range(len(windows))]


def _ett_copy(tmp_path, edit):
    """data/ett/ETTh1.csv with ``edit(lines)`` applied, in its own directory."""
    lines = (ROOT / "data" / "ett" / "ETTh1.csv").read_text().splitlines()
    edit(lines)
    out = tmp_path / "ett"
    out.mkdir(exist_ok=True)
    (out / "ETTh1.csv").write_text("\n".join(lines) + "\n")
    return out / "ETTh1.csv"


def _set_cell(lines, line_no, column, value):
    cells = lines[line_no - 1].split(",")
    cells[column - 1] = value
    lines[line_no - 1] = ",".join(cells)


@pytest.mark.parametrize("value, what", [("nan", "is nan"), ("NaN", "is nan"), ("inf", "is inf"),
                                         ("-inf", "is -inf"), ("", "is an empty cell"),
                                         ("n/a", "is 'n/a', not a number")])
def test_a_bad_csv_cell_is_named_with_file_line_and_column(tmp_path, value, what):
    path = _ett_copy(tmp_path, lambda lines: _set_cell(lines, 101, 3, value))
    with pytest.raises(ValueError) as err:
        read_series_csv(path)
    message = str(err.value)
    assert f"{path}: line 101, column 3 ('HULL') {what}" in message and "\n" not in message


def test_ragged_and_empty_csv_files_are_named(tmp_path):
    path = _ett_copy(tmp_path, lambda lines: lines.__setitem__(9, lines[9].rsplit(",", 1)[0]))
    with pytest.raises(ValueError, match=rf"{path}: line 10 has 7 fields, the header names 8 columns"):
        read_series_csv(path)
    path.write_text("date,HUFL\n")
    with pytest.raises(ValueError, match="has a header but no data rows"):
        read_series_csv(path)


def test_the_data_module_refuses_nan_before_training(tmp_path):
    path = _ett_copy(tmp_path, lambda lines: _set_cell(lines, 5000, 8, "nan"))
    data = ForecastingDataModule("etth1", root=path.parent, batch_size=4)
    with pytest.raises(ValueError, match=r"line 5000, column 8 \('OT'\) is nan"):
        data.setup()
    assert np.isfinite(read_series_csv(ROOT / "data" / "ett" / "ETTh1.csv")[0]).all()  # the shipped file is clean


def test_train_py_names_the_csv_cell_instead_of_the_learning_rate(tmp_path):
    """A NaN in ETTh1 stopped training with "training loss is nan at step 0: lower model.optimizer.lr"."""
    path = _ett_copy(tmp_path, lambda lines: _set_cell(lines, 3, 2, "nan"))
    proc = run_train(["experiment=ts_etth1_dlinear", f"data.root={path.parent}", "trainer.max_epochs=1",
                      "+trainer.limit_train_batches=2", "logger=csv"], tmp_path, check=False)
    line = assert_one_error_line(proc, str(path), "line 3, column 2 ('HUFL') is nan")
    assert "lr" not in line
