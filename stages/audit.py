"""Stage audit: can file metadata alone, or the JPEG history in the pixels, tell the classes
apart, before and after standardizing?"""

from sneakers.audit import audit, encoding_table, history_audit
from sneakers.errors import run_main
from sneakers.files import read_csv, write_json
from sneakers.params import load_params
from sneakers.paths import AUDIT_FIGURES, AUDIT_METRICS, INDEX, MANIFEST, RAW, SPLIT, STANDARDIZED
from sneakers.plots import table_png


def main() -> None:
    params = load_params()
    settings, seed = params.audit, params.seed
    quality = params.standardize.jpeg_quality
    manifest = read_csv(MANIFEST)
    index = read_csv(INDEX)
    split = read_csv(SPLIT)
    result = audit(manifest, split, index, STANDARDIZED, settings.classifier, seed)
    dirs = (RAW, STANDARDIZED)
    result["history"] = history_audit(manifest, split, index, dirs, settings, quality, seed)
    write_json(AUDIT_METRICS, {"audit": result})
    table_png(
        encoding_table(manifest),
        "Raw encodings per class (accepted files)",
        AUDIT_FIGURES / "encodings.png",
    )
    raw, std = result["raw"]["balanced_accuracy"], result["standardized"]["balanced_accuracy"]
    print(f"audit: metadata-only balanced accuracy raw {raw:.3f}, standardized {std:.3f}")
    history = result["history"]
    print(
        "audit: JPEG-history balanced accuracy "
        + ", ".join(
            f"{k} {history[k]['balanced_accuracy']:.3f}" for k in ("raw", "standardized", "control")
        )
        + f"; gap standardized - control {history['gap']:+.3f}"
    )


if __name__ == "__main__":
    run_main(main)
