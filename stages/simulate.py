"""Stage simulate: fakes from an autoencoder trained on the real training photos (train only)."""

from pathlib import Path

from sneakers.errors import run_main
from sneakers.files import read_csv, write_json
from sneakers.params import load_params
from sneakers.plots import spectrum_png
from sneakers.preprocess import Recipe
from sneakers.simulate import simulate


def main() -> None:
    params = load_params()
    settings = params.simulate
    recipe = Recipe(**params.standardize.picture_settings(), max_pixels=params.merge.max_pixels)
    split = read_csv(Path("data/split/split.csv"))
    made = simulate(split, Path("data/raw"), Path("data/simulated"), settings, recipe, params.seed)
    write_json(Path("metrics/simulate.json"), made.summary)
    figures = Path("metrics/simulate")  # dvc removed the old figure; an empty dir when disabled
    figures.mkdir(parents=True, exist_ok=True)
    if made.fake_spectrum is not None:
        spectrum_png(made.photo_spectrum, made.fake_spectrum, figures / "spectrum.png")
    print(f"simulate: {len(made.index)} simulated fakes into data/simulated"
          + ("" if settings.enabled else " (simulate.enabled is false)"))  # fmt: skip


if __name__ == "__main__":
    run_main(main)
