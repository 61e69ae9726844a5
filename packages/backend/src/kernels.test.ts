import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isInvalidInput } from '@ch8/errors';
import { registerTrainingKernels } from './kernels.ts';
import { activateWasm } from './wasm.ts';

// The stock cpu UnsortedSegmentSum, captured before registerTrainingKernels replaces it: the reference.
const stockCpuSegmentSum = tf.getKernel('UnsortedSegmentSum', 'cpu')?.kernelFunc;

type Out = tf.Tensor | tf.Tensor[];

function flat(r: Out): Float32Array[] {
  return (Array.isArray(r) ? r : [r]).map((t) => Float32Array.from(t.dataSync()));
}

/** Run `f` on wasm and on cpu (seeded inputs built inside `f`), return both results as flat arrays. */
async function onBoth(f: () => Out): Promise<{ wasm: Float32Array[]; cpu: Float32Array[] }> {
  await tf.setBackend('wasm');
  const wasm = tf.tidy(() => flat(f()));
  await tf.setBackend('cpu');
  const cpu = tf.tidy(() => flat(f()));
  await tf.setBackend('wasm');
  return { wasm, cpu };
}

/** max |a - e| <= rtol * max(|e|, 1e-6 scale floor) over every output. */
function assertClose(actual: Float32Array[], expected: Float32Array[], rtol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: number of outputs`);
  expected.forEach((e, k) => {
    const a = actual[k] as Float32Array;
    assert.equal(a.length, e.length, `${what}[${k}]: size`);
    let scale = 1e-6;
    let diff = 0;
    for (let i = 0; i < e.length; i++) {
      scale = Math.max(scale, Math.abs(e[i] as number));
      diff = Math.max(diff, Math.abs((a[i] as number) - (e[i] as number)));
    }
    assert.ok(diff <= rtol * scale, `${what}[${k}]: max diff ${diff} > ${rtol} x ${scale}`);
  });
}

async function agree(what: string, f: () => Out, rtol = 1e-4): Promise<void> {
  const { wasm, cpu } = await onBoth(f);
  assertClose(wasm, cpu, rtol, what);
}

const rnd = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

before(async () => {
  registerTrainingKernels();
  await activateWasm();
});

describe('registration', () => {
  test('adds the missing kernels, overrides the slow ones, is idempotent', () => {
    const list = registerTrainingKernels();
    assert.equal(registerTrainingKernels(), list);
    const has = (kernel: string, backend: string, kind: string) =>
      list.some((k) => k.kernel === kernel && k.backend === backend && k.kind === kind);
    assert.ok(has('UnsortedSegmentSum', 'wasm', 'added'));
    assert.ok(has('Conv2DBackpropFilter', 'wasm', 'added'));
    assert.ok(has('BatchMatMul', 'wasm', 'override'));
    assert.ok(has('UnsortedSegmentSum', 'cpu', 'override'));
    assert.ok(has('Einsum', 'wasm', 'cpu-bridge'));
    for (const k of list) assert.ok(tf.getKernel(k.kernel, k.backend), `${k.kernel} registered on ${k.backend}`);
  });
});

describe('UnsortedSegmentSum', () => {
  const x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const ids = [3, 0, 3, -1, 7];
  // float64 reference: rows of x [5, 2] summed into 4 segments, id -1 and 7 dropped.
  const expected = [3, 4, 0, 0, 0, 0, 1 + 5, 2 + 6];

  test('matches a float64 reference on wasm and cpu (float32 and int32)', async () => {
    for (const dtype of ['float32', 'int32'] as const) {
      const { wasm, cpu } = await onBoth(() =>
        tf.unsortedSegmentSum(tf.tensor2d(x, [5, 2], dtype), tf.tensor1d(ids, 'int32'), 4),
      );
      assert.deepEqual(Array.from(wasm[0] as Float32Array), expected, `wasm ${dtype}`);
      assert.deepEqual(Array.from(cpu[0] as Float32Array), expected, `cpu ${dtype}`);
    }
  });

  test('the cpu override agrees with the stock cpu kernel', async () => {
    assert.ok(stockCpuSegmentSum);
    await tf.setBackend('cpu');
    tf.tidy(() => {
      const data = rnd([50, 3, 4], 1);
      const seg = tf.randomUniform([50], 0, 9, 'int32', 2) as tf.Tensor1D;
      const mine = tf.unsortedSegmentSum(data, seg, 9);
      const info = stockCpuSegmentSum({
        inputs: { x: data, segmentIds: seg },
        backend: tf.backend(),
        attrs: { numSegments: 9 },
      }) as tf.TensorInfo;
      const stock = tf.engine().makeTensorFromTensorInfo(info);
      assertClose(flat(mine), flat(stock), 1e-6, 'cpu segment sum');
    });
    await tf.setBackend('wasm');
  });

  test('gather gradient (embedding lookup) agrees with cpu, repeated ids accumulate', async () => {
    await agree('grad gather axis 0', () => {
      const e = rnd([30, 8], 3);
      const idx = tf.tensor2d([1, 5, 5, 0, 29, 1, 1, 7], [2, 4], 'int32');
      const w = rnd([2, 4, 8], 4);
      return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, idx), w)))(e);
    });
    await agree('grad gather axis 1', () => {
      const e = rnd([3, 10, 4], 5);
      const idx = tf.tensor1d([9, 0, 9, 4], 'int32');
      return tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.gather(t, idx, 1))))(e);
    });
  });
});

describe('GatherV2', () => {
  test('agrees with cpu for axes, batchDims and dtypes', async () => {
    await agree(
      'gather',
      () => {
        const idx = tf.tensor2d([2, 0, 1, 1, 3, 0], [2, 3], 'int32');
        return [
          tf.gather(rnd([4, 5, 3], 6), idx),
          tf.gather(rnd([2, 4, 3], 7), idx, 1, 1),
          tf.gather(rnd([3, 4], 8), tf.tensor1d([3, 3, 0], 'int32'), 1),
          tf.gather(tf.tensor1d([10, 20, 30, 40], 'int32'), idx),
          tf.cast(tf.gather(tf.tensor1d([true, false, true, false], 'bool'), idx), 'float32'),
          tf.gather(rnd([4, 2], 9), tf.tensor1d([], 'int32')),
        ];
      },
      0,
    );
  });

  test('an index out of range is an InvalidInputError on wasm', () => {
    assert.equal(tf.getBackend(), 'wasm');
    const before = tf.memory().numTensors;
    assert.throws(
      () => tf.gather(tf.zeros([3, 2]), tf.tensor1d([0, 3], 'int32')),
      (e: unknown) => isInvalidInput(e) && /index value 3 is not in \[0, 2\]/.test(e.message),
    );
    assert.throws(() => tf.gather(tf.zeros([3, 2]), tf.tensor1d([-1], 'int32')), isInvalidInput);
    tf.disposeVariables();
    assert.ok(tf.memory().numTensors <= before + 4);
  });
});

describe('matMul', () => {
  test('every transpose combination, 2-D and batched with broadcasting, forward and gradients', async () => {
    const cases: [number[], number[], boolean, boolean][] = [
      [[6, 7], [7, 5], false, false],
      [[7, 6], [7, 5], true, false],
      [[6, 7], [5, 7], false, true],
      [[7, 6], [5, 7], true, true],
      [[3, 20, 30], [3, 30, 25], false, false],
      [[3, 30, 20], [3, 25, 30], true, true],
      [[2, 3, 20, 30], [2, 3, 30, 20], false, false],
      [[4, 2, 3], [4, 3, 2], false, false],
    ];
    for (const [sa, sb, ta, tb] of cases) {
      await agree(`matMul ${sa} ${sb} ${ta} ${tb}`, () => {
        const a = rnd(sa, 10);
        const b = rnd(sb, 11);
        const f = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, ta, tb);
        const out = f(a, b);
        const dy = rnd(out.shape, 12);
        const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(f(x, y), dy)))([a, b]);
        return [out, ga as tf.Tensor, gb as tf.Tensor];
      });
    }
  });

  test('batch broadcasting (forward: tfjs has no gradient that reduces broadcast batch dims)', async () => {
    await agree('broadcast batches', () => [
      tf.matMul(rnd([3, 20, 30], 17), rnd([1, 30, 25], 18)),
      tf.matMul(rnd([1, 20, 30], 19), rnd([3, 25, 30], 20), false, true),
      tf.matMul(rnd([2, 30, 20], 21), rnd([1, 30, 25], 22), true, false),
    ]);
  });

  test('fused matMul (bias + activation, transposed) and its gradients', async () => {
    for (const [ta, tb] of [
      [false, false],
      [false, true],
      [true, false],
    ] as const) {
      await agree(`fused ${ta} ${tb}`, () => {
        const a = rnd(ta ? [9, 6] : [6, 9], 13);
        const b = rnd(tb ? [4, 9] : [9, 4], 14);
        const bias = rnd([4], 15);
        const f = (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) =>
          tf.fused.matMul({
            a: x as tf.Tensor2D,
            b: y as tf.Tensor2D,
            transposeA: ta,
            transposeB: tb,
            bias: z,
            activation: 'relu',
          });
        const g = tf.grads((x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) => tf.sum(tf.square(f(x, y, z))))([a, b, bias]);
        return [f(a, b, bias), ...g];
      });
    }
  });

  test('Adam steps agree with cpu (gradients well away from 0)', async () => {
    await agree(
      'adam',
      () => {
        const w = tf.variable(rnd([6, 4], 18));
        const target = tf.add(rnd([6, 4], 19), 5);
        const opt = tf.train.adam(0.1);
        for (let i = 0; i < 4; i++) opt.minimize(() => tf.sum(tf.square(tf.sub(w, target))));
        const out = w.clone();
        opt.dispose();
        w.dispose();
        return out;
      },
      1e-5,
    );
  });

  test('dense layer training steps (tfjs-layers, SGD) match cpu', async () => {
    await agree('dense fit', () => {
      const model = tf.sequential();
      model.add(
        tf.layers.dense({
          units: 7,
          inputShape: [5],
          activation: 'tanh',
          kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }),
        }),
      );
      model.add(tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }));
      const x = rnd([8, 5], 16);
      const y = tf.tensor2d([1, 0, 1, 1, 0, 0, 1, 0], [8, 1]);
      const opt = tf.train.sgd(0.1);
      for (let i = 0; i < 3; i++) {
        opt.minimize(() => tf.losses.sigmoidCrossEntropy(y, model.apply(x) as tf.Tensor));
      }
      const out = model.getWeights().map((w) => w.clone());
      opt.dispose();
      return out;
    });
  });
});

describe('convolution gradients', () => {
  const conv1dCases: [number[], number[], number, 'valid' | 'same'][] = [
    [[2, 9, 6], [3, 6, 4], 1, 'valid'],
    [[2, 9, 6], [5, 6, 4], 1, 'same'],
    [[3, 11, 5], [4, 5, 3], 2, 'valid'],
    [[1, 4, 3], [5, 3, 2], 1, 'same'],
    // 'same' with an even width: no padding on the left, one column on the right.
    [[2, 7, 5], [2, 5, 3], 1, 'same'],
  ];
  for (const [xs, fs, stride, pad] of conv1dCases) {
    test(`conv1d x${xs} f${fs} stride ${stride} ${pad}: forward, filter and input gradients`, async () => {
      await agree('conv1d', () => {
        const x = rnd(xs, 20);
        const f = rnd(fs, 21);
        const c = (a: tf.Tensor, b: tf.Tensor) => tf.conv1d(a as tf.Tensor3D, b as tf.Tensor3D, stride, pad);
        const y = c(x, f);
        const dy = rnd(y.shape, 22);
        const [gx, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(c(a, b), dy)))([x, f]);
        return [y, gx as tf.Tensor, gf as tf.Tensor];
      });
    });
  }

  test('conv2d 3x3 stride 2 same: gradients', async () => {
    await agree('conv2d', () => {
      const x = rnd([2, 7, 6, 3], 23);
      const f = rnd([3, 3, 3, 4], 24);
      return tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'))),
      )([x, f]);
    });
  });

  test('NCHW filter gradient goes through the cpu bridge and agrees', async () => {
    await agree('NCHW', () => {
      const x = rnd([2, 3, 5, 6], 25);
      const dy = rnd([2, 4, 3, 4], 26);
      return tf
        .engine()
        .runKernel(
          'Conv2DBackpropFilter',
          { x, dy },
          { strides: [1, 1], pad: 'valid', dataFormat: 'NCHW', filterShape: [3, 3, 3, 4] },
        ) as tf.Tensor;
    });
  });

  test('Kim CNN: conv1d widths 3,4,5 + masked max over valid positions, gradient of E and filters', async () => {
    await agree('kim cnn', () => {
      const E = rnd([20, 6], 27);
      const ids = tf.tensor2d([1, 4, 7, 2, 0, 0, 3, 3, 9, 12, 19, 5], [2, 6], 'int32');
      const len = tf.tensor1d([4, 6], 'int32');
      const F = [3, 4, 5].map((k, i) => rnd([k, 6, 5], 28 + i));
      const loss = (e: tf.Tensor, ...fs: tf.Tensor[]) => {
        const x = tf.gather(e, ids) as tf.Tensor3D;
        const feats = fs.map((f, i) => {
          const k = 3 + i;
          const c = tf.relu(tf.conv1d(x, f as tf.Tensor3D, 1, 'valid'));
          const pos = tf.range(0, 6 - k + 1, 1, 'int32').expandDims(0);
          const valid = tf.less(pos, tf.sub(len, k - 1).expandDims(1)).expandDims(2);
          return tf.max(tf.where(tf.broadcastTo(valid, c.shape), c, tf.fill(c.shape, -1e9)), 1);
        });
        return tf.sum(tf.square(tf.concat(feats, 1)));
      };
      return tf.grads(loss)([E, ...F]);
    });
  });
});

describe('broadcasting binary kernels', () => {
  const pairs: [number[], number[]][] = [
    [
      [2, 3, 4],
      [2, 1, 4],
    ],
    [
      [3, 1],
      [1, 4],
    ],
    [
      [2, 1, 3, 1],
      [4, 1, 5],
    ],
    [[5, 4], [4]],
  ];
  test('comparisons, logical ops, min/max/pow/floorDiv/mod/atan2 agree with cpu', async () => {
    for (const [sa, sb] of pairs) {
      await agree(`binary ${sa} ${sb}`, () => {
        const a = tf.round(tf.mul(rnd(sa, 30), 3));
        const b = tf.round(tf.mul(rnd(sb, 31), 3));
        const ai = tf.cast(a, 'int32');
        const bi = tf.cast(b, 'int32');
        const nz = tf.add(tf.abs(b), 1);
        const f = (t: tf.Tensor) => tf.cast(t, 'float32');
        return [
          f(tf.equal(a, b)),
          f(tf.notEqual(ai, bi)),
          f(tf.greater(a, b)),
          f(tf.greaterEqual(ai, bi)),
          f(tf.less(a, b)),
          f(tf.lessEqual(a, b)),
          f(tf.logicalAnd(tf.greater(a, 0), tf.greater(b, 0))),
          f(tf.logicalOr(tf.greater(a, 0), tf.greater(b, 0))),
          f(tf.logicalXor(tf.greater(a, 0), tf.greater(b, 0))),
          tf.maximum(a, b),
          f(tf.minimum(ai, bi)),
          tf.pow(tf.abs(a), b),
          tf.floorDiv(a, nz),
          tf.mod(tf.abs(a), nz),
          tf.atan2(a, b),
          f(tf.add(ai, bi)),
          f(tf.sub(ai, bi)),
          f(tf.mul(ai, bi)),
          f(tf.squaredDifference(ai, bi)),
          tf.add(a, b),
        ];
      });
    }
  });

  test('tile and broadcastTo agree with cpu for float, int and bool', async () => {
    await agree(
      'tile',
      () => {
        const a = rnd([2, 1, 3], 32);
        const f = (t: tf.Tensor) => tf.cast(t, 'float32');
        return [
          tf.tile(a, [3, 4, 2]),
          tf.tile(a, [1, 1, 1]),
          tf.tile(a, [1, 5, 1]),
          f(tf.tile(tf.tensor1d([1, 2, 3], 'int32'), [4])),
          f(tf.tile(tf.tensor2d([true, false], [2, 1], 'bool'), [2, 3])),
          tf.broadcastTo(a, [4, 2, 5, 3]),
          tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.tile(t, [2, 3, 1]))))(a),
        ];
      },
      0,
    );
  });
});

describe('cpu bridge', () => {
  test('einsum and depthwise conv gradients run on wasm and agree with cpu', async () => {
    await agree('bridge', () => {
      const a = rnd([3, 4], 33);
      const b = rnd([4, 5], 34);
      const x = rnd([1, 5, 5, 2], 35);
      const f = rnd([3, 3, 2, 1], 36);
      const [gx, gf] = tf.grads((p: tf.Tensor, q: tf.Tensor) =>
        tf.sum(tf.depthwiseConv2d(p as tf.Tensor4D, q as tf.Tensor4D, 1, 'same')),
      )([x, f]);
      return [tf.einsum('ij,jk->ik', a, b), gx as tf.Tensor, gf as tf.Tensor];
    });
  });
});

describe('model shapes train on wasm like on cpu', () => {
  async function trainLayers(build: () => tf.Sequential): Promise<void> {
    // Same initial weights on both backends: taken from one build, loaded into the other.
    await tf.setBackend('wasm');
    const init = tf.tidy(() =>
      build()
        .getWeights()
        .map((w) => w.arraySync()),
    );
    await agree(
      'layers fit',
      () => {
        const model = build();
        model.setWeights(model.getWeights().map((w, i) => tf.tensor(init[i] as number[], w.shape)));
        const ids = tf.tensor2d([3, 1, 4, 0, 0, 5, 9, 2, 6, 5, 3, 5, 8, 0, 0, 0], [4, 4]);
        const y = tf.tensor2d([1, 0, 1, 0], [4, 1]);
        // SGD, not Adam: Adam turns float-rounding-level gradients (~1e-9, either sign) into full-size steps.
        const opt = tf.train.sgd(0.5);
        for (let i = 0; i < 2; i++) {
          opt.minimize(() => tf.losses.sigmoidCrossEntropy(y, model.apply(ids) as tf.Tensor));
        }
        opt.dispose();
        return model.getWeights().map((w) => w.clone());
      },
      2e-4,
    );
  }
  const embed = () =>
    tf.layers.embedding({
      inputDim: 12,
      outputDim: 5,
      inputLength: 4,
      maskZero: true,
      embeddingsInitializer: tf.initializers.randomUniform({ minval: -1, maxval: 1, seed: 71 }),
    });
  const seeded = {
    kernelInitializer: tf.initializers.glorotUniform({ seed: 72 }),
    recurrentInitializer: tf.initializers.orthogonal({ seed: 73 }),
  };
  const head = () => tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: 74 }) });

  test('LSTM (masked)', async () => {
    await trainLayers(() => {
      const m = tf.sequential();
      m.add(embed());
      m.add(tf.layers.lstm({ units: 3, ...seeded }));
      m.add(head());
      return m;
    });
  });

  test('bidirectional GRU', async () => {
    await trainLayers(() => {
      const m = tf.sequential();
      m.add(embed());
      m.add(tf.layers.bidirectional({ layer: tf.layers.gru({ units: 3, ...seeded }) as tf.RNN }));
      m.add(head());
      return m;
    });
  });

  test('self-attention with softmax and layer norm', async () => {
    await agree('attention', () => {
      const x = rnd([2, 5, 4], 40);
      const mask = tf.tensor2d([1, 1, 1, 0, 0, 1, 1, 1, 1, 1], [2, 5]);
      const ws = [41, 42, 43].map((s) => rnd([4, 4], s));
      const loss = (wq: tf.Tensor, wk: tf.Tensor, wv: tf.Tensor) => {
        const flatX = x.reshape([10, 4]);
        const q = tf.matMul(flatX, wq).reshape([2, 5, 4]);
        const k = tf.matMul(flatX, wk).reshape([2, 5, 4]);
        const v = tf.matMul(flatX, wv).reshape([2, 5, 4]);
        const s = tf.add(tf.div(tf.matMul(q, k, false, true), 2), tf.mul(tf.sub(1, mask.expandDims(1)), -1e9));
        const o = tf.matMul(tf.softmax(s), v);
        const { mean, variance } = tf.moments(o, -1, true);
        const ln = tf.div(tf.sub(o, mean), tf.sqrt(tf.add(variance, 1e-5)));
        return tf.sum(tf.sigmoid(tf.sum(tf.mul(ln, mask.expandDims(2)), 1)));
      };
      return tf.grads(loss)(ws);
    });
  });
});

describe('memory', () => {
  test('the kernels free their temporaries (wasm heap tensors stay constant)', async () => {
    await tf.setBackend('wasm');
    const step = () =>
      tf.tidy(() => {
        const e = rnd([10, 4], 50);
        const q = rnd([3, 6, 4], 51);
        const x = rnd([2, 7, 4], 52);
        const f = rnd([3, 4, 2], 53);
        const a = tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, tf.tensor1d([1, 1, 9], 'int32'))))(e);
        const b = tf.grad((t: tf.Tensor) => tf.sum(tf.matMul(t, t, false, true)))(q);
        const c = tf.grads((p: tf.Tensor, r: tf.Tensor) =>
          tf.sum(tf.conv1d(p as tf.Tensor3D, r as tf.Tensor3D, 1, 'same')),
        )([x, f]);
        const d = tf.equal(q, tf.max(q, 1, true));
        const g = tf.tile(e, [2, 1]);
        return [a, b, ...c, d, g].map((t) => t.dataSync().length);
      });
    step();
    const wasmBackend = tf.backend() as tf.KernelBackend & { numDataIds(): number };
    const ids = wasmBackend.numDataIds();
    const tensors = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    assert.equal(wasmBackend.numDataIds(), ids);
    assert.equal(tf.memory().numTensors, tensors);
  });
});

describe('slicing and max-pool gradient', () => {
  test('slice, split, unstack agree with cpu (inner, outer, full and empty ranges; int and bool)', async () => {
    await agree(
      'slicing',
      () => {
        const a = rnd([4, 5, 6], 60);
        const f = (t: tf.Tensor) => tf.cast(t, 'float32');
        return [
          tf.slice(a, [1, 2, 3], [2, 2, 2]),
          tf.slice(a, [0, 0, 2], [-1, -1, 3]),
          tf.slice(a, [2, 0, 0], [2, 5, 6]),
          tf.slice(a, [0, 1, 0], [4, 3, 6]),
          tf.slice(a, [0, 0, 0], [4, 0, 6]),
          tf.slice(rnd([3, 4, 5, 6, 2], 61), [1, 0, 2, 1, 1], [2, 4, 2, 5, 1]),
          f(tf.slice(tf.range(0, 20, 1, 'int32').reshape([4, 5]), [1, 1], [2, 3])),
          f(tf.slice(tf.greater(a, 0), [1, 1, 1], [2, 2, 2])),
          ...tf.split(a, [1, 3, 2], 2),
          ...tf.split(a, 2, 0),
          ...tf.unstack(a, 1),
          ...tf.unstack(a, 2),
          tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.concat([t, tf.mul(t, 2)], 2))))(a),
        ];
      },
      0,
    );
  });

  test('reverse agrees with cpu for every axis set, int and bool, and its gradient', async () => {
    await agree(
      'reverse',
      () => {
        const a = rnd([3, 4, 5], 64);
        const f = (t: tf.Tensor) => tf.cast(t, 'float32');
        return [
          tf.reverse(a, 0),
          tf.reverse(a, 1),
          tf.reverse(a, 2),
          tf.reverse(a, [0, 2]),
          tf.reverse(a, [0, 1, 2]),
          tf.reverse(a, -1),
          f(tf.reverse(tf.range(0, 12, 1, 'int32').reshape([3, 4]), 1)),
          f(tf.reverse(tf.greater(a, 0), [1])),
          tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.reverse(t, 1), a)))(a),
        ];
      },
      0,
    );
  });

  test('max-pool gradient routes dy to the first maximum, like cpu (ties included)', async () => {
    await agree(
      'maxPool grad',
      () => {
        const x = rnd([2, 6, 5, 3], 62);
        const ties = tf.relu(tf.sub(rnd([2, 8, 1, 4], 63), 1)); // many zeros: ties
        const g = (t: tf.Tensor, size: [number, number], stride: [number, number], pad: 'valid' | 'same') =>
          tf.grad((u: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(u as tf.Tensor4D, size, stride, pad), 1.5)))(t);
        return [
          g(x, [2, 2], [2, 2], 'valid'),
          g(x, [3, 3], [1, 2], 'same'),
          g(ties, [8, 1], [8, 1], 'valid'),
          g(ties, [3, 1], [2, 1], 'same'),
          // The max over time of a CNN: one window over each example's whole width.
          g(tf.reshape(ties, [2, 1, 8, 4]), [1, 8], [1, 8], 'valid'),
        ];
      },
      0,
    );
  });
});

describe('tanh', () => {
  test('agrees with cpu to float32 rounding, forward and gradient, including near 0 and saturation', async () => {
    const { wasm, cpu } = await onBoth(() => {
      const x = tf.concat([tf.mul(rnd([200], 70), 3), tf.tensor1d([0, 1e-3, -1e-3, 0.05, 20, -20, 1e-8])]);
      return [tf.tanh(x), tf.grad((t: tf.Tensor) => tf.sum(tf.tanh(t)))(x)];
    });
    for (let k = 0; k < 2; k++) {
      const a = wasm[k] as Float32Array;
      const e = cpu[k] as Float32Array;
      for (let i = 0; i < e.length; i++) {
        assert.ok(
          Math.abs((a[i] as number) - (e[i] as number)) <= 3e-7,
          `output ${k} element ${i}: ${a[i]} vs ${e[i]}`,
        );
      }
    }
  });
});

describe('useStockKernels', () => {
  /** Run `f` on `backend` with the stock kernels, then with ours. */
  async function stockVsOurs(backend: 'wasm' | 'cpu', f: () => Out) {
    await tf.setBackend(backend);
    const { useStockKernels } = await import('./kernels.ts');
    useStockKernels(true);
    try {
      const stock = tf.tidy(() => flat(f()));
      useStockKernels(false);
      const ours = tf.tidy(() => flat(f()));
      return { stock, ours };
    } finally {
      useStockKernels(false);
      await tf.setBackend('wasm');
    }
  }

  test('swaps the overrides out and back in', async () => {
    const { useStockKernels } = await import('./kernels.ts');
    const ours = tf.getKernel('GatherV2', 'wasm')?.kernelFunc;
    useStockKernels(true);
    const stock = tf.getKernel('GatherV2', 'wasm')?.kernelFunc;
    assert.notEqual(stock, ours);
    assert.ok(tf.getKernel('UnsortedSegmentSum', 'wasm'), 'added kernels stay');
    useStockKernels(false);
    assert.equal(tf.getKernel('GatherV2', 'wasm')?.kernelFunc, ours);
  });

  test('the cpu conv1d filter gradient agrees with the stock cpu kernel', async () => {
    const { stock, ours } = await stockVsOurs('cpu', () => {
      const x = rnd([2, 9, 6], 80);
      const f = rnd([3, 6, 4], 81);
      return [
        tf.grad((w: tf.Tensor) => tf.sum(tf.square(tf.conv1d(x as tf.Tensor3D, w as tf.Tensor3D, 2, 'same'))))(f),
        tf.grad((w: tf.Tensor) =>
          tf.sum(tf.square(tf.conv2d(rnd([2, 5, 6, 3], 82) as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid'))),
        )(rnd([2, 3, 3, 4], 83)),
      ];
    });
    assertClose(ours, stock, 1e-5, 'cpu conv filter');
  });

  test('wasm overrides agree with the stock wasm kernels they replace', async () => {
    const { stock, ours } = await stockVsOurs('wasm', () => {
      const a = rnd([3, 4, 5], 84);
      const b = rnd([3, 5, 6], 85);
      return [
        tf.matMul(a, b),
        tf.matMul(rnd([7, 5], 86), rnd([6, 5], 87), false, true),
        tf.gather(rnd([9, 3], 88), tf.tensor1d([8, 0, 4], 'int32')),
        tf.cast(tf.greater(a, rnd([3, 1, 5], 89)), 'float32'),
        tf.tanh(a),
        tf.tile(a, [1, 2, 1]),
        ...tf.unstack(a, 1),
        tf.grad((t: tf.Tensor) => tf.sum(tf.maxPool(t as tf.Tensor4D, 2, 2, 'valid')))(rnd([1, 4, 4, 2], 90)),
      ];
    });
    assertClose(ours, stock, 1e-5, 'wasm overrides');
  });
});

describe('Identity (shared memory)', () => {
  test('a clone outlives its source, variables keep their own values, nothing leaks', async () => {
    await tf.setBackend('wasm');
    const wasmBackend = tf.backend() as tf.KernelBackend & { numDataIds(): number };
    const ids = wasmBackend.numDataIds();
    const a = tf.tensor1d([1, 2, 3]);
    const b = tf.clone(a);
    a.dispose();
    assert.deepEqual(Array.from(b.dataSync()), [1, 2, 3]);
    const v = tf.variable(b);
    const next = tf.tensor1d([7, 8, 9]);
    v.assign(next);
    next.dispose();
    assert.deepEqual(Array.from(b.dataSync()), [1, 2, 3], 'assigning a variable leaves its initial value alone');
    assert.deepEqual(Array.from(v.dataSync()), [7, 8, 9]);
    b.dispose();
    v.dispose();
    assert.equal(wasmBackend.numDataIds(), ids);
  });
});
