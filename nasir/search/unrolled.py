"""Second-order DARTS: the architecture gradient through one unrolled weight step (Liu et al.,
DARTS, ICLR 2019, Eq. 6-8).

The architecture is trained on the validation loss at the weights one training step ahead,

    w' = w - xi * grad_w L_train(w, alpha)                                        (Eq. 6)
    grad_alpha L_val(w', alpha) - xi * grad2_{alpha,w} L_train(w, alpha) . v,   v = grad_w' L_val(w', alpha)   (Eq. 7)

and the Hessian-vector product of the second term is a central finite difference (Eq. 8):

    grad2_{alpha,w} L_train(w, alpha) . v ~ (grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)) / (2 eps),
    w+- = w +- eps v,   eps = 0.01 / ||v||.

As in the reference ``architect.py``, the unrolled step is the step the weight optimizer (SGD) is
about to take, momentum and weight decay included, with ``xi`` its current learning rate, and
gradient clipping left out. The weights are moved in place and copied back exactly afterwards, so
the only lasting effect is on the architecture gradients (and on BatchNorm running statistics, which
see the extra forward passes, as in the reference).

With many processes (``nasir.distributed``) each loss is this process's share of the batch, and
``average`` makes every gradient the mean over the processes as soon as it is computed, so the
virtual step, ``v``, its norm and the finite difference are those of the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

#: The finite-difference step is this long in weight space (the reference's ``r``).
FD_RADIUS = 0.01


def unrolled_arch_gradients(weights: Sequence[nn.Parameter], alphas: Sequence[nn.Parameter],
                            train_loss: Callable[[], torch.Tensor], val_loss: Callable[[], torch.Tensor],
                            xi: float, weight_decay: float, momentum: float = 0.0,
                            buffers: Sequence[torch.Tensor | None] | None = None,
                            nesterov: bool = False,
                            average: Callable[[Sequence[torch.Tensor]], None] | None = None) -> list[torch.Tensor]:
    """``d L_val(w'(alpha), alpha) / d alpha`` by Eq. 7-8 (see the module docstring).

    ``train_loss()`` and ``val_loss()`` compute the losses of the model at its current weights (any
    extra term of the architecture objective belongs in ``val_loss``); ``buffers`` are the SGD
    momentum buffers of ``weights`` (None where the optimizer has none yet); ``average`` replaces
    gradients in place by their mean over the processes of a distributed run.
    """
    def grads(loss: torch.Tensor, params: Sequence[nn.Parameter]) -> list[torch.Tensor]:
        out = _grads(loss, params)
        if average is not None:
            average(out)
        return out

    weights, alphas = list(weights), list(alphas)
    saved = [w.detach().clone() for w in weights]
    step = _sgd_step(weights, grads(train_loss(), weights), weight_decay, momentum,
                     buffers or [None] * len(weights), nesterov)
    with torch.no_grad():
        for w, d in zip(weights, step):
            w.sub_(xi * d)
    grads_val = grads(val_loss(), [*alphas, *weights])
    d_alpha, v = grads_val[:len(alphas)], grads_val[len(alphas):]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in v]))
    if float(norm) == 0.0:  # the validation loss does not depend on the weights: no second-order term
        _restore(weights, saved)
        return d_alpha
    eps = FD_RADIUS / norm
    plus = _arch_grads_at(weights, saved, v, eps, alphas, train_loss, grads)
    minus = _arch_grads_at(weights, saved, v, -eps, alphas, train_loss, grads)
    _restore(weights, saved)
    return [da - xi * (p - m) / (2 * eps) for da, p, m in zip(d_alpha, plus, minus)]


def _grads(loss: torch.Tensor, params: Sequence[nn.Parameter]) -> list[torch.Tensor]:
    """``d loss / d params``, zeros for parameters the loss does not reach (a zero candidate's path)."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _sgd_step(weights: Sequence[nn.Parameter], grads: Sequence[torch.Tensor], weight_decay: float, momentum: float,
              buffers: Sequence[torch.Tensor | None], nesterov: bool) -> list[torch.Tensor]:
    """The update direction ``torch.optim.SGD`` takes next (its learning rate aside)."""
    out = []
    with torch.no_grad():
        for w, g, buf in zip(weights, grads, buffers):
            d = g + weight_decay * w
            new_buf = d if buf is None else momentum * buf + d
            out.append(d + momentum * new_buf if nesterov else new_buf)
    return out


def _arch_grads_at(weights: Sequence[nn.Parameter], saved: Sequence[torch.Tensor], v: Sequence[torch.Tensor],
                   eps: torch.Tensor, alphas: Sequence[nn.Parameter], train_loss: Callable[[], torch.Tensor],
                   grads: Callable[[torch.Tensor, Sequence[nn.Parameter]], list[torch.Tensor]]) -> list[torch.Tensor]:
    """``grad_alpha L_train`` at ``w + eps v`` (by ``grads``)."""
    with torch.no_grad():
        for w, w0, d in zip(weights, saved, v):
            w.copy_(w0 + eps * d)
    return grads(train_loss(), alphas)


def _restore(weights: Sequence[nn.Parameter], saved: Sequence[torch.Tensor]) -> None:
    with torch.no_grad():
        for w, w0 in zip(weights, saved):
            w.copy_(w0)
