// Runs every <name>.onnx in a directory in ONNX Runtime (CPU) on the images
// of <name>.safetensors and compares the logits with dive's, stored beside
// them: |ort - dive| <= 1e-4 * max(1, |dive|) for every logit.
//
// With --int8 (int8 QDQ graphs, tools/onnx_parity_case.cc --int8) the logits
// are dive's int8 ones, which ONNX Runtime's int8 kernels reproduce up to
// rounding (a value on the edge between two uint8 steps may go either way,
// and the difference travels on): every logit within INT8_MAX_STEPS of
// dive's, a step being the range of dive's logits over 255 (what one uint8
// step of the logits would be), their mean difference within
// INT8_MAX_MEAN_STEPS, and the top-1 class the same on at least
// INT8_MIN_TOP1 of the images, where a disagreement on a near tie (dive's
// two best logits within INT8_MAX_STEPS: the rounding noise can swap them)
// is counted apart and excused. Measured on 1,000 images of the zoo's
// random-weight models: at most 3.5 steps (ResNet-18), mean at most 0.09
// (ResNet-18), top-1 at least 99.1% without the excuse (ResNet-18: 9
// disagreements, all near ties); ONNX Runtime's own unfused float32 run of
// the same graphs is farther from its int8 run (ResNet-18: mean 0.25).
//
// With --int8_reduce_range (reduce_range models, whose activations have half
// the steps: 0..127) a step is the logits' range over 127. Measured on
// 1,000 images (LeNet, ResNet-18, GoogLeNet, DenseNet): at most 3.0 steps
// (ResNet-18), mean at most 0.14, top-1 at least 97.9% without the excuse
// (ResNet-18: 21 disagreements, 20 of them near ties).
//
//   node tools/onnx/check_parity.js [--int8 | --int8_reduce_range] DIR
//
// Prints one line per model and exits non-zero when any model fails.
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const TOLERANCE = 1e-4;
const INT8_MAX_STEPS = 4;
const INT8_MAX_MEAN_STEPS = 0.25;
const INT8_MIN_TOP1 = 0.99;

// The float32 tensors of a safetensors file (8-byte little-endian header
// length, a JSON header, then the data).
function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 8) throw new Error(`${file}: too short for safetensors`);
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (8 + headerLen > buf.length) throw new Error(`${file}: bad header size`);
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'));
  const tensors = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (info.dtype !== 'F32') throw new Error(`${file}: ${name} is ${info.dtype}`);
    const [begin, end] = info.data_offsets;
    const bytes = buf.subarray(8 + headerLen + begin, 8 + headerLen + end);
    const data = new Float32Array(bytes.length / 4);
    for (let i = 0; i < data.length; ++i) data[i] = bytes.readFloatLE(4 * i);
    tensors[name] = { shape: info.shape, data };
  }
  return tensors;
}

function argmax(data, begin, end) {
  let best = begin;
  for (let i = begin; i < end; ++i) if (data[i] > data[best]) best = i;
  return best - begin;
}

// The --int8 comparison of ORT's `got` with dive's `want` (float32 [N, K]).
function compareInt8(name, got, want, quantMax) {
  const [n, k] = want.shape;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of want.data) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const step = Math.max(hi - lo, 1e-12) / quantMax;
  let worst = 0;
  let sum = 0;
  for (let i = 0; i < want.data.length; ++i) {
    const diff = Math.abs(got[i] - want.data[i]);
    worst = Math.max(worst, diff);
    sum += diff;
  }
  let agree = 0;
  let ties = 0;  // disagreements where dive's two best are within the noise
  for (let r = 0; r < n; ++r) {
    const best = argmax(want.data, r * k, (r + 1) * k);
    if (argmax(got, r * k, (r + 1) * k) === best) {
      ++agree;
      continue;
    }
    let second = -Infinity;
    for (let c = 0; c < k; ++c) if (c !== best) second = Math.max(second, want.data[r * k + c]);
    if (want.data[r * k + best] - second <= INT8_MAX_STEPS * step) ++ties;
  }
  const mean = sum / want.data.length / step;
  const ok = worst <= INT8_MAX_STEPS * step && mean <= INT8_MAX_MEAN_STEPS &&
    agree + ties >= INT8_MIN_TOP1 * n;
  return `${name}: ${ok ? 'ok' : 'FAIL'}: ${n} images, max |ort - dive| = ${(worst / step).toFixed(3)} steps ` +
    `(mean ${mean.toFixed(4)}; step ${step.toExponential(2)}), ` +
    `top-1 agrees on ${agree} of ${n} (${(100 * agree / n).toFixed(1)}%; ${ties} of the others near ties)`;
}

// int8: 0 for float32 graphs, else the activations' largest step (255, or
// 127 with reduce_range).
async function check(dir, name, int8) {
  const ref = readSafetensors(path.join(dir, `${name}.safetensors`));
  const session = await ort.InferenceSession.create(path.join(dir, `${name}.onnx`));
  const input = new ort.Tensor('float32', ref.images.data, ref.images.shape);
  const { output } = await session.run({ input });
  const want = ref.logits;
  if (output.dims.join() !== want.shape.join()) {
    return `${name}: FAIL: output shape [${output.dims}], dive [${want.shape}]`;
  }
  if (int8) return compareInt8(name, output.data, want, int8);
  let worst = 0;
  let scale = 0;
  let ok = true;
  for (let i = 0; i < want.data.length; ++i) {
    const diff = Math.abs(output.data[i] - want.data[i]);
    worst = Math.max(worst, diff);
    scale = Math.max(scale, Math.abs(want.data[i]));
    if (!(diff <= TOLERANCE * Math.max(1, Math.abs(want.data[i])))) ok = false;
  }
  return `${name}: ${ok ? 'ok' : 'FAIL'}: ${want.shape[0]} images, max |ort - dive| = ${worst.toExponential(2)} (max |dive| = ${scale.toExponential(2)})`;
}

async function main() {
  const args = process.argv.slice(2);
  const modes = { '--int8': 255, '--int8_reduce_range': 127 };
  const int8 = modes[args[0]] || 0;
  const dir = args[0] in modes ? args[1] : args[0];
  if (!dir || dir.startsWith('--')) {
    throw new Error('usage: check_parity.js [--int8 | --int8_reduce_range] DIR');
  }
  const names = fs.readdirSync(dir).filter((f) => f.endsWith('.onnx')).map((f) => f.slice(0, -5)).sort();
  if (names.length === 0) throw new Error(`${dir}: no .onnx files`);
  let failed = 0;
  for (const name of names) {
    const line = await check(dir, name, int8);
    console.log(line);
    if (line.includes('FAIL')) ++failed;
  }
  console.log(`${names.length - failed} of ${names.length} models match ONNX Runtime`);
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((e) => { console.error(`error: ${e.message}`); process.exitCode = 1; });
