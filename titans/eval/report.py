"""The paper's tables and figures with our results beside them: one registered entry per table or figure.

An entry (:class:`ReportEntry`) holds the three parts of one table or figure of the paper:

- ``ours(inputs) -> list[OurRow]``: our rows, extracted from the result files (``ReportInputs``: every JSON
  document read, and the eval.py records grouped by checkpoint into :class:`Run` objects);
- ``paper(ours, options) -> list[Block]``: the paper's rows as markdown blocks, each of our rows placed under the
  paper row of the same model (``Block.place``; a "-" row for a model the paper shows and we did not run);
- ``figure(ours, inputs, directory) -> list[Path]`` (optional): PNGs written next to the markdown.

``ENTRIES`` is the registry, in the paper's order; ``scripts/reproduce_table.py --tables KEY ...`` renders any of
them. Adding a table is adding one entry (``register``): the time-series and genomics tables (3, 4) plug in the
same way, with their own ``render`` where a table's layout differs (datasets as rows, models as columns).

Our rows carry their scale (model size, parameters, training tokens), the date and the commit of the result files,
and how many runs they average. The model behind a record is read from its checkpoint's config
(:func:`identify`): the variant under the paper's name, and for the LMM the Table 5 change it carries.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from titans.eval import paper_results as paper
from titans.eval.long_context import length_label
from titans.eval.table1 import ALL_COLUMNS as TABLE1_COLUMNS

NIAH_COLUMNS = {"niah_single_1": "PK", "niah_single_2": "N", "niah_single_3": "W"}
FIGURE_ONLY = "plot only"  # the paper's row of a model whose values exist only in a plot
#: which memory fields make the LMM one of Table 5's ablations (and n_persistent == 0)
TABLE5_FIELDS = {"depth": "Linear Memory", "use_conv": "w/o Convolution", "momentum": "w/o Momentum",
                 "forget": "w/o Weight Decay"}
TABLE5_ATTENTION_ROWS = {"mac": "+Attn (MAC)", "mag": "+Attn (MAG)", "mal": "+Attn (MAL)"}


# --------------------------------------------------------------------------------------------- the model behind a run
@dataclass(frozen=True)
class Identity:
    """What a checkpoint is, in the paper's terms."""

    variant: str | None
    name: str  # the paper's name of the model ("Titans (MAC)"), or the class name for other models
    changes: frozenset = frozenset()  # memory fields that differ from the variant's preset; "n_persistent" if 0
    depth: int | None = None

    @property
    def plain(self) -> bool:
        """The variant as the paper trains it (no ablation, the default memory depth)."""
        return not self.changes

    @property
    def table5_row(self) -> str | None:
        if self.variant == "lmm":
            if not self.changes:
                return "LMM"
            if len(self.changes) == 1:
                [change] = self.changes
                if change == "n_persistent":
                    return "w/o Persistent Memory"
                if change == "depth":
                    return "Linear Memory" if self.depth == 1 else None
                return TABLE5_FIELDS.get(change)
            return None
        return TABLE5_ATTENTION_ROWS.get(self.variant) if self.plain else None

    @property
    def figure7_row(self) -> str | None:
        """``LMM (L_M=d)`` for an LMM whose only change (if any) is its memory depth."""
        if self.variant == "lmm" and self.changes <= {"depth"} and self.depth:
            return f"LMM (L_M={self.depth})"
        return None


def identify(model: dict) -> Identity:
    """The Identity of a record's ``model`` entry (class, config)."""
    from titans.memory import MemoryConfig
    from titans.models.variants import VARIANTS, display_name

    config = model.get("config") or {}
    variant = config.get("variant")
    if variant is None:
        return Identity(None, model.get("class") or "model")
    name, spec = display_name(variant), VARIANTS.get(variant)
    memory = config.get("memory")
    if spec is None or spec.memory_preset is None or not isinstance(memory, dict):
        return Identity(variant, name)
    preset = MemoryConfig.preset(spec.memory_preset).to_dict()
    changes = {k for k in TABLE5_FIELDS if k in memory and memory[k] != preset[k]}
    if spec.n_persistent and config.get("n_persistent") == 0:  # a variant with persistent tokens run without
        changes.add("n_persistent")
    return Identity(variant, name, frozenset(changes), memory.get("depth"))


def size_of(config: dict) -> str | None:
    """The name of the size whose shape (blocks, width, heads) the model has, if any."""
    from titans.models.sizes import SIZES

    shape = (config.get("n_layers"), config.get("d_model"), config.get("n_heads"))
    return next((name for name, s in SIZES.items() if (s["n_layers"], s["d_model"], s["n_heads"]) == shape), None)


def _count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


# ------------------------------------------------------------------------------------------------- inputs and runs
@dataclass
class Run:
    """One checkpoint and the results of every suite evaluated on it (the newest record of each suite)."""

    checkpoint: str
    identity: Identity
    size: str | None
    n_parameters: int | None = None
    records: dict[str, dict] = field(default_factory=dict)  # suite name -> record

    @property
    def train_tokens(self) -> float | None:
        known = [(r.get("checkpoint") or {}).get("train_tokens") for r in self.records.values()]
        return max((t for t in known if t), default=None)

    @property
    def scale(self) -> str:
        """"tiny, 1.9M params, 614.4K tokens": the size (by shape), parameters, training tokens when known."""
        parts = [self.size or "custom shape"]
        if self.n_parameters:
            parts.append(f"{_count(self.n_parameters)} params")
        if self.train_tokens:
            parts.append(f"{_count(self.train_tokens)} tokens")
        return ", ".join(parts)

    @property
    def dates(self) -> list[str]:
        return sorted({str(r.get("created_utc", ""))[:10] for r in self.records.values()})

    @property
    def commits(self) -> list[str]:
        return sorted({str(r.get("git_commit") or "?")[:7] for r in self.records.values()})

    def results(self, suite_kind: Callable[[dict], bool]) -> list[dict]:
        return [r["results"] for r in self.records.values() if suite_kind(r)]


@dataclass
class ReportInputs:
    documents: list[dict]  # every JSON document read (``_path`` added)
    runs: list[Run]


def is_eval_record(document: dict) -> bool:
    from titans.eval.results import REQUIRED_KEYS

    return all(key in document for key in REQUIRED_KEYS)


def load_documents(paths: Iterable[str | Path], skip_dirs: Iterable[str | Path] = ()) -> list[dict]:
    """Every JSON object in ``paths`` (files, or directories searched recursively, ``skip_dirs`` excepted)."""
    skip = [Path(p).resolve() for p in skip_dirs]
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.json")
                            if not any(s == p.resolve() or s in p.resolve().parents for s in skip))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"result file or directory not found: {path}")
    documents = []
    for file in dict.fromkeys(files):
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(document, dict):
            documents.append(dict(document, _path=str(file)))
    return documents


def build_runs(documents: list[dict]) -> list[Run]:
    runs: dict[str, Run] = {}
    for document in sorted((d for d in documents if is_eval_record(d)), key=lambda d: str(d.get("created_utc"))):
        model = document.get("model") or {}
        config = model.get("config") or {}
        checkpoint = (document.get("checkpoint") or {}).get("path") or document["_path"]
        if checkpoint not in runs:
            runs[checkpoint] = Run(checkpoint, identify(model), size_of(config), model.get("n_parameters"))
        runs[checkpoint].records[document["suite"]] = document  # the newest record of a suite wins
    return list(runs.values())


def read_inputs(paths: Iterable[str | Path], skip_dirs: Iterable[str | Path] = ()) -> ReportInputs:
    documents = load_documents(paths, skip_dirs)
    return ReportInputs(documents, build_runs(documents))


# ---------------------------------------------------------------------------------------------------------- our rows
@dataclass
class OurRow:
    """One of our rows: ``model`` is the paper row it stands beside (or our own name when the paper has none)."""

    model: str
    values: dict[str, float | None]
    scale: str
    size: str | None = None
    dates: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    n: int = 1
    note: str = ""
    group: str = ""  # which block of an entry the row belongs to (e.g. a BABILong prompt style)

    def label(self) -> str:
        marks = [self.scale] + ([self.note] if self.note else [])
        marks += [", ".join(self.dates) or "?", "commit " + "+".join(self.commits or ["?"])]
        if self.n > 1:
            marks.append(f"mean of {self.n} runs")
        return f"↳ ours: {self.model} [{'; '.join(marks)}]"


def _mean(values: list):
    """The mean of the numbers among ``values`` (None and NaN skipped); a cell of another kind (a tuple such as
    (MSE, MAE), a string) is averaged element-wise when all are tuples of numbers, else the first is kept."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None
    if all(isinstance(v, (int, float)) for v in values):
        return sum(values) / len(values)
    if all(isinstance(v, (tuple, list)) for v in values) and len({len(v) for v in values}) == 1:
        return tuple(sum(parts) / len(parts) for parts in zip(*values))
    return values[0]


def average_rows(rows: list[OurRow]) -> list[OurRow]:
    """Rows of the same model, scale, note and group (seeds, repeated evaluations) as one row of their means."""
    groups: dict[tuple, list[OurRow]] = {}
    for row in rows:
        groups.setdefault((row.model, row.scale, row.note, row.group), []).append(row)
    out = []
    for same in groups.values():
        columns = list(dict.fromkeys(c for r in same for c in r.values))
        # runs behind the fullest cell: two seeds of one model make 2; one run per column (data sets) makes 1
        n = max([sum(r.n for r in same if r.values.get(c) is not None) for c in columns] + [1])
        out.append(OurRow(same[0].model, {c: _mean([r.values.get(c) for r in same]) for c in columns},
                          same[0].scale, same[0].size, sorted({d for r in same for d in r.dates}),
                          sorted({c for r in same for c in r.commits}), n, same[0].note, same[0].group))
    return out


def _row(run: Run, model: str, values: dict, note: str = "", group: str = "") -> OurRow:
    return OurRow(model, values, run.scale, run.size, run.dates, run.commits, 1, note, group)


# ------------------------------------------------------------------------------------------------ the aggregations
def table5_lm_ppl(table1_row: dict) -> float | None:
    """Table 5's language-modelling ppl: the mean of Wikitext and LAMBADA perplexity (Table 1's first two columns)."""
    wiki, lmb = table1_row.get("Wiki ppl"), table1_row.get("LMB ppl")
    return None if None in (wiki, lmb) or math.isnan(wiki) or math.isnan(lmb) else (wiki + lmb) / 2


def table5_reasoning(table1_row: dict) -> float | None:
    """Table 5's reasoning accuracy: Table 1's Avg (the mean of its eight accuracies)."""
    from titans.eval.table1 import table1_average

    value = table1_average(table1_row)
    return None if math.isnan(value) else value


def table5_long_context(niah_cells: dict[str, float]) -> float | None:
    """Table 5's long-context accuracy: the mean of the S-NIAH cells (Table 2's columns, in %)."""
    values = [v for v in niah_cells.values() if v is not None]
    return sum(values) / len(values) if values else None


def table5_aggregates(table1_row: dict | None, niah_cells: dict | None) -> dict[str, float | None]:
    return {"LM ppl": table5_lm_ppl(table1_row) if table1_row else None,
            "Reasoning acc": table5_reasoning(table1_row) if table1_row else None,
            "Long context acc": table5_long_context(niah_cells) if niah_cells else None}


def niah_cells(results: dict) -> dict[str, float]:
    """S-NIAH exact match (%) by Table 2 column ("PK 2K"; "PK 256" for lengths that are not whole K)."""
    cells = {}
    for key, value in (results.get("exact_match") or {}).items():
        task, _, length = key.partition("/")
        if task in NIAH_COLUMNS and length.isdigit() and value is not None:
            cells[f"{NIAH_COLUMNS[task]} {length_label(int(length))}"] = 100 * value
    return cells


def corpus_ppl(results: dict, train_length: int | None) -> float | None:
    """Perplexity at the training length (or the longest evaluated length below it) from a perplexity record."""
    lengths = sorted(int(n) for n in results.get("by_length", {}))
    fitting = [n for n in lengths if train_length is None or n <= train_length]
    return results["by_length"][str(fitting[-1])] if fitting else None


def _is(kind: str) -> Callable[[dict], bool]:
    def check(record: dict) -> bool:
        results = record.get("results") or {}
        if kind == "table1":
            return "table1" in results
        if kind == "niah":
            return bool(niah_cells(results))
        if kind == "perplexity":
            return "by_length" in results
        if kind == "babilong":
            return "acc" in results
        return False

    return check


def _first(run: Run, kind: str) -> dict | None:
    found = run.results(_is(kind))
    return found[-1] if found else None


def _train_length(run: Run) -> int | None:
    for record in run.records.values():
        config = (record.get("model") or {}).get("config") or {}
        if config.get("max_position_embeddings"):
            return int(config["max_position_embeddings"])
    return None


CORPUS_PPL = "corpus ppl"  # extra column: validation ppl of the bundled corpus at the training length (CPU scale)


# ------------------------------------------------------------------------------------------------------ the blocks
def _clean(name: str) -> str:
    """A paper row's model name without hybrid marks and version notes: "Titans (MAL)∗ [v1]" -> "Titans (MAL)"."""
    return re.sub(r"\s*\[.*?\]", "", name).replace("∗", "").strip()


def _name_key(name: str) -> str:
    return _clean(name).lower()


@dataclass
class Block:
    """One markdown table: the paper's rows (``paper``: name -> cells) with ours placed under them."""

    title: str
    columns: list[str]
    paper: dict[str, dict]
    size: str | None = None  # our rows at this size go here
    reproducible: set[str] | None = None  # paper rows we can run: a "-" row when we have none
    notes: list[str] = field(default_factory=list)
    decimals: int = 2
    ours: list[OurRow] = field(default_factory=list)


def place(blocks: list[Block], rows: list[OurRow], match: Callable[[Block, OurRow], bool] | None = None) -> None:
    """Each row into the first block it matches: the block of its size, or the first block when no block has it."""
    sizes = {b.size for b in blocks}
    for row in rows:
        candidates = [b for b in blocks if (match(b, row) if match else True)]
        if not candidates:
            continue
        fitting = [b for b in candidates if b.size == row.size] if row.size in sizes else []
        (fitting or candidates)[0].ours.append(row)


def _plot_only(columns: list[str]) -> dict[str, str]:
    """The cells of a paper row whose values the paper gives only in a plot."""
    return {c: (FIGURE_ONLY if i == 0 else "") for i, c in enumerate(columns)}


def _cell(value, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)):  # e.g. (MSE, MAE)
        return " / ".join(_cell(v, decimals) for v in value)
    return f"{value:.{decimals}f}"


def render_block(block: Block) -> str:
    extra = [c for c in dict.fromkeys(c for r in block.ours for c in r.values) if c not in block.columns]
    columns = block.columns + extra
    lines = [f"### {block.title}", "", "| Model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]

    def line(name, cells):
        return f"| {name} | " + " | ".join(_cell(cells.get(c), block.decimals) for c in columns) + " |"

    placed = set()
    for name, cells in block.paper.items():
        lines.append(line(name, cells))
        key = _name_key(name)
        if key in placed:
            continue
        mine = [r for r in block.ours if _name_key(r.model) == key]
        if mine:
            placed.add(key)
            lines += [line(r.label(), r.values) for r in mine]
        elif block.reproducible is not None and key in {_name_key(m) for m in block.reproducible}:
            placed.add(key)
            lines.append(line(f"↳ ours: {_clean(name)} [no run]", {}))
    lines += [line(r.label(), r.values) for r in block.ours if _name_key(r.model) not in placed]
    if block.notes:
        lines += [""] + [f"{note}" for note in block.notes]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------------- entries
@dataclass(frozen=True)
class ReportOptions:
    table1_scale: str = "all"


@dataclass(frozen=True)
class ReportEntry:
    key: str  # what --tables takes: "1" .. "5", "fig6" ...
    title: str
    ours: Callable[[ReportInputs], list[OurRow]]
    paper: Callable[[list[OurRow], ReportOptions], list[Block]]
    figure: Callable[[list[OurRow], ReportInputs, Path], list[Path]] | None = None
    render: Callable[[list[Block]], str] | None = None

    def markdown(self, inputs: ReportInputs, options: ReportOptions = ReportOptions()) -> tuple[str, list[OurRow]]:
        rows = average_rows(self.ours(inputs))
        blocks = self.paper(rows, options)
        text = (self.render or (lambda bs: "\n\n".join(render_block(b) for b in bs)))(blocks)
        return f"## {self.title}\n\n{text}\n", rows


ENTRIES: dict[str, ReportEntry] = {}


def register(entry: ReportEntry) -> ReportEntry:
    ENTRIES[entry.key] = entry
    return entry


# Table 1 ----------------------------------------------------------------------------------------------------------
TABLE1_REPRODUCIBLE = {"Transformer++", "DeltaNet", "TTT", "Gated DeltaNet", "Titans (LMM)", "Titans (MAC)",
                       "Titans (MAG)", "Titans (MAL)"}


def table1_ours(inputs: ReportInputs) -> list[OurRow]:
    rows = []
    for run in inputs.runs:
        if not run.identity.plain or run.identity.variant is None:
            continue
        values = {}
        table1 = _first(run, "table1")
        if table1:
            values.update({c: table1["table1"].get(c) for c in TABLE1_COLUMNS})
        ppl = _first(run, "perplexity")
        if ppl:
            values[CORPUS_PPL] = corpus_ppl(ppl, _train_length(run))
        if values:
            rows.append(_row(run, run.identity.name, values))
    return rows


def table1_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    scales = list(paper.TABLE1) if options.table1_scale == "all" else [options.table1_scale]
    blocks = [Block(f"Table 1 - {scale} (paper: {'100B' if scale == '1.3b' else '30B' if scale == '760m' else '15B'}"
                    f" tokens)", list(TABLE1_COLUMNS),
                    {m: paper.table1_paper_row(scale, m) for m in paper.TABLE1[scale]}, size=scale,
                    reproducible=TABLE1_REPRODUCIBLE) for scale in scales]
    place(blocks, rows)
    if any(CORPUS_PPL in r.values for b in blocks for r in b.ours):
        blocks[0].notes.append(f"`{CORPUS_PPL}`: our validation perplexity on the bundled corpus at the training "
                               f"length (CPU-scale runs; no lm-eval tasks offline). Rows at a size the paper does "
                               f"not report sit in the first block.")
    return blocks


register(ReportEntry("1", "Table 1: language modelling and common-sense reasoning (zero-shot)", table1_ours,
                     table1_paper))


# Table 2 ----------------------------------------------------------------------------------------------------------
def table2_ours(inputs: ReportInputs) -> list[OurRow]:
    rows = []
    for run in inputs.runs:
        niah = _first(run, "niah")
        if niah and run.identity.plain and run.identity.variant is not None:
            rows.append(_row(run, run.identity.name, niah_cells(niah)))
    return rows


def _length_order(column: str) -> tuple:
    """Sort key of a "<task> <length>" column: the paper's task order (PK, N, W), then the length in tokens."""
    task, _, length = column.partition(" ")
    digits = re.fullmatch(r"(\d+)([KM]?)", length)
    value = int(digits[1]) * {"": 1, "K": 1024, "M": 1024 ** 2}[digits[2]] if digits else 0
    order = list(NIAH_COLUMNS.values())
    return (order.index(task) if task in order else len(order), task), value


def table2_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    columns = list(paper.TABLE2_COLUMNS)
    extra = sorted({c for r in rows for c in r.values if c not in columns}, key=_length_order)
    block = Block("Table 2 - S-NIAH exact match (%), trained at 4K", sorted(columns + extra, key=_length_order),
                  {m: paper.table2_paper_row(m) for m in paper.TABLE2},
                  reproducible={"TTT", "DeltaNet", "Titans (LMM)", "Titans (MAC)", "Titans (MAG)", "Titans (MAL)"},
                  notes=["PK = S-NIAH-1 (passkey), N = S-NIAH-2 (number), W = S-NIAH-3 (word/uuid needle); the "
                         "paper does not state the scale of this table."])
    place([block], rows)
    return [block]


register(ReportEntry("2", "Table 2: single needle in a haystack (RULER S-NIAH)", table2_ours, table2_paper))


# Tables 3 and 4 (forecasting, genomics): their own result files (titans.eval.task_results) -----------------------
def _task_row(document: dict, name: str, values: dict) -> OurRow:
    scale = document.get("protocol") or document.get("command", "?")
    return OurRow(name.removeprefix("ours: "), values, scale.split(";")[0], None,
                  [str(document.get("created_utc", ""))[:10]], [str(document.get("git_commit") or "?")[:7]])


def table3_ours(inputs: ReportInputs) -> list[OurRow]:
    from titans.eval.task_results import table3_entry

    rows = []
    for document in inputs.documents:
        # <experiment>.json (scripts/run_forecasting.py), not the hyper-parameter search's files of the same runs
        if document.get("suite") == "timeseries" and Path(document["_path"]).stem == document.get("experiment"):
            dataset, name, value = table3_entry(document)
            rows.append(_task_row(document, name, {dataset: value}))
    return rows


def table3_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    block = Block("Table 3 - long-horizon forecasting, MSE / MAE averaged over horizons 96/192/336/720",
                  list(paper.TABLE3_DATASETS),
                  {m: {d: paper.TABLE3[d][m] for d in paper.TABLE3_DATASETS} for m in paper.TABLE3_MODELS},
                  reproducible={"Neural Memory", "DLinear"}, decimals=3)
    place([block], rows)
    return [block]


register(ReportEntry("3", "Table 3: long-term forecasting", table3_ours, table3_paper))


def table4_ours(inputs: ReportInputs) -> list[OurRow]:
    from titans.eval.task_results import table4_entry

    rows = []
    for document in inputs.documents:
        if document.get("suite") == "genomics" and "tasks" in document:
            name, values = table4_entry(document)
            if values:
                rows.append(_task_row(document, name, values))
    return rows


def table4_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    block = Block("Table 4 - GenomicBenchmarks, top-1 accuracy (%)", list(paper.TABLE4_COLUMNS),
                  {m: paper.table4_paper_row(m) for m in paper.TABLE4}, reproducible={"Neural Memory Module"},
                  decimals=1)
    place([block], rows)
    return [block]


register(ReportEntry("4", "Table 4: DNA modelling", table4_ours, table4_paper))


# Table 5 ----------------------------------------------------------------------------------------------------------
def table5_ours(inputs: ReportInputs) -> list[OurRow]:
    rows = []
    for run in inputs.runs:
        name = run.identity.table5_row
        if name is None:
            continue
        table1, niah, ppl = _first(run, "table1"), _first(run, "niah"), _first(run, "perplexity")
        values = table5_aggregates(table1["table1"] if table1 else None, niah_cells(niah) if niah else None)
        if ppl:
            values[CORPUS_PPL] = corpus_ppl(ppl, _train_length(run))
        if any(v is not None for v in values.values()):
            rows.append(_row(run, name, values))
    return rows


def table5_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    block = Block("Table 5 - ablations at 400M (paper: 15B tokens)", list(paper.TABLE5_COLUMNS),
                  {m: dict(zip(paper.TABLE5_COLUMNS, v)) for m, v in paper.TABLE5.items()}, size="400m",
                  reproducible=set(paper.TABLE5),
                  notes=["LM ppl = mean(Wiki ppl, LMB ppl); Reasoning = Table 1's Avg; Long context = mean of the "
                         "S-NIAH cells we ran (Table 2's columns). Ours: `python train.py experiment=lmm_400m` "
                         "(LMM), `mac_400m` ... and `ablation_lmm_<row>`; then eval.py suite=table1 and suite=niah."])
    place([block], rows)
    if any(CORPUS_PPL in r.values for r in block.ours):
        block.notes.append(f"`{CORPUS_PPL}`: validation perplexity of the bundled corpus at the training length "
                           f"(CPU scale, in place of Wikitext/LAMBADA).")
    return [block]


register(ReportEntry("5", "Table 5: ablations of the LMM", table5_ours, table5_paper))


# Figure 6 ---------------------------------------------------------------------------------------------------------
def _babilong_length(length: int) -> str:
    return length_label(int(length))


def figure6_ours(inputs: ReportInputs) -> list[OurRow]:
    rows = []
    for run in inputs.runs:
        if not run.identity.plain or run.identity.variant is None:
            continue
        for record in run.records.values():
            results = record.get("results") or {}
            if "acc" not in results:
                continue
            by_length: dict[int, list[float]] = {}
            tasks = set()
            for key, value in results["acc"].items():
                task, _, length = key.partition("/")
                tasks.add(task)
                by_length.setdefault(int(length), []).append(value)
            values = {_babilong_length(n): 100 * sum(v) / len(v) for n, v in sorted(by_length.items())}
            source = "offline stories" if (record.get("config") or {}).get("suite", {}).get("source") == "offline" \
                else "RMT-team/babilong"
            tasks = sorted(tasks, key=lambda t: int(t[2:]) if t[2:].isdigit() else 0)
            note = f"{source}, mean of {tasks[0]}-{tasks[-1]}" if len(tasks) > 1 else f"{source}, {tasks[0]}"
            rows.append(_row(run, run.identity.name, values, note=note, group=results.get("prompt", "finetuned")))
    return rows


def figure6_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    columns = sorted(set(paper.FIGURE6_LENGTHS) | {c for r in rows for c in r.values},
                     key=lambda c: _length_order(f"x {c}")[1])
    blocks = []
    for style, title in (("few_shot", "Figure 6a - BABILong few-shot, accuracy (%)"),
                         ("finetuned", "Figure 6b - BABILong fine-tuned, accuracy (%)")):
        rows_paper = {m: _plot_only(columns) for m in paper.FIGURE6_MODELS[style]}
        notes = [f"`{FIGURE_ONLY}`: the paper gives this model's values only in its plot; `-`: no run of ours."]
        if style == "finetuned":
            rows_paper.update({m: dict(zip(paper.FIGURE6_LENGTHS, v)) for m, v in paper.FIGURE6_TEXT.items()})
            notes.append("ARMT and GPT2 + MAC + MAL: numbers stated in the text of NeurIPS App. G.1. Our rows here "
                         "are records of the fine-tuned setting's prompt (suite=babilong, babilong_offline): run "
                         "them on fine-tuned checkpoints.")
        block = Block(title, columns, rows_paper, reproducible={"Titans (MAC)"}, notes=notes, decimals=1)
        blocks.append(block)
    for block, style in zip(blocks, ("few_shot", "finetuned")):
        place([block], [r for r in rows if r.group == style])
    return blocks


def figure6_png(rows: list[OurRow], inputs: ReportInputs, directory: Path) -> list[Path]:
    from titans.eval.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(9, 8), squeeze=False, layout="constrained")
    for ax, (style, title) in zip(axes[:, 0], (("few_shot", "(a) few-shot"), ("finetuned", "(b) fine-tuned"))):
        series = {m: dict(zip(paper.FIGURE6_LENGTHS, v)) for m, v in paper.FIGURE6_TEXT.items()} \
            if style == "finetuned" else {}
        series.update({r.label().replace("↳ ", ""): r.values for r in rows if r.group == style})
        _lines(ax, series, "context length", "accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.set_title(f"Figure 6 {title}")
    return [_save(plt, fig, directory / "figure6_babilong.png")]


def _shorten(label: str, width: int) -> str:
    """``label`` cut at a word boundary to at most ``width`` characters (an ellipsis marks the cut)."""
    if len(label) <= width:
        return label
    return label[: width - 1].rsplit(" ", 1)[0].rstrip(",;") + "…"


def _lines(ax, series: dict[str, dict], xlabel: str, ylabel: str) -> None:
    """One line per series over its columns (lengths such as "2K", "512"), x in tokens on a log-2 axis; the
    legend beside the axes. Markers shrink and line styles change from series to series, so that series lying on
    each other stay visible."""
    from titans.eval.plots import LINESTYLES, MARKERS, legend_outside

    for k, (label, values) in enumerate(series.items()):
        points = sorted(((_length_order(f"x {c}")[1], v) for c, v in values.items()
                         if isinstance(v, (int, float)) and v is not None), key=lambda p: p[0])
        points = [(max(x, 1), v) for x, v in points]
        if points:
            ax.plot(*zip(*points), marker=MARKERS[k % len(MARKERS)], markersize=max(3.0, 8.0 - 0.6 * k),
                    linestyle=LINESTYLES[k % len(LINESTYLES)], label=_shorten(label, 80))
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"{xlabel} (tokens)")
    ax.set_ylabel(ylabel)
    legend_outside(ax, fontsize=7)


register(ReportEntry("fig6", "Figure 6: BABILong", figure6_ours, figure6_paper, figure6_png))


# Figure 7 ---------------------------------------------------------------------------------------------------------
def figure7_ours(inputs: ReportInputs) -> list[OurRow]:
    rows = []
    for run in inputs.runs:
        name = run.identity.figure7_row or (run.identity.name if run.identity.plain and run.identity.variant
                                            else None)
        ppl = _first(run, "perplexity")
        if name and ppl:
            values = {length_label(int(n)): v for n, v in sorted(ppl["by_length"].items(), key=lambda kv: int(kv[0]))}
            rows.append(_row(run, name, values, note=f"trained at {_train_length(run)}"))
    return rows


#: the columns of a figure's blocks before any run of ours: suite=perplexity's and bench_throughput's default lengths
FIGURE7_DEFAULT_COLUMNS = ["512", "1K", "2K", "4K", "8K", "16K"]
THROUGHPUT_DEFAULT_COLUMNS = ["256", "512", "1K", "2K"]


def figure7_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    columns = sorted({c for r in rows for c in r.values}, key=lambda c: _length_order(f"x {c}")[1]) or \
        FIGURE7_DEFAULT_COLUMNS
    blocks = [Block(f"Figure 7 ({panel}) - perplexity by sequence length", columns,
                    {m: _plot_only(columns) for m in paper.FIGURE7_MODELS}, size=size,
                    reproducible={m for m in paper.FIGURE7_MODELS if m.startswith("LMM")},
                    notes=[f"`{FIGURE_ONLY}`: a plot in the paper (a Pile subset; lengths and tokens not stated). "
                           f"Ours: suite=perplexity, windows of each length scored from their start. Rows at a size "
                           f"the paper does not show sit in the first block."])
              for panel, size in paper.FIGURE7_SIZES.items()]
    place(blocks, rows)
    return blocks


def figure7_png(rows: list[OurRow], inputs: ReportInputs, directory: Path) -> list[Path]:
    from titans.eval.plots import _pyplot, _save

    if not rows:
        return []
    plt = _pyplot()
    sizes = list(dict.fromkeys(r.size for r in rows))  # one panel per model size, as the paper's panels
    fig, axes = plt.subplots(len(sizes), 1, figsize=(9, 4 * len(sizes)), squeeze=False, layout="constrained")
    for ax, size in zip(axes[:, 0], sizes):
        mine = [r for r in rows if r.size == size]
        several = len({r.scale for r in mine}) > 1  # e.g. an unmatched depth-4 memory has more parameters
        _lines(ax, {(f"{r.model} ({r.scale})" if several else r.model): r.values for r in mine},
               "sequence length", "perplexity")
        ax.set_title(f"Figure 7: {mine[0].scale if not several else size or 'custom shape'}", fontsize=9)
    return [_save(plt, fig, directory / "figure7_perplexity.png")]


register(ReportEntry("fig7", "Figure 7: deep memory, perplexity by sequence length", figure7_ours, figure7_paper,
                     figure7_png))


# Figures 8 and 9 (throughput) -------------------------------------------------------------------------------------
def _throughput_records(inputs: ReportInputs) -> list[dict]:
    return [d for d in inputs.documents if d.get("kind") == "throughput"]


def _throughput_rows(inputs: ReportInputs, sweeps: tuple[str, ...]) -> list[OurRow]:
    from titans.models.variants import display_name

    rows = []
    for record in _throughput_records(inputs):
        settings = record.get("settings", {})
        scale = f"{record.get('device', '?')}, {settings.get('size', '?')}, {settings.get('dtype', '?')}, " \
                f"{settings.get('threads', '?')} thread(s)"
        for sweep in sweeps:
            results = [r for r in record.get("results", []) if r.get("sweep") == sweep and "tok_s" in r]
            for key in dict.fromkeys((r["model"], r.get("depth")) for r in results):
                line = [r for r in results if (r["model"], r.get("depth")) == key]
                name = f"LMM (L_M={key[1]})" if sweep == "depth" else display_name(key[0])
                values = {(f"{length_label(r['length'])} x {r['batch']}" if sweep == "batch_x_length"
                           else length_label(r["length"])): r["tok_s"] for r in line}
                rows.append(OurRow(name, values, scale, None, [str(record.get("created_utc", ""))[:10]],
                                   [str(record.get("git_commit") or "?")[:7]], group=sweep))
    return rows


def _throughput_png(inputs: ReportInputs, directory: Path, name: str) -> list[Path]:
    from titans.eval.plots import throughput_plot

    out = []
    for i, record in enumerate(_throughput_records(inputs)):
        device = "cuda" if "cpu" not in str(record.get("device", "")).lower() else "cpu"
        out.append(throughput_plot(record, directory / f"{name}_{device}_{i}.png"))
    return out


def _column_order(column: str) -> int:
    return _length_order(f"x {column.split(' x ')[0]}")[1]


def figure8_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    columns = sorted({c for r in rows for c in r.values}, key=_column_order) or THROUGHPUT_DEFAULT_COLUMNS
    block = Block("Figure 8 - training tokens/s of the LMM by memory depth", columns,
                  {m: _plot_only(columns) for m in paper.FIGURE7_MODELS[:4]},
                  reproducible=set(paper.FIGURE7_MODELS[:4]), decimals=0,
                  notes=[f"`{FIGURE_ONLY}`: a plot in the paper. Ours: scripts/bench_throughput.py --sweeps depth."])
    place([block], rows)
    return [block]


register(ReportEntry("fig8", "Figure 8: deep memory, training throughput", lambda i: _throughput_rows(i, ("depth",)),
                     figure8_paper))


def figure9_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    blocks = []
    for sweep, title in (("length", "Figure 9 - training tokens/s by sequence length"),
                         ("batch_x_length", "Figure 9 - training tokens/s, sequence length x batch at a fixed "
                                            "number of tokens per step")):
        mine = [r for r in rows if r.group == sweep]
        columns = sorted({c for r in mine for c in r.values}, key=_column_order) or THROUGHPUT_DEFAULT_COLUMNS
        block = Block(title, columns, {m: _plot_only(columns) for m in paper.FIGURE9_MODELS},
                      reproducible={m for m in paper.FIGURE9_MODELS if m not in ("Mamba2",)}, decimals=0,
                      notes=[f"`{FIGURE_ONLY}`: a plot in the paper (hardware and sizes not stated). Ours: "
                             f"scripts/bench_throughput.py (forward, backward and AdamW step, best of repeats)."])
        place([block], mine)
        blocks.append(block)
    return blocks


register(ReportEntry("fig9", "Figure 9: training throughput",
                     lambda i: _throughput_rows(i, ("length", "batch_x_length")), figure9_paper,
                     lambda rows, inputs, d: _throughput_png(inputs, d, "figure9_throughput")))


# ----------------------------------------------------------------------------------------------------- the report
def build_report(inputs: ReportInputs, keys: Iterable[str] | None = None, options: ReportOptions = ReportOptions(),
                 directory: str | Path | None = None) -> tuple[str, list[Path]]:
    """The markdown of the entries ``keys`` (all, in order, by default) and, with ``directory``, their PNGs there
    (and the markdown as report.md)."""
    keys = list(ENTRIES) if keys is None else list(keys)
    unknown = [k for k in keys if k not in ENTRIES]
    if unknown:
        raise ValueError(f"unknown table or figure {', '.join(unknown)}: choose from {', '.join(ENTRIES)}")
    sections, figures = [], []
    for key in keys:
        entry = ENTRIES[key]
        text, rows = entry.markdown(inputs, options)
        if directory is not None and entry.figure is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
            pngs = entry.figure(rows, inputs, Path(directory))
            figures += pngs
            text += "".join(f"\n![{p.stem}]({p.name})\n" for p in pngs)
        sections.append(text)
    markdown = "\n".join(sections)
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "report.md").write_text(markdown, encoding="utf-8")
    return markdown, figures
