"""Classification losses for noisy labels, as pure per-sample functions.

Every loss takes ``logits`` float [B, C] and ``targets`` int64 [B] (or soft targets / projections
where noted) and returns PER-SAMPLE losses float [B]; callers take ``.mean()``. The per-sample form is
what the small-loss selection scan ranks. All probabilities come from ``log_softmax``, so logits of
any size (±1e4 included) give finite values.

Notation: p = softmax(logits), p_y = p[target], C = number of classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _target_log_prob(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """(log p [B, C], log p_y [B])."""
    log_probs = F.log_softmax(logits, dim=1)
    return log_probs, log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross entropy: L = −log p_y.

    Shapes: logits [B, C], targets int64 [B] -> [B].
    """
    return -_target_log_prob(logits, targets)[1]


def soft_cross_entropy(logits: Tensor, target_probs: Tensor) -> Tensor:
    """Cross entropy against a target distribution q: L = −Σ_c q_c log p_c.

    For mixup (Zhang et al. 2018) and DivideMix (Li et al. 2020) targets, which are mixtures of
    one-hot labels and predictions. Shapes: logits [B, C], target_probs [B, C] (rows sum to 1) -> [B].
    """
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1)


def swce(logits: Tensor, targets: Tensor, *, detach_weight: bool = True) -> Tensor:
    """Softmax-weighted cross entropy: L = w · (−log p_y) with confidence weight w = p_y.

    Shapes: logits [B, C], targets int64 [B] -> [B].

    Samples the model already finds unlikely (p_y small, often the mislabelled ones) get small
    weights. By default the weight is a stop-gradient constant (``detach_weight=True``), so the
    gradient is p_y times the CE gradient and always pushes p_y up.

    The literal form with the gradient flowing through the weight (``detach_weight=False``) is
    L = −p_y log p_y, whose derivative dL/dp_y = −log p_y − 1 is POSITIVE for p_y < 1/e: gradient
    descent then pushes p_y DOWN for every sample below 1/e ≈ 0.37 -- early in training that is
    nearly all samples, so the model would learn to be wrong. Kept only to demonstrate this.
    """
    log_py = _target_log_prob(logits, targets)[1]
    weight = log_py.exp()
    if detach_weight:
        weight = weight.detach()
    return weight * -log_py


def swce_class_normalised(logits: Tensor, targets: Tensor) -> Tensor:
    """SWCE with each sample's confidence weight normalised by its class's mean weight in the batch:
    L_i = (p_{i,y_i} / w̄_{y_i}) · (−log p_{i,y_i}), w̄_k = mean of p_{j,y_j} over the batch's samples
    with y_j = k; weights are stop-gradient constants.

    Plain SWCE scales a whole class down when the network is slow on it (every p_y small), so that class
    may never be learnt. Here every class present in the batch keeps a mean weight of 1 (the share of
    the gradient CE gives it), and within a class confident samples still outweigh doubtful ones.
    Not in the report: this platform's remedy (`loss.swce_norm=class`).
    Shapes: logits [B, C], targets int64 [B] -> [B].
    """
    log_py = _target_log_prob(logits, targets)[1]
    weight = log_py.detach().exp()  # (B,)
    classes = targets.long()
    sums = torch.zeros(logits.shape[1], dtype=weight.dtype, device=weight.device).index_add_(
        0, classes, weight
    )
    counts = torch.bincount(classes, minlength=logits.shape[1]).to(weight.dtype)  # (C,)
    class_mean = sums[classes] / counts[classes]  # (B,): every sample's class occurs at least once
    return weight / class_mean.clamp(min=1e-12) * -log_py


def nce(logits: Tensor, targets: Tensor) -> Tensor:
    """Normalized cross entropy: L = −log p_y / Σ_c (−log p_c), in [0, 1].

    Ma et al. 2020, "Normalized Loss Functions for Deep Learning with Noisy Labels" (ICML); the
    normalisation makes the loss robust to symmetric label noise. Uniform logits give 1/C.
    Shapes: logits [B, C], targets int64 [B] -> [B].
    """
    log_probs, log_py = _target_log_prob(logits, targets)
    return log_py / log_probs.sum(dim=1)  # both negative: the ratio is −log p_y / Σ(−log p_c)


MAE_REPORT_SCALE = 2.0  # Σ_c |p_c − q_c| = 2(1 − p_y): the MAE as the report (and Ghosh et al.) write it
MAE_APL_SCALE = 1.0  # 1 − p_y: the MAE of the Active-Passive-Losses code (Ma et al. 2020)


def mae(logits: Tensor, targets: Tensor, *, scale: float = MAE_REPORT_SCALE) -> Tensor:
    """Mean absolute error between p and the one-hot target q: L = scale · (1 − p_y).

    scale = 2 (default) is Σ_c |p_c − q_c| = 2 (1 − p_y), Ghosh et al. 2017, "Robust Loss Functions under
    Label Noise for Deep Neural Networks"; scale = 1 is the Active-Passive-Losses code's 1 − p_y (Ma et
    al. 2020). The two differ only by the factor, which matters wherever the loss meets a threshold.
    Shapes: logits [B, C], targets int64 [B] -> [B].
    """
    log_py = _target_log_prob(logits, targets)[1]
    return -scale * torch.expm1(log_py)  # expm1: precise 1 − p_y when p_y is close to 1


def nce_mae(
    logits: Tensor,
    targets: Tensor,
    *,
    nce_weight: float = 1.0,
    mae_weight: float = 1.0,
    mae_scale: float = MAE_REPORT_SCALE,
) -> Tensor:
    """Active-passive loss NCE+MAE: L = α · NCE + β · MAE (α = nce_weight, β = mae_weight), with MAE =
    mae_scale · (1 − p_y) (`mae`: 2 is the report's Σ|p − q|, 1 the APL code's).

    Ma et al. 2020, "Normalized Loss Functions for Deep Learning with Noisy Labels"; the selection
    loss of the pipeline. Shapes: logits [B, C], targets int64 [B] -> [B].
    """
    return nce_weight * nce(logits, targets) + mae_weight * mae(logits, targets, scale=mae_scale)


def focal(logits: Tensor, targets: Tensor, *, gamma: float = 2.0) -> Tensor:
    """Focal loss: L = −(1 − p_y)^γ log p_y.

    Lin et al. 2017, "Focal Loss for Dense Object Detection" (ICCV); γ = 0 is cross entropy.
    Shapes: logits [B, C], targets int64 [B] -> [B].
    """
    log_py = _target_log_prob(logits, targets)[1]
    return -torch.pow(-torch.expm1(log_py), gamma) * log_py


def nt_xent(z1: Tensor, z2: Tensor, *, temperature: float = 0.5) -> Tensor:
    """SimCLR's NT-Xent contrastive loss (Chen et al. 2020, "A Simple Framework for Contrastive
    Learning of Visual Representations", ICML).

    Shapes: z1, z2 [B, D], projections of two views of the same B images -> per-anchor losses [2B]
    (anchors z1[0..B-1] then z2[0..B-1]).

    With z = L2-normalised concat(z1, z2) [2B, D] and s_ij = z_i · z_j / temperature, the anchor i
    with positive k (its other view) has L_i = −log( exp(s_ik) / Σ_{j ≠ i} exp(s_ij) ): a
    (2B − 1)-way cross entropy over every other projection, self-similarity excluded.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(
            f"nt_xent needs two [B, D] tensors of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    batch = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    similarity = z @ z.T / temperature
    self_mask = torch.eye(2 * batch, dtype=torch.bool, device=z.device)
    similarity = similarity.masked_fill(self_mask, float("-inf"))
    positives = torch.cat([torch.arange(batch, 2 * batch), torch.arange(0, batch)]).to(z.device)
    return F.cross_entropy(similarity, positives, reduction="none")


def forward_corrected(logits: Tensor, targets: Tensor, transition: Tensor) -> Tensor:
    """Forward loss correction: L = −log( (p @ T)[ỹ] ) = −log Σ_k p_k · T[k, ỹ].

    Patrini et al. 2017, "Making Deep Neural Networks Robust to Label Noise: a Loss Correction Approach"
    (CVPR). T[i, j] = P(noisy = j | clean = i) (rows sum to 1): the network's clean posterior p is pushed
    through the noise before the cross entropy against the noisy label ỹ, so p itself estimates the clean
    class. T = identity is cross entropy. Computed as a log-sum-exp of log p + log T[:, ỹ], finite for any
    logits; zero entries of T are allowed (as long as no column of T is all zero).
    Shapes: logits [B, C], targets int64 [B] (noisy labels), transition [C, C] -> [B].
    """
    log_probs = F.log_softmax(logits, dim=1)  # (B, C)
    log_t = transition.to(log_probs).log().T[targets.long()]  # (B, C): row b is log T[:, ỹ_b]
    return -torch.logsumexp(log_probs + log_t, dim=1)


def byol(online_1: Tensor, online_2: Tensor, target_1: Tensor, target_2: Tensor) -> Tensor:
    """BYOL's symmetrised regression loss (Grill et al. 2020, "Bootstrap Your Own Latent", NeurIPS).

    With q_v the online prediction of view v and z'_v the target projection of view v, both
    L2-normalised: L = (2 − 2·cos(q_1, z'_2)) + (2 − 2·cos(q_2, z'_1)) = ‖q̂_1 − ẑ'_2‖² + ‖q̂_2 − ẑ'_1‖²,
    in [0, 8]; the targets carry no gradient (stop-gradient). Identical directions give 0.
    Shapes: online_1, online_2, target_1, target_2 [B, D] -> [B].
    """
    if not online_1.shape == online_2.shape == target_1.shape == target_2.shape or online_1.dim() != 2:
        shapes = [tuple(t.shape) for t in (online_1, online_2, target_1, target_2)]
        raise ValueError(f"byol needs four [B, D] tensors of one shape, got {shapes}")

    def regression(q: Tensor, z: Tensor) -> Tensor:
        return 2.0 - 2.0 * F.cosine_similarity(q, z.detach(), dim=1)

    return regression(online_1, target_2) + regression(online_2, target_1)
