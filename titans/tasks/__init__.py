"""Synthetic tasks, generated in the project: pure functions of their arguments and a seed, no Lightning, no hub.

    haystack   background text for long contexts, token counting, how many sentences fit a length
    niah       RULER's single-needle S-NIAH tasks (paper Table 2)
    babilong   bAbI qa1-qa3 stories hidden in a haystack (BABILong's format) and the BABILong prompt
    qa         a question-answer sample as a training example (answer-only labels)
    mqar       multi-query associative recall with a gap (Zoology's MQAR)
    dna_motifs random DNA with planted motifs (the offline genomics classification task)

Evaluation (titans.eval) scores models on them; the data modules (titans.data) train on them.
"""
