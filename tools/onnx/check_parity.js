// Runs every <name>.onnx in a directory in ONNX Runtime (CPU) on the images
// of <name>.safetensors and compares the logits with dive's, stored beside
// them: |ort - dive| <= 1e-4 * max(1, |dive|) for every logit.
//
//   node tools/onnx/check_parity.js DIR
//
// Prints one line per model and exits non-zero when any model fails.
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const TOLERANCE = 1e-4;

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

async function check(dir, name) {
  const ref = readSafetensors(path.join(dir, `${name}.safetensors`));
  const session = await ort.InferenceSession.create(path.join(dir, `${name}.onnx`));
  const input = new ort.Tensor('float32', ref.images.data, ref.images.shape);
  const { output } = await session.run({ input });
  const want = ref.logits;
  if (output.dims.join() !== want.shape.join()) {
    return `${name}: FAIL: output shape [${output.dims}], dive [${want.shape}]`;
  }
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
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: check_parity.js DIR');
  const names = fs.readdirSync(dir).filter((f) => f.endsWith('.onnx')).map((f) => f.slice(0, -5)).sort();
  if (names.length === 0) throw new Error(`${dir}: no .onnx files`);
  let failed = 0;
  for (const name of names) {
    const line = await check(dir, name);
    console.log(line);
    if (line.includes('FAIL')) ++failed;
  }
  console.log(`${names.length - failed} of ${names.length} models match ONNX Runtime`);
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((e) => { console.error(`error: ${e.message}`); process.exitCode = 1; });
