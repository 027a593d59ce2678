"""Golden references for TFF's built-in learning algorithms and optimizers.

Runs real TensorFlow Federated 0.87.0 (see README.md next to this file) and
writes, into --out-dir (default tests/golden/):

* `algo_<name>.npz` for each algorithm in ALGORITHMS: 3 rounds on 5 digits-only
  EMNIST training clients (batch 20, no shuffle, 1 epoch), from the Keras
  GlorotNormal(seed) initial kernel (bias zeros). Keys: `config` (JSON),
  `client_ids`, `w{r}_kernel`, `w{r}_bias` for r = 0..3, `metrics` (one JSON
  string per round: TFF's full metrics structure).
* `algo_fed_eval.npz`: `tff.learning.algorithms.build_fed_eval` on 5 test
  clients, evaluating `w0` (round 1) and then `w1` (round 2, the weights after
  3 rounds of weighted FedAvg of `algo_fed_avg_weighted.npz`) with one process
  state, so `total_rounds_metrics` accumulates across the two evaluations.
* `optimizers.json`: initialize + 4 `next` steps of TFF's optimizers.

  /work/tff-venv/bin/python benchmarks/tff_reference/make_algorithm_references.py
  /work/tff-venv/bin/python benchmarks/tff_reference/make_algorithm_references.py --only fed_prox_weighted
  /work/tff-venv/bin/python benchmarks/tff_reference/make_algorithm_references.py --optimizers-only
"""

import argparse
import collections
import json
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

# Shared with the tutorial-algorithm script (data loading, model, JSON, cleanup).
from make_clip_reference import DEFAULT_DATA
from make_clip_reference import load_client_arrays
from make_clip_reference import make_dataset
from make_clip_reference import make_model_fn
from make_clip_reference import parse_slice
from make_clip_reference import stop_worker_binaries
from make_clip_reference import to_jsonable
from make_clip_reference import trainable_arrays

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
ROUNDS = 3
BATCH = 20

opt = tff.learning.optimizers
alg = tff.learning.algorithms


def _sched_lr(round_num):
  # round_num is an int32 tensor (0 in the first round).
  return 0.02 * tf.pow(0.5, tf.cast(round_num, tf.float32))


# name -> (clients slice, seed, builder(model_fn) -> LearningProcess, config)
# `config['call']` is the exact TFF call; `config['hparams']` the structured
# hyperparameters; `config['defaults']` the TFF defaults that apply.
FEDAVG_DEFAULTS = {
    'model_distributor': 'build_broadcast_process(model_weights_type)',
    'metrics_aggregator': 'tff.learning.metrics.sum_then_finalize',
    'loop_implementation': 'DATASET_REDUCE',
    'client_update': 'initial - trained (model delta), zeroed with weight 0 if non-finite',
    'finalizer': 'build_apply_optimizer_finalizer(server_optimizer) with reject_non_finite_update',
}

ALGORITHMS = collections.OrderedDict()

ALGORITHMS['fed_avg_weighted'] = dict(
    clients='0:5', seed=0,
    build=lambda m: alg.build_weighted_fed_avg(
        m, client_optimizer_fn=opt.build_sgdm(learning_rate=0.02)),
    config=dict(
        builder='tff.learning.algorithms.build_weighted_fed_avg',
        call='build_weighted_fed_avg(model_fn, client_optimizer_fn=build_sgdm(learning_rate=0.02))',
        hparams=dict(client_optimizer='sgdm', client_lr=0.02,
                     client_momentum=None, server_optimizer='sgdm',
                     server_lr=1.0, server_momentum=None),
        defaults=dict(FEDAVG_DEFAULTS,
                      server_optimizer_fn='build_sgdm(learning_rate=1.0)',
                      client_weighting='NUM_EXAMPLES',
                      model_aggregator='tff.aggregators.MeanFactory()'),
    ))

ALGORITHMS['fed_avg_unweighted'] = dict(
    clients='5:10', seed=0,
    build=lambda m: alg.build_unweighted_fed_avg(
        m, client_optimizer_fn=opt.build_sgdm(learning_rate=0.02)),
    config=dict(
        builder='tff.learning.algorithms.build_unweighted_fed_avg',
        call='build_unweighted_fed_avg(model_fn, client_optimizer_fn=build_sgdm(learning_rate=0.02))',
        hparams=dict(client_optimizer='sgdm', client_lr=0.02,
                     client_momentum=None, server_optimizer='sgdm',
                     server_lr=1.0, server_momentum=None),
        defaults=dict(FEDAVG_DEFAULTS,
                      server_optimizer_fn='build_sgdm(learning_rate=1.0)',
                      client_weighting='UNIFORM (update_weight = 1.0)',
                      model_aggregator='as_weighted_aggregator(tff.aggregators.UnweightedMeanFactory()) (weight ignored; sum / number of clients)'),
    ))

ALGORITHMS['fed_prox_weighted'] = dict(
    clients='10:15', seed=1,
    build=lambda m: alg.build_weighted_fed_prox(
        m, proximal_strength=0.1,
        client_optimizer_fn=opt.build_sgdm(learning_rate=0.02)),
    config=dict(
        builder='tff.learning.algorithms.build_weighted_fed_prox',
        call='build_weighted_fed_prox(model_fn, proximal_strength=0.1, client_optimizer_fn=build_sgdm(learning_rate=0.02))',
        hparams=dict(proximal_strength=0.1, client_optimizer='sgdm',
                     client_lr=0.02, server_optimizer='sgdm', server_lr=1.0),
        defaults=dict(FEDAVG_DEFAULTS,
                      server_optimizer_fn='build_sgdm(learning_rate=1.0)',
                      client_weighting='NUM_EXAMPLES',
                      model_aggregator='tff.aggregators.MeanFactory()',
                      proximal_gradient='g + proximal_strength * (w_initial - w_current) [sic: TFF 0.87 map_structure(lambda x, y: mu * (y - x), current, initial)], per batch, before the optimizer step'),
    ))

ALGORITHMS['fed_prox_unweighted'] = dict(
    clients='15:20', seed=1,
    build=lambda m: alg.build_unweighted_fed_prox(
        m, proximal_strength=0.5,
        client_optimizer_fn=opt.build_sgdm(learning_rate=0.02)),
    config=dict(
        builder='tff.learning.algorithms.build_unweighted_fed_prox',
        call='build_unweighted_fed_prox(model_fn, proximal_strength=0.5, client_optimizer_fn=build_sgdm(learning_rate=0.02))',
        hparams=dict(proximal_strength=0.5, client_optimizer='sgdm',
                     client_lr=0.02, server_optimizer='sgdm', server_lr=1.0),
        defaults=dict(FEDAVG_DEFAULTS,
                      server_optimizer_fn='build_sgdm(learning_rate=1.0)',
                      client_weighting='UNIFORM',
                      model_aggregator='as_weighted_aggregator(UnweightedMeanFactory())',
                      proximal_gradient='g + proximal_strength * (w_initial - w_current) [sic, TFF 0.87]'),
    ))

ALGORITHMS['fed_sgd'] = dict(
    clients='0:5', seed=0,
    build=lambda m: alg.build_fed_sgd(
        m, server_optimizer_fn=opt.build_sgdm(learning_rate=0.1)),
    config=dict(
        builder='tff.learning.algorithms.build_fed_sgd',
        call='build_fed_sgd(model_fn, server_optimizer_fn=build_sgdm(learning_rate=0.1))',
        hparams=dict(server_optimizer='sgdm', server_lr=0.1,
                     server_momentum=None),
        defaults=dict(
            server_optimizer_fn='build_sgdm(learning_rate=0.1) (the TFF default)',
            model_aggregator='tff.aggregators.MeanFactory()',
            metrics_aggregator='sum_then_finalize',
            client_update='sum_b(n_b * grad_b) / sum_b(n_b) at the received weights (no local steps); update_weight = number of examples (float32)',
            finalizer='build_apply_optimizer_finalizer: w - lr * mean_gradient'),
    ))

ALGORITHMS['mime_lite_weighted'] = dict(
    clients='5:10', seed=2,
    build=lambda m: alg.build_weighted_mime_lite(
        m, base_optimizer=opt.build_sgdm(learning_rate=0.02, momentum=0.9)),
    config=dict(
        builder='tff.learning.algorithms.build_weighted_mime_lite',
        call='build_weighted_mime_lite(model_fn, base_optimizer=build_sgdm(learning_rate=0.02, momentum=0.9))',
        hparams=dict(base_optimizer='sgdm', base_lr=0.02, base_momentum=0.9,
                     server_optimizer='sgdm', server_lr=1.0),
        defaults=dict(
            server_optimizer='build_sgdm(1.0)',
            client_weighting='NUM_EXAMPLES',
            model_aggregator='MeanFactory()',
            full_gradient_aggregator='MeanFactory() weighted by the same update_weight',
            metrics_aggregator='sum_then_finalize (metrics reset after the full-gradient pass; only the training pass counts)',
            client_update='initial - trained'),
    ))

ALGORITHMS['mime_lite_unweighted'] = dict(
    clients='10:15', seed=2,
    build=lambda m: alg.build_unweighted_mime_lite(
        m, base_optimizer=opt.build_sgdm(learning_rate=0.02, momentum=0.9)),
    config=dict(
        builder='tff.learning.algorithms.build_unweighted_mime_lite',
        call='build_unweighted_mime_lite(model_fn, base_optimizer=build_sgdm(learning_rate=0.02, momentum=0.9))',
        hparams=dict(base_optimizer='sgdm', base_lr=0.02, base_momentum=0.9,
                     server_optimizer='sgdm', server_lr=1.0),
        defaults=dict(
            server_optimizer='build_sgdm(1.0)',
            client_weighting='UNIFORM',
            model_aggregator='as_weighted_aggregator(UnweightedMeanFactory())',
            full_gradient_aggregator='as_weighted_aggregator(UnweightedMeanFactory())',
            metrics_aggregator='sum_then_finalize'),
    ))

ALGORITHMS['fed_avg_server_momentum'] = dict(
    clients='0:5', seed=3,
    build=lambda m: alg.build_weighted_fed_avg(
        m, client_optimizer_fn=opt.build_sgdm(learning_rate=0.02),
        server_optimizer_fn=opt.build_sgdm(learning_rate=1.0, momentum=0.9)),
    config=dict(
        builder='tff.learning.algorithms.build_weighted_fed_avg',
        call='build_weighted_fed_avg(model_fn, client_optimizer_fn=build_sgdm(learning_rate=0.02), server_optimizer_fn=build_sgdm(learning_rate=1.0, momentum=0.9))',
        hparams=dict(client_optimizer='sgdm', client_lr=0.02,
                     server_optimizer='sgdm', server_lr=1.0,
                     server_momentum=0.9),
        defaults=dict(FEDAVG_DEFAULTS, client_weighting='NUM_EXAMPLES',
                      model_aggregator='MeanFactory()'),
    ))

ALGORITHMS['fed_avg_server_adam'] = dict(
    clients='5:10', seed=0,
    build=lambda m: alg.build_weighted_fed_avg(
        m, client_optimizer_fn=opt.build_sgdm(learning_rate=0.02),
        server_optimizer_fn=opt.build_adam(
            learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-3)),
    # Server Adam as used in federated learning (Reddi et al., "Adaptive
    # Federated Optimization": beta_2 = 0.99, tau = epsilon ~ 1e-3), beta_1,
    # beta_2 and epsilon away from TFF's defaults (0.9, 0.999, 1e-7). With TFF's
    # epsilon=1e-7 a ~1e-6 coordinate of the mean update gets a full lr-sized
    # step, so float32 rounding alone moves such a weight by a few 1e-6.
    config=dict(
        builder='tff.learning.algorithms.build_weighted_fed_avg',
        call='build_weighted_fed_avg(model_fn, client_optimizer_fn=build_sgdm(learning_rate=0.02), server_optimizer_fn=build_adam(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-3))',
        hparams=dict(client_optimizer='sgdm', client_lr=0.02,
                     server_optimizer='adam', server_lr=0.01, beta_1=0.8,
                     beta_2=0.99, epsilon=1e-3),
        defaults=dict(FEDAVG_DEFAULTS, client_weighting='NUM_EXAMPLES',
                      model_aggregator='MeanFactory()'),
    ))

ALGORITHMS['fed_avg_server_yogi'] = dict(
    clients='10:15', seed=0,
    build=lambda m: alg.build_weighted_fed_avg(
        m, client_optimizer_fn=opt.build_sgdm(learning_rate=0.02),
        server_optimizer_fn=opt.build_yogi(learning_rate=0.01)),
    config=dict(
        builder='tff.learning.algorithms.build_weighted_fed_avg',
        call='build_weighted_fed_avg(model_fn, client_optimizer_fn=build_sgdm(learning_rate=0.02), server_optimizer_fn=build_yogi(learning_rate=0.01))',
        hparams=dict(client_optimizer='sgdm', client_lr=0.02,
                     server_optimizer='yogi', server_lr=0.01, beta_1=0.9,
                     beta_2=0.999, epsilon=1e-3,
                     initial_preconditioner_value=1e-6),
        defaults=dict(FEDAVG_DEFAULTS, client_weighting='NUM_EXAMPLES',
                      model_aggregator='MeanFactory()'),
    ))

ALGORITHMS['fed_avg_client_momentum'] = dict(
    clients='15:20', seed=4,
    build=lambda m: alg.build_weighted_fed_avg(
        m, client_optimizer_fn=opt.build_sgdm(learning_rate=0.02,
                                              momentum=0.9),
        server_optimizer_fn=opt.build_sgdm(learning_rate=0.5)),
    config=dict(
        builder='tff.learning.algorithms.build_weighted_fed_avg',
        call='build_weighted_fed_avg(model_fn, client_optimizer_fn=build_sgdm(learning_rate=0.02, momentum=0.9), server_optimizer_fn=build_sgdm(learning_rate=0.5))',
        hparams=dict(client_optimizer='sgdm', client_lr=0.02,
                     client_momentum=0.9, server_optimizer='sgdm',
                     server_lr=0.5),
        defaults=dict(FEDAVG_DEFAULTS, client_weighting='NUM_EXAMPLES',
                      model_aggregator='MeanFactory()',
                      client_optimizer_state='re-initialized (momentum 0) for every client in every round'),
    ))

ALGORITHMS['fed_avg_client_schedule'] = dict(
    clients='0:5', seed=0,
    build=lambda m: alg.build_weighted_fed_avg_with_optimizer_schedule(
        m, client_learning_rate_fn=_sched_lr,
        client_optimizer_fn=lambda lr: opt.build_sgdm(learning_rate=lr)),
    config=dict(
        builder='tff.learning.algorithms.build_weighted_fed_avg_with_optimizer_schedule',
        call='build_weighted_fed_avg_with_optimizer_schedule(model_fn, client_learning_rate_fn=lambda r: 0.02 * tf.pow(0.5, tf.cast(r, tf.float32)), client_optimizer_fn=lambda lr: build_sgdm(learning_rate=lr))',
        hparams=dict(client_lr_schedule='0.02 * 0.5**round_num (float32), round_num = 0, 1, 2',
                     client_optimizer='sgdm', server_optimizer='sgdm',
                     server_lr=1.0),
        defaults=dict(FEDAVG_DEFAULTS,
                      server_optimizer_fn='build_sgdm(learning_rate=1.0)',
                      client_weighting='NUM_EXAMPLES (fixed, no argument)',
                      model_aggregator='MeanFactory()',
                      client_work_state='int32 round counter starting at 0, +1 per round'),
    ))


def build_model(seed, element_spec):
  return make_model_fn(10, seed, element_spec)


def run_algorithm(name, spec, arrays, sorted_ids, out_dir):
  client_ids = sorted_ids[parse_slice(spec['clients'])]
  datasets = [make_dataset(*arrays[c], BATCH) for c in client_ids]
  model_fn = build_model(spec['seed'], datasets[0].element_spec)
  process = spec['build'](model_fn)
  t0 = time.perf_counter()
  state = process.initialize()
  out = collections.OrderedDict()
  out['w0_kernel'], out['w0_bias'] = trainable_arrays(
      process.get_model_weights(state))
  try:
    hparams = to_jsonable(process.get_hparams(state))
  except Exception as e:  # pylint: disable=broad-except
    hparams = f'unavailable: {type(e).__name__}'
  metrics = []
  for r in range(1, ROUNDS + 1):
    result = process.next(state, datasets)
    state = result.state
    out[f'w{r}_kernel'], out[f'w{r}_bias'] = trainable_arrays(
        process.get_model_weights(state))
    metrics.append(json.dumps(to_jsonable(result.metrics)))
    print(f'{name} round {r}: {metrics[-1]}', flush=True)
  seconds = time.perf_counter() - t0
  config = collections.OrderedDict(
      algorithm=name,
      data='data/femnist_leaf_subset.npz',
      split='train',
      only_digits=True,
      num_classes=10,
      clients=spec['clients'],
      batch=BATCH,
      rounds=ROUNDS,
      seed=spec['seed'],
      model='Sequential([InputLayer((784,)), Dense(10, kernel_initializer=GlorotNormal(seed)), Softmax()]) via from_keras_model(loss=SparseCategoricalCrossentropy(), metrics=[SparseCategoricalAccuracy()])',
      tff_version=tff.__version__,
      tf_version=tf.__version__,
      initial_hparams=hparams,
      **spec['config'],
  )
  path = os.path.join(out_dir, f'algo_{name}.npz')
  np.savez_compressed(
      path,
      config=np.array(json.dumps(config)),
      client_ids=np.array(client_ids),
      metrics=np.array(metrics),
      **out,
  )
  print(f'wrote {path} ({os.path.getsize(path)} bytes, {seconds:.1f}s)',
        flush=True)
  return out


def run_fed_eval(data_path, out_dir, fedavg_path):
  sorted_ids, arrays = load_client_arrays(data_path, 'test', False)
  clients = '0:5'
  client_ids = sorted_ids[parse_slice(clients)]
  datasets = [make_dataset(*arrays[c], BATCH) for c in client_ids]
  seed = 0
  model_fn = build_model(seed, datasets[0].element_spec)
  process = alg.build_fed_eval(model_fn)
  state = process.initialize()
  w0 = process.get_model_weights(state)
  with np.load(fedavg_path, allow_pickle=False) as z:
    w_other = (z[f'w{ROUNDS}_kernel'], z[f'w{ROUNDS}_bias'])
  weights = [trainable_arrays(w0), w_other]
  metrics = []
  for i, (k, b) in enumerate(weights):
    mw = tff.learning.models.ModelWeights(trainable=(k, b), non_trainable=())
    state = process.set_model_weights(state, mw)
    result = process.next(state, datasets)
    state = result.state
    metrics.append(json.dumps(to_jsonable(result.metrics)))
    print(f'fed_eval evaluation {i}: {metrics[-1]}', flush=True)
  config = collections.OrderedDict(
      algorithm='fed_eval',
      builder='tff.learning.algorithms.build_fed_eval',
      call='build_fed_eval(model_fn); state = set_model_weights(state, w_i); state = next(state, test_datasets).state for i = 0, 1',
      data='data/femnist_leaf_subset.npz',
      split='test',
      only_digits=True,
      num_classes=10,
      clients=clients,
      batch=BATCH,
      rounds=len(weights),
      seed=seed,
      evaluated=['w0: initial GlorotNormal(seed=0) weights',
                 f'w1: weights after round {ROUNDS} of algo_fed_avg_weighted.npz'],
      defaults=dict(
          model_distributor='build_broadcast_process',
          metrics_aggregation_process='SumThenFinalizeFactory(metric_finalizers) -- state keeps the running sum over all rounds',
          forward_pass='training=False',
          model_aggregator='MeanFactory over empty updates',
          finalizer='build_identity_finalizer (weights unchanged)'),
      tff_version=tff.__version__,
  )
  path = os.path.join(out_dir, 'algo_fed_eval.npz')
  np.savez_compressed(
      path,
      config=np.array(json.dumps(config)),
      client_ids=np.array(client_ids),
      metrics=np.array(metrics),
      w0_kernel=weights[0][0], w0_bias=weights[0][1],
      w1_kernel=np.asarray(weights[1][0], np.float32),
      w1_bias=np.asarray(weights[1][1], np.float32),
  )
  print(f'wrote {path} ({os.path.getsize(path)} bytes)', flush=True)


# ----------------------------------------------------------------------------
# Optimizers
# ----------------------------------------------------------------------------
OPTIMIZER_CASES = [
    ('sgd_lr0.1', 'build_sgdm', dict(learning_rate=0.1)),
    ('sgd_default', 'build_sgdm', dict()),
    ('sgdm_lr0.1_m0.9', 'build_sgdm', dict(learning_rate=0.1, momentum=0.9)),
    ('sgdm_lr0.05_m0.5', 'build_sgdm', dict(learning_rate=0.05, momentum=0.5)),
    ('adam_lr0.01', 'build_adam', dict(learning_rate=0.01)),
    ('adam_lr0.1_b0.8_0.99_eps1e-3', 'build_adam',
     dict(learning_rate=0.1, beta_1=0.8, beta_2=0.99, epsilon=1e-3)),
    ('adagrad_lr0.1', 'build_adagrad', dict(learning_rate=0.1)),
    ('adagrad_lr0.5_init0_eps1e-2', 'build_adagrad',
     dict(learning_rate=0.5, initial_preconditioner_value=0.0, epsilon=1e-2)),
    ('yogi_lr0.01', 'build_yogi', dict(learning_rate=0.01)),
    ('yogi_lr0.1_b0.5_0.9_eps1e-4_init0.5', 'build_yogi',
     dict(learning_rate=0.1, beta_1=0.5, beta_2=0.9, epsilon=1e-4,
          initial_preconditioner_value=0.5)),
    ('rmsprop_lr0.01', 'build_rmsprop', dict(learning_rate=0.01)),
    ('rmsprop_lr0.1_d0.5_eps1e-3', 'build_rmsprop',
     dict(learning_rate=0.1, decay=0.5, epsilon=1e-3)),
    ('adamw_lr0.01', 'build_adamw', dict(learning_rate=0.01)),
    ('adamw_lr0.1_b0.8_0.99_eps1e-3_wd0.1', 'build_adamw',
     dict(learning_rate=0.1, beta_1=0.8, beta_2=0.99, epsilon=1e-3,
          weight_decay=0.1)),
]
OPT_STEPS = 4
OPT_SEED = 20240601


def _leaf_json(x):
  a = np.asarray(x)
  return {'dtype': str(a.dtype), 'value': a.tolist()}


def _state_json(state):
  out = collections.OrderedDict()
  for k, v in state.items():
    if isinstance(v, (list, tuple)):
      out[k] = [_leaf_json(t) for t in v]
    else:
      out[k] = _leaf_json(v)
  return out


def make_optimizers(out_dir):
  rng = np.random.default_rng(OPT_SEED)
  shapes = [(3, 2), (2,)]
  w0 = [rng.normal(0, 1, s).astype(np.float32) for s in shapes]
  # Gradient scale changes between steps (exercises Yogi's sign rule etc.).
  scales = [1.0, 0.1, 2.0, 0.5]
  grads = [[(rng.normal(0, 1, s) * sc).astype(np.float32) for s in shapes]
           for sc in scales]
  specs = tuple(tf.TensorSpec(s, tf.float32) for s in shapes)
  weights_type = tff.types.tensorflow_to_type(specs)
  cases = []
  for name, builder, kwargs in OPTIMIZER_CASES:
    optimizer = getattr(tff.learning.optimizers, builder)(**kwargs)

    @tff.tensorflow.computation
    def init_fn():
      return optimizer.initialize(specs)  # pylint: disable=cell-var-from-loop

    state_type = init_fn.type_signature.result

    @tff.tensorflow.computation(state_type, weights_type, weights_type)
    @tf.function
    def next_fn(state, weights, gradients):
      return optimizer.next(state, weights, gradients)  # pylint: disable=cell-var-from-loop

    state = init_fn()
    state_init = _state_json(state)
    weights = tuple(w0)
    steps = []
    for g in grads:
      state, weights = next_fn(state, weights, tuple(g))
      weights = tuple(np.asarray(w, np.float32) for w in weights)
      steps.append(collections.OrderedDict(
          weights=[_leaf_json(w) for w in weights], state=_state_json(state)))
    cases.append(collections.OrderedDict(
        name=name, builder=f'tff.learning.optimizers.{builder}',
        kwargs=kwargs, state_keys=list(state_init.keys()),
        state_after_initialize=state_init, steps=steps))
    print(f'optimizer {name}: keys {list(state_init.keys())}', flush=True)
  doc = collections.OrderedDict(
      description=(
          'TFF 0.87 optimizers run as tff.tensorflow.computation: state = '
          'initialize(specs); then for i in 0..3: state, weights = '
          'next(state, weights, gradients[i]) starting from initial_weights. '
          'steps[i] holds the weights and state after step i+1. Every tensor '
          'is {dtype, value}; float32 values are exact as JSON doubles.'),
      tff_version=tff.__version__,
      tf_version=tf.__version__,
      numpy_seed=OPT_SEED,
      shapes=[list(s) for s in shapes],
      initial_weights=[_leaf_json(w) for w in w0],
      gradients=[[_leaf_json(t) for t in g] for g in grads],
      cases=cases,
  )
  path = os.path.join(out_dir, 'optimizers.json')
  with open(path, 'w') as f:
    json.dump(doc, f, indent=1)
  print(f'wrote {path} ({os.path.getsize(path)} bytes)', flush=True)


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--data', default=DEFAULT_DATA)
  p.add_argument('--out-dir', default=os.path.join(REPO, 'tests', 'golden'))
  p.add_argument('--only', nargs='*', default=None,
                 help='algorithm names (fed_eval for the evaluation file)')
  p.add_argument('--optimizers-only', action='store_true')
  p.add_argument('--skip-optimizers', action='store_true')
  args = p.parse_args()
  os.makedirs(args.out_dir, exist_ok=True)

  if not args.optimizers_only:
    sorted_ids, arrays = load_client_arrays(args.data, 'train', False)
    names = args.only if args.only is not None else list(ALGORITHMS) + [
        'fed_eval']
    for name in names:
      if name == 'fed_eval':
        run_fed_eval(args.data, args.out_dir,
                     os.path.join(args.out_dir, 'algo_fed_avg_weighted.npz'))
      else:
        run_algorithm(name, ALGORITHMS[name], arrays, sorted_ids,
                      args.out_dir)
  if not args.skip_optimizers and (args.only is None or args.optimizers_only):
    make_optimizers(args.out_dir)
  stop_worker_binaries()


if __name__ == '__main__':
  main()
