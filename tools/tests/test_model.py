"""Tests of MiniGPT (src/minituner/model.py): the model students adapt must itself be right."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from minituner.model import MiniGPT, MiniGPTConfig

TINY = MiniGPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16)


def test_default_config_is_the_lab_config() -> None:
    cfg = MiniGPTConfig()
    assert (cfg.vocab_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd) == (128, 32, 2, 4, 64)


def test_layer_names_and_shapes() -> None:
    model = MiniGPT(TINY)
    linears = {n: (m.in_features, m.out_features) for n, m in model.named_modules()
               if isinstance(m, nn.Linear)}
    C = TINY.n_embd
    expected = {"lm_head": (C, TINY.vocab_size)}
    for i in range(TINY.n_layer):
        expected |= {f"blocks.{i}.attn.{p}_proj": (C, C) for p in "qkvo"}
        expected |= {f"blocks.{i}.mlp.fc1": (C, 4 * C), f"blocks.{i}.mlp.fc2": (4 * C, C)}
    assert linears == expected


def test_forward_shapes_and_loss(seed: int) -> None:
    model = MiniGPT(TINY)
    idx = torch.randint(0, TINY.vocab_size, (3, 5))
    logits, loss = model(idx)
    assert logits.shape == (3, 5, TINY.vocab_size) and loss is None
    _, loss = model(idx, targets=idx)
    assert loss is not None and loss.shape == () and torch.isfinite(loss)


def test_causality(seed: int) -> None:
    model = MiniGPT(TINY).eval()
    idx = torch.randint(0, TINY.vocab_size, (2, TINY.block_size))
    changed = idx.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % TINY.vocab_size  # change only positions 5 and later
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    assert torch.equal(a[:, :5], b[:, :5]), "a later token changed an earlier position's logits"
    assert not torch.equal(a[:, 5:], b[:, 5:])


def test_loss_falls_when_training(seed: int) -> None:
    model = MiniGPT(TINY)
    idx = torch.randint(0, TINY.vocab_size, (4, TINY.block_size))
    inputs, targets = idx[:, :-1], idx[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        _, loss = model(inputs, targets)
        assert loss is not None
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], f"loss did not fall: {losses[0]:.3f} -> {losses[-1]:.3f}"


def test_rejects_bad_input() -> None:
    model = MiniGPT(TINY)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, TINY.block_size + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="idx"):
        model(torch.zeros(TINY.block_size, dtype=torch.long))
    with pytest.raises(ValueError, match="n_embd"):
        MiniGPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="dropout"):
        MiniGPTConfig(dropout=1.0)
    with pytest.raises(ValueError, match="n_layer"):
        MiniGPTConfig(n_layer=0)
