"""Fusion heads: three ways to combine a text encoding and an image encoding into class logits.

All heads take the same :class:`FusionInputs` and return logits (B, num_classes), so the training
loop, checkpoints and prediction never branch on the mode:

- ``early``: concatenate the pooled text and image vectors → MLP. Cheap; interactions between the
  modalities are left to the MLP's hidden layer.
- ``late``: one MLP per modality, logits combined with learned per-class weights. Each head sees one
  modality only, so it cannot answer questions whose answer depends on both at once ("is there a red
  shape?") — the baseline the others should beat.
- ``attention``: text tokens (queries) attend over the image's feature grid (keys/values), then a head
  on the attended tokens plus the pooled text. The question decides where to look.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MODES = ("early", "late", "attention")


@dataclass
class FusionInputs:
    """Encoder outputs for a batch: text tokens (B, L, Dt) with mask (B, L); image grid (B, G, Di)."""

    text_tokens: torch.Tensor
    text_mask: torch.Tensor
    image_grid: torch.Tensor

    def text_pooled(self) -> torch.Tensor:
        weights = self.text_mask.unsqueeze(-1).to(self.text_tokens.dtype)
        return (self.text_tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def image_pooled(self) -> torch.Tensor:
        return self.image_grid.mean(1)


def mlp(inp: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(inp), nn.Dropout(dropout), nn.Linear(inp, hidden), nn.GELU(),
                         nn.Dropout(dropout), nn.Linear(hidden, out))


class FusionHead(nn.Module):
    """Interface: `forward(FusionInputs) -> logits (B, num_classes)`."""

    mode: str = ""

    def __init__(self, text_dim: int, image_dim: int, num_classes: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.text_dim, self.image_dim, self.num_classes = text_dim, image_dim, num_classes

    def forward(self, x: FusionInputs) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class EarlyFusion(FusionHead):
    mode = "early"

    def __init__(self, text_dim: int, image_dim: int, num_classes: int, hidden: int = 512, dropout: float = 0.1,
                 **_: object) -> None:
        super().__init__(text_dim, image_dim, num_classes, hidden, dropout)
        self.text_norm, self.image_norm = nn.LayerNorm(text_dim), nn.LayerNorm(image_dim)
        self.head = mlp(text_dim + image_dim, hidden, num_classes, dropout)

    def forward(self, x: FusionInputs) -> torch.Tensor:
        fused = torch.cat([self.text_norm(x.text_pooled()), self.image_norm(x.image_pooled())], dim=-1)
        return self.head(fused)


class LateFusion(FusionHead):
    mode = "late"

    def __init__(self, text_dim: int, image_dim: int, num_classes: int, hidden: int = 512, dropout: float = 0.1,
                 **_: object) -> None:
        super().__init__(text_dim, image_dim, num_classes, hidden, dropout)
        self.text_head = mlp(text_dim, hidden, num_classes, dropout)
        self.image_head = mlp(image_dim, hidden, num_classes, dropout)
        # Learned per-class weight of each modality's logits (softmax over the two), starting equal.
        self.mix = nn.Parameter(torch.zeros(2, num_classes))

    def forward(self, x: FusionInputs) -> torch.Tensor:
        weights = torch.softmax(self.mix, dim=0)
        return 2 * (weights[0] * self.text_head(x.text_pooled()) + weights[1] * self.image_head(x.image_pooled()))


class AttentionFusion(FusionHead):
    mode = "attention"

    def __init__(self, text_dim: int, image_dim: int, num_classes: int, hidden: int = 512, dropout: float = 0.1,
                 attn_dim: int = 256, heads: int = 4, max_cells: int = 64, **_: object) -> None:
        super().__init__(text_dim, image_dim, num_classes, hidden, dropout)
        self.query = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, attn_dim))
        self.key = nn.Sequential(nn.LayerNorm(image_dim), nn.Linear(image_dim, attn_dim))
        self.cells = nn.Parameter(torch.zeros(1, max_cells, attn_dim))  # where each grid cell is
        nn.init.normal_(self.cells, std=0.02)
        self.attend = nn.MultiheadAttention(attn_dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(attn_dim)
        self.head = mlp(2 * attn_dim + image_dim, hidden, num_classes, dropout)

    def forward(self, x: FusionInputs) -> torch.Tensor:
        if x.image_grid.shape[1] > self.cells.shape[1]:
            raise ValueError(f"image grid has {x.image_grid.shape[1]} cells; this head takes ≤ {self.cells.shape[1]}")
        q = self.query(x.text_tokens)
        kv = self.key(x.image_grid) + self.cells[:, : x.image_grid.shape[1]]
        attended, _ = self.attend(q, kv, kv, need_weights=False)
        tokens = self.norm(q + attended)
        weights = x.text_mask.unsqueeze(-1).to(tokens.dtype)
        looked = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        question = (q * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(torch.cat([looked, question, x.image_pooled()], dim=-1))


HEADS: dict[str, type[FusionHead]] = {"early": EarlyFusion, "late": LateFusion, "attention": AttentionFusion}


def build_head(mode: str, text_dim: int, image_dim: int, num_classes: int, **options: object) -> FusionHead:
    """The head for `mode` (one of MODES); `options` are hidden, dropout, attn_dim, heads."""
    if mode not in HEADS:
        from mmagent.errors import ConfigError

        raise ConfigError(f"fusion.mode must be one of {', '.join(MODES)}; got {mode!r}.")
    return HEADS[mode](text_dim, image_dim, num_classes, **options)
