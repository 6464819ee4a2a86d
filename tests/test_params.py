"""Every data profile mistake gives one SneakersError that names the key to fix."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sneakers.errors import SneakersError
from sneakers.params import Source, active_sources, load_params, parse_source

ROOT = Path(__file__).resolve().parents[1]

PHOTOS = {"name": "photos", "demo": {"kind": "photos", "count": 3}, "label": "real"}
LOCAL = {"name": "local", "path": "pictures", "labels": {"real": "real", "fake": "ai"}}
KAGGLE = {"name": "kg", "kaggle": "owner/slug/versions/3", "label": "ai", "brand": "prefix"}


def params_with(profiles: dict[str, Any], profile: str = "mine") -> dict[str, Any]:
    """A params dict whose data section selects `profile`."""
    return {"seed": 1, "data": {"profile": profile, "profiles": profiles}}


def one_line_error(entry: Any) -> str:
    """parse_source's message for a bad entry; it must be a single line."""
    with pytest.raises(SneakersError) as info:
        parse_source(entry, "data.profiles.mine[0]")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("data.profiles.mine[0]")
    return message


def test_valid_profile_parses_every_kind() -> None:
    sources = active_sources(params_with({"mine": [PHOTOS, LOCAL, KAGGLE]}))
    assert sources == [
        Source(name="photos", kind="demo", demo={"kind": "photos", "count": 3}, label="real"),
        Source(name="local", kind="path", path="pictures", labels={"real": "real", "fake": "ai"}),
        Source(
            name="kg", kind="kaggle", kaggle="owner/slug/versions/3", label="ai", brand="prefix"
        ),
    ]


def test_the_repository_params_parse_for_every_profile() -> None:
    """The shipped params.yaml must stay valid for demo, shared and kaggle alike."""
    params = load_params(ROOT / "params.yaml")
    profiles = params["data"]["profiles"]
    assert {"demo", "shared", "kaggle"} <= set(profiles)
    for name in profiles:
        chosen = copy.deepcopy(params)
        chosen["data"]["profile"] = name
        sources = active_sources(chosen)
        assert [s.name for s in sources] == [e["name"] for e in profiles[name]]
        assert all(s.label or s.labels for s in sources)


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(SneakersError, match=r"data.profile 'nope' .*known: a, mine"):
        active_sources(params_with({"mine": [PHOTOS], "a": [LOCAL]}, profile="nope"))


@pytest.mark.parametrize("entries", [[], None])
def test_empty_profile(entries: list[Any] | None) -> None:
    with pytest.raises(SneakersError, match=r"data.profiles.mine is empty"):
        active_sources(params_with({"mine": entries}))


def test_duplicate_source_names() -> None:
    twin = {**LOCAL, "name": "photos"}
    with pytest.raises(
        SneakersError, match=r"data.profiles.mine: duplicate source name\(s\) photos"
    ):
        active_sources(params_with({"mine": [PHOTOS, twin]}))


def test_missing_data_section_names_it() -> None:
    with pytest.raises(SneakersError, match=r"no 'data' section"):
        active_sources({"seed": 1})


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"path": "x", "label": "real"}, r"\.name must be a folder-safe name"),
        ({"name": "../up", "path": "x", "label": "real"}, r"\.name must be a folder-safe name"),
        ({"name": "s", "path": "x", "kaggle": "a/b/versions/1", "label": "real"},
         r"\(s\) needs exactly one of kaggle:, path: or demo:"),
        ({"name": "s", "label": "real"}, r"\(s\) needs exactly one of kaggle:, path: or demo:"),
        ({"name": "s", "path": "x", "label": "real", "labels": {"r": "real"}},
         r"\(s\) needs either label: real\|ai or labels:"),
        ({"name": "s", "path": "x"}, r"\(s\) needs either label: real\|ai or labels:"),
        ({"name": "s", "path": "x", "label": "fake"}, r"\(s\) has label 'fake'; use real or ai"),
        ({"name": "s", "path": "x", "labels": {"r": "real", "f": "AI"}},
         r"\(s\) has label 'AI'; use real or ai"),
        ({"name": "s", "kaggle": "owner/slug", "label": "real"},
         r"\(s\)\.kaggle must be owner/dataset/versions/N, pinned, not 'owner/slug'"),
        ({"name": "s", "kaggle": "owner/slug/versions/latest", "label": "real"},
         r"\(s\)\.kaggle must be owner/dataset/versions/N"),
        ({"name": "s", "path": "x", "label": "real", "lable": "ai"},
         r"\(s\) has unknown key\(s\) lable"),
        ({"name": "s", "path": "x", "label": "real", "brand": "suffix"},
         r"\(s\)\.brand must be folder or prefix, not 'suffix'"),
        ({"name": "s", "path": "", "label": "real"}, r"\(s\)\.path must be a folder or \.zip"),
        ({"name": "s", "demo": {"count": 3}, "label": "real"},
         r"\(s\)\.demo must be a mapping with a kind"),
        ("just-a-string", r"must be a mapping with name"),
        ({"name": "s", "path": "x", "label": "real", "role": "test"},
         r"\(s\)\.role must be train or eval, not 'test'"),
    ],
)  # fmt: skip
def test_each_bad_entry_names_its_key(entry: Any, expected: str) -> None:
    assert re.search(expected, one_line_error(entry))


def test_errors_surface_through_active_sources_with_the_position() -> None:
    bad = {**LOCAL, "labels": {"real": "maybe"}}
    with pytest.raises(
        SneakersError, match=r"^data.profiles.mine\[1\] \(local\) has label 'maybe'"
    ):
        active_sources(params_with({"mine": [PHOTOS, bad]}))


def test_load_params_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(SneakersError, match="not found: run from the project root"):
        load_params(tmp_path / "params.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(SneakersError, match="is not valid YAML") as info:
        load_params(broken)
    assert "\n" not in str(info.value)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(SneakersError, match="must be a mapping of sections"):
        load_params(listed)


def test_load_params_round_trips(tmp_path: Path) -> None:
    params = params_with({"mine": [PHOTOS]})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert load_params(path) == params


def test_eval_sources_parse_and_a_profile_needs_one_to_train_on() -> None:
    shop = {"name": "shop", "path": "x", "label": "real", "role": "eval"}
    params = {
        "data": {
            "profile": "p",
            "profiles": {"p": [shop, {**shop, "name": "own", "role": "train"}]},
        }
    }
    sources = active_sources(params)
    assert [(s.name, s.role) for s in sources] == [("shop", "eval"), ("own", "train")]
    assert parse_source({"name": "x", "path": "x", "label": "ai"}, "w").role == "train"
    with pytest.raises(SneakersError, match="only role: eval sources: add one to train on"):
        active_sources({"data": {"profile": "p", "profiles": {"p": [shop]}}})
