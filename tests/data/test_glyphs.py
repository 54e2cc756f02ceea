import numpy as np
import pytest

from hf_genxfer.data.glyphs import GLYPH_CHARACTERS, available_glyph_fonts, glyphs_dataset, render_glyph
from hf_genxfer.data.images import BUILTIN_IMAGE_DATASETS, load_image_dataset, with_image_transform

TWO_FONTS = ["DejaVuSans", "cmr10"]


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(image) for image in images])


def test_62_characters_in_order():
    assert GLYPH_CHARACTERS == "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    assert len(set(GLYPH_CHARACTERS)) == 62


def test_fonts_are_the_bundled_text_fonts_with_all_62_characters():
    fonts = available_glyph_fonts()
    expected = {"DejaVuSans", "DejaVuSans-Bold", "DejaVuSansMono-Oblique", "DejaVuSerif-BoldItalic"}
    expected |= {"STIXGeneral-Regular", "STIXGeneral-Bold", "cmr10", "cmss10", "cmtt10", "cmb10", "cmti10"}
    assert expected <= set(fonts)
    # Symbol, size-variant and placeholder fonts, and TeX fonts whose letters or digits are other glyphs.
    for excluded in ("cmex10", "cmsy10", "cmmi10", "LastResortHE-Regular", "DejaVuSansDisplay"):
        assert excluded not in fonts
    assert not any(font.startswith(("STIXNonUnicode", "STIXSize")) for font in fonts)
    assert len(fonts) == len(set(fonts)) == 21


def test_every_font_draws_every_character_visibly_inside_the_frame():
    dataset = glyphs_dataset(seed=7)
    images = pixels(dataset["image"])  # (21 * 62, 32, 32), jittered
    assert images.shape == (len(available_glyph_fonts()) * 62, 32, 32)
    ink = (images >= 128).sum(axis=(1, 2))
    assert ink.min() >= 10, [(row["font"], GLYPH_CHARACTERS[row["label"]]) for row in dataset.select([ink.argmin()])]
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    assert border.max() < 64  # scale and shift jitter never push a glyph out of the image
    # Within a font all 62 glyphs differ, so no character is drawn as another's placeholder.
    for font_images in images.reshape(-1, 62, 32 * 32):
        assert len({image.tobytes() for image in font_images}) == 62


def test_dataset_columns_labels_and_order():
    dataset = glyphs_dataset(fonts=TWO_FONTS, samples_per_glyph=2)
    assert len(dataset) == 2 * 62 * 2
    assert dataset.features["label"].names == list(GLYPH_CHARACTERS)
    assert dataset.column_names == ["image", "label", "font"]
    assert dataset["label"][:4] == [0, 0, 1, 1]
    assert sorted(set(dataset["label"])) == list(range(62))
    assert dataset["font"][0] == "DejaVuSans" and dataset["font"][-1] == "cmr10"
    image = dataset[0]["image"]
    assert image.mode == "L" and image.size == (32, 32)


def test_rendering_is_deterministic_per_seed_and_jitter_changes_the_images():
    first = pixels(glyphs_dataset(fonts=TWO_FONTS, seed=3)["image"])
    again = pixels(glyphs_dataset(fonts=TWO_FONTS, seed=3)["image"])
    other = pixels(glyphs_dataset(fonts=TWO_FONTS, seed=4)["image"])
    assert np.array_equal(first, again)
    assert (first != other).any(axis=(1, 2)).mean() > 0.95
    # A glyph's jitter does not depend on the other fonts asked for.
    alone = pixels(glyphs_dataset(fonts=["cmr10"], seed=3)["image"])
    assert np.array_equal(alone, first[62:])


def test_render_glyph_without_jitter_is_centred_and_with_jitter_moves():
    plain = np.asarray(render_glyph("O", "DejaVuSans"), dtype=np.float64)
    assert np.array_equal(plain, np.asarray(render_glyph("O", "DejaVuSans")))
    rows, columns = np.indices(plain.shape)
    centre = ((rows * plain).sum() / plain.sum(), (columns * plain).sum() / plain.sum())
    assert centre == pytest.approx((15.5, 15.5), abs=0.3)
    jittered = [np.asarray(render_glyph("O", "DejaVuSans", jitter_seed=seed)) for seed in range(5)]
    assert all(not np.array_equal(image, plain) for image in jittered)
    assert render_glyph("a", "cmtt10", size=16).size == (16, 16)


def test_lowercase_stays_smaller_than_uppercase():
    for font in TWO_FONTS:
        small, large = ((np.asarray(render_glyph(c, font)) >= 128).any(axis=1).sum() for c in "oO")
        assert small < 0.85 * large


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="DejaVuSans"):
        render_glyph("A", "Comic Sans")
    with pytest.raises(ValueError, match="single character"):
        render_glyph("AB", "DejaVuSans")
    with pytest.raises(ValueError, match="samples_per_glyph"):
        glyphs_dataset(samples_per_glyph=0)


def test_load_image_dataset_knows_glyphs():
    assert "glyphs" in BUILTIN_IMAGE_DATASETS
    dataset = load_image_dataset("glyphs")
    assert len(dataset) == 62 * len(available_glyph_fonts())
    assert {"image", "label", "font"} <= set(dataset.column_names)
    row = with_image_transform(dataset, image_size=32, channels=1)[0]
    assert row["pixel_values"].shape == (1, 32, 32)
    assert -1.0 <= row["pixel_values"].min() and row["pixel_values"].max() <= 1.0


def test_a_recipe_picks_fonts_and_renderings_of_the_built_in_glyphs():
    from hf_genxfer.data.images import load_image_splits
    from hf_genxfer.errors import DataError
    from hf_genxfer.models.gan import GANConfig
    from hf_genxfer.recipes import ImageDataRecipe

    dataset = load_image_dataset("glyphs", fonts=["cmr10", "DejaVuSans"], renderings_per_glyph=2)
    assert len(dataset) == 62 * 2 * 2 and sorted(set(dataset["font"])) == ["DejaVuSans", "cmr10"]
    data = ImageDataRecipe(
        dataset="glyphs", fonts=["cmr10"], renderings_per_glyph=2, classes=[0, 1], held_out_fraction=0.5
    )
    train, held_out = (
        load_image_splits(data, GANConfig(image_size=16, num_classes=62))[k] for k in ("train", "held_out")
    )
    assert train[0].shape == (2, 1, 16, 16) and sorted(train[1].tolist()) == [0, 1] and len(held_out[0]) == 2
    with pytest.raises(DataError, match="data.fonts has 'Comic Sans', which is not bundled: name fonts from cmb10"):
        load_image_dataset("glyphs", fonts=["Comic Sans"])
    with pytest.raises(DataError, match="apply to the built-in glyphs dataset, not 'digits'"):
        load_image_dataset("digits", fonts=["cmr10"])
