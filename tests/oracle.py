"""An independent float64 oracle of the tutorial's algorithm, written per example.

Deliberately plain: explicit loops over examples, no code shared with
fl_blocks, so agreement with it means something.
"""

from __future__ import annotations

import math

import numpy as np


def example_loss_and_grads(kernel, bias, x, label):
    """Cross-entropy of one example and its gradients, by the textbook formulas."""
    logits = [float(np.dot(x, kernel[:, k]) + bias[k]) for k in range(kernel.shape[1])]
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    total = sum(exps)
    probs = [e / total for e in exps]
    loss = -math.log(probs[label])
    dz = np.array(probs)
    dz[label] -= 1.0
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
