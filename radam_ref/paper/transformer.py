"""A small post-LayerNorm Transformer language model in plain torch.

The architecture of the paper's NMT runs (fairseq's ``transformer``, App. B.3: Vaswani
et al., 2017) at a size two CPU cores can train: a decoder-only stack with causal
self-attention, each sub-layer wrapped as in the original Transformer,

    h ← LayerNorm(h + SelfAttention(h)),    h ← LayerNorm(h + FFN(h))      (post-LN)

— the placement whose need for warmup the paper studies (pre-LN stacks train without
it; Xiong et al., 2020).  As in fairseq: token embeddings drawn from N(0, 1/d) and
multiplied by √d, sinusoidal positions, ReLU feed-forward of width 4d, and the output
projection tied to the token embedding.  Layers are ``torch.nn.TransformerEncoderLayer``
with ``norm_first=False`` and a causal mask.
"""

from __future__ import annotations

import math

import torch

__all__ = ["PostLNLanguageModel", "sinusoidal_positions"]


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """(length, width) sinusoidal position encodings of Vaswani et al. (2017), §3.5:
    PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))."""
    position = torch.arange(length, dtype=torch.float64)[:, None]
    rate = torch.exp(-math.log(10000.0) * torch.arange(0, width, 2, dtype=torch.float64) / width)
    table = torch.zeros(length, width, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: width // 2])
    return table.to(torch.float32)


class PostLNLanguageModel(torch.nn.Module):
    """Causal post-LN Transformer over a character vocabulary.

    Args:
        vocab_size: number of token ids.
        width: model width d (divisible by ``heads`` and even).
        layers: number of Transformer layers.
        heads: attention heads.
        context: longest input sequence.
        dropout: dropout probability inside the layers.

    Raises:
        ValueError: naming the bad argument and its value.
    """

    def __init__(self, vocab_size: int, *, width: int, layers: int, heads: int, context: int,
                 dropout: float = 0.0):
        super().__init__()
        for label, value in (("vocab_size", vocab_size), ("width", width), ("layers", layers),
                             ("heads", heads), ("context", context)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if width % heads or width % 2:
            raise ValueError(f"width must be even and divisible by heads={heads}, got {width!r}")
        if not (0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.width = width
        self.context = context
        self.embed = torch.nn.Embedding(vocab_size, width)
        torch.nn.init.normal_(self.embed.weight, mean=0.0, std=width ** -0.5)
        self.register_buffer("positions", sinusoidal_positions(context, width), persistent=False)
        self.layers = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=dropout,
                                             activation="relu", batch_first=True, norm_first=False)
            for _ in range(layers)
        )
        self.register_buffer("causal_mask", torch.nn.Transformer.generate_square_subsequent_mask(context),
                             persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (batch, length, vocab) for next-token prediction from ``tokens`` (batch, length)."""
        length = tokens.shape[1]
        if length > self.context:
            raise ValueError(f"tokens must have at most context={self.context} columns, got {length}")
        h = self.embed(tokens) * math.sqrt(self.width) + self.positions[:length]
        mask = self.causal_mask[:length, :length]
        for layer in self.layers:
            h = layer(h, src_mask=mask, is_causal=True)
        return h @ self.embed.weight.t()  # tied output projection
