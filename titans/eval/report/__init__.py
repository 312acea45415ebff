"""The paper's tables and figures with our results beside them (``make reproduce-table``): one entry per table or
figure.

An entry (:class:`~titans.eval.report.entry.ReportEntry`) holds the three parts of one table or figure of the
paper:

- ``ours(inputs) -> list[OurRow]``: our rows, extracted from the result files (``ReportInputs``: every JSON
  document read, and the eval.py records grouped by checkpoint into ``Run`` objects);
- ``paper(ours, options) -> list[Block]``: the paper's rows as markdown blocks, each of our rows placed under the
  paper row of the same model (``place``; a "-" row for a model the paper shows and we did not run);
- ``figure(ours, inputs, directory) -> list[Path]`` (optional): PNGs written next to the markdown.

``build.ENTRIES`` lists them in the paper's order; ``scripts/reproduce_table.py --tables KEY ...`` renders any of
them (``build.build_report``). Adding a table is adding one entry: a module beside ``table1`` that defines it, and
its place in ``ENTRIES``.

Our rows carry their scale (model size, parameters, training tokens), the date and the commit of the result files,
and how many runs they average. The model behind a record is read from its checkpoint's config
(``identity.identify``): the variant under the paper's name, and for the LMM the Table 5 change it carries.

The modules, lowest first (each imports only modules before it):

- ``identity``: which model a record is (``Identity``, ``identify``) and the size whose shape it has;
- ``inputs``: reading the result files (``read_inputs``) and grouping eval.py's records by checkpoint (``Run``);
- ``rows``: one of our rows (``OurRow``) and the mean of repeated runs (``average_rows``);
- ``columns``: S-NIAH's column names and the order of ``"<task> <length>"`` columns;
- ``cells``: the values our rows hold, read from a run's records (S-NIAH cells, perplexity at the training length);
- ``blocks``: one markdown table (``Block``), our rows placed in it and its rendering (``render_block``);
- ``entry``: what an entry is (``ReportEntry``, ``ReportOptions``) and its markdown;
- ``figures``: the line plots of our rows by length;
- ``table1``, ``table2``, ``tables3_4``, ``table5``, ``figure6``, ``figure7``, ``figures8_9``: the entries;
- ``build``: ``ENTRIES`` in the paper's order, and ``build_report`` (the markdown, report.md and the PNGs).
"""
