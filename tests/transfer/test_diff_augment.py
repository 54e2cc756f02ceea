"""DiffAugment: differentiable, seeded, padded with the background (never wrapped), per-sample, same for real and fake."""

import pytest
import torch

from hf_genxfer.transfer import DiffAugment, diff_augment


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_gradients_flow_to_the_input_images():
    images = (torch.rand(6, 3, 8, 8, generator=seeded()) * 2 - 1).requires_grad_(True)
    augmented = diff_augment(images, generator=seeded())
    assert augmented.shape == images.shape
    augmented.pow(2).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_deterministic_for_a_seeded_generator():
    images = torch.rand(4, 1, 8, 8, generator=seeded()) * 2 - 1
    first = diff_augment(images, generator=seeded(1))
    assert torch.equal(first, diff_augment(images, generator=seeded(1)))
    assert not torch.equal(first, diff_augment(images, generator=seeded(2)))


def test_each_sample_gets_its_own_parameters():
    images = (torch.rand(1, 1, 8, 8, generator=seeded()) * 2 - 1).expand(8, 1, 8, 8)
    augmented = diff_augment(images, generator=seeded())
    assert len({tuple(sample.flatten().tolist()) for sample in augmented}) > 1


def test_translation_pads_with_the_background_and_never_wraps_around():
    # One white pixel in the top-left corner of a black image, 64 independent shifts of up to 1 pixel.
    images = torch.full((64, 1, 8, 8), -1.0)
    images[:, 0, 0, 0] = 1.0
    shifted = diff_augment(images, policy="translation", generator=seeded())
    assert set(shifted.unique().tolist()) <= {-1.0, 1.0}
    bright = shifted == 1.0
    assert bright.flatten(1).sum(1).max() == 1  # the pixel moves or leaves the image, it never doubles
    assert not bright[:, :, 2:, :].any() and not bright[:, :, :, 2:].any()  # never beyond one step
    assert not bright[:, :, -1, :].any() and not bright[:, :, :, -1].any()  # never wrapped to the other edge
    assert (bright.flatten(1).sum(1) == 0).any()  # some shifts pushed it out: the padding came in instead
    assert bright[:, 0, 1, 1].any()  # some moved it down and right

    # A white image: every shifted-in row or column is the background value.
    white = diff_augment(torch.ones(64, 1, 8, 8), policy="translation", generator=seeded())
    background = white == -1.0
    assert background.any()
    for sample in background[:, 0]:
        rows, cols = sample.all(dim=1), sample.all(dim=0)
        assert torch.equal(sample, rows[:, None] | cols[None, :])  # whole rows/columns, nothing else
    # Images in [0, 1] use background=0.
    zero_padded = diff_augment(torch.ones(64, 1, 8, 8), policy="translation", generator=seeded(), background=0.0)
    assert torch.equal(zero_padded == 0.0, background)


def test_cutout_paints_a_half_size_square_with_the_background():
    images = torch.ones(64, 3, 16, 16)
    cut = diff_augment(images, policy="cutout", generator=seeded())
    background = cut == -1.0
    assert torch.equal(background[:, :1].expand_as(background), background)  # all channels alike
    areas = background[:, 0].flatten(1).sum(1)
    assert areas.max() == 64 and areas.min() > 0  # 8x8 squares, some clipped by the border
    for sample in background[:, 0]:
        rows, cols = sample.any(dim=1), sample.any(dim=0)
        assert torch.equal(sample, rows[:, None] & cols[None, :])  # one axis-aligned rectangle


def test_color_on_grey_and_rgb():
    grey = torch.rand(4, 1, 8, 8, generator=seeded()) * 2 - 1
    rgb = torch.rand(4, 3, 8, 8, generator=seeded()) * 2 - 1
    for images in (grey, rgb):
        colored = diff_augment(images, policy="color", generator=seeded())
        assert colored.shape == images.shape and torch.isfinite(colored).all()
        assert not torch.equal(colored, images)
    # Saturation leaves a grey image grey: an RGB image with equal channels keeps equal channels.
    equal_channels = grey.expand(4, 3, 8, 8)
    colored = diff_augment(equal_channels, policy="color", generator=seeded())
    torch.testing.assert_close(colored[:, 0], colored[:, 1])
    torch.testing.assert_close(colored[:, 0], diff_augment(grey, policy="color", generator=seeded())[:, 0])


def test_policy_names_are_validated():
    with pytest.raises(ValueError, match="Unknown DiffAugment policy 'flip': use a comma-separated subset of"):
        DiffAugment("color,flip")
    with pytest.raises(ValueError, match="Unknown DiffAugment policy"):
        diff_augment(torch.zeros(1, 1, 8, 8), policy=["cutout", "zoom"])
    assert torch.equal(diff_augment(torch.ones(2, 1, 8, 8), policy=""), torch.ones(2, 1, 8, 8))


def test_the_same_policy_goes_to_real_and_fake_batches():
    augment = DiffAugment("translation,cutout", generator=seeded())
    assert augment.policy == ["translation", "cutout"]
    real = torch.ones(8, 1, 8, 8)
    fake = torch.ones(8, 1, 8, 8, requires_grad=True)
    real_augmented, fake_augmented = augment(real, fake)
    for batch in (real_augmented, fake_augmented):
        # Every image got a cutout (and maybe shifted-in borders): background pixels in each one.
        assert ((batch == -1.0).flatten(1).sum(1) > 0).all()
    fake_augmented.sum().backward()
    assert fake.grad is not None
    # One call on the concatenated batch, as a discriminator step does, is the same policy too.
    assert augment(torch.cat([real, fake.detach()])).shape == (16, 1, 8, 8)
