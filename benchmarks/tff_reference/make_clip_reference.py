"""Golden reference for FedAvg with client-side gradient clipping, made with real TFF.

Reproduces the algorithm of TFF's "Composing Learning Algorithms" tutorial with
the `tff.learning.templates` building blocks of TensorFlow Federated 0.87.0:

  distributor = build_broadcast_process(model_weights_type)
  client_work = custom ClientWorkProcess: per batch g = grad(loss);
                n = global_norm(g); if n > clip: g = g * (clip / n);
                Keras SGD(client_lr) step; update = initial - trained,
                update_weight = number of examples
  aggregator  = tff.aggregators.MeanFactory()  (weighted by update_weight)
  finalizer   = build_apply_optimizer_finalizer(build_sgdm(server_lr, momentum))
  process     = compose_learning_process(...)

Run with the TFF virtual environment (see README.md next to this file):

  /work/tff-venv/bin/python benchmarks/tff_reference/make_clip_reference.py \
      --clients 0:10 --batch 20 --client-lr 0.01 --server-lr 1.0 --clip 1.0 \
      --rounds 3 --seed 0 --out /tmp/seed_clip_r3.npz

The output npz has the same keys as the shared reference `seed_clip_r3.npz`:
`config` (JSON string), `client_ids`, `w{r}_kernel`/`w{r}_bias` for r = 0..rounds
(float32), `metrics` (one JSON string per round), `round_seconds`, `init_seconds`.
"""

import argparse
import atexit
import collections
import json
import os
import signal
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

DEFAULT_DATA = '/work/shared/data/femnist_leaf_subset.npz'


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------
def load_client_arrays(data_path, split, all_classes):
  """Returns (sorted client ids with data, {id: (x float32 [N,784], y int32 [N,1])})."""
  with np.load(data_path, allow_pickle=False) as z:
    pixels = z[f'{split}_pixels']
    labels = z[f'{split}_labels']
    ids = z[f'{split}_client_ids']
    offsets = z[f'{split}_offsets']
  out = collections.OrderedDict()
  for i, cid in enumerate(ids):
    lo, hi = int(offsets[i]), int(offsets[i + 1])
    lab = labels[lo:hi]
    pix = pixels[lo:hi]
    if not all_classes:
      keep = lab < 10
      lab = lab[keep]
      pix = pix[keep]
    if lab.shape[0] == 0:
      continue
    x = (pix.astype(np.float32) / np.float32(255)).reshape(-1, 784)
    y = lab.astype(np.int32).reshape(-1, 1)
    out[str(cid)] = (x, y)
  sorted_ids = sorted(out.keys())
  return sorted_ids, out


def parse_slice(text):
  lo, hi = text.split(':')
  return slice(int(lo) if lo else None, int(hi) if hi else None)


def make_dataset(x, y, batch):
  return tf.data.Dataset.from_tensor_slices(
      collections.OrderedDict(x=x, y=y)).batch(batch)


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------
def make_model_fn(num_classes, seed, element_spec):
  def create_keras_model():
    initializer = tf.keras.initializers.GlorotNormal(seed=seed)
    return tf.keras.models.Sequential([
        tf.keras.layers.InputLayer(input_shape=(784,)),
        tf.keras.layers.Dense(num_classes, kernel_initializer=initializer),
        tf.keras.layers.Softmax(),
    ])

  def model_fn():
    return tff.learning.models.from_keras_model(
        create_keras_model(),
        input_spec=element_spec,
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy()],
    )

  return model_fn


# ----------------------------------------------------------------------------
# Client work of the tutorial (gradient clipping), TFF 0.87 API
# ----------------------------------------------------------------------------
def build_gradient_clipping_client_work(model_fn, optimizer_fn, clip_norm):

  @tf.function
  def client_update(model, dataset, server_weights, client_optimizer):
    """Performs training (from the server weights) on the client's dataset."""
    client_weights = tff.learning.models.ModelWeights.from_model(model)
    tf.nest.map_structure(lambda x, y: x.assign(y), client_weights,
                          server_weights)
    num_examples = 0.0
    for batch in dataset:
      with tf.GradientTape() as tape:
        outputs = model.forward_pass(batch)
        num_examples += tf.cast(outputs.num_examples, tf.float32)
      grads = tape.gradient(outputs.loss, client_weights.trainable)
      # Global-norm clipping exactly as in the tutorial.
      gradient_norm = tf.linalg.global_norm(grads)
      if gradient_norm > clip_norm:
        grads = tf.nest.map_structure(
            lambda g: g * (clip_norm / gradient_norm), grads)
      client_optimizer.apply_gradients(zip(grads, client_weights.trainable))
    # TFF 0.87 convention: the update is a pseudo-gradient, initial - trained.
    client_update = tf.nest.map_structure(tf.subtract,
                                          server_weights.trainable,
                                          client_weights.trainable)
    return tff.learning.templates.ClientResult(
        update=client_update, update_weight=num_examples)

  with tf.Graph().as_default():
    model = model_fn()
  data_type = tff.SequenceType(tff.types.tensorflow_to_type(model.input_spec))
  model_weights_type = tff.learning.models.weights_type_from_model(model)

  @tff.federated_computation
  def initialize_fn():
    return tff.federated_value((), tff.SERVER)

  @tff.tensorflow.computation(model_weights_type, data_type)
  def client_update_computation(model_weights, dataset):
    model = model_fn()
    optimizer = optimizer_fn()
    return client_update(model, dataset, model_weights, optimizer)

  @tff.federated_computation(
      initialize_fn.type_signature.result,
      tff.FederatedType(model_weights_type, tff.CLIENTS),
      tff.FederatedType(data_type, tff.CLIENTS),
  )
  def next_fn(state, model_weights, client_dataset):
    client_result = tff.federated_map(client_update_computation,
                                      (model_weights, client_dataset))
    measurements = tff.federated_value((), tff.SERVER)
    return tff.templates.MeasuredProcessOutput(state, client_result,
                                               measurements)

  return tff.learning.templates.ClientWorkProcess(initialize_fn, next_fn)


def build_process(model_fn, client_lr, server_lr, server_momentum, clip):

  @tff.tensorflow.computation()
  def initial_model_weights_fn():
    return tff.learning.models.ModelWeights.from_model(model_fn())

  model_weights_type = initial_model_weights_fn.type_signature.result
  distributor = tff.learning.templates.build_broadcast_process(
      model_weights_type)
  client_work = build_gradient_clipping_client_work(
      model_fn, lambda: tf.keras.optimizers.SGD(learning_rate=client_lr), clip)
  aggregator = tff.aggregators.MeanFactory().create(
      model_weights_type.trainable, tff.TensorType(np.float32))
  if server_momentum:
    server_opt = tff.learning.optimizers.build_sgdm(
        learning_rate=server_lr, momentum=server_momentum)
  else:
    server_opt = tff.learning.optimizers.build_sgdm(learning_rate=server_lr)
  finalizer = tff.learning.templates.build_apply_optimizer_finalizer(
      server_opt, model_weights_type)
  return tff.learning.templates.compose_learning_process(
      initial_model_weights_fn, distributor, client_work, aggregator,
      finalizer)


# ----------------------------------------------------------------------------
# Helpers shared with make_algorithm_references.py
# ----------------------------------------------------------------------------
def stop_worker_binaries():
  """Ends the `worker_binary` helper(s) that TFF started as our children.

  Only direct children of this process are touched (found by their parent id
  in /proc), never processes started by anybody else.
  """
  me = os.getpid()
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/stat') as f:
        stat = f.read()
      ppid = int(stat.rsplit(')', 1)[1].split()[1])
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        cmd = f.read()
    except (OSError, ValueError, IndexError):
      continue
    if ppid == me and b'worker_binary' in cmd:
      pid = int(entry)
      for sig in (signal.SIGINT, signal.SIGKILL):
        try:
          os.kill(pid, sig)
        except ProcessLookupError:
          break
        for _ in range(50):
          try:
            done, _ = os.waitpid(pid, os.WNOHANG)
          except ChildProcessError:
            done = pid
          if done:
            break
          time.sleep(0.1)
        else:
          continue
        break


atexit.register(stop_worker_binaries)


def to_jsonable(x):
  """Converts a TFF metrics structure to plain python (dicts, lists, numbers)."""
  if isinstance(x, collections.abc.Mapping):
    return {str(k): to_jsonable(v) for k, v in x.items()}
  if hasattr(x, '_asdict'):
    return {str(k): to_jsonable(v) for k, v in x._asdict().items()}
  if isinstance(x, (list, tuple)):
    return [to_jsonable(v) for v in x]
  if isinstance(x, (np.ndarray, np.generic)):
    if np.ndim(x) == 0:
      v = x.item()
      return v
    return [to_jsonable(v) for v in np.asarray(x)]
  if isinstance(x, (bool, int, float, str)) or x is None:
    return x
  if hasattr(x, 'numpy'):
    return to_jsonable(x.numpy())
  # tff Struct
  try:
    return to_jsonable(tff.structure.to_odict_or_tuple(x))
  except Exception:  # pylint: disable=broad-except
    return repr(x)


def trainable_arrays(model_weights):
  kernel, bias = model_weights.trainable
  return (np.asarray(kernel, dtype=np.float32), np.asarray(bias,
                                                           dtype=np.float32))


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--data', default=DEFAULT_DATA)
  p.add_argument('--clients', default='0:10')
  p.add_argument('--batch', type=int, default=20)
  p.add_argument('--client-lr', type=float, default=0.01)
  p.add_argument('--server-lr', type=float, default=1.0)
  p.add_argument('--server-momentum', type=float, default=0.0)
  p.add_argument('--clip', type=float, default=1.0)
  p.add_argument('--rounds', type=int, default=3)
  p.add_argument('--all-classes', action='store_true')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--out', required=True)
  args = p.parse_args()

  sorted_ids, arrays = load_client_arrays(args.data, 'train', args.all_classes)
  client_ids = sorted_ids[parse_slice(args.clients)]
  datasets = [make_dataset(*arrays[c], args.batch) for c in client_ids]
  num_classes = 62 if args.all_classes else 10
  model_fn = make_model_fn(num_classes, args.seed, datasets[0].element_spec)

  process = build_process(model_fn, args.client_lr, args.server_lr,
                          args.server_momentum, args.clip)

  out = collections.OrderedDict()
  t0 = time.perf_counter()
  state = process.initialize()
  init_seconds = time.perf_counter() - t0
  w = process.get_model_weights(state)
  out['w0_kernel'], out['w0_bias'] = trainable_arrays(w)
  metrics, round_seconds = [], []
  for r in range(1, args.rounds + 1):
    t0 = time.perf_counter()
    result = process.next(state, datasets)
    round_seconds.append(time.perf_counter() - t0)
    state = result.state
    out[f'w{r}_kernel'], out[f'w{r}_bias'] = trainable_arrays(
        process.get_model_weights(state))
    metrics.append(json.dumps(to_jsonable(result.metrics)))
    print(f'round {r}: {round_seconds[-1]:.3f}s {metrics[-1]}', flush=True)

  config = collections.OrderedDict(
      data='data/femnist_leaf_subset.npz'
      if os.path.abspath(args.data) == DEFAULT_DATA else args.data,
      clients=args.clients,
      batch=args.batch,
      client_lr=args.client_lr,
      server_lr=args.server_lr,
      server_momentum=args.server_momentum,
      clip=args.clip,
      rounds=args.rounds,
      all_classes=bool(args.all_classes),
      seed=args.seed,
  )
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez_compressed(
      args.out,
      config=np.array(json.dumps(config)),
      client_ids=np.array(client_ids),
      metrics=np.array(metrics),
      round_seconds=np.array(round_seconds, dtype=np.float64),
      init_seconds=np.array(init_seconds, dtype=np.float64),
      **out,
  )
  print('wrote', args.out, 'init', f'{init_seconds:.3f}s')
  stop_worker_binaries()


if __name__ == '__main__':
  main()
