"""Writes tests/golden/kmeans.npz: TFF's federated k-means (`build_fed_kmeans`), with real TFF.

Run with the TFF venv (see README.md in this folder), from the repository root:

    /work/tff-venv/bin/python benchmarks/tff_reference/make_kmeans_reference.py --out tests/golden/kmeans.npz

For each case it builds `tff.learning.algorithms.build_fed_kmeans(num_clusters,
data_shape, random_seed=seed)` (every other argument at TFF's default), runs
`rounds` rounds on the same clients every round (each client a
`tf.data.Dataset.from_tensor_slices(points)`, unbatched, as TFF's k-means takes
it) and records the initial centroids TFF draws, the centroids and the
finalizer's cluster weights after every round, and the metrics.

Keys, per case `{case}_`: `points` (all clients' float32 points, concatenated;
synthetic cases only), `client_sizes` (int32), `c{r}` (float32 centroids,
r = 0..rounds; c0 = TFF's initial draw), `w{r}` (float32 cluster weights =
`state.finalizer`, r = 0..rounds), `metrics` (one JSON string per round); and
`config` (JSON string: the cases, TFF's state structure, versions).
"""

import argparse
import collections
import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_clip_reference import stop_worker_binaries, to_jsonable  # noqa: E402

DEFAULT_DATA = '/work/shared/data/femnist_leaf_subset.npz'


def blob_points(rng):
  """Five clients (one empty) of 2-D points from three Gaussian blobs."""
  means = np.array([[3.0, 3.0], [-3.0, 3.0], [0.0, -3.0]])
  clients = []
  for size in (30, 25, 40, 17, 0):
    which = rng.integers(0, 3, size=size)
    clients.append((means[which] + 0.7 * rng.normal(size=(size, 2))).astype(np.float32))
  return clients


def matrix_points(rng):
  """Three clients of standard-normal points of shape (3, 2)."""
  return [rng.normal(size=(n, 3, 2)).astype(np.float32) for n in (7, 12, 5)]


def emnist_points(data_path, clients):
  """Training writers `clients` (sorted-id slice) of the shared npz: pixels / 255 as (28, 28) float32."""
  with np.load(data_path, allow_pickle=False) as z:
    ids, offsets, pixels = z['train_client_ids'], z['train_offsets'], z['train_pixels']
  order = np.argsort(ids)
  lo, hi = (int(s) for s in clients.split(':'))
  out = []
  for i in order[lo:hi]:
    px = pixels[int(offsets[i]):int(offsets[i + 1])]
    out.append((px.astype(np.float32) / np.float32(255)).reshape(-1, 28, 28))
  return [str(ids[i]) for i in order[lo:hi]], out


def run_case(num_clusters, data_shape, seed, rounds, clients):
  process = tff.learning.algorithms.build_fed_kmeans(
      num_clusters, data_shape, random_seed=seed)
  datasets = [tf.data.Dataset.from_tensor_slices(c) for c in clients]
  state = process.initialize()
  structure = to_jsonable(state)
  structure['global_model_weights'] = f'float32{list(np.shape(state.global_model_weights))}'
  out = {'c0': np.asarray(process.get_model_weights(state), np.float32),
         'w0': np.asarray(state.finalizer, np.float32)}
  metrics = []
  for r in range(1, rounds + 1):
    result = process.next(state, datasets)
    state = result.state
    out[f'c{r}'] = np.asarray(process.get_model_weights(state), np.float32)
    out[f'w{r}'] = np.asarray(state.finalizer, np.float32)
    metrics.append(json.dumps(to_jsonable(result.metrics)))
    print(f'  round {r}: weights {out[f"w{r}"].tolist()} metrics {metrics[-1]}', flush=True)
  out['metrics'] = np.array(metrics)
  out['client_sizes'] = np.array([len(c) for c in clients], np.int32)
  hparams = to_jsonable(process.get_hparams(state))
  return out, structure, hparams


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--data', default=DEFAULT_DATA)
  p.add_argument('--out', required=True)
  args = p.parse_args()

  rng = np.random.default_rng(20240611)
  emnist_ids, emnist = emnist_points(args.data, '0:2')
  cases = collections.OrderedDict([
      ('blobs', dict(num_clusters=4, data_shape=(2,), seed=(3, 7), rounds=5,
                     clients=blob_points(rng), data='3 Gaussian blobs (std 0.7) at (3,3), (-3,3), (0,-3); 5 clients, one empty')),
      ('matrix', dict(num_clusters=3, data_shape=(3, 2), seed=(11, 0), rounds=3,
                      clients=matrix_points(rng), data='standard-normal points of shape (3, 2); 3 clients')),
      ('emnist', dict(num_clusters=3, data_shape=(28, 28), seed=(5, 1), rounds=2,
                      clients=emnist, data='data/femnist_leaf_subset.npz train pixels / 255, writers 0:2 of the sorted ids (all classes)',
                      client_ids=emnist_ids)),
  ])
  arrays, config = {}, collections.OrderedDict(cases=collections.OrderedDict())
  for name, case in cases.items():
    print(name, flush=True)
    out, structure, hparams = run_case(case['num_clusters'], case['data_shape'], case['seed'],
                                       case['rounds'], case['clients'])
    if name != 'emnist':
      out['points'] = np.concatenate(case['clients'], axis=0)
    arrays.update({f'{name}_{k}': v for k, v in out.items()})
    config['cases'][name] = collections.OrderedDict(
        call=f'build_fed_kmeans({case["num_clusters"]}, {case["data_shape"]}, random_seed={case["seed"]})',
        num_clusters=case['num_clusters'], data_shape=list(case['data_shape']),
        random_seed=list(case['seed']), rounds=case['rounds'], data=case['data'],
        client_ids=case.get('client_ids'), initial_state=structure, get_hparams=hparams)
  config['versions'] = dict(tff=tff.__version__, tensorflow=tf.__version__, numpy=np.__version__)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez_compressed(args.out, config=np.array(json.dumps(config)), **arrays)
  print('wrote', args.out, os.path.getsize(args.out), 'bytes')
  stop_worker_binaries()


if __name__ == '__main__':
  main()
