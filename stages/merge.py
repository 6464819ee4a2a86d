"""Stage merge: one manifest row per file found, with status, reason and duplicate group."""

from sneakers.errors import run_main
from sneakers.files import write_atomic, write_json
from sneakers.merge import build_manifest, summarize
from sneakers.params import load_params
from sneakers.paths import MANIFEST, MERGE_SUMMARY, RAW
from sneakers.split import require_both_labels


def main() -> None:
    params = load_params()
    data = params.data
    manifest = build_manifest(RAW, data.sources(), data.brands, params.merge)
    summary = summarize(manifest)
    write_atomic(MANIFEST, manifest.to_csv(index=False))
    write_json(MERGE_SUMMARY, summary)
    counts = {s: summary[s] for s in ("accepted", "rejected", "duplicate", "ignored")}
    print(f"merge: {summary['files']} files: {counts}")
    trained = manifest[(manifest["status"] == "accepted") & (manifest["role"] == "train")]
    require_both_labels(trained["label"], f"the training pictures of profile {data.profile}")


if __name__ == "__main__":
    run_main(main)
