import pytest
import torch

from nasir.dna.distill import DistillConfig, Interrupted, batch_indices, load_block, train_block, train_blocks
from nasir.dna.errors import DNAError

from .conftest import tiny_block


def _data(n=24):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 16, 16, generator=g)
    # a learnable target: a fixed random conv of the input, downsampled
    w = torch.randn(8, 3, 3, 3, generator=g) * 0.3
    y = torch.nn.functional.conv2d(x, w, stride=2, padding=1)
    return x, y


def _fresh():
    torch.manual_seed(0)
    return tiny_block(3, 8, 2, "b")


def test_training_reduces_the_block_loss():
    x, y = _data()
    block = _fresh()
    log = train_block(block, x, y, DistillConfig(steps=40, batch_size=8, lr=5e-3))
    assert log.step == 40 and len(log.losses) == 40
    assert sum(log.losses[-5:]) < sum(log.losses[:5])


def test_batches_cover_each_epoch():
    seen = torch.cat([batch_indices(20, 5, t, 0, 0) for t in range(4)])
    assert sorted(seen.tolist()) == list(range(20))
    assert not torch.equal(batch_indices(20, 5, 0, 0, 0), batch_indices(20, 5, 4, 0, 0))


def test_resume_after_interruption_is_bit_identical(tmp_path):
    x, y = _data()
    cfg = DistillConfig(steps=10, batch_size=8, checkpoint_every=3)
    ref = _fresh()
    ref_log = train_block(ref, x, y, cfg)
    ckpt = tmp_path / "b.safetensors"
    with pytest.raises(Interrupted):
        train_block(_fresh(), x, y, cfg, checkpoint=ckpt, stop_after=7)  # steps 7 are lost, 6 are saved
    resumed = _fresh()
    log = train_block(resumed, x, y, cfg, checkpoint=ckpt)
    assert log.resumed_from == 6 and log.losses == ref_log.losses  # the history survives the resume
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    # a finished checkpoint returns at once with its whole loss history, and loads into a fresh block
    finished = train_block(_fresh(), x, y, cfg, checkpoint=ckpt)
    assert finished.resumed_from == cfg.steps and finished.losses == ref_log.losses
    other = _fresh()
    load_block(ckpt, other)
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), other.state_dict().values()))


def test_checkpoint_mismatch_and_corruption(tmp_path):
    x, y = _data()
    ckpt = tmp_path / "b.safetensors"
    train_block(_fresh(), x, y, DistillConfig(steps=2, batch_size=8), checkpoint=ckpt)
    with pytest.raises(DNAError, match="this run has"):
        train_block(_fresh(), x, y, DistillConfig(steps=2, batch_size=8, lr=1e-2), checkpoint=ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt"):
        train_block(_fresh(), x, y, DistillConfig(steps=2, batch_size=8), checkpoint=ckpt)


def test_width_mismatch_needs_ssl_loss():
    x, y = _data()
    y16 = torch.cat([y, y], dim=1)
    with pytest.raises(DNAError, match="ssl"):
        train_block(_fresh(), x, y16, DistillConfig(steps=1, batch_size=8))
    log = train_block(_fresh(), x, y16, DistillConfig(steps=5, batch_size=8, loss="ssl", ssl_dim=16))
    assert len(log.losses) == 5 and all(torch.isfinite(torch.tensor(log.losses)))


def test_parallel_workers_match_sequential(tmp_path):
    x, y = _data(16)
    torch.manual_seed(0)
    # block 1 maps 3x16x16 -> 8x8x8, block 2 maps 8x8x8 -> 12x4x4
    feats = [x, y, torch.randn(16, 12, 4, 4, generator=torch.Generator().manual_seed(3))]
    cfg = DistillConfig(steps=4, batch_size=8)

    def blocks():
        torch.manual_seed(0)
        return [tiny_block(3, 8, 2, "b1"), tiny_block(8, 12, 2, "b2")]

    seq, par = blocks(), blocks()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # workers get cores // workers = 1 thread each; match the reduction order
    try:
        train_blocks(seq, feats, cfg, tmp_path / "seq")
    finally:
        torch.set_num_threads(threads)
    logs = train_blocks(par, feats, cfg, tmp_path / "par", workers=2)
    assert [log.block for log in logs] == [0, 1]
    for a, b in zip(seq, par):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_ssl_block_is_rated_through_its_heads(tmp_path):
    """DNA++: a student narrower/wider than the teacher is scored in the embedding space of its
    projection heads; the checkpoint alone restores them, and feature sharing stays exact."""
    from nasir.dna.distill import load_trained_block
    from nasir.dna.rating import rate_block

    x, y = _data()
    y16 = torch.cat([y, y], dim=1)  # teacher block 16 channels wide, student 8
    ckpt = tmp_path / "b.safetensors"
    block = _fresh()
    log = train_block(block, x, y16, DistillConfig(steps=4, batch_size=8, loss="ssl", ssl_dim=16), checkpoint=ckpt)
    assert log.head is not None and not log.head.training
    with pytest.raises(DNAError, match="projection heads"):
        rate_block(block, x, y16)  # raw features: widths differ
    shared = rate_block(block, x, y16, batch_size=10, head=log.head)
    single = rate_block(block, x, y16, batch_size=10, head=log.head, feature_sharing=False)
    assert shared.scores == single.scores and len(set(shared.scores)) > 1
    # the formula by hand for one path: Eq. 7 on Z = P_t(Y), Z_hat = P_s(student(X))
    path = shared.paths[3]
    with torch.no_grad():
        z, z_hat = log.head.teacher_proj(y16), log.head.student_proj(block(x, path))
        expected = float((z - z_hat).abs().sum()) / (z.numel() * float(z.double().var(unbiased=False).sqrt()))
    assert shared.scores[3] == pytest.approx(expected, rel=1e-5)
    # a fresh process: the rating needs nothing but the checkpoint
    other = _fresh()
    head = load_trained_block(ckpt, other)
    assert head is not None
    assert rate_block(other, x, y16, batch_size=10, head=head).scores == pytest.approx(shared.scores, rel=1e-6)
    # an MSE-trained block has no heads
    mse = tmp_path / "mse.safetensors"
    train_block(_fresh(), x, y, DistillConfig(steps=1, batch_size=8), checkpoint=mse)
    assert load_trained_block(mse, _fresh()) is None


@pytest.mark.parametrize("key, value, message", [
    ("config", [], "config"),
    ("step", -5, "greater than or equal to 0"),
    ("step", 10**12, "at step 1000000000000"),
    ("losses", 7, "valid array"),
    ("losses", [0.5], "with 1 losses"),
    ("optimizer", {"$dict": [[0, 1]]}, "optimizer state does not fit"),
])
def test_damaged_block_checkpoints_are_refused_before_training(tmp_path, key, value, message):
    from nasir.checkpoint import load_checkpoint, save_checkpoint

    x, y = _data()
    cfg = DistillConfig(steps=4, batch_size=8, checkpoint_every=2)
    ckpt = tmp_path / "b.safetensors"
    with pytest.raises(Interrupted):
        train_block(_fresh(), x, y, cfg, checkpoint=ckpt, stop_after=2)
    tensors, meta = load_checkpoint(ckpt)
    save_checkpoint(ckpt, tensors, {**meta, key: value})
    before = ckpt.read_bytes()
    with pytest.raises(DNAError, match=message):
        train_block(_fresh(), x, y, cfg, checkpoint=ckpt)
    assert ckpt.read_bytes() == before
