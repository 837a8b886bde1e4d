"""Second-order DARTS: the finite-difference hypergradient (Eq. 7-8) against autograd through an
explicit unrolled weight step, in float64 on a tiny smooth space."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from nasir.frontends.elaborate import parse_string
from nasir.lowering import lower
from nasir.search.darts import SearchConfig, SupernetSearch

#: smooth activations (sigmoid, no BatchNorm): the finite difference meets the exact value closely
SMOOTH = """network smooth() {
  input x: [3, 8, 8]
  y = one_of { a: conv(4, 3) -> sigmoid  b: conv(4, 1) -> sigmoid  c: avg_pool(3) -> conv(4, 1) }(x)
  z = one_of { a: conv(4, 3) -> sigmoid  b: identity }(y)
  out = (global_avg_pool -> linear(10))(z)
  output out
}"""


def _batch(seed: int, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (n,), generator=g)


def _exact_hypergradient(search: SupernetSearch, train, val) -> list[torch.Tensor]:
    """d L_val(w - xi (mu m + grad_w L_train(w) + wd w), alpha) / d alpha by autograd (create_graph)."""
    model, cfg = search.model, search.config
    names = {id(p): n for n, p in model.named_parameters()}
    weights, alphas = model.weight_parameters(), model.arch_parameters()
    xi = search.w_opt.param_groups[0]["lr"]
    grads = torch.autograd.grad(F.cross_entropy(model(train[0]), train[1]), weights, create_graph=True)
    unrolled = {}
    for w, g in zip(weights, grads):
        m = search.w_opt.state[w]["momentum_buffer"]
        unrolled[names[id(w)]] = w - xi * (cfg.momentum * m + g + cfg.weight_decay * w)
    loss = F.cross_entropy(functional_call(model, unrolled, (val[0],)), val[1])
    return list(torch.autograd.grad(loss, alphas))


def test_the_finite_difference_hypergradient_is_the_gradient_through_the_unrolled_step():
    model = lower(parse_string(SMOOTH), "supernet", seed=0).double()
    with torch.no_grad():
        for p in model.arch_parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    search = SupernetSearch(model, SearchConfig(order=2, lr=0.1, weight_decay=3e-4, grad_clip=0))
    search.step(_batch(0), _batch(1))  # momentum buffers now exist, as in a run
    train, val = _batch(2), _batch(3)
    before = [w.detach().clone() for w in model.weight_parameters()]
    exact = _exact_hypergradient(search, train, val)
    for p in model.arch_parameters():
        p.grad = None
    search._unrolled_arch_step(train, val)
    got = [p.grad for p in model.arch_parameters()]
    for g, e in zip(got, exact):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-8)
    for w, w0 in zip(model.weight_parameters(), before):  # the weights are back, bit for bit
        assert torch.equal(w, w0)
    first_order = torch.autograd.grad(F.cross_entropy(model(val[0]), val[1]), model.arch_parameters())
    assert not all(torch.allclose(f, e, rtol=1e-3) for f, e in zip(first_order, exact))  # the second term matters


@pytest.mark.parametrize("method", ["gdas", "spos"])
def test_second_order_is_for_darts_methods(method):
    from nasir.diagnostics import NasirError

    model = lower(parse_string(SMOOTH), "sampled", seed=0)
    with pytest.raises(NasirError, match="second order is a DARTS method"):
        SupernetSearch(model, SearchConfig(method=method, order=2))


def test_a_second_order_search_resumes_bit_for_bit(tmp_path):
    data = _batch(10, 16), _batch(11, 16)
    data = tuple((x.float(), y) for x, y in data)

    def run(steps, checkpoint=None, resume=False):
        model = lower(parse_string(SMOOTH), "supernet", seed=0)
        SupernetSearch(model, SearchConfig(order=2, steps=steps, batch_size=4, save_every=1)).run(
            *data, checkpoint=checkpoint, resume=resume, progress=False)
        return model

    straight = run(3)
    ck = tmp_path / "ck.safetensors"
    run(2, checkpoint=ck)
    resumed = run(3, checkpoint=ck, resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    first = lower(parse_string(SMOOTH), "supernet", seed=0)
    SupernetSearch(first, SearchConfig(order=1, steps=3, batch_size=4)).run(*data, progress=False)
    assert not torch.equal(first.arch_parameters()[0], straight.arch_parameters()[0])
