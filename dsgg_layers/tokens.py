"""Extra tokens on one axis of a pair-track grid: prepend them (mask updated), split them off.

RS-Net's spatial context token joins the pairs of each frame and its temporal context token the
frames of a video (*RS-Net: Context-Aware Relation Scoring for Dynamic Scene Graph Generation*,
arXiv:2511.08651, Sec. 3.3; [`dsgg_layers.scoring`][dsgg_layers.scoring]); DETR-style class tokens,
TR²'s message token and set-prediction queries are the same operation. The axis is named in the
coordinates of the mask ``(..., N)``: on a grid ``x (B, T, P, D)`` with ``mask (B, T, P)``,
``dim=-1`` adds tokens to the pairs of each frame and ``dim=-2`` to the frames of each pair track.

A token is valid where its group (the slice along ``dim``) has any valid entry, unless
``token_mask`` says otherwise: a padded frame gets no frame token, so padding stays padding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dsgg_layers._checks import check_device, check_int, check_positive, check_tensor
from dsgg_layers.rows import MaskOrRows, split_mask

__all__ = ["LearnableTokens", "prepend_tokens", "split_tokens"]


def _axis(dim: int, mask_dims: int, name: str = "dim") -> int:
    check_int(dim, name)
    if not -mask_dims <= dim < mask_dims:
        raise ValueError(
            f"{name}: expected an axis of the mask (-{mask_dims}..{mask_dims - 1}), got {dim}"
        )
    return dim % mask_dims


def prepend_tokens(
    x: Tensor,
    mask: Tensor,
    tokens: Tensor,
    *,
    dim: int = -1,
    token_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Put ``K`` tokens in front of axis ``dim`` of every group, and extend the mask.

    Args:
        x: the grid.
        mask: ``True`` where an entry is valid.
        tokens: ``(K, D)`` the same tokens for every group, or one set per group, broadcastable
            to ``x`` with ``K`` at ``dim``.
        dim: the mask axis that gets the tokens.
        token_mask: where the tokens are valid, broadcastable to ``mask`` with ``dim`` removed
            (default: the groups that have any valid entry).

    Returns:
        ``(x, mask)`` with ``K`` more entries along ``dim``; the tokens come first.

    Shape:
        - x: ``(..., N, D)`` (``N`` is the axis ``dim`` of the mask, any of them)
        - mask: ``x.shape[:-1]``
        - tokens: ``(K, D)``
        - output: ``x`` and ``mask`` with ``N + K`` along ``dim``

    Raises:
        TypeError: ``mask`` is not bool, or an input is not a tensor.
        ValueError: shapes disagree, or ``dim`` is not an axis of the mask.

    Examples:
        >>> x, mask = torch.randn(2, 3, 4, 8), torch.rand(2, 3, 4) > 0.5   # (B, T, P, D)
        >>> mask[0, 1] = False                                            # a frame with no pair
        >>> y, m = prepend_tokens(x, mask, torch.randn(1, 8), dim=-1)     # a token a frame
        >>> y.shape, m.shape, bool(m[0, 1, 0])
        (torch.Size([2, 3, 5, 8]), torch.Size([2, 3, 5]), False)
    """
    dims: dict[str, tuple[int, str]] = {}  # binds the device: every input on x's
    check_tensor(x, "x", ("...", "D"), dims=dims, dtype="float")
    check_tensor(mask, "mask", tuple(x.shape[:-1]), dims=dims, dtype="bool")
    axis = _axis(dim, mask.dim())
    D = x.shape[-1]
    check_tensor(tokens, "tokens", ("...", "K", D), dtype="float")
    check_device(tokens, "tokens", x.device, "x")
    K = tokens.shape[-2]
    shape = list(x.shape)
    shape[axis] = K
    if tokens.dim() == 2:  # (K, D): move K to the axis, broadcast over the rest
        view = [1] * x.dim()
        view[axis], view[-1] = K, D
        tokens = tokens.reshape(view)
    try:
        tokens = tokens.to(x.dtype).expand(shape)
    except RuntimeError:
        raise ValueError(
            f"tokens: expected (K, D) or a shape broadcastable to {tuple(shape)}, "
            f"got {tuple(tokens.shape)}"
        ) from None
    if token_mask is None:
        group = mask.any(axis, keepdim=True)
    else:
        check_tensor(token_mask, "token_mask", ("...",), dtype="bool")
        check_device(token_mask, "token_mask", x.device, "x")
        if 0 < token_mask.dim() < mask.dim() - 1:  # broadcasts from the left, as torch does
            token_mask = token_mask.reshape(
                (1,) * (mask.dim() - 1 - token_mask.dim()) + tuple(token_mask.shape)
            )
        group = token_mask.unsqueeze(axis) if token_mask.dim() else token_mask
    tmask_shape = list(mask.shape)
    tmask_shape[axis] = K
    try:
        tmask = group.expand(tmask_shape)
    except RuntimeError:
        groups = tuple(mask.shape[:axis] + mask.shape[axis + 1 :])
        raise ValueError(
            f"token_mask: expected a shape broadcastable to {groups}, "
            f"got {tuple(group.shape)} with the token axis"
        ) from None
    return torch.cat((tokens, x), axis), torch.cat((tmask, mask), axis)


def split_tokens(
    x: Tensor, num_tokens: int, *, dim: int = -1, mask: Tensor | None = None
) -> tuple[tuple[Tensor, Tensor | None], tuple[Tensor, Tensor | None]]:
    """Split the first ``num_tokens`` entries of axis ``dim`` off again.

    The inverse of [`prepend_tokens`][]: ``(tokens, token_mask), (rest, rest_mask)``, the
    masks ``None`` when ``mask`` is not given.

    Args:
        x: the grid with tokens in front.
        num_tokens: ``K``.
        dim: the mask axis the tokens are on.
        mask: the grid's mask (optional).

    Shape:
        - x: ``(..., N + K, D)`` along ``dim``; mask: ``x.shape[:-1]``
        - tokens: ``K`` along ``dim``; rest: ``N`` along ``dim``

    Raises:
        ValueError: ``num_tokens`` is negative or larger than the axis.

    Examples:
        >>> x, mask = torch.randn(2, 3, 4, 8), torch.ones(2, 3, 4, dtype=torch.bool)
        >>> y, m = prepend_tokens(x, mask, torch.randn(2, 8), dim=-2)    # 2 tokens a track
        >>> (tok, _), (rest, rest_mask) = split_tokens(y, 2, dim=-2, mask=m)
        >>> tok.shape, torch.equal(rest, x), torch.equal(rest_mask, mask)
        (torch.Size([2, 2, 4, 8]), True, True)
    """
    dims: dict[str, tuple[int, str]] = {}
    check_tensor(x, "x", ("...", "D"), dims=dims)
    axis = _axis(dim, x.dim() - 1)
    if (
        isinstance(num_tokens, bool)
        or not isinstance(num_tokens, int)
        or not 0 <= num_tokens <= x.shape[axis]
    ):
        raise ValueError(
            f"num_tokens: expected an int in [0, {x.shape[axis]}] (axis {dim} of x "
            f"{tuple(x.shape)}), got {num_tokens!r}"
        )
    tokens, rest = x.split([num_tokens, x.shape[axis] - num_tokens], axis)
    if mask is None:
        return (tokens, None), (rest, None)
    check_tensor(mask, "mask", tuple(x.shape[:-1]), dims=dims, dtype="bool")
    tmask, rmask = mask.split([num_tokens, mask.shape[axis] - num_tokens], axis)
    return (tokens, tmask), (rest, rmask)


class LearnableTokens(nn.Module):
    """``K`` learned tokens put in front of one axis of the grid ([`prepend_tokens`][]).

    Args:
        num_tokens: ``K``.
        d_model: width ``D``.
        dim: the mask axis that gets the tokens (``-1``: the pairs of a frame; ``-2``: the
            frames of a track, on ``(B, T, P)`` masks).
        std: standard deviation of the truncated-normal initialisation (ViT / DETR use 0.02).

    Shape:
        As [`prepend_tokens`][].

    Raises:
        ValueError: ``num_tokens`` or ``d_model`` is not positive; as [`prepend_tokens`][].

    Examples:
        >>> frame_token = LearnableTokens(1, 16, dim=-1)     # RS-Net's spatial context token
        >>> x, mask = torch.randn(2, 5, 3, 16), torch.ones(2, 5, 3, dtype=torch.bool)
        >>> y, m = frame_token(x, mask)
        >>> y.shape, frame_token.no_weight_decay()
        (torch.Size([2, 5, 4, 16]), {'tokens'})
    """

    def __init__(self, num_tokens: int, d_model: int, *, dim: int = -1, std: float = 0.02) -> None:
        super().__init__()
        check_positive(num_tokens, "num_tokens")
        check_positive(d_model, "d_model")
        check_positive(std, "std", integer=False)
        check_int(dim, "dim")
        self.num_tokens, self.d_model, self.dim, self.std = num_tokens, d_model, dim, float(std)
        self.tokens = nn.Parameter(torch.empty(num_tokens, d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated normal, ``std``, cut at two standard deviations."""
        nn.init.trunc_normal_(self.tokens, std=self.std, a=-2 * self.std, b=2 * self.std)

    def no_weight_decay(self) -> set[str]:
        """Parameter names to exclude from weight decay (the tokens)."""
        return {"tokens"}

    def extra_repr(self) -> str:
        return f"num_tokens={self.num_tokens}, d_model={self.d_model}, dim={self.dim}"

    def forward(
        self, x: Tensor, mask: MaskOrRows, *, token_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Prepend the tokens to ``x`` along `dim`; returns ``(x, mask)``.

        The mask returned is a bool tensor also when ``mask`` is a
        [`ValidRows`][dsgg_layers.rows.ValidRows]: which tokens are valid depends on the data
        (the groups with a valid entry). Tokens valid in every group have rows known without a
        sync: [`ValidRows.prepend`][dsgg_layers.rows.ValidRows.prepend].
        """
        mask, _ = split_mask(mask)
        return prepend_tokens(x, mask, self.tokens, dim=self.dim, token_mask=token_mask)

    def split(
        self, x: Tensor, mask: Tensor | None = None
    ) -> tuple[tuple[Tensor, Tensor | None], tuple[Tensor, Tensor | None]]:
        """Split the tokens off again ([`split_tokens`][])."""
        return split_tokens(x, self.num_tokens, dim=self.dim, mask=mask)
