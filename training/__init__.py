"""Training runs that produce the run table ``bayes_scaling`` fits.

    synthetic  a small synthetic language with learnable structure (tests, CPU demos)
    tokenizer  tiktoken encodings: a standard one, or a BPE trained on the corpus
    data       documents -> tokens -> packed fixed-length sequences, train/val split
    schedule   learning-rate schedules (linear warmup + cosine, WSD, constant)
    trainer    one training run: AdamW, accumulation, divergence, result.json
    plan       sweep spec -> runs with stable ids; the plan directory
    claims     lock files, so several workers can drain one plan
    events     events.log: one line per run start / finish / failure
    artifacts  what a finished result.json is; the temp files a killed writer leaves
    worker     run states; claim -> train -> write result -> release, until the plan is drained
    pool       ``run --workers K``: worker processes under a supervisor that replaces dead ones
    sweep      ``python -m training.sweep`` plan | run | worker | status | collect
"""
