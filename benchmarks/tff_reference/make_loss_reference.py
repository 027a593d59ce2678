"""Writes tests/golden/keras_loss.npz: TFF's loss and gradients of Dense + Softmax, with real TFF.

Run with the TFF venv (see README.md in this folder):

    /work/tff-venv/bin/python benchmarks/tff_reference/make_loss_reference.py --out tests/golden/keras_loss.npz

For several random problems, some with large logits so that Keras clips
probabilities to [1e-7, 1 - 1e-7], it records the batch loss and the
gradients of TFF's `from_keras_model(...).forward_pass` inside a
`tf.function`, as TFF's client work computes them.
"""

import argparse
import collections
import json
import os
import sys

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_clip_reference import stop_worker_binaries  # noqa: E402


def problem(seed, dim, classes, batch, scale):
    rng = np.random.default_rng(seed)
    kernel = (rng.normal(size=(dim, classes)) * scale).astype(np.float32)
    bias = rng.normal(size=classes).astype(np.float32)
    x = rng.uniform(0, 1, size=(batch, dim)).astype(np.float32)
    y = rng.integers(0, classes, size=(batch, 1)).astype(np.int32)
    return kernel, bias, x, y


def tff_loss_and_grads(kernel, bias, x, y):
    dim, classes = kernel.shape

    def model_fn():
        keras_model = tf.keras.Sequential([
            tf.keras.layers.InputLayer((dim,)), tf.keras.layers.Dense(classes), tf.keras.layers.Softmax()])
        keras_model.layers[0].set_weights([kernel, bias])
        return tff.learning.models.from_keras_model(
            keras_model, loss=tf.keras.losses.SparseCategoricalCrossentropy(),
            input_spec=(tf.TensorSpec([None, dim], tf.float32), tf.TensorSpec([None, 1], tf.int32)))

    model = model_fn()

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            output = model.forward_pass((x, y), training=True)
        return output.loss, tape.gradient(output.loss, model.trainable_variables)

    loss, grads = step(x, y)
    return loss.numpy(), [g.numpy() for g in grads]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    cases = [(0, 6, 4, 5, 1.0), (1, 6, 4, 5, 20.0), (2, 6, 10, 8, 30.0), (3, 6, 62, 7, 15.0), (4, 6, 62, 7, 0.5)]
    out = collections.OrderedDict()
    for i, (seed, dim, classes, batch, scale) in enumerate(cases):
        kernel, bias, x, y = problem(seed, dim, classes, batch, scale)
        loss, (gk, gb) = tff_loss_and_grads(kernel, bias, x, y)
        out.update({f"c{i}_kernel": kernel, f"c{i}_bias": bias, f"c{i}_x": x, f"c{i}_y": y,
                    f"c{i}_loss": np.float32(loss), f"c{i}_gkernel": gk, f"c{i}_gbias": gb})
    out["config"] = json.dumps({"cases": cases, "tff": tff.__version__, "tf": tf.__version__})
    np.savez_compressed(args.out, **out)
    print("wrote", args.out, {k: float(v) for k, v in out.items() if k.endswith("_loss")})
    stop_worker_binaries()


if __name__ == "__main__":
    main()
