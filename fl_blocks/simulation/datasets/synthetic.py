"""Embedded default data: a synthetic, writer-partitioned EMNIST-like data set.

Generated deterministically from a seed, with no download. Each client is a
synthetic *writer* with its own stroke width, slant, scale, offset and ink
darkness; each example is a 28x28 digit drawn from stroke templates on a 1.0
background (dark ink), as in EMNIST/LEAF. This is **not** real EMNIST: it is
for running the tutorial offline. Pixels are stored as uint8 (value * 255).
Storage is read-only, so the vectorized executor can keep per-client Gram
matrices across rounds (see `fl_blocks.execution.cache`).

>>> train, test = load_data(num_clients=4, seed=0)
>>> element = next(iter(train.create_dataset_for_client(train.client_ids[0])))
>>> element["pixels"].shape, element["pixels"].dtype, element["label"].dtype
((28, 28), dtype('float32'), dtype('int32'))
"""

from __future__ import annotations

import collections

import numpy as np

from fl_blocks.simulation.datasets.client_data import ClientData, pixels_to_float32

__all__ = ["load_data", "render_digits", "DIGIT_STROKES"]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, n: int = 10) -> list[tuple[float, float]]:
    t = np.linspace(np.radians(start), np.radians(stop), n)
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in t]


# Polylines per digit in unit coordinates (x right, y down).
DIGIT_STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(0.5, 0.5, 0.28, 0.4, 0, 360, 14)],
    1: [[(0.36, 0.25), (0.52, 0.1), (0.52, 0.9)]],
    2: [_arc(0.5, 0.32, 0.24, 0.2, 200, 380, 7) + [(0.25, 0.9), (0.78, 0.9)]],
    3: [_arc(0.48, 0.3, 0.23, 0.19, 210, 450, 8) + _arc(0.48, 0.68, 0.26, 0.21, 270, 500, 8)],
    4: [[(0.62, 0.9), (0.62, 0.1), (0.2, 0.62), (0.8, 0.62)]],
    5: [[(0.74, 0.1), (0.32, 0.1), (0.29, 0.45)] + _arc(0.48, 0.65, 0.26, 0.22, 240, 500, 8)],
    6: [[(0.68, 0.1), (0.4, 0.35)] + _arc(0.5, 0.67, 0.22, 0.22, 200, 560, 12)],
    7: [[(0.2, 0.1), (0.8, 0.1), (0.42, 0.9)]],
    8: [_arc(0.5, 0.29, 0.18, 0.19, 0, 360, 10), _arc(0.5, 0.7, 0.23, 0.2, 0, 360, 10)],
    9: [_arc(0.5, 0.33, 0.2, 0.21, 0, 360, 12), [(0.7, 0.33), (0.6, 0.9)]],
}

_GRID = np.stack(np.meshgrid(np.arange(28) + 0.5, np.arange(28) + 0.5, indexing="xy"), -1).reshape(784, 2).astype(np.float32)


def _segments(label: int) -> np.ndarray:
    segs = [np.stack([line[:-1], line[1:]], 1) for line in map(np.asarray, DIGIT_STROKES[label])]
    return np.concatenate(segs).astype(np.float64)  # (S, 2, 2)


def render_digits(label: int, style: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """Draws `count` images of `label` in one writer's `style`; returns uint8 [count, 28, 28].

    `style` is ``(stroke_width, slant, scale, dx, dy, darkness)`` in pixels / ratios.
    """
    width, slant, scale, dx, dy, darkness = style
    segs = _segments(label)[None].repeat(count, 0)  # (N, S, 2, 2)
    segs = segs + rng.normal(0.0, 0.02, segs.shape)  # per-example jitter
    x, y = segs[..., 0], segs[..., 1]
    x = x + slant * (0.5 - y)
    x = (x - 0.5) * scale * 20 + 14 + dx + rng.normal(0, 0.6, (count, 1, 1))
    y = (y - 0.5) * scale * 20 + 14 + dy + rng.normal(0, 0.6, (count, 1, 1))
    ax, ay = x[..., 0, None].astype(np.float32), y[..., 0, None].astype(np.float32)  # (N, S, 1)
    bx, by = x[..., 1, None].astype(np.float32) - ax, y[..., 1, None].astype(np.float32) - ay
    px, py = _GRID[:, 0] - ax, _GRID[:, 1] - ay  # (N, S, 784)
    t = np.clip((px * bx + py * by) / np.maximum(bx * bx + by * by, 1e-9), 0.0, 1.0)
    px -= t * bx
    py -= t * by
    dist = np.sqrt((px * px + py * py).min(axis=1))  # (N, 784)
    ink = np.clip(1.0 - (dist - width / 2) / 0.9, 0.0, 1.0) * darkness
    noise = rng.normal(0.0, 0.02, ink.shape)
    value: np.ndarray = np.clip(1.0 - ink + noise * (ink > 0), 0.0, 1.0)  # clean 1.0 background
    return np.round(value * 255).astype(np.uint8).reshape(count, 28, 28)


def _writer(rng: np.random.Generator, num_examples: int) -> tuple[np.ndarray, np.ndarray]:
    style = np.array([
        rng.uniform(1.0, 2.6), rng.uniform(-0.35, 0.35), rng.uniform(0.8, 1.05),
        rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(0.65, 1.0),
    ])
    labels = rng.choice(10, size=num_examples, p=rng.dirichlet(np.full(10, 3.0)))
    pixels = np.empty((num_examples, 28, 28), np.uint8)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        pixels[where] = render_digits(int(label), style, rng, where.size)
    return pixels, labels.astype(np.int32)


def _client_data(columns: dict[str, tuple[np.ndarray, np.ndarray]]) -> ClientData:
    arrays = {cid: collections.OrderedDict(label=labels, pixels=pixels) for cid, (pixels, labels) in columns.items()}
    return ClientData.from_arrays(arrays, element_fn=pixels_to_float32)  # uint8 storage, float32 = byte / 255


def load_data(num_clients: int = 120, seed: int = 0, test_fraction: float = 0.2) -> tuple[ClientData, ClientData]:
    """Returns ``(train, test)`` synthetic ClientData with the same writer ids, like TFF's EMNIST.

    Elements are ``OrderedDict(label=int32 scalar, pixels=float32[28, 28])``; the
    stored arrays are read-only.
    """
    if num_clients < 1:
        raise ValueError(f"num_clients must be >= 1, got {num_clients}")
    rng = np.random.default_rng(seed)
    train, test = {}, {}
    for i in range(num_clients):
        client_id = f"synthetic_{i:04d}"
        pixels, labels = _writer(rng, int(rng.integers(100, 300)))
        pixels.flags.writeable = labels.flags.writeable = False  # read-only storage: the executor may cache it
        cut = int(round(len(labels) * (1 - test_fraction)))
        train[client_id] = (pixels[:cut], labels[:cut])
        test[client_id] = (pixels[cut:], labels[cut:])
    return _client_data(train), _client_data(test)
