"""Image folders (PNG, JPEG) read back exactly, resized and cropped to the resolution, split."""

from __future__ import annotations

import builtins

import pytest
import torch

from nasir.data import load_data, parse_data_spec
from nasir.data.images import IMAGENET_NORMALIZATION
from nasir.diagnostics import NasirError

from ._formats import random_images

Image = pytest.importorskip("PIL.Image")


def _save(pixels: torch.Tensor, path, fmt: str) -> None:
    """Write a [3, H, W] uint8 image."""
    Image.fromarray(pixels.permute(1, 2, 0).contiguous().numpy()).save(path, fmt)


def _decoded(path) -> torch.Tensor:
    with Image.open(path) as img:
        rgb = img.convert("RGB")
        return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(rgb.height, rgb.width, 3).permute(2, 0, 1)


def test_png_and_jpeg_folders_read_back_exactly(tmp_path):
    pixels = random_images(4, seed=1, size=8)
    for split, items in {"train": [(0, "cat"), (1, "dog"), (2, "cat")], "val": [(3, "dog")]}.items():
        for i, cls in items:
            folder = tmp_path / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            fmt = "PNG" if i % 2 == 0 else "JPEG"
            _save(pixels[i], folder / f"img{i}.{'png' if fmt == 'PNG' else 'jpg'}", fmt)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image: ignored")
    data = load_data(f"imagefolder:{tmp_path}", resolution=8)
    assert data.class_names == ("cat", "dog") and data.classes == 2
    assert data.train.normalization == IMAGENET_NORMALIZATION
    # sorted by class, then file name: cat/img0.png, cat/img2.png, dog/img1.jpg
    assert data.train.labels.tolist() == [0, 0, 1] and data.test.labels.tolist() == [1]
    assert torch.equal(data.train.images[0], pixels[0]) and torch.equal(data.train.images[1], pixels[2])  # PNG: lossless
    assert torch.equal(data.train.images[2], _decoded(tmp_path / "train" / "dog" / "img1.jpg"))  # JPEG: as decoded
    assert torch.equal(data.test.images[0], _decoded(tmp_path / "val" / "dog" / "img3.jpg"))


def test_any_size_is_resized_and_centre_cropped(tmp_path):
    (tmp_path / "a").mkdir()
    wide = random_images(1, seed=2, size=8)[0]
    wide = torch.cat([wide, wide[:, :, :4]], dim=2)  # 8 high, 12 wide
    _save(wide, tmp_path / "a" / "wide.png", "PNG")
    _save(random_images(1, seed=3, size=16)[0], tmp_path / "a" / "big.png", "PNG")
    data = load_data(f"imagefolder:{tmp_path}", resolution=8)
    assert data.train.images.shape == (2, 3, 8, 8)
    assert torch.equal(data.train.images[1], wide[:, :, 2:10])  # shorter side already 8: the centred square
    gray = Image.new("L", (5, 7), color=200)
    gray.save(tmp_path / "a" / "gray.png")
    assert torch.equal(load_data(f"imagefolder:{tmp_path}", resolution=8).train.images[1],
                       torch.full((3, 8, 8), 200, dtype=torch.uint8))


def test_without_train_and_val_every_tenth_image_is_held_out(tmp_path):
    for cls in ("x", "y"):
        (tmp_path / cls).mkdir()
        for i in range(12):
            _save(random_images(1, seed=i, size=4)[0], tmp_path / cls / f"{i:02d}.png", "PNG")
    data = load_data(f"imagefolder:{tmp_path}", resolution=4)
    assert len(data.train) == 22 and data.test.labels.tolist() == [0, 1]
    assert torch.equal(data.test.images[0], random_images(1, seed=9, size=4)[0])


def test_bad_folders_are_clear_errors(tmp_path):
    with pytest.raises(NasirError, match="no such folder"):
        load_data(f"imagefolder:{tmp_path / 'absent'}")
    with pytest.raises(NasirError, match="no class folders"):
        load_data(f"imagefolder:{tmp_path}")
    (tmp_path / "c").mkdir()
    with pytest.raises(NasirError, match="no images"):
        load_data(f"imagefolder:{tmp_path}")
    (tmp_path / "c" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(NasirError, match="broken.png: not an image Pillow can read"):
        load_data(f"imagefolder:{tmp_path}")


def test_without_pillow_the_error_says_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "c").mkdir()
    _save(random_images(1, seed=0, size=4)[0], tmp_path / "c" / "a.png", "PNG")
    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(NasirError, match=r"needs Pillow") as e:
        load_data(f"imagefolder:{tmp_path}")
    assert "nasir[data]" in e.value.render()


@pytest.mark.parametrize("text, message", [("mnist", "unknown data source 'mnist'"), ("cifar10", "reads a local folder"),
                                           ("tinyshapes:/x", "takes no folder")])
def test_bad_specs(text, message):
    with pytest.raises(NasirError, match=message):
        parse_data_spec(text)
