"""Stage audit: can file metadata alone tell the classes apart, before and after standardizing?"""

from pathlib import Path

from sneakers.audit import AuditSettings, audit, encoding_table
from sneakers.errors import run_main
from sneakers.files import read_csv, write_json
from sneakers.params import load_params, section
from sneakers.plots import table_png


def main() -> None:
    params = load_params()
    classifier = AuditSettings.from_params(section(params, "audit")).classifier
    manifest = read_csv(Path("data/merged/manifest.csv"))
    index = read_csv(Path("data/standardized/index.csv"))
    split = read_csv(Path("data/split/split.csv"))
    result = audit(manifest, split, index, Path("data/standardized"), classifier, params["seed"])
    write_json(Path("metrics/audit.json"), {"audit": result})
    table_png(encoding_table(manifest), "Raw encodings per class (accepted files)",
              Path("metrics/audit/encodings.png"))  # fmt: skip
    raw, std = result["raw"]["balanced_accuracy"], result["standardized"]["balanced_accuracy"]
    print(f"audit: metadata-only balanced accuracy raw {raw:.3f}, standardized {std:.3f}")


if __name__ == "__main__":
    run_main(main)
