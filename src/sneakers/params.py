"""params.yaml as one typed config: a pydantic model per section, checked as a whole at load.

Every stage calls `load_params()`, which validates every key of every section (type, range,
choices, lengths, cross-key rules) and turns the first problem into one line,
`<section>.<key>: <what> (<fix>)`. Domain modules take their section's model, never raw dicts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from sneakers.errors import SneakersError

if TYPE_CHECKING:
    from sneakers.preprocess import Recipe

Label = Literal["real", "ai"]
Role = Literal["train", "eval"]  # eval: scored by evaluate only, never split, trained or tuned on
Fit = Literal["crop", "pad", "stretch", "native"]
Upsample = Literal["transposed", "nearest", "bilinear"]
Classifier = Literal["logistic", "tree"]
Arch = Literal[
    "seed_cnn",
    "gap_cnn",
    "resnet18",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
]
Input = Literal["rgb", "npr", "spectrum"]
Part = Literal["head", "top", "all"]  # how much of a pretrained backbone trains
Pool = Literal["mean", "meanmax", "blocks"]  # a backbone's features: see model.EfficientNetLite
BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
Optimizer = Literal["adam", "adamw", "sgd"]
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16"]
THRESHOLD_RULES = ("val", "val_fpr", "val_generator")
Balance = Literal["label", "generator"]
KAGGLE_HANDLE = re.compile(r"^[\w.-]+/[\w.-]+/versions/\d+$")
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
TAG = "kind:"  # prefix of union tags, which pydantic puts in error locations; dropped from them
SEEDS = 2**32  # numpy's legacy seeding and scikit-learn's random_state take 0 .. 2**32 - 1
# A number YAML 1.1 (PyYAML) reads as text when unquoted: its floats need a dot and a signed
# exponent, so 1e-3 and 1.0e3 are strings; 1.0e-3, 1.0e+3 and 0.001 are numbers.
NUMBER_LIKE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

Whole = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
Probability = Annotated[float, Field(ge=0, le=1)]
Name = Annotated[str, Field(min_length=1)]


def _ordered(pair: list[Any]) -> list[Any]:
    if pair[0] > pair[1]:
        raise ValueError(f"{pair} runs backwards (write [low, high])")
    return pair


def pair(item: Any) -> Any:
    """A [low, high] list of `item`."""
    return Annotated[list[item], Field(min_length=2, max_length=2), AfterValidator(_ordered)]


class KeyProblem(ValueError):
    """A cross-key rule broken at `key` of the section that checks it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class Section(BaseModel):
    """A params section: unknown keys, wrong types (no "4" for 4) and changes are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, values: Any) -> Any:
        """Name every unknown key and the known ones: the likely fix is a typo."""
        if isinstance(values, dict):
            unknown = sorted(str(k) for k in set(values) - set(cls.model_fields))
            if unknown:
                raise ValueError(
                    f"unknown key(s) {', '.join(unknown)} (known: {', '.join(cls.model_fields)})"
                )
        return values


# --- data: where the pictures come from ---


class DemoPhotos(Section):
    """Camera-like photos, drawn offline (sneakers.demo)."""

    kind: Literal["photos"]
    count: Positive = 150
    size: Annotated[int, Field(ge=32)] = 240
    start: Whole = 0  # picture indices start..start+count: later starts hold other pictures


class DemoRenders(DemoPhotos):
    """Generator-like renders, drawn offline."""

    kind: Literal["renders"]  # type: ignore[assignment]
    count: Positive = 180
    size: Annotated[int, Field(ge=32)] = 1024


class DemoCompiled(Section):
    """A compiled real-vs-AI release: re-encoded copies of both kinds plus its own quirks."""

    kind: Literal["compiled"]
    real: Whole = 100
    ai: Whole = 140
    extra_real: Whole = 10
    extra_ai: Whole = 10
    photo_size: Annotated[int, Field(ge=32)] = 240
    render_size: Annotated[int, Field(ge=32)] = 1024


def tagged(members: dict[str, type], kind_of: Callable[[Any], str | None], error: str) -> Any:
    """A union of section models, the member picked by kind_of(value), a key of members (one
    clear error when it fits none); the tags are marked so that error locations can drop them."""
    options = tuple(Annotated[model, Tag(TAG + kind)] for kind, model in members.items())

    def tag(value: Any) -> str | None:
        kind = kind_of(value)
        return TAG + kind if isinstance(kind, str) and kind in members else None

    union = Union[options]  # noqa: UP007 - a runtime tuple of members: no `|` spelling
    return Annotated[
        union, Discriminator(tag, custom_error_type="kind", custom_error_message=error)
    ]


def _demo_kind(settings: Any) -> str | None:
    """The kind of a demo mapping (or model, when pydantic serializes one)."""
    return settings.get("kind") if isinstance(settings, dict) else getattr(settings, "kind", None)


Demo = tagged(
    {"photos": DemoPhotos, "renders": DemoRenders, "compiled": DemoCompiled},
    _demo_kind,
    "needs kind: photos, renders or compiled",
)


class SourceBase(Section):
    """One entry of a data profile: a name, a location (in subclasses) and how to label it."""

    kind: ClassVar[str]
    name: str
    label: Label | None = None
    labels: dict[Name, Label] = {}
    brand: Literal["folder", "prefix"] | None = None
    role: Role = "train"
    # What made the source's AI pictures (midjourney, dalle2, ...); unset: the source's name.
    generator: Name | None = None
    # A regular expression: files whose paths share its first match are one group (pictures
    # made from one input), kept in one split.
    group: str | None = None

    @field_validator("name")
    @classmethod
    def _folder_safe(cls, name: str) -> str:
        if not SOURCE_NAME.match(name):
            raise ValueError(f"{name!r} is not a folder-safe name (e.g. 'demo-photos')")
        return name

    @field_validator("group")
    @classmethod
    def _pattern(cls, group: str | None) -> str | None:
        try:
            if group is not None and not re.compile(group).pattern:
                raise re.error("is empty")
        except re.error as err:
            raise ValueError(f"{group!r} is not a regular expression ({err})") from None
        return group

    @model_validator(mode="after")
    def _one_labelling(self) -> SourceBase:
        if (self.label is None) == (not self.labels):
            raise ValueError(
                f"{self.name} needs either label: real|ai or labels: {{folder: real|ai}}"
            )
        if self.generator and "ai" not in {self.label, *self.labels.values()}:
            raise ValueError(
                f"{self.name} has no ai pictures: generator names the maker of a source's ai "
                "pictures (remove it)"
            )
        return self

    def generator_of(self, label: str) -> str:
        """The generator of this source's pictures of a label: none for real ones."""
        return (self.generator or self.name) if label == "ai" else ""


class KaggleSource(SourceBase):
    kind: ClassVar[str] = "kaggle"
    kaggle: str

    @field_validator("kaggle")
    @classmethod
    def _pinned(cls, handle: str) -> str:
        if not KAGGLE_HANDLE.match(handle):
            raise ValueError(f"{handle!r} is not pinned (write owner/dataset/versions/N)")
        return handle


class PathSource(SourceBase):
    kind: ClassVar[str] = "path"
    path: str

    @field_validator("path")
    @classmethod
    def _given(cls, path: str) -> str:
        if not path:
            raise ValueError("is empty (write the folder or .zip file to read)")
        return path


class DemoSource(SourceBase):
    kind: ClassVar[str] = "demo"
    demo: Demo


def _source_kind(entry: Any) -> str | None:
    """Which kind of source an entry is: the one location key it has."""
    if isinstance(entry, SourceBase):  # pydantic serializing, or a model passed in
        return entry.kind
    kinds = [k for k in ("kaggle", "path", "demo") if isinstance(entry, dict) and k in entry]
    return kinds[0] if len(kinds) == 1 else None


SourceEntry = tagged(
    {"kaggle": KaggleSource, "path": PathSource, "demo": DemoSource},
    _source_kind,
    "needs exactly one of kaggle:, path: or demo:, and a name and label",
)
Source = KaggleSource | PathSource | DemoSource


def _sound_profile(sources: list[Source]) -> list[Source]:
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate source name(s) {', '.join(dupes)} (names must differ)")
    if all(s.role == "eval" for s in sources):
        raise ValueError("has only role: eval sources (add one to train on)")
    trained = [s for s in sources if s.role == "train"]
    labels = {label for s in trained for label in s.labels.values() or [s.label]}
    if len(labels) == 1:
        (only,) = labels
        other = "ai" if only == "real" else "real"
        raise ValueError(
            f"trains on {only} pictures only: every role: train source is labelled {only} "
            f"(add a source of {other} pictures to train on)"
        )
    return sources


Profile = Annotated[
    list[SourceEntry],
    Field(min_length=1),
    AfterValidator(_sound_profile),
]


class ArchiveLimits(Section):
    """Caps on what a .zip source may unpack to."""

    max_bytes: Positive = 8_000_000_000
    max_ratio: Positive = 200


class DataSettings(Section):
    profile: str
    brands: list[Name] = []
    archive: ArchiveLimits = ArchiveLimits()
    profiles: dict[str, Profile]

    @model_validator(mode="after")
    def _known_profile(self) -> DataSettings:
        if self.profile not in self.profiles:
            known = ", ".join(self.profiles) or "none"
            raise KeyProblem(
                "profile", f"{self.profile!r} is not in data.profiles (known: {known})"
            )
        return self

    def sources(self) -> list[Source]:
        """The sources of the active profile."""
        return self.profiles[self.profile]


# --- the stages ---


class MergeSettings(Section):
    min_size: Positive = 32
    max_pixels: Positive = 50_000_000
    near_threshold: Annotated[int, Field(ge=0, le=64)] = 4
    workers: Whole = 0


class StandardizeSettings(Section):
    size: Annotated[int, Field(ge=36)] = 240  # the smallest the CNN's unpadded convs can take
    fit: Fit = "crop"
    resample: Annotated[float, Field(ge=1, le=4)] = 1.07
    resample_jitter: Annotated[float, Field(ge=0, le=1)] = 0.0
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = 90
    shard_size: Positive = 1000
    workers: Whole = 0

    def picture_settings(self) -> dict[str, Any]:
        """The keys that decide the pictures, which a model file records (preprocess.Recipe);
        not workers or shard_size, so that stages reading these need not declare those."""
        return {
            "size": self.size,
            "fit": self.fit,
            "jpeg_quality": self.jpeg_quality,
            "resample": self.resample,
            "resample_jitter": self.resample_jitter,
        }

    def recipe(self, max_pixels: int) -> Recipe:
        """The preprocessing recipe: these picture settings and merge.max_pixels, built here
        only, so the stages, the model file and predict cannot prepare pictures differently."""
        from sneakers.preprocess import Recipe  # not at the top: preprocess imports this module

        return Recipe(**self.picture_settings(), max_pixels=max_pixels)


class SplitSettings(Section):
    fractions: dict[Literal["train", "val", "test"], Annotated[float, Field(gt=0)]]

    @field_validator("fractions")
    @classmethod
    def _whole(cls, fractions: dict[str, float]) -> dict[str, float]:
        if len(fractions) != 3:
            raise ValueError("needs positive train, val and test values")
        if abs(sum(fractions.values()) - 1.0) > 1e-6:
            raise ValueError(f"sum to {sum(fractions.values()):g} (make them sum to 1)")
        return fractions


class AuditSettings(Section):
    classifier: Classifier = "logistic"
    # The history audit's grid-breaking resample: 1 would keep the 8x8 grid it must break.
    control_scale: Annotated[float, Field(gt=1, le=2)] = 1.07


class SimulateSettings(Section):
    enabled: bool = False
    upsample: Upsample = "transposed"
    depth: Annotated[int, Field(ge=1, le=6)] = 2  # 2x stages: peaks at periods 2 ... 2**depth
    width: Positive = 32  # channels of the first stage, doubled at each
    steps: Positive = 2000
    batch_size: Positive = 16
    patch: Annotated[int, Field(ge=8)] = 64  # training crops, pixels
    lr: Annotated[float, Field(gt=0)] = 0.002
    fraction: Annotated[float, Field(gt=0, le=1)] = 1.0  # share of train photos given a fake
    # Each fake made at standardize.size x a scale drawn per photo.
    scales: Annotated[list[Annotated[float, Field(ge=1, le=8)]], Field(min_length=1)] = [1, 2]

    @model_validator(mode="after")
    def _patch_fits(self) -> SimulateSettings:
        if self.patch % 2**self.depth:
            raise KeyProblem(
                "patch", f"{self.patch} is not a multiple of 2**depth ({2**self.depth})"
            )
        return self


class ModelSettings(Section):
    arch: Arch = "seed_cnn"
    input: Input = "rgb"  # rgb | npr | spectrum (model.NPR, model.Spectrum)
    # A pretrained backbone's (other archs train all of themselves, pool the mean): head (frozen
    # trunk, cached features, a linear head) | top | all; and how its features are pooled.
    train: Part = "all"
    pool: Pool = "mean"

    @model_validator(mode="after")
    def _head_reads_pictures(self) -> ModelSettings:
        if self.part == "head" and self.input != "rgb":
            raise KeyProblem(
                "input",
                f"{self.input} with train head: the frozen ImageNet trunk "
                "only knows pictures (use rgb, or train top or all)",
            )
        return self

    @property
    def part(self) -> Part:
        """What trains: model.train for a pretrained backbone, all of any other network."""
        return self.train if self.arch in BACKBONES else "all"

    @property
    def pooling(self) -> Pool:
        return self.pool if self.arch in BACKBONES else "mean"

    def ignored(self) -> str | None:
        """A note when model.train or model.pool are set for a network they do not apply to."""
        if (self.train, self.pool) == (self.part, self.pooling):
            return None
        return (
            f"note: model.train {self.train} and model.pool {self.pool} are a pretrained "
            f"backbone's: {self.arch} trains all of itself"
        )


class RuntimeSettings(Section):
    """Where and how models run, shared by train, evaluate and `sneakers predict`."""

    device: Device = "auto"
    precision: Precision = "auto"  # inference: validation, evaluate, predict
    batch_size: Positive = 64  # images per inference forward pass


def _generators(value: Any) -> str | list[str]:
    names = isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)
    if value != "all" and not names:
        raise ValueError(f"is {shown(value)} (use all, or a list of generators: [midjourney])")
    return value


def _threshold(value: Any) -> str | float:
    ok = value in THRESHOLD_RULES or (
        isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1
    )
    if not ok:
        rules = f"is {shown(value)} (use val, val_fpr, val_generator or a number between 0 and 1)"
        raise ValueError(yaml_text(value, whole=False) or rules)
    return value


class TrainSettings(Section):
    epochs: Positive = 3
    batch_size: Positive = 32
    lr: Annotated[float, Field(gt=0)] = 1e-3
    optimizer: Optimizer = "adam"
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    num_workers: Whole = 0
    # GiB of decoded images (train + val, every process on this node a copy) kept in memory;
    # above it they stream from the shards, decoded by the num_workers DataLoader workers.
    memory_gb: Annotated[float, Field(ge=0)] = 8.0
    precision: Precision = "auto"  # training steps
    threshold: Annotated[str | float, PlainValidator(_threshold)] = "val"
    target_fpr: Annotated[float, Field(ge=0, lt=1)] = 0.05  # for threshold val_fpr
    precise_bn: bool = True
    # Processes on this node; above 1 the stage runs itself under torchrun (distributed.py).
    nproc_per_node: Positive = 1
    # model.train head: scikit-learn's C (inverse L2 strength) of the logistic-regression head
    head_c: Annotated[float, Field(gt=0)] = 0.1
    # The generators whose AI pictures train and validate ("all", or a list); the others are
    # scored on test as unseen generators.
    generators: Annotated[str | list[str], PlainValidator(_generators)] = "all"
    balance: Balance = "label"  # head's sample weights: label (classes) | generator (each counts)

    @model_validator(mode="after")
    def _batch_splits_evenly(self) -> TrainSettings:
        n, size = self.nproc_per_node, self.batch_size
        if size % n:
            near = sorted({max(n, size // n * n), (size // n + 1) * n})
            raise KeyProblem(
                "batch_size",
                f"{size} does not divide by train.nproc_per_node {n}: each process "
                f"takes an equal share of the global batch (use {' or '.join(map(str, near))})",
            )
        return self


class AugmentSettings(Section):
    """Wang et al. 2020 style, off unless enabled."""

    enabled: bool = False
    p_jpeg: Probability = 0.5
    jpeg_quality: pair(Annotated[int, Field(ge=1, le=100)]) = [30, 100]
    p_blur: Probability = 0.5
    blur_sigma: pair(Annotated[float, Field(ge=0, le=20)]) = [0.0, 3.0]
    hflip: bool = True
    crop: Annotated[float, Field(gt=0, le=1)] = 0.9  # crop this share of the side; 1 = off
    p_resize: Probability = 0.0  # resampled by a random scale and back (a resampling history)
    resize_scale: pair(Annotated[float, Field(gt=0, le=4)]) = [0.5, 1.5]
    p_color: Probability = 0.0  # brightness, contrast and saturation each by 1 +- color
    color: Annotated[float, Field(ge=0, lt=1)] = 0.2
    views: Whole = 2  # model.train head: augmented copies of each training picture


class Params(Section):
    """The whole of params.yaml."""

    # Shared by every stage that draws random numbers.
    seed: Annotated[int, Field(ge=0, le=SEEDS - 1)]
    data: DataSettings
    merge: MergeSettings
    standardize: StandardizeSettings
    split: SplitSettings
    audit: AuditSettings
    simulate: SimulateSettings
    model: ModelSettings
    runtime: RuntimeSettings
    train: TrainSettings
    augment: AugmentSettings

    def recipe(self) -> Recipe:
        """The preprocessing recipe of these params (StandardizeSettings.recipe)."""
        return self.standardize.recipe(self.merge.max_pixels)


def choices(literal: Any) -> tuple[str, ...]:
    """The values a Literal type allows, for modules that map them to code."""
    return get_args(literal)


# --- loading ---


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and check params.yaml; any problem is one line naming the key and the fix."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise SneakersError(f"{path} not found: run from the project root") from None
    except yaml.YAMLError as err:
        raise SneakersError(f"{path} is not valid YAML: {err}".replace("\n", " ")) from None
    if not isinstance(values, dict):
        raise SneakersError(f"{path} must be a mapping of sections")
    return validate(values, str(path))


def validate(values: dict[str, Any], name: str = "params.yaml") -> Params:
    """Params from a mapping, or the first problem as one SneakersError line."""
    try:
        return Params.model_validate(values)
    except ValidationError as err:
        raise SneakersError(one_line(err.errors()[0], name)) from None


def location(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a params.yaml reader writes it: `data.profiles.demo[0]`."""
    where = ""
    for part in loc:
        if isinstance(part, int) or part == "":  # an index, or an empty mapping key
            where += f"[{part!r}]"
        elif part != "[key]" and not str(part).startswith(TAG):  # pydantic's own markers
            where += f".{part}" if where else str(part)
    return where


def one_line(error: dict[str, Any], name: str) -> str:
    """`<section>.<key>: <what> (<fix>)` for one pydantic error."""
    where = location(error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, KeyProblem):
        where = f"{where}.{cause.key}" if where else cause.key
    return f"{where or name}: {explain(error)}"


def shown(value: Any) -> str:
    """A value as a params.yaml reader knows it: YAML's null (or nothing) is empty, not None."""
    return "empty" if value is None else repr(value)


def yaml_text(value: Any, whole: bool) -> str | None:
    """Why a number was read as text, where YAML 1.1 did it (`lr: 1e-3`), and how to write it;
    None for other values, a quoted number among them (the message then says: no quotes)."""
    if not (isinstance(value, str) and NUMBER_LIKE.fullmatch(value)):
        return None
    if not isinstance(yaml.safe_load(value), str):  # a number to YAML: it was quoted
        return None
    number = float(value)
    if whole:
        if not number.is_integer():
            return f"must be a whole number, not {value} (e.g. 4)"
        fix = str(int(number))
    else:
        mantissa, exponent = value.lower().split("e")
        fix = (mantissa if "." in mantissa else mantissa + ".0") + "e"
        fix += exponent if exponent[0] in "+-" else "+" + exponent
        fix += "" if "e" in repr(number) else f" or {number!r}"
    kind = "whole number" if whole else "number"
    return f"must be a {kind}: YAML reads {value} as text (write {fix})"


def explain(error: dict[str, Any]) -> str:
    """What is wrong and what to do, in words a params.yaml reader uses."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    got = f"not {shown(value)}"
    quotes = ", no quotes" if isinstance(value, str) else ""
    if kind in ("int_type", "float_type") and (hint := yaml_text(value, kind == "int_type")):
        return hint
    wording = {
        "missing": "missing (add it to params.yaml; see README)",
        "int_type": f"must be a whole number, {got} (e.g. 4{quotes})",
        "float_type": f"must be a number, {got} (e.g. 0.5{quotes})",
        "finite_number": f"must be a finite number, {got} (e.g. 0.5)",
        "string_too_short": "is empty (write a name, or remove the entry)",
        "bool_type": f"must be true or false, {got}",
        "string_type": f"must be text, {got}",
        "list_type": f"must be a list, {got} (e.g. [1, 2])",
        "dict_type": f"must be a mapping of keys, {got}",
        "model_type": f"must be a mapping of keys, {got}",
        "model_attributes_type": f"must be a mapping of keys, {got}",
        "literal_error": f"is {shown(value)} (use {ctx.get('expected')})",
        "greater_than_equal": f"is {value!r} (use at least {ctx.get('ge')})",
        "greater_than": f"is {value!r} (use more than {ctx.get('gt')})",
        "less_than_equal": f"is {value!r} (use at most {ctx.get('le')})",
        "less_than": f"is {value!r} (use less than {ctx.get('lt')})",
        "too_short": f"has {ctx.get('actual_length')} entries (it needs at least "
        f"{ctx.get('min_length')})",
        "too_long": f"has {ctx.get('actual_length')} entries (it takes at most "
        f"{ctx.get('max_length')})",
    }
    if kind in wording:
        return wording[kind]
    return str(error["msg"]).removeprefix("Value error, ")
