"""`dvc plots show` must draw without network. DVC's default page loads vega, vega-lite and
vega-embed from a CDN, so offline it is blank; `.dvc/config` points DVC at a committed page
template that carries the three libraries inline (bundled by vl-convert-python).

`python tests/test_plots_offline.py` rebuilds the template from the installed vl-convert-python.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from dvc.config import Config
from dvc_render.html import render_html
from dvc_render.vega import VegaRenderer
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / ".dvc" / "plots-template.html"
VEGA_LITE = "5.21"  # DVC's plot templates are Vega-Lite v5 specs
CHROMIUM = shutil.which("chromium")

# DVC replaces {refresh_tag} and {plot_divs}; the page has no {scripts}, where DVC would put its
# CDN <script> tags.
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- VERSIONS, inline so that the page draws offline.
         Rebuilt by `python tests/test_plots_offline.py`; chosen in .dvc/config. -->
    <script>
(function () {  // the bundle's own names stay out of the page's globals
BUNDLE
})();
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def build_template() -> str:
    """The page template, with the vega libraries of the installed vl-convert-python inline."""
    import vl_convert

    versions = (
        f"vl-convert-python {version('vl-convert-python')}: vega {vl_convert.get_vega_version()}, "
        f"vega-lite {VEGA_LITE}, vega-embed {vl_convert.get_vega_embed_version()}"
    )
    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE)
    return PAGE.replace("VERSIONS", versions, 1).replace("BUNDLE", bundle, 1)


def test_dvc_config_points_plots_show_at_the_template() -> None:
    configured = Config(dvc_dir=str(ROOT / ".dvc"))["plots"].get("html_template")
    assert configured, "set plots.html_template in .dvc/config"
    # DVC resolves a relative template path against .dvc/ (dvc/commands/plots.py)
    assert (ROOT / ".dvc" / configured).resolve() == TEMPLATE
    ignored = subprocess.run(["git", "check-ignore", "-q", str(TEMPLATE)], cwd=ROOT).returncode
    assert ignored == 1, f"{TEMPLATE.relative_to(ROOT)} is git-ignored: a clone would lack it"


def test_page_from_the_template_loads_nothing_from_the_network(tmp_path: Path) -> None:
    renderer = VegaRenderer([{"x": 0, "y": 1}], "plot", x="x", y="y")
    page = Path(render_html([renderer], tmp_path / "index.html", TEMPLATE)).read_text()
    assert "cdn.jsdelivr.net" not in page
    assert not re.search(r"<(script|link)\b[^>]*\b(src|href)=", page), "an external resource"
    assert page.count("vegaEmbed('#plot'") == 1
    assert "window.vegaEmbed=" in page


def test_template_is_the_vl_convert_bundle() -> None:
    recorded = re.search(r"vl-convert-python ([\w.]+)", TEMPLATE.read_text()).group(1)
    if recorded != version("vl-convert-python"):
        pytest.skip(
            f"the template was built with vl-convert-python {recorded}, "
            f"{version('vl-convert-python')} is installed (run `python tests/test_plots_offline.py`"
            " to rebuild it)"
        )
    assert TEMPLATE.read_text() == build_template(), "run `python tests/test_plots_offline.py`"


def fresh_clone(dest: Path) -> Path:
    """A clone of HEAD with the work tree's files that a commit would take (tracked, or untracked
    and not ignored): nothing DVC caches or git ignores (data/, models/, .dvc/cache)."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        target = dest / name
        if (ROOT / name).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / name, target)
        elif target.is_file():  # deleted in the work tree
            target.unlink()
    return dest


def chromium(page: Path, profile: Path, *action: str) -> str:
    """Headless Chromium on `page` with every network fetch failing (a proxy to a closed port)."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={profile}",
        "--window-size=1200,3000",
        "--virtual-time-budget=5000",
    ]
    run = subprocess.run(
        [CHROMIUM, *flags, *action, page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def drawn_pixels(png: Path) -> int:
    """Pixels that are not (near) white."""
    gray = Image.open(png).convert("L")
    return sum(gray.histogram()[:240])


@pytest.mark.e2e
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs chromium for a headless browser (Debian: apt-get install -y chromium)",
)
def test_dvc_plots_show_draws_every_plot_offline_in_a_fresh_clone(tmp_path: Path) -> None:
    repo = fresh_clone(tmp_path / "clone")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["dvc", "plots", "show"], cwd=repo, env=env, check=True, capture_output=True)
    page = repo / "dvc_plots" / "index.html"
    html = page.read_text()
    embedded = html.count("vegaEmbed('#")
    # a declared plot whose files a clone lacks (in DVC's cache) gets an empty spec, drawn 0x0
    plots = embedded - html.count("var spec = {};")
    named = [
        p for p in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"] if isinstance(p, dict)
    ]
    assert plots >= len(named), "dvc.yaml's named plots draw git-tracked files"

    png = tmp_path / "page.png"
    chromium(page, tmp_path / "profile-1", f"--screenshot={png}")
    dom = chromium(page, tmp_path / "profile-2", "--dump-dom")
    views = len(re.findall(r'<div id="[^"]*" class="vega-embed', dom))
    sizes = [
        re.search(r'width="(\d+)" height="(\d+)"', svg).groups()
        for svg in re.findall(r'<svg[^>]*class="marks"[^>]*>', dom)
    ]
    drawn = sum(w != "0" and h != "0" for w, h in sizes)
    assert (views, drawn) == (embedded, plots), f"{drawn} of {plots} plots drawn"
    assert drawn_pixels(png) > 100_000, "the page is blank"


if __name__ == "__main__":
    TEMPLATE.write_text(build_template())
    print(f"wrote {TEMPLATE.relative_to(ROOT)}", file=sys.stderr)
