"""MiniGPT: a small decoder-only transformer, the model that Lab 00 adapts with LoRA.

This file is complete and is not an exercise: read it to know which layers your LoRA code will wrap.
It follows the shape of nanoGPT's model.py, with one change that matters for the lab: attention
has four separate projections (q_proj, k_proj, v_proj, o_proj) instead of one fused c_attn, so that
each can be targeted by name.

Module names, as `model.named_modules()` reports them:

    tok_emb, pos_emb                        token and position embeddings
    blocks.{i}.ln_1, blocks.{i}.ln_2        layer norms
    blocks.{i}.attn.{q,k,v,o}_proj          nn.Linear(n_embd, n_embd)
    blocks.{i}.mlp.fc1                      nn.Linear(n_embd, 4 * n_embd)
    blocks.{i}.mlp.fc2                      nn.Linear(4 * n_embd, n_embd)
    ln_f, lm_head                           final norm, nn.Linear(n_embd, vocab_size)

Shapes: B is the batch size, T the sequence length (T <= block_size), C = n_embd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MiniGPTConfig:
    """Hyperparameters of MiniGPT. The defaults are the configuration Lab 00 uses."""

    vocab_size: int = 128  # the 7-bit ASCII characters: one token per character
    block_size: int = 32  # the longest context the position embedding covers
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    bias: bool = True  # bias in the Linear layers and layer norms

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"MiniGPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"MiniGPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MiniGPTConfig.dropout must be in [0, 1), got {self.dropout!r}")


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t only sees positions <= t."""

    def __init__(self, config: MiniGPTConfig) -> None:
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.q_proj = nn.Linear(C, C, bias=config.bias)
        self.k_proj = nn.Linear(C, C, bias=config.bias)
        self.v_proj = nn.Linear(C, C, bias=config.bias)
        self.o_proj = nn.Linear(C, C, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C)."""
        B, T, C = x.shape
        # (B, T, C) -> (B, n_head, T, head_size): each head attends independently.
        q, k, v = (
            proj(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-join the heads
        out: torch.Tensor = self.resid_dropout(self.o_proj(y))
        return out


class MLP(nn.Module):
    """The position-wise feed-forward network: expand 4x, GELU, project back."""

    def __init__(self, config: MiniGPTConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.fc2 = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C)."""
        out: torch.Tensor = self.dropout(self.fc2(F.gelu(self.fc1(x))))
        return out


class Block(nn.Module):
    """One transformer block, pre-norm: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: MiniGPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C)."""
        x = x + self.attn(self.ln_1(x))
        out: torch.Tensor = x + self.mlp(self.ln_2(x))
        return out


class MiniGPT(nn.Module):
    """A GPT language model small enough to train on a laptop CPU in seconds."""

    def __init__(self, config: MiniGPTConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else MiniGPTConfig()
        cfg = self.config
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        # Unlike nanoGPT, lm_head is not tied to tok_emb: every parameter then has exactly one
        # name, which keeps parameter counts and adapter state dicts easy to reason about.
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)

        self.apply(self._init_weights)
        # GPT-2's scaled init: the projections that write into the residual stream get a smaller
        # std, so the residual does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "fc2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx: (B, T) token ids; targets: (B, T) or None.

        Returns (logits, loss): logits (B, T, vocab_size); loss the mean cross-entropy of the
        next-token predictions against targets, or None when no targets are given.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"idx has {T} positions but block_size is {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
