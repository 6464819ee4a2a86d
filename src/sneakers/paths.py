"""Where the stages read and write, relative to the project root, named once.

dvc.yaml lists the same paths as deps and outs; tests/test_dvc_yaml.py checks that the two agree.
"""

from pathlib import Path

RAW = Path("data/raw")  # fetch: one folder per source, and _fetch.json
MANIFEST = Path("data/merged/manifest.csv")
MERGE_SUMMARY = Path("data/merged/summary.json")
STANDARDIZED = Path("data/standardized")  # tar shards
INDEX = STANDARDIZED / "index.csv"
SPLIT = Path("data/split/split.csv")
SIMULATED = Path("data/simulated")
FEATURES = Path("data/features")
MODEL = Path("models/model.pt")
TRAIN_LOG = Path("dvclive/train")
TRAIN_SUMMARY = TRAIN_LOG / "metrics.json"

DATA_METRICS = Path("metrics/data.json")
AUDIT_METRICS = Path("metrics/audit.json")
AUDIT_FIGURES = Path("metrics/audit")
SIMULATE_METRICS = Path("metrics/simulate.json")
SIMULATE_FIGURES = Path("metrics/simulate")
EVAL_METRICS = Path("metrics/eval.json")
PLOTS = Path("metrics/plots")  # data for `dvc plots show`
FIGURES = Path("metrics/figures")
TRANSFER_METRICS = Path("metrics/transfer.json")
TRANSFER_FIGURES = Path("metrics/transfer")
