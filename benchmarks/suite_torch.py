"""PyTorch (CPU, eager) versions of the benchmark models, two styles each:

- ``cell``: the model's own equations in a Python loop over time steps, written as a PyTorch user
  writes them (per-step gates, outputs stacked and projected after the loop, ``loss.backward()``,
  the same optimizer done by hand). Same maths as the hand NumPy reference, checked against it.
- ``nn``: the library's fused layers (``nn.Embedding``, ``nn.RNN``/``nn.GRU``, ``nn.Linear``) and a
  ``torch.optim`` optimizer. Same sizes and cost, but PyTorch's own cell equations (sigmoid gates,
  reset applied after the recurrent product, an input projection for the RNN), so it is timed
  only, not compared number for number.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from suite_configs import Config


def _hsig(a: torch.Tensor) -> torch.Tensor:
    return torch.clamp(a * 0.2 + 0.5, 0.0, 1.0)  # Theano's hard_sigmoid


class TorchCell:
    """The model's equations by hand; parameters are leaf tensors with ``requires_grad``."""

    label = "torch cell loop"

    def __init__(self, cfg: Config, params: dict[str, np.ndarray]):
        self.cfg = cfg
        self.p = {k: torch.tensor(v) for k, v in params.items()}
        self.names = [k for k in params if not (k.startswith("m") and k[1:] in params)]
        for k in self.names:
            self.p[k].requires_grad_(True)

    def params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy() for k, v in self.p.items()}

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, grad_loss = getattr(self, "_loss_" + self.cfg.kind)(x, torch.from_numpy(y).long())
        grad_loss.backward()
        with torch.no_grad():
            lr = self.cfg.lr
            for k in self.names:
                p = self.p[k]
                g = p.grad
                if self.cfg.optimizer == "sgd":
                    p.sub_(g, alpha=lr)
                else:  # GRUTheano's RMSProp: new cache, eps inside the sqrt
                    d = self.cfg.decay
                    m = self.p["m" + k]
                    m.mul_(d).addcmul_(g, g, value=1 - d)
                    p.addcdiv_(g, (m + 1e-6).sqrt_(), value=-lr)
                p.grad = None
        return float(loss)

    def _loss_rnn(self, x, y):
        U, V, W = self.p["U"], self.p["V"], self.p["W"]
        n, k = len(x), self.cfg.truncate
        lo = n - k if 0 < k < n else 0
        s = torch.zeros(W.shape[0], dtype=W.dtype)
        states = []
        xs = x.tolist()
        with torch.no_grad():  # Theano's truncate_gradient: steps before the last k are constants
            for t in range(lo):
                s = torch.tanh(U[:, xs[t]] + W @ s)
                states.append(s)
            early = F.cross_entropy(torch.stack(states) @ V.T, y[:lo], reduction="sum") if lo else 0
        late = []
        for t in range(lo, n):
            s = torch.tanh(U[:, xs[t]] + W @ s)
            late.append(s)
        loss = F.cross_entropy(torch.stack(late) @ V.T, y[lo:], reduction="sum")
        return loss.detach() + early, loss

    def _loss_gru2(self, x, y):
        p = self.p
        E, U, W, b, V, c = p["E"], p["U"], p["W"], p["b"], p["V"], p["c"]
        s1 = s2 = torch.zeros(E.shape[0], dtype=E.dtype)
        outs = []
        for xt in x.tolist():
            x_e = E[:, xt]
            z1 = _hsig(U[0] @ x_e + W[0] @ s1 + b[0])
            r1 = _hsig(U[1] @ x_e + W[1] @ s1 + b[1])
            c1 = torch.tanh(U[2] @ x_e + W[2] @ (s1 * r1) + b[2])
            s1 = (1 - z1) * c1 + z1 * s1
            z2 = _hsig(U[3] @ s1 + W[3] @ s2 + b[3])
            r2 = _hsig(U[4] @ s1 + W[4] @ s2 + b[4])
            c2 = torch.tanh(U[5] @ s1 + W[5] @ (s2 * r2) + b[5])
            s2 = (1 - z2) * c2 + z2 * s2
            outs.append(s2)
        loss = F.cross_entropy(torch.stack(outs) @ V.T + c, y, reduction="sum")
        return loss.detach(), loss

    def _loss_bgru(self, x, y):
        p = self.p
        Emb, U, W, b, V, c = p["Emb"], p["U"], p["W"], p["b"], p["V"], p["c"]
        xe = Emb[torch.from_numpy(x).long()]
        h = torch.zeros(x.shape[1], W.shape[1], dtype=W.dtype)
        outs = []
        for t in range(x.shape[0]):
            z = torch.sigmoid(xe[t] @ U[0] + h @ W[0] + b[0])
            r = torch.sigmoid(xe[t] @ U[1] + h @ W[1] + b[1])
            hh = torch.tanh(xe[t] @ U[2] + (r * h) @ W[2] + b[2])
            h = (1 - z) * hh + z * h
            outs.append(h)
        hs = torch.stack(outs).reshape(-1, W.shape[1])
        loss = F.cross_entropy(hs @ V + c, y.reshape(-1))
        return loss.detach(), loss


class TorchNN:
    """``nn.Embedding`` + ``nn.RNN``/``nn.GRU`` + ``nn.Linear`` and a ``torch.optim`` optimizer."""

    label = "torch nn.*"

    def __init__(self, cfg: Config, params: dict[str, np.ndarray]):
        self.cfg = cfg
        dtype = torch.float64 if next(iter(params.values())).dtype == np.float64 else torch.float32
        torch.manual_seed(0)
        H, Vc = cfg.hidden, cfg.vocab
        if cfg.kind == "rnn":
            self.emb = torch.nn.Embedding(Vc, H)
            self.rnn = torch.nn.RNN(H, H, bias=False)
            self.out = torch.nn.Linear(H, Vc, bias=False)
        elif cfg.kind == "gru2":
            self.emb = torch.nn.Embedding(Vc, H)
            self.rnn = torch.nn.GRU(H, H, num_layers=2)
            self.out = torch.nn.Linear(H, Vc)
        else:
            self.emb = torch.nn.Embedding(Vc, cfg.emb)
            self.rnn = torch.nn.GRU(cfg.emb, H)
            self.out = torch.nn.Linear(H, Vc)
        self.modules = [m.to(dtype) for m in (self.emb, self.rnn, self.out)]
        ps = [p for m in self.modules for p in m.parameters()]
        if cfg.optimizer == "sgd":
            self.opt = torch.optim.SGD(ps, lr=cfg.lr)
        else:  # note: torch puts eps outside the sqrt
            self.opt = torch.optim.RMSprop(ps, lr=cfg.lr, alpha=cfg.decay, eps=1e-6)

    def params(self) -> dict[str, np.ndarray]:
        return {n: p.detach().numpy() for m in self.modules for n, p in m.named_parameters()}

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        xt = torch.from_numpy(x).long()
        yt = torch.from_numpy(y).long()
        n, k = len(x), self.cfg.truncate
        lo = n - k if 0 < k < n else 0
        seq = self.emb(xt)
        if x.ndim == 1:
            seq = seq.unsqueeze(1)  # [steps, batch=1, features]
        h0 = None
        early = 0.0
        if lo:  # truncate_gradient: run the early steps without building a graph
            with torch.no_grad():
                hs, h0 = self.rnn(seq[:lo])
                early = F.cross_entropy(self.out(hs.reshape(lo, -1)), yt[:lo], reduction="sum")
        hs, _ = self.rnn(seq[lo:], h0)
        logits = self.out(hs.reshape(-1, self.cfg.hidden))
        if self.cfg.kind == "bgru":
            loss = F.cross_entropy(logits, yt.reshape(-1))
        else:
            loss = F.cross_entropy(logits, yt[lo:], reduction="sum")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach() + early)


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
