"""Stage simulate: fakes from an autoencoder trained on the real training photos (train only)."""

from sneakers.errors import run_main
from sneakers.files import read_csv, write_json
from sneakers.params import load_params
from sneakers.paths import RAW, SIMULATE_FIGURES, SIMULATE_METRICS, SIMULATED, SPLIT
from sneakers.plots import spectrum_png
from sneakers.simulate import simulate


def main() -> None:
    params = load_params()
    settings = params.simulate
    split = read_csv(SPLIT)
    made = simulate(split, RAW, SIMULATED, settings, params.recipe(), params.seed)
    write_json(SIMULATE_METRICS, made.summary)
    figures = SIMULATE_FIGURES  # dvc removed the old figure; an empty dir when disabled
    figures.mkdir(parents=True, exist_ok=True)
    if made.fake_spectrum is not None:
        spectrum_png(made.photo_spectrum, made.fake_spectrum, figures / "spectrum.png")
    print(
        f"simulate: {len(made.index)} simulated fakes into {SIMULATED}"
        + ("" if settings.enabled else " (simulate.enabled is false)")
    )


if __name__ == "__main__":
    run_main(main)
