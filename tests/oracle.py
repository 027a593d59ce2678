"""An independent float64 oracle of the tutorial's algorithm, written per example.

Deliberately plain: explicit loops over examples, no code shared with
fl_blocks, so agreement with it means something.
"""

from __future__ import annotations

import math

import numpy as np


EPS = 1e-7  # Keras clips probabilities to [EPS, 1 - EPS] before its cross-entropy


def example_loss_and_grads(kernel, bias, x, label):
    """Keras' cross-entropy of one example and its gradients, by the chain rule written out.

    p = softmax(z); c = clip(p, EPS, 1 - EPS); loss = -log(c[label] / sum(c)).
    """
    num_classes = kernel.shape[1]
    logits = [float(np.dot(x, kernel[:, k]) + bias[k]) for k in range(num_classes)]
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    probs = [e / sum(exps) for e in exps]
    clipped = [min(max(p, EPS), 1 - EPS) for p in probs]
    total = sum(clipped)
    loss = -math.log(clipped[label] / total)
    # d loss / d c_j, then through the clip (zero gradient outside [EPS, 1 - EPS]).
    dprobs = [
        (1 / total - (1 / clipped[label] if j == label else 0.0)) if EPS <= probs[j] <= 1 - EPS else 0.0
        for j in range(num_classes)
    ]
    # Through the softmax Jacobian dp_j / dz_k = p_j (delta_jk - p_k).
    dz = np.array([
        sum(dprobs[j] * probs[j] * ((1.0 if j == k else 0.0) - probs[k]) for j in range(num_classes))
        for k in range(num_classes)
    ])
    return loss, np.outer(x, dz), dz


def local_training(kernel, bias, batches, lr, clip):
    """One epoch of clipped SGD over `batches` of (x, y); returns trained (kernel, bias)."""
    kernel, bias = np.array(kernel, np.float64), np.array(bias, np.float64)
    for x, y in batches:
        gk, gb = np.zeros_like(kernel), np.zeros_like(bias)
        for xi, yi in zip(np.asarray(x, np.float64), np.asarray(y).reshape(-1)):
            _, dk, db = example_loss_and_grads(kernel, bias, xi, int(yi))
            gk += dk / len(x)
            gb += db / len(x)
        norm = math.sqrt(float((gk ** 2).sum() + (gb ** 2).sum()))
        if norm > clip:
            gk, gb = gk * (clip / norm), gb * (clip / norm)
        kernel, bias = kernel - lr * gk, bias - lr * gb
    return kernel, bias


def fed_avg_round(kernel, bias, clients, client_lr, server_lr, clip):
    """One round: local training, example-weighted mean of (initial - trained), server SGD."""
    kernel, bias = np.array(kernel, np.float64), np.array(bias, np.float64)
    sum_k, sum_b, total = np.zeros_like(kernel), np.zeros_like(bias), 0.0
    for batches in clients:
        tk, tb = local_training(kernel, bias, batches, client_lr, clip)
        n = sum(len(y) for _, y in batches)
        sum_k += n * (kernel - tk)
        sum_b += n * (bias - tb)
        total += n
    return kernel - server_lr * sum_k / total, bias - server_lr * sum_b / total
