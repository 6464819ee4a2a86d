"""Model shapes, parameter counts, memory-format invariance, and that both archs can learn."""

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from sneakers.model import (
    ARCHS,
    NPR,
    Spectrum,
    build_model,
    count_parameters,
    trunk_output_size,
)

TOY_SIZE = 40  # the smallest convenient size: the unpadded trunk needs at least 36 px


@pytest.fixture(autouse=True)
def _two_threads() -> Iterator[None]:
    """Keep CPU tests quick and reproducible without leaking thread settings to other tests."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_seed_cnn_matches_the_study_at_240() -> None:
    torch.manual_seed(0)
    model = build_model("seed_cnn", 240)
    assert trunk_output_size(240) == 26
    assert model.classifier[1].in_features == 26 * 26 * 128
    assert count_parameters(model) == 44_591_778
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 240, 240)).shape == (2, 2)


def test_gap_cnn_is_small_at_240() -> None:
    torch.manual_seed(0)
    model = build_model("gap_cnn", 240)
    assert count_parameters(model) == 288_162
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 240, 240)).shape == (2, 2)


def test_resnet18_is_torchvisions_with_two_classes() -> None:
    model = build_model("resnet18", 240)
    assert count_parameters(model) == 11_177_538
    assert model[1].fc.out_features == 2


def test_npr_is_each_pixel_minus_its_2x2_blocks_corner() -> None:
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) ** 1.5
    corner = x[..., ::2, ::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    torch.testing.assert_close(NPR()(x), x - corner)
    blocky = torch.randn(1, 3, 4, 4).repeat_interleave(2, -2).repeat_interleave(2, -1)
    assert NPR()(blocky).abs().max() == 0  # a nearest-neighbour 2x upsample leaves nothing
    odd = NPR()(torch.randn(1, 3, 7, 9))
    assert odd.shape == (1, 3, 7, 9)


def test_spectrum_shows_a_periodic_pattern_as_a_peak_at_its_frequency() -> None:
    x = torch.randn(1, 3, 32, 32) * 0.1
    stripes = torch.tensor([1.0, 0.0, -1.0, 0.0]).repeat(8)  # period 4 along the width
    view = Spectrum()(x + stripes)
    centre = 16  # fftshift puts zero frequency here; period 4 lands 32 / 4 bins away
    assert view.shape == x.shape
    row = view[0, 0, centre]
    assert row[centre + 8] > row.max() - 1e-4 and row[centre - 8] > row.max() - 1e-4
    assert torch.allclose(view.mean(dim=(-2, -1)), torch.zeros(1, 3), atol=1e-5)


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("view", ["npr", "spectrum"])
def test_input_views_keep_the_weights_and_change_what_the_model_sees(arch: str, view: str) -> None:
    rgb, other = build_model(arch, TOY_SIZE), build_model(arch, TOY_SIZE, input=view)
    assert rgb.state_dict().keys() == other.state_dict().keys()  # old model files still load
    other.load_state_dict(rgb.state_dict())
    x = torch.randn(2, 3, TOY_SIZE, TOY_SIZE)
    with torch.no_grad():
        assert not torch.allclose(rgb.eval()(x), other.eval()(x))


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("size", [TOY_SIZE, 64])
def test_output_shape_at_small_sizes(arch: str, size: int) -> None:
    model = build_model(arch, size).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 3, size, size)).shape == (3, 2)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_channels_last_matches_contiguous(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, 64).eval()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        actual = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_unknown_arch_and_tiny_images_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model.arch 'resnet'; choose one of: seed_cnn"):
        build_model("resnet", 240)
    with pytest.raises(ValueError, match="unknown model.input 'fft'; choose one of: rgb, npr"):
        build_model("seed_cnn", 240, input="fft")
    with pytest.raises(ValueError, match="too small"):
        build_model("gap_cnn", 35)


def test_gap_cnn_dropout_is_configurable() -> None:
    model = build_model("gap_cnn", 64, dropout=0.3)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in model.modules())


def _bright_square_dataset(n: int = 64, size: int = TOY_SIZE) -> tuple[Tensor, Tensor]:
    """Noise images; class 1 additionally has a bright 8x8 square at a random position."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=generator) * 0.5
    y = torch.arange(n) % 2
    corners = torch.randint(0, size - 8, (n, 2), generator=generator)
    for i in y.nonzero().flatten():
        top, left = corners[i].tolist()
        x[i, :, top : top + 8, left : left + 8] += 2.0
    return x, y


# resnet18 is torchvision's, trained as the others are; learning it here takes a minute on 2 cores.
@pytest.mark.parametrize("arch", ["seed_cnn", "gap_cnn"])
def test_learns_a_separable_toy_task(arch: str) -> None:
    torch.manual_seed(0)
    x, y = _bright_square_dataset()
    model = build_model(arch, TOY_SIZE)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    # 60 steps: the loss vanishes within ~10, but BatchNorm's running statistics (momentum 0.1)
    # need a few dozen updates before eval-mode predictions catch up.
    for step in range(60):
        batch = torch.arange(16) + 16 * (step % 4)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
    assert accuracy >= 0.95
