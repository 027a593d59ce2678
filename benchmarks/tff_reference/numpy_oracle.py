"""Tiny independent float64 NumPy oracle for the clipped-FedAvg golden files.

Plain numpy only (no TFF, no TensorFlow, no fl_blocks). Given a golden npz
written by make_clip_reference.py (or the shared seed_clip_r3.npz), it reads the
`config` and `w0_*`, recomputes every round in float64 and prints the max
absolute difference against each stored `w{r}_*`:

  python3 benchmarks/tff_reference/numpy_oracle.py tests/golden/clip_c05_b10_r3.npz

Algorithm (softmax regression, one local epoch per client):
  per batch (x [B,784], y [B]):
    p = softmax(x @ W + b)
    gW = x^T (p - onehot(y)) / B ;  gb = mean(p - onehot(y), axis=0)
    n = sqrt(|gW|^2 + |gb|^2) ; if n > clip: g = g * (clip / n)
    W -= client_lr * gW ; b -= client_lr * gb
  update_c = initial - trained ; weight_c = number of examples of client c
  update = sum_c weight_c * update_c / sum_c weight_c
  server SGD(+momentum): v = momentum * v + update ; w = w - server_lr * v
"""

import json
import os
import sys

import numpy as np

DEFAULT_DATA = '/work/shared/data/femnist_leaf_subset.npz'


def load_clients(data_path, all_classes):
  with np.load(data_path, allow_pickle=False) as z:
    pixels, labels = z['train_pixels'], z['train_labels']
    ids, offsets = z['train_client_ids'], z['train_offsets']
  clients = {}
  for i, cid in enumerate(ids):
    lo, hi = int(offsets[i]), int(offsets[i + 1])
    lab, pix = labels[lo:hi], pixels[lo:hi]
    if not all_classes:
      keep = lab < 10
      lab, pix = lab[keep], pix[keep]
    if lab.shape[0]:
      x = (pix.astype(np.float32) / np.float32(255)).reshape(-1, 784)
      clients[str(cid)] = (x.astype(np.float64), lab.astype(np.int64))
  return clients


def softmax(z):
  z = z - z.max(axis=1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=1, keepdims=True)


def client_train(w, b, x, y, batch, lr, clip):
  w, b = w.copy(), b.copy()
  for s in range(0, x.shape[0], batch):
    xb, yb = x[s:s + batch], y[s:s + batch]
    d = softmax(xb @ w + b)
    d[np.arange(len(yb)), yb] -= 1.0
    gw = xb.T @ d / len(yb)
    gb = d.mean(axis=0)
    n = np.sqrt(np.sum(gw * gw) + np.sum(gb * gb))
    if n > clip:
      gw, gb = gw * (clip / n), gb * (clip / n)
    w -= lr * gw
    b -= lr * gb
  return w, b


def run(path, data_path=DEFAULT_DATA):
  with np.load(path, allow_pickle=False) as z:
    ref = {k: z[k] for k in z.files}
  cfg = json.loads(str(ref['config']))
  clients = load_clients(data_path, cfg['all_classes'])
  ids = [str(c) for c in ref['client_ids']]
  lo, hi = cfg['clients'].split(':')
  assert ids == sorted(clients)[int(lo):int(hi)], 'client ids mismatch'
  w = ref['w0_kernel'].astype(np.float64)
  b = ref['w0_bias'].astype(np.float64)
  vw, vb = np.zeros_like(w), np.zeros_like(b)
  mom = cfg.get('server_momentum', 0.0) or 0.0
  worst = 0.0
  for r in range(1, cfg['rounds'] + 1):
    sw, sb, tot = np.zeros_like(w), np.zeros_like(b), 0.0
    for c in ids:
      x, y = clients[c]
      tw, tb = client_train(w, b, x, y, cfg['batch'], cfg['client_lr'],
                            cfg['clip'])
      sw += len(y) * (w - tw)
      sb += len(y) * (b - tb)
      tot += len(y)
    uw, ub = sw / tot, sb / tot
    if mom:
      vw, vb = mom * vw + uw, mom * vb + ub
    else:
      vw, vb = uw, ub
    w = w - cfg['server_lr'] * vw
    b = b - cfg['server_lr'] * vb
    dk = np.abs(w - ref[f'w{r}_kernel']).max()
    db = np.abs(b - ref[f'w{r}_bias']).max()
    worst = max(worst, dk, db)
    print(f'{os.path.basename(path)} round {r}: max|dW|={dk:.3e} '
          f'max|db|={db:.3e}')
  return worst


def main(argv):
  paths = argv[1:] or ['/work/shared/tff_reference/seed_clip_r3.npz']
  worst = max(run(p) for p in paths)
  print(f'worst max abs diff: {worst:.3e}')
  return 0 if worst <= 1e-6 else 1


if __name__ == '__main__':
  sys.exit(main(sys.argv))
