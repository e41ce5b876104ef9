"""The encoding module of section 4.1: a 2-D feature (frames, dim) -> one vector per utterance.

Conv over time (n-gram features, one bank of kernels per width) -> stacked BiLSTM (padding is never
read: see :func:`bidirectional_lstm`) -> scaled dot-product attention whose query is the LSTM's last hidden state and whose
keys and values are all LSTM outputs (padded frames masked out). Paper eqs. (1)-(2).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F


def length_mask(lengths: torch.Tensor, frames: int, device: torch.device | None = None) -> torch.Tensor:
    """(batch,) lengths -> (batch, frames) bool, True on real frames."""
    return torch.arange(frames, device=device)[None, :] < lengths.to(device)[:, None]


class SequenceEncoder(nn.Module):
    """(batch, frames, input_dim) + lengths (batch,) -> (batch, attention_dim).

    Sizes (section 5.1): wav2vec / Allosaurus use ``conv_channels=64`` kernels of each width in
    ``kernel_sizes=(3, 5)``, a BiLSTM of hidden size 128 and attention size 256; MFCC uses 32 kernels and
    a 2-layer BiLSTM of hidden size 64. The paper's "64 kernels of size 3x3 and 5x5" is read as a 1-D
    convolution over time with 64 kernels of each width, their outputs concatenated (a 2-D kernel over
    the feature axis would not give the n-gram features the text describes).

    The attention scales by ``sqrt(attention_dim)`` (the key size, as in Vaswani et al.); the paper's
    eq. (2) writes sqrt(k) with k the LSTM hidden size, which would only rescale the learnable W_Q.

    ``stats_pooling=True`` (not in the paper; off by default) also appends the masked mean and standard
    deviation over time of the LSTM outputs (+ 4 * lstm_hidden). ``input_stats=True`` (not in the paper;
    off by default) appends the masked mean and standard deviation over time of the input frames and of
    their first differences (+ 4 * input_dim): the utterance statistics a linear model on pooled MFCCs
    uses, handed straight to the tower, which small corpora like EmoDB cannot always learn back through
    the recurrent path. ``frame_stride=k`` (not in the paper; 1 = off) first averages every k consecutive
    frames (the last group of an utterance over its real frames only), so the convolution, the LSTM and the
    attention run over k times fewer steps: the recurrent path is what a CPU spends its time on. The input
    statistics are still taken over the original frames.
    """

    def __init__(self, input_dim: int, conv_channels: int = 64, kernel_sizes: Sequence[int] = (3, 5),
                 lstm_hidden: int = 128, lstm_layers: int = 1, attention_dim: int = 256, dropout: float = 0.0,
                 stats_pooling: bool = False, input_stats: bool = False, frame_stride: int = 1):
        super().__init__()
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel sizes must be odd so that every frame keeps its place, got {tuple(kernel_sizes)}")
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be at least 1, got {frame_stride}")
        self.input_dim = input_dim
        self.frame_stride = frame_stride
        self.stats_pooling = stats_pooling
        self.input_stats = input_stats
        self.output_dim = attention_dim + (4 * lstm_hidden if stats_pooling else 0) + (4 * input_dim if input_stats else 0)
        # 'same' padding with zeros: a frame next to the end of an utterance sees zeros whether or not the
        # batch is padded, as long as padded frames are zero (forward() zeroes them).
        self.convs = nn.ModuleList(nn.Conv1d(input_dim, conv_channels, k, padding=k // 2) for k in kernel_sizes)
        self.lstm = nn.LSTM(conv_channels * len(kernel_sizes), lstm_hidden, num_layers=lstm_layers, batch_first=True,
                            bidirectional=True, dropout=dropout if lstm_layers > 1 else 0.0)
        self.query = nn.Linear(2 * lstm_hidden, attention_dim)
        self.key = nn.Linear(2 * lstm_hidden, attention_dim)
        self.value = nn.Linear(2 * lstm_hidden, attention_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, return_weights: bool = False):
        """``x`` (batch, frames, input_dim), ``lengths`` (batch,) -> (batch, output_dim) [, weights (batch, steps)],
        steps = ceil(frames / frame_stride)."""
        batch, frames, _ = x.shape
        input_mask = length_mask(lengths, frames, x.device)
        x = x * input_mask[..., None]
        inputs = x
        if self.frame_stride > 1:
            x, lengths = average_frames(x, lengths, self.frame_stride)
        mask = length_mask(lengths, x.shape[1], x.device)
        h = torch.cat([torch.relu(conv(x.transpose(1, 2))) for conv in self.convs], dim=1).transpose(1, 2)
        h = self.dropout(h)
        out, last = bidirectional_lstm(self.lstm, h, lengths, mask)  # (batch, frames, 2 * hidden), (batch, 2 * hidden)
        q = self.query(last)[:, None, :]  # (batch, 1, attention_dim)
        k, v = self.key(out), self.value(out)  # (batch, frames, attention_dim)
        scores = (q @ k.transpose(1, 2)).squeeze(1) / math.sqrt(k.shape[-1])  # (batch, frames)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        pooled = (weights[..., None] * v).sum(dim=1)
        if self.stats_pooling:
            pooled = torch.cat([pooled, *_masked_mean_std(out, mask)], dim=-1)
        if self.input_stats:
            # first differences only between two real frames: a pair with a padded frame is masked out
            diff_mask = input_mask[:, 1:] & input_mask[:, :-1]
            diffs = inputs[:, 1:] - inputs[:, :-1] if frames > 1 else inputs[:, :0]
            pooled = torch.cat([pooled, *_masked_mean_std(inputs, input_mask), *_masked_mean_std(diffs, diff_mask)], dim=-1)
        return (pooled, weights) if return_weights else pooled


def average_frames(x: torch.Tensor, lengths: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of every ``stride`` consecutive frames: (batch, frames, dim) with zeros on padded frames + lengths
    (batch,) -> (batch, ceil(frames / stride), dim), zero on padded steps, + lengths ceil(lengths / stride). An
    utterance's last step averages only its real frames, so padding never changes a value."""
    batch, frames, dim = x.shape
    steps = -(-frames // stride)
    x = F.pad(x, (0, 0, 0, steps * stride - frames))
    sums = x.view(batch, steps, stride, dim).sum(2)
    starts = torch.arange(steps, device=x.device)[None, :] * stride
    counts = (lengths.to(x.device)[:, None] - starts).clamp(0, stride)
    return sums / counts.clamp(min=1)[..., None].to(x.dtype), torch.div(lengths + stride - 1, stride, rounding_mode="floor")


def bidirectional_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor):
    """Run a (stacked, bidirectional, batch_first) ``lstm`` over padded ``x`` (batch, frames, input) as if packed.

    Returns the outputs (batch, frames, 2 * hidden), zero on padded frames, and the top layer's final states
    (batch, 2 * hidden): the forward direction's output at the last real frame, the backward direction's at
    the first. Same values as ``pack_padded_sequence`` -> ``lstm`` -> ``pad_packed_sequence`` with the same
    parameters, but each direction runs over plain padded tensors: the forward one reads padding only after
    the real frames, the backward one gets each utterance reversed within its own length. Why: the backward
    pass of a packed LSTM on the CPU grows much faster than linearly with the longest utterance in torch 2.13
    (measured for 112 utterances, 2 layers, hidden 64: 4.6 s at 200 frames, 30 s at 400, 242 s at 800,
    against 0.5, 1.1 and 2.5 s for padded input), which made EMOVO's up-to-14 s utterances untrainable.
    Inter-layer dropout is applied like nn.LSTM's (on every layer's output but the last, in training).
    """
    batch, frames, _ = x.shape
    lengths = lengths.to(x.device)
    steps = torch.arange(frames, device=x.device)[None, :]
    reverse = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)  # an involution

    def flip(t: torch.Tensor) -> torch.Tensor:
        return t.gather(1, reverse[..., None].expand(-1, -1, t.shape[-1]))

    def run(inputs: torch.Tensor, suffix: str) -> torch.Tensor:
        weights = [getattr(lstm, f"{name}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        zeros = inputs.new_zeros(1, batch, lstm.hidden_size)
        return torch._VF.lstm(inputs, (zeros, zeros), weights, True, 1, 0.0, lstm.training, False, True)[0]

    inputs = x
    for layer in range(lstm.num_layers):
        forward = run(inputs, f"_l{layer}")
        backward = flip(run(flip(inputs), f"_l{layer}_reverse"))
        out = torch.cat([forward, backward], dim=-1) * mask[..., None]
        if layer < lstm.num_layers - 1 and lstm.dropout > 0:
            out = F.dropout(out, lstm.dropout, lstm.training)
        inputs = out
    rows = torch.arange(batch, device=x.device)
    last = torch.cat([forward[rows, lengths - 1], backward[:, 0]], dim=-1)
    return out, last


def _masked_mean_std(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, frames, dim) + (batch, frames) bool -> mean and std over the real frames, (batch, dim) each.

    A row without real frames (a one-frame utterance has no first difference) gets zeros.
    """
    m = mask[..., None].to(x.dtype)
    n = m.sum(1).clamp(min=1.0)
    mean = (x * m).sum(1) / n
    std = ((((x - mean[:, None]) * m) ** 2).sum(1) / n + 1e-6).sqrt()
    return mean, std
