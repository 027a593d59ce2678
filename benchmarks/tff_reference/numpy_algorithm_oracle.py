"""Independent float64 NumPy re-computation of the Part B golden files.

Plain numpy only (no TFF / TensorFlow / fl_blocks). It re-implements, from the
semantics written down in README.md, every `tests/golden/algo_*.npz` and
`tests/golden/optimizers.json`, and prints the max abs differences:

  python3 benchmarks/tff_reference/numpy_algorithm_oracle.py            # all
  python3 benchmarks/tff_reference/numpy_algorithm_oracle.py algo_fed_sgd

It is an executable form of the notes in README.md, not a library.
"""

import glob
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(os.path.dirname(os.path.dirname(HERE)), 'tests', 'golden')
DATA = '/work/shared/data/femnist_leaf_subset.npz'


# ----------------------------------------------------------------------------
# data / model
# ----------------------------------------------------------------------------
def load_clients(split, all_classes=False):
  with np.load(DATA, allow_pickle=False) as z:
    pixels, labels = z[f'{split}_pixels'], z[f'{split}_labels']
    ids, offsets = z[f'{split}_client_ids'], z[f'{split}_offsets']
  out = {}
  for i, cid in enumerate(ids):
    lab = labels[offsets[i]:offsets[i + 1]]
    pix = pixels[offsets[i]:offsets[i + 1]]
    if not all_classes:
      pix, lab = pix[lab < 10], lab[lab < 10]
    if len(lab):
      x = (pix.astype(np.float32) / np.float32(255)).reshape(-1, 784)
      out[str(cid)] = (x.astype(np.float64), lab.astype(np.int64))
  return out


def batches(x, y, b):
  for s in range(0, len(y), b):
    yield x[s:s + b], y[s:s + b]


EPSILON = 1e-7  # tf.keras.backend.epsilon()


def forward(w, xb, yb):
  """Returns (loss, #correct, grads [dW, db]) at weights w, Keras-exact.

  The model ends in a Softmax layer and the loss is
  SparseCategoricalCrossentropy(from_logits=False). Inside TFF, Keras does
  NOT recover the logits here; it clips the probabilities and takes their
  log, then applies sparse_softmax_cross_entropy_with_logits to those logs:
      c = clip(p, eps, 1 - eps);  loss_i = -log(c_iy) + log(sum_j c_ij)
  The gradient flows through the clip only where eps <= p <= 1 - eps.
  Without clipping this equals the textbook softmax(z) - onehot(y) gradient.
  """
  z = xb @ w[0] + w[1]
  z = z - z.max(axis=1, keepdims=True)
  p = np.exp(z)
  p /= p.sum(axis=1, keepdims=True)
  n = len(yb)
  r = np.arange(n)
  c = np.clip(p, EPSILON, 1 - EPSILON)
  s = c.sum(axis=1, keepdims=True)
  loss = np.mean(-np.log(c[r, yb]) + np.log(s[:, 0]))
  correct = int(np.sum(np.argmax(p, axis=1) == yb))
  dc = np.broadcast_to(1.0 / s, c.shape).copy()
  dc[r, yb] -= 1.0 / c[r, yb]
  dp = dc * ((p >= EPSILON) & (p <= 1 - EPSILON))
  dz = p * (dp - np.sum(dp * p, axis=1, keepdims=True))
  return loss, correct, [xb.T @ dz / n, dz.mean(axis=0)]


class Metrics:
  """sum_then_finalize of from_keras_model's metrics."""

  def __init__(self):
    self.loss_sum = 0.0   # sum_b n_b * loss_b
    self.correct = 0
    self.n = 0
    self.batches = 0

  def add(self, loss, correct, n):
    self.loss_sum += n * loss
    self.correct += correct
    self.n += n
    self.batches += 1

  def merge(self, o):
    self.loss_sum += o.loss_sum
    self.correct += o.correct
    self.n += o.n
    self.batches += o.batches

  def result(self):
    return dict(sparse_categorical_accuracy=self.correct / self.n,
                loss=self.loss_sum / self.n, num_examples=self.n,
                num_batches=self.batches)


# ----------------------------------------------------------------------------
# optimizers (TFF 0.87 formulas)
# ----------------------------------------------------------------------------
class SGDM:

  def __init__(self, learning_rate=0.01, momentum=None):
    self.lr, self.m = learning_rate, momentum

  def init(self, w):
    st = {'learning_rate': self.lr}
    if self.m:
      st['momentum'] = self.m
      st['accumulator'] = [np.zeros_like(t) for t in w]
    return st

  def next(self, st, w, g):
    if 'accumulator' not in st:
      return st, [wi - st['learning_rate'] * gi for wi, gi in zip(w, g)]
    acc = [st['momentum'] * a + gi for a, gi in zip(st['accumulator'], g)]
    st = dict(st, accumulator=acc)
    return st, [wi - st['learning_rate'] * a for wi, a in zip(w, acc)]


class Adam:

  def __init__(self, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
               weight_decay=None):
    self.h = dict(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                  epsilon=epsilon)
    self.wd = weight_decay

  def init(self, w):
    st = dict(self.h, step=0, accumulator=[np.zeros_like(t) for t in w],
              preconditioner=[np.zeros_like(t) for t in w])
    if self.wd is not None:
      st['weight_decay'] = self.wd
    return st

  def next(self, st, w, g):
    b1, b2, eps, lr = st['beta_1'], st['beta_2'], st['epsilon'], st[
        'learning_rate']
    t = st['step'] + 1
    norm = np.sqrt(1 - b2**t) / (1 - b1**t)
    acc = [a + (gi - a) * (1 - b1) for a, gi in zip(st['accumulator'], g)]
    pre = [p + (gi * gi - p) * (1 - b2) for p, gi in zip(st['preconditioner'],
                                                          g)]
    if self.wd is None:
      w = [wi - lr * norm * a / (np.sqrt(p) + eps)
           for wi, a, p in zip(w, acc, pre)]
    else:
      w = [wi - lr * (norm * a / (np.sqrt(p) + eps) + st['weight_decay'] * wi)
           for wi, a, p in zip(w, acc, pre)]
    return dict(st, step=t, accumulator=acc, preconditioner=pre), w


class Yogi(Adam):

  def __init__(self, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-3,
               initial_preconditioner_value=1e-6):
    super().__init__(learning_rate, beta_1, beta_2, epsilon)
    self.p0 = initial_preconditioner_value

  def init(self, w):
    st = super().init(w)
    st['preconditioner'] = [np.full_like(t, self.p0) for t in w]
    return st

  def next(self, st, w, g):
    b1, b2, eps, lr = st['beta_1'], st['beta_2'], st['epsilon'], st[
        'learning_rate']
    t = st['step'] + 1
    norm = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    acc = [a + (gi - a) * (1 - b1) for a, gi in zip(st['accumulator'], g)]
    pre = [p + (1 - b2) * np.sign(gi * gi - p) * gi * gi
           for p, gi in zip(st['preconditioner'], g)]
    w = [wi - norm * a / (np.sqrt(p) + eps) for wi, a, p in zip(w, acc, pre)]
    return dict(st, step=t, accumulator=acc, preconditioner=pre), w


class Adagrad:

  def __init__(self, learning_rate, initial_preconditioner_value=0.1,
               epsilon=1e-7):
    self.lr, self.p0, self.eps = learning_rate, initial_preconditioner_value, epsilon

  def init(self, w):
    return dict(learning_rate=self.lr, epsilon=self.eps,
                preconditioner=[np.full_like(t, self.p0) for t in w])

  def next(self, st, w, g):
    pre = [p + gi * gi for p, gi in zip(st['preconditioner'], g)]
    w = [wi - st['learning_rate'] * gi / np.sqrt(p + st['epsilon'])
         for wi, gi, p in zip(w, g, pre)]
    return dict(st, preconditioner=pre), w


class RMSProp:

  def __init__(self, learning_rate, decay=0.9, epsilon=1e-7):
    self.h = dict(learning_rate=learning_rate, decay=decay, epsilon=epsilon)

  def init(self, w):
    return dict(self.h, preconditioner=[np.zeros_like(t) for t in w])

  def next(self, st, w, g):
    d = st['decay']
    pre = [p + (gi * gi - p) * (1 - d) for p, gi in zip(st['preconditioner'],
                                                         g)]
    w = [wi - st['learning_rate'] * gi / (np.sqrt(p) + st['epsilon'])
         for wi, gi, p in zip(w, g, pre)]
    return dict(st, preconditioner=pre), w


BUILDERS = {
    'build_sgdm': SGDM,
    'build_adam': Adam,
    'build_adamw': lambda **k: Adam(**dict(dict(weight_decay=0.004), **k)),
    'build_yogi': Yogi,
    'build_adagrad': Adagrad,
    'build_rmsprop': RMSProp,
}


# ----------------------------------------------------------------------------
# client works
# ----------------------------------------------------------------------------
def local_training(w0, x, y, batch, opt, prox=0.0):
  """Model-delta client work; returns (update=initial-trained, n, Metrics)."""
  w = [t.copy() for t in w0]
  st = opt.init(w)          # client optimizer state re-initialized every round
  m = Metrics()
  for xb, yb in batches(x, y, batch):
    loss, correct, g = forward(w, xb, yb)
    m.add(loss, correct, len(yb))
    if prox > 0:
      # TFF 0.87 adds proximal_strength * (initial - current), see README.
      g = [gi + prox * (w0i - wi) for gi, wi, w0i in zip(g, w, w0)]
    st, w = opt.next(st, w, g)
  return [a - b for a, b in zip(w0, w)], len(y), m


def weighted_mean(values, weights):
  tot = float(sum(weights))
  return [sum(wt * v[i] for v, wt in zip(values, weights)) / tot
          for i in range(len(values[0]))]


def run_algorithm(path, clients):
  with np.load(path, allow_pickle=False) as z:
    ref = {k: z[k] for k in z.files}
  cfg = json.loads(str(ref['config']))
  name = cfg['algorithm']
  hp = cfg['hparams']
  ids = [str(c) for c in ref['client_ids']]
  lo, hi = cfg['clients'].split(':')
  assert ids == sorted(clients)[int(lo):int(hi)]
  data = [clients[c] for c in ids]
  batch = cfg['batch']
  w = [ref['w0_kernel'].astype(np.float64), ref['w0_bias'].astype(np.float64)]

  if name == 'fed_sgd':
    server = SGDM(hp['server_lr'], hp.get('server_momentum'))
  elif hp.get('server_optimizer') == 'adam':
    server = Adam(hp['server_lr'], hp['beta_1'], hp['beta_2'], hp['epsilon'])
  elif hp.get('server_optimizer') == 'yogi':
    server = Yogi(hp['server_lr'], hp['beta_1'], hp['beta_2'], hp['epsilon'],
                  hp['initial_preconditioner_value'])
  else:
    server = SGDM(hp['server_lr'], hp.get('server_momentum'))
  sstate = server.init(w)
  uniform = 'unweighted' in name
  mime_state = None
  if name.startswith('mime'):
    base = SGDM(hp['base_lr'], hp['base_momentum'])
    mime_state = base.init(w)
  worst_w, worst_m = 0.0, 0.0
  for r in range(1, cfg['rounds'] + 1):
    updates, weights, mets, extra = [], [], Metrics(), {}
    full_grads = []
    for x, y in data:
      if name == 'fed_sgd':
        gsum = [np.zeros_like(t) for t in w]
        m = Metrics()
        for xb, yb in batches(x, y, batch):
          loss, correct, g = forward(w, xb, yb)
          m.add(loss, correct, len(yb))
          gsum = [a + len(yb) * gi for a, gi in zip(gsum, g)]
        upd, n = [a / len(y) for a in gsum], len(y)
      elif name.startswith('mime'):
        gsum = [np.zeros_like(t) for t in w]
        for xb, yb in batches(x, y, batch):
          _, _, g = forward(w, xb, yb)
          gsum = [a + len(yb) * gi for a, gi in zip(gsum, g)]
        full_grads.append([a / len(y) for a in gsum])
        wl = [t.copy() for t in w]
        m = Metrics()            # metrics reset after the full-gradient pass
        for xb, yb in batches(x, y, batch):
          loss, correct, g = forward(wl, xb, yb)
          m.add(loss, correct, len(yb))
          _, wl = base.next(mime_state, wl, g)   # global state, not updated
        upd, n = [a - b for a, b in zip(w, wl)], len(y)
      else:
        if name == 'fed_avg_client_schedule':
          lr = float(np.float32(0.02) * np.float32(0.5)**(r - 1))
          extra['client_learning_rate'] = lr
          opt = SGDM(lr)
        else:
          opt = SGDM(hp['client_lr'], hp.get('client_momentum'))
        upd, n, m = local_training(w, x, y, batch, opt,
                                   hp.get('proximal_strength', 0.0))
      updates.append(upd)
      weights.append(1.0 if uniform else float(n))
      mets.merge(m)
    agg = weighted_mean(updates, weights)
    if mime_state is not None:
      _, _ = None, None
      mime_state = base.next(mime_state, [np.zeros_like(t) for t in w],
                             weighted_mean(full_grads, weights))[0]
    sstate, w = server.next(sstate, w, agg)
    dw = max(np.abs(w[0] - ref[f'w{r}_kernel']).max(),
             np.abs(w[1] - ref[f'w{r}_bias']).max())
    tm = json.loads(str(ref['metrics'][r - 1]))
    got = mets.result()
    want = tm['client_work']['train']
    dm = max(abs(got[k] - want[k]) for k in got)
    assert got['num_examples'] == want['num_examples']
    assert got['num_batches'] == want['num_batches']
    for k, v in extra.items():
      dm = max(dm, abs(v - tm['client_work'][k]))
    worst_w, worst_m = max(worst_w, dw), max(worst_m, dm)
    print(f'{os.path.basename(path)} round {r}: max|dw|={dw:.2e} '
          f'max|dmetric|={dm:.2e}')
  return worst_w, worst_m


def run_eval(path):
  with np.load(path, allow_pickle=False) as z:
    ref = {k: z[k] for k in z.files}
  cfg = json.loads(str(ref['config']))
  clients = load_clients('test')
  data = [clients[str(c)] for c in ref['client_ids']]
  total = Metrics()
  worst = 0.0
  for i in range(cfg['rounds']):
    w = [ref[f'w{i}_kernel'].astype(np.float64),
         ref[f'w{i}_bias'].astype(np.float64)]
    cur = Metrics()
    for x, y in data:
      for xb, yb in batches(x, y, cfg['batch']):
        loss, correct, _ = forward(w, xb, yb)
        cur.add(loss, correct, len(yb))
    total.merge(cur)
    tm = json.loads(str(ref['metrics'][i]))['client_work']['eval']
    for got, want in ((cur.result(), tm['current_round_metrics']),
                      (total.result(), tm['total_rounds_metrics'])):
      worst = max(worst, max(abs(got[k] - want[k]) for k in got))
  print(f'{os.path.basename(path)}: max|dmetric|={worst:.2e}')
  return worst


def run_optimizers(path):
  with open(path) as f:
    doc = json.load(f)
  val = lambda leaf: np.asarray(leaf['value'], np.float64)
  w_init = [val(t) for t in doc['initial_weights']]
  grads = [[val(t) for t in g] for g in doc['gradients']]
  worst = 0.0
  for case in doc['cases']:
    opt = BUILDERS[case['builder'].split('.')[-1]](**case['kwargs'])
    w = [t.copy() for t in w_init]
    st = opt.init(w)
    assert list(st) == case['state_keys'], (case['name'], list(st))
    d = 0.0
    for g, step in zip(grads, case['steps']):
      st, w = opt.next(st, w, g)
      d = max(d, max(np.abs(a - val(b)).max() for a, b in zip(w,
                                                              step['weights'])))
      for k, v in step['state'].items():
        mine = st[k]
        if isinstance(v, list):
          d = max(d, max(np.abs(a - val(b)).max() for a, b in zip(mine, v)))
        else:
          d = max(d, abs(float(mine) - float(v['value'])))
    worst = max(worst, d)
    print(f'optimizers.json {case["name"]}: max|d|={d:.2e}')
  return worst


def main(argv):
  wanted = argv[1:]
  train = load_clients('train')
  worst_w, worst_m = 0.0, 0.0
  for p in sorted(glob.glob(os.path.join(GOLDEN, 'algo_*.npz'))):
    base = os.path.basename(p)[:-4]
    if wanted and base not in wanted:
      continue
    if base == 'algo_fed_eval':
      worst_m = max(worst_m, run_eval(p))
    else:
      a, b = run_algorithm(p, train)
      worst_w, worst_m = max(worst_w, a), max(worst_m, b)
  worst_o = 0.0
  if not wanted or 'optimizers' in wanted:
    worst_o = run_optimizers(os.path.join(GOLDEN, 'optimizers.json'))
  print(f'worst: weights {worst_w:.2e}, metrics {worst_m:.2e}, '
        f'optimizers {worst_o:.2e}')
  return 0 if max(worst_w, worst_o) < 1e-5 and worst_m < 1e-5 else 1


if __name__ == '__main__':
  sys.exit(main(sys.argv))
