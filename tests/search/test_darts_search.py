"""DARTS-family search: losses go down on the bundled data, resume is exact, methods run."""

from __future__ import annotations

import pytest
import torch

from nasir.data.tinyshapes import load_tiny
from nasir.frontends.elaborate import parse_file, std_path
from nasir.lowering import lower
from nasir.search.darts import SearchConfig, SupernetSearch


def _data(n=64):
    x, y = load_tiny("train")
    return (x[:n], y[:n]), (x[n:2 * n], y[n:2 * n])


def _space():
    return parse_file(std_path("darts"), C=4, layers=2, steps=2, multiplier=2)


def _run(steps, checkpoint=None, resume=False, model=None, method="darts"):
    g = _space()
    model = model or lower(g, "supernet" if method == "darts" else "sampled", seed=0)
    search = SupernetSearch(model, SearchConfig(method=method, steps=steps, batch_size=8, save_every=1))
    search.run(*_data(), checkpoint=checkpoint, resume=resume, progress=False)
    return model, search


def test_resume_gives_the_same_result(tmp_path):
    straight, _ = _run(3)
    ck = tmp_path / "ck.safetensors"
    _run(2, checkpoint=ck)
    resumed, search = _run(3, checkpoint=ck, resume=True)
    assert search.log.step == 3
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


#: a two-candidate space: milliseconds per step
TINY = """network tiny() {
  input x: [3, 32, 32]
  y = one_of { a: conv(4, 3, 2)  b: conv(4, 1, 2) }(x)
  z = (relu -> global_avg_pool -> linear(10))(y)
  output z
}
"""


def test_resume_with_augmented_photos_gives_the_same_result(tmp_path):
    """uint8 images with crop, flip and cutout: each batch's augmentation is replayed exactly."""
    from nasir.data.images import CIFAR10_NORMALIZATION, ImageSet, split_portion
    from nasir.frontends.elaborate import parse_string

    g = torch.Generator().manual_seed(1)
    photos = ImageSet(torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=g),
                      torch.randint(0, 10, (32,), generator=g), CIFAR10_NORMALIZATION)
    data = split_portion(photos, 0.5)

    def run(steps, checkpoint=None, resume=False, **options):
        model = lower(parse_string(TINY), "supernet", seed=0)
        config = SearchConfig(steps=steps, batch_size=4, save_every=1, **options)
        SupernetSearch(model, config).run(*data, checkpoint=checkpoint, resume=resume, progress=False)
        return model

    straight = run(5, augment=True, cutout=8)
    ck = tmp_path / "ck.safetensors"
    run(3, checkpoint=ck, augment=True, cutout=8)
    resumed = run(5, checkpoint=ck, resume=True, augment=True, cutout=8)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(run(5).arch_parameters()[0], straight.arch_parameters()[0])  # augmentation did act


@pytest.mark.parametrize("method", ["gdas", "spos"])
def test_sampled_methods_train(method):
    model, search = _run(2, method=method)
    assert len(search.log.losses) == 2
    if method == "gdas":
        assert any(p.abs().sum() > 0 for p in model.arch_parameters())


def test_darts_derivation_keeps_top2_edges():
    g = _space()
    model, _ = _run(1)
    arch = model.derive().arch
    assert set(arch) == set(g.arch)
    for group in g.input_groups:
        kept = [m for m in group.members if arch[m] != "none"]
        assert len(kept) == group.n_chosen
    fixed = lower(g, "fixed", arch=arch)
    assert fixed(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("key, value, message", [
    ("step", -5, "greater than or equal to 0"),
    ("step", 10**12, "checkpoint is at step 1000000000000"),  # must not replay 10^12 batches
    ("step", "abc", "valid integer"),
    ("losses", 7, "valid array"),
    ("config", [], "config"),
    ("kind", "dance-train", "not a supernet search checkpoint"),
    ("extra", 1, "Extra inputs"),
])
def test_damaged_checkpoint_metadata_is_refused_before_anything_runs(tmp_path, key, value, message):
    from nasir.checkpoint import load_checkpoint, save_checkpoint
    from nasir.diagnostics import NasirError

    ck = tmp_path / "ck.safetensors"
    _run(2, checkpoint=ck)
    tensors, meta = load_checkpoint(ck)
    save_checkpoint(ck, tensors, {**meta, key: value})
    before = ck.read_bytes()
    with pytest.raises(NasirError, match=message):
        _run(3, checkpoint=ck, resume=True)
    assert ck.read_bytes() == before


def test_resume_needs_the_same_options(tmp_path):
    from nasir.diagnostics import NasirError

    ck = tmp_path / "ck.safetensors"
    _run(2, checkpoint=ck)
    with pytest.raises(NasirError, match="checkpoint was made with method='darts'"):
        _run(3, checkpoint=ck, resume=True, method="spos")
    with pytest.raises(NasirError, match="beyond|this run has 1 steps"):
        _run(1, checkpoint=ck, resume=True)


@pytest.mark.parametrize("method", ["darts", "gdas"])
def test_a_run_killed_mid_way_and_resumed_equals_an_uninterrupted_one_bit_for_bit(tmp_path, monkeypatch, method):
    """Same data order, sampling noise, Gumbel temperature and optimizer state after the resume."""
    straight, _ = _run(4, method=method)
    ck = tmp_path / "ck.safetensors"
    real_step = SupernetSearch.step

    def killed_at_step_3(self, train, val):
        if self.log.step == 2:
            raise KeyboardInterrupt
        return real_step(self, train, val)

    monkeypatch.setattr(SupernetSearch, "step", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        _run(4, checkpoint=ck, method=method)
    monkeypatch.undo()
    torch.manual_seed(1234)  # nothing but the checkpoint carries over
    resumed, search = _run(4, checkpoint=ck, resume=True, method=method)
    assert search.log.resumed_from == 2 and search.log.step == 4 and len(search.log.losses) == 4
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoints_come_on_time_as_well_as_on_steps(tmp_path, monkeypatch):
    """With a step interval longer than the run, a slow run still saves every few minutes."""
    from nasir import save_schedule

    clock = iter(range(0, 10**6, 50))  # every reading of the clock is 50 s later
    monkeypatch.setattr(save_schedule, "_now", lambda: next(clock))
    saved = []
    monkeypatch.setattr(SupernetSearch, "save", lambda self, path: saved.append(self.log.step))
    model = lower(_space(), "supernet", seed=0)
    config = SearchConfig(steps=4, batch_size=8, save_every=100, save_minutes=1.5)
    SupernetSearch(model, config).run(*_data(), checkpoint=tmp_path / "ck.safetensors", progress=False)
    assert saved == [2, 4]  # 100 s after the start, then the end of the run
