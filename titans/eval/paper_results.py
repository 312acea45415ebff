"""Numbers reported in the paper (its v1 and NeurIPS versions: Table 1 and Table 2).

TABLE1[scale][model] lists, in order, the columns of ``table1.ALL_COLUMNS``: Wiki ppl, LMB ppl,
LMB acc, PIQA, Hella acc_n, Wino, ARC-e, ARC-c acc_n, SIQA, BoolQ, Avg.
TABLE2[model] lists S-NIAH accuracy (%) for PK, N, W at 2K, 4K, 8K, 16K (``TABLE2_COLUMNS``);
None where the paper's value could not be recovered. "∗" marks hybrid models, as in the paper.
TABLE3[dataset][model] is (MSE, MAE) of long-horizon forecasting averaged over the horizons 96/192/336/720
(v1 Table 3, NeurIPS Table 7; "Neural Memory" is Simba with the LMM in place of Mamba).
TABLE4[model] lists GenomicBenchmarks top-1 accuracy (%) per task (``TABLE4_COLUMNS``; None = "–" in the paper).
"""

from __future__ import annotations

TABLE1 = {
    '340m': {
        'Transformer++': [31.52, 41.08, 30.76, 62.98, 34.76, 50.53, 45.21, 24.05, 36.81, 58.24, 42.92],
        'RetNet': [32.5, 49.73, 28.24, 62.61, 34.15, 50.91, 44.27, 23.62, 36.79, 59.72, 42.54],
        'GLA': [28.51, 43.02, 28.73, 64.05, 35.96, 50.0, 54.19, 24.29, 37.13, 58.39, 44.09],
        'Mamba': [30.83, 40.21, 29.94, 63.79, 35.88, 49.82, 49.24, 24.56, 35.41, 60.07, 43.59],
        'DeltaNet': [28.65, 47.3, 28.43, 63.52, 35.95, 49.63, 52.68, 25.37, 37.96, 58.79, 44.04],
        'TTT': [27.44, 34.19, 30.06, 63.97, 35.71, 50.08, 53.01, 26.11, 37.32, 59.83, 44.51],
        'Gated DeltaNet': [27.01, 30.94, 34.11, 63.08, 38.12, 51.6, 55.28, 26.77, 34.89, 59.54, 45.42],
        'Titans (LMM)': [26.18, 29.97, 34.98, 64.73, 39.61, 51.85, 55.6, 28.14, 34.52, 59.99, 46.17],
        'Titans (MAC)∗': [25.43, 28.13, 36.0, 65.32, 40.35, 51.21, 58.17, 29.0, 38.63, 60.18, 47.36],
        'Titans (MAG)∗': [25.07, 28.72, 36.71, 64.88, 40.56, 52.49, 57.72, 28.16, 39.75, 60.01, 47.54],
        'Titans (MAL)∗': [24.69, 28.8, 35.74, 64.97, 39.44, 51.97, 56.58, 28.21, 38.14, 57.32, 46.55],
    },
    '400m': {
        'Transformer++': [30.63, 37.37, 29.64, 64.27, 37.72, 51.53, 54.95, 27.36, 38.07, 61.59, 45.64],
        'RetNet': [29.92, 46.83, 29.16, 65.23, 36.97, 51.85, 56.01, 27.55, 37.3, 59.66, 45.47],
        'HGRN2': [32.33, 47.14, 26.12, 64.52, 35.45, 52.24, 55.97, 25.51, 37.35, 59.02, 44.52],
        'GLA': [27.96, 36.66, 27.86, 65.94, 37.41, 49.56, 56.01, 26.36, 38.94, 59.84, 45.24],
        'Mamba': [29.22, 39.88, 29.82, 65.72, 37.93, 50.11, 58.37, 26.7, 37.76, 61.13, 45.94],
        'Mamba2': [26.34, 33.19, 32.03, 65.77, 39.73, 52.48, 59.0, 27.64, 37.92, 60.72, 46.91],
        'DeltaNet': [27.69, 44.04, 29.96, 64.52, 37.03, 50.82, 56.77, 27.13, 38.22, 60.09, 45.57],
        'TTT': [26.11, 31.52, 33.25, 65.7, 39.11, 51.68, 58.04, 28.99, 38.26, 59.87, 46.86],
        'Gated DeltaNet': [25.47, 29.24, 34.4, 65.94, 40.46, 51.46, 59.8, 28.58, 37.43, 60.03, 47.26],
        'Samba∗': [25.32, 29.47, 36.86, 66.09, 39.24, 51.45, 60.12, 27.2, 38.68, 58.22, 47.23],
        'Gated DeltaNet-H2∗': [24.19, 28.09, 36.77, 66.43, 40.79, 52.17, 59.55, 29.09, 39.04, 58.56, 47.69],
        'Titans (LMM)': [25.03, 28.99, 35.21, 65.85, 40.91, 52.19, 59.97, 29.2, 38.74, 60.85, 47.83],
        'Titans (MAC)∗': [25.61, 27.73, 36.92, 66.39, 41.18, 52.8, 60.24, 29.69, 40.07, 61.93, 48.65],
        'Titans (MAG)∗': [23.59, 27.81, 37.24, 66.8, 40.92, 53.21, 60.01, 29.45, 39.91, 61.28, 48.6],
        'Titans (MAL)∗': [23.93, 27.89, 36.84, 66.29, 40.74, 52.26, 59.85, 29.71, 38.92, 58.4, 47.87],
    },
    '760m': {
        'Transformer++': [25.21, 27.64, 35.78, 66.92, 42.19, 51.95, 60.38, 32.46, 39.51, 60.37, 48.69],
        'RetNet': [26.08, 24.45, 34.51, 67.19, 41.63, 52.09, 63.17, 32.78, 38.36, 57.92, 48.46],
        'Mamba': [28.12, 23.96, 32.8, 66.04, 39.15, 52.38, 61.49, 30.34, 37.96, 57.62, 47.22],
        'Mamba2': [22.94, 28.37, 33.54, 67.9, 42.71, 49.77, 63.48, 31.09, 40.06, 58.15, 48.34],
        'DeltaNet': [24.37, 24.6, 37.06, 66.93, 41.98, 50.65, 64.87, 31.39, 39.88, 59.02, 48.97],
        'TTT': [24.17, 23.51, 34.74, 67.25, 43.92, 50.99, 64.53, 33.81, 40.16, 59.58, 47.32],
        'Gated DeltaNet': [21.18, 22.09, 35.54, 68.01, 44.95, 50.73, 66.87, 33.09, 39.21, 59.14, 49.69],
        'Samba∗': [20.63, 22.71, 39.72, 69.19, 47.35, 52.01, 66.92, 33.2, 38.98, 61.24, 51.08],
        'Gated DeltaNet-H2∗': [19.88, 20.83, 39.18, 68.95, 48.22, 52.57, 67.01, 35.49, 39.39, 61.11, 51.49],
        'Titans (LMM)': [20.04, 21.96, 37.4, 69.28, 48.46, 52.27, 66.31, 35.84, 40.13, 62.76, 51.56],
        'Titans (MAC)': [19.93, 20.12, 39.62, 70.46, 49.01, 53.18, 67.86, 36.01, 41.87, 62.05, 52.51],
        'Titans (MAG)': [18.61, 19.86, 40.98, 70.25, 48.94, 52.89, 68.23, 36.19, 40.38, 62.11, 52.5],
        'Titans (MAL) [v1 & NeurIPS Tab. 6]': [19.07, 20.33, 40.05, 69.99, 48.82, 53.02, 67.54, 35.65, 30.98, 61.72, 50.97],
        'Titans (MAL) [NeurIPS main Tab. 1]': [19.07, 20.33, 40.05, 69.99, 48.85, 53.02, 67.61, 35.65, 40.57, 61.72, 52.29],
    },
    '1.3b': {
        'Transformer++': [18.53, 18.32, 42.6, 70.02, 50.23, 53.51, 68.83, 35.1, 40.66, 57.09, 52.25],
        'RetNet': [19.08, 17.27, 40.52, 70.07, 49.16, 54.14, 67.34, 33.78, 40.78, 60.39, 52.02],
        'Mamba2': [16.56, 12.56, 45.66, 71.87, 55.67, 55.24, 72.47, 37.88, 40.2, 60.13, 54.89],
        'DeltaNet': [17.71, 16.88, 42.46, 70.72, 50.93, 53.35, 68.47, 35.66, 40.22, 55.29, 52.14],
        'Gated DeltaNet': [16.42, 12.17, 46.65, 72.25, 55.76, 57.45, 71.21, 38.39, 40.63, 60.24, 55.32],
        'Samba∗': [16.13, 13.29, 44.94, 70.94, 53.42, 55.56, 68.81, 36.17, 39.96, 62.11, 54.0],
        'Gated DeltaNet-H2∗': [15.91, 12.55, 48.76, 72.19, 56.88, 57.77, 71.33, 39.07, 41.91, 61.55, 56.18],
        'Titans (LMM)': [15.6, 11.41, 49.14, 73.09, 56.31, 59.81, 72.43, 40.82, 42.05, 60.97, 56.82],
        'Titans (MAC)': [14.98, 11.19, 49.72, 73.56, 57.1, 59.47, 72.95, 41.96, 42.12, 60.74, 57.32],
        'Titans (MAL)': [15.13, 11.28, 50.1, 73.29, 56.74, 59.52, 73.09, 41.37, 41.88, 61.09, 57.14],
    },
}
TABLE2 = {
    'TTT': [98.4, 98.8, 98.0, 88.4, 60.2, 36.6, 10.2, 4.4, 78.8, 28.0, 4.4, 0.0],
    'Mamba2': [98.6, 61.4, 31.0, 5.4, 98.4, 55.8, 14.2, 0.0, 42.2, 4.2, 0.0, 0.0],
    'DeltaNet': [96.8, 98.8, 98.6, 71.4, 47.2, 15.4, 12.8, 5.4, 46.2, 20.0, 1.6, 0.0],
    'Titans (LMM)': [99.8, 98.4, 98.2, 96.2, 100.0, 99.8, 93.4, 80.2, 90.4, 89.4, 85.8, 80.6],
    'Samba [NeurIPS only]': [98.8, 98.0, 97.4, 97.2, 98.8, 98.6, 96.2, 95.6, 96.8, 90.0, 84.0, None],
    'Gated DeltaNet-H2∗ [NeurIPS only]': [99.2, 97.8, 97.4, 98.4, 98.0, 97.8, 96.2, 95.8, 97.4, 96.8, 88.4, None],
    'Titans (MAC)': [99.2, 98.8, 99.0, 98.4, 99.6, 98.2, 97.6, 97.4, 98.2, 98.2, 95.6, 95.2],
    'Titans (MAG)': [99.4, 98.0, 97.4, 97.4, 99.2, 98.8, 97.2, 98.6, 98.0, 98.0, 90.2, 88.2],
    'Titans (MAL)': [98.8, 98.6, 98.8, 97.8, 99.8, 98.1, 96.8, 96.4, 98.0, 97.4, 92.0, 90.4],
}

# Table 5 (v1 Table 5, NeurIPS Table 4): the ablations at 400M / 15B tokens. Its columns are aggregates of Tables 1-2
# (the paper does not say so; the first four rows reproduce exactly from the 400M rows of Table 1 and from Table 2):
# language-modelling ppl = mean(Wiki ppl, LMB ppl), reasoning = Table 1's Avg, long context = mean of the 12 S-NIAH
# cells (titans.eval.report.table5.table5_aggregates).
TABLE5_COLUMNS = ["LM ppl", "Reasoning acc", "Long context acc"]
TABLE5 = {
    'LMM': [27.01, 47.83, 92.68],
    '+Attn (MAC)': [26.67, 48.65, 97.95],
    '+Attn (MAG)': [25.70, 48.60, 96.70],
    '+Attn (MAL)': [25.91, 47.87, 96.91],
    'Linear Memory': [28.49, 46.97, 85.34],
    'w/o Convolution': [28.73, 45.82, 90.28],
    'w/o Momentum': [28.98, 45.49, 87.12],
    'w/o Weight Decay': [29.04, 45.11, 85.60],
    'w/o Persistent Memory': [27.63, 46.35, 92.49],
}
# the Table 1 model behind each of Table 5's first four rows
TABLE5_FROM_TABLE1 = {'LMM': 'Titans (LMM)', '+Attn (MAC)': 'Titans (MAC)∗', '+Attn (MAG)': 'Titans (MAG)∗',
                      '+Attn (MAL)': 'Titans (MAL)∗'}

# Figure 6 (BABILong) is a plot; the text gives no value of it. NeurIPS App. G.1 states, in its text, the
# fine-tuned accuracy (%) of two other models at these lengths:
FIGURE6_LENGTHS = ["2K", "4K", "8K", "16K", "32K", "64K", "128K", "512K", "1M", "10M"]
FIGURE6_TEXT = {
    'ARMT [NeurIPS App. G.1]': [98, 98, 98, 98, 98, 98, 97, 95, 93, 77],
    'GPT2 + MAC + MAL [NeurIPS App. G.1]': [99, 99, 98, 97, 98, 96, 96, 95, 94, 79],
}
# the models of Figure 6: (a) few-shot, (b) fine-tuned (v1 section 5.4)
FIGURE6_MODELS = {
    'few_shot': ['Titans (MAC)', 'Mamba2.8B', 'RWKV-6-7B', 'RecurrentGemma-9B', 'Gemma-9B', 'Llama3.1-8B', 'GPT-4',
                 'GPT4o-mini'],
    'finetuned': ['Titans (MAC)', 'Mamba', 'RMT', 'Llama3.1-8B + RAG', 'GPT-4', 'GPT4o-mini', 'Qwen2.5-72B',
                  'Llama3.1-70B'],
}
# Figures 7-8 (deep memory, v1 section 5.5) are plots: LMM with memory depth 1-4 (and Mamba in Figure 7) at these
# sizes (the paper's 360M panel is our 340m shape).
FIGURE7_SIZES = {'170M': '170m', '360M': '340m', '760M': '760m'}
FIGURE7_MODELS = ['LMM (L_M=1)', 'LMM (L_M=2)', 'LMM (L_M=3)', 'LMM (L_M=4)', 'Mamba']
# Figure 9 (throughput) is a plot; the text names these models (v1 section 5.8)
FIGURE9_MODELS = ['Transformer++', 'Mamba2', 'Gated DeltaNet', 'Titans (LMM)', 'Titans (MAC)', 'Titans (MAG)',
                  'Titans (MAL)']

TABLE2_COLUMNS = [f"{task} {length}" for task in ("PK", "N", "W") for length in ("2K", "4K", "8K", "16K")]
TABLE1_SCALES = list(TABLE1)


def table1_paper_row(scale: str, model: str) -> dict[str, float]:
    from titans.eval.table1 import ALL_COLUMNS

    return dict(zip(ALL_COLUMNS, TABLE1[scale][model]))


def table2_paper_row(model: str) -> dict[str, float | None]:
    return dict(zip(TABLE2_COLUMNS, TABLE2[model]))


TABLE3_DATASETS = ["ETTm1", "ETTm2", "ETTh1", "ETTh2", "ECL", "Traffic", "Weather"]
TABLE3_MODELS = ["Neural Memory", "Simba", "iTransformer", "RLinear", "PatchTST", "Crossformer", "TiDE", "TimesNet",
                 "DLinear"]
_TABLE3_ROWS = {  # per data set: (MSE, MAE) of each model in TABLE3_MODELS order
    "ETTm1": [0.358, 0.387, 0.383, 0.396, 0.407, 0.410, 0.414, 0.407, 0.387, 0.400, 0.513, 0.496, 0.419, 0.419,
              0.400, 0.406, 0.403, 0.407],
    "ETTm2": [0.261, 0.309, 0.271, 0.327, 0.288, 0.332, 0.286, 0.327, 0.281, 0.326, 0.757, 0.610, 0.358, 0.404,
              0.291, 0.333, 0.350, 0.401],
    "ETTh1": [0.420, 0.421, 0.441, 0.432, 0.454, 0.447, 0.446, 0.434, 0.469, 0.454, 0.529, 0.522, 0.541, 0.507,
              0.458, 0.450, 0.456, 0.452],
    "ETTh2": [0.336, 0.382, 0.361, 0.391, 0.383, 0.407, 0.374, 0.398, 0.387, 0.407, 0.942, 0.684, 0.611, 0.550,
              0.414, 0.427, 0.559, 0.515],
    "ECL": [0.162, 0.261, 0.169, 0.274, 0.178, 0.270, 0.219, 0.298, 0.205, 0.290, 0.244, 0.334, 0.251, 0.344,
            0.192, 0.295, 0.212, 0.300],
    "Traffic": [0.415, 0.289, 0.493, 0.291, 0.428, 0.282, 0.626, 0.378, 0.481, 0.304, 0.550, 0.304, 0.760, 0.473,
                0.620, 0.336, 0.625, 0.383],
    "Weather": [0.231, 0.265, 0.255, 0.280, 0.258, 0.278, 0.272, 0.291, 0.259, 0.281, 0.259, 0.315, 0.271, 0.320,
                0.259, 0.287, 0.265, 0.317],
}
TABLE3 = {dataset: {model: (row[2 * i], row[2 * i + 1]) for i, model in enumerate(TABLE3_MODELS)}
          for dataset, row in _TABLE3_ROWS.items()}

TABLE4_COLUMNS = ["Enhancer Cohn", "Enhancer Ens", "Human Reg.", "Non-TATA Promoters", "Human OCR Ens."]
#: the GenomicBenchmarks task behind each column of Table 4
TABLE4_TASKS = dict(zip(TABLE4_COLUMNS, ["human_enhancers_cohn", "human_enhancers_ensembl", "human_ensembl_regulatory",
                                         "human_nontata_promoters", "human_ocr_ensembl"]))
TABLE4 = {
    "CNN": [69.5, 68.9, 93.3, 84.6, 68.0],
    "DNABERT": [74.0, 85.7, 88.1, 85.6, 75.1],
    "GPT": [70.5, 83.5, 91.5, 87.7, 73.0],
    "HyenaDNA": [74.2, 89.2, 93.8, 96.6, 80.9],
    "Transformer++": [73.4, 89.5, 89.9, 94.4, 79.5],
    "Mamba": [73.0, None, None, 96.6, None],
    "Based": [74.6, 89.5, 89.5, 96.8, 79.0],
    "Neural Memory Module": [75.2, 89.6, 89.3, 96.6, 79.9],
}


def table3_paper_row(dataset: str, model: str) -> tuple[float, float]:
    """(MSE, MAE) of ``model`` on ``dataset``, averaged over the four horizons."""
    return TABLE3[dataset][model]


def table4_paper_row(model: str) -> dict[str, float | None]:
    return dict(zip(TABLE4_COLUMNS, TABLE4[model]))
