#!/usr/bin/env bash
# Exports every zoo model to ONNX and checks, in ONNX Runtime, that the ONNX
# graph gives dive's logits on 16 Fashion-MNIST images (tools/onnx_parity_case.cc,
# tools/onnx/check_parity.js). With --int8 the models are quantized to int8
# and exported as QDQ graphs, and the check is on dive's int8 logits for
# 1,000 images (check_parity.js --int8); with --int8_reduce_range, four
# models quantized with reduce_range (activations 0..127), one of each kind
# of block (a chain, residual adds, Inception's concatenations, DenseNet's
# uint8 batch norms).
#
#   onnx_parity_test.sh CASE_BINARY CHECK_PARITY_JS NODE_MODULES_FILE \
#       [--int8 | --int8_reduce_range]
set -euo pipefail

case_binary=$1
check_js=$2
# Any file inside node_modules locates it.
node_modules=${3%%/node_modules/*}/node_modules
[[ -d $node_modules ]] || node_modules=$(dirname "$(dirname "$3")")

case_flags=()
check_flags=()
dir=${TEST_TMPDIR:?}/onnx_parity
if [[ ${4:-} == --int8 ]]; then
  case_flags=(--int8 --images=1000)
  check_flags=(--int8)
  dir=${TEST_TMPDIR}/onnx_qdq_parity
elif [[ ${4:-} == --int8_reduce_range ]]; then
  case_flags=(--int8 --reduce_range --images=1000
              --models=lenet,resnet,googlenet,densenet)
  check_flags=(--int8_reduce_range)
  dir=${TEST_TMPDIR}/onnx_qdq_reduce_range_parity
elif [[ $# -gt 3 ]]; then
  echo "usage: $0 CASE_BINARY CHECK_PARITY_JS NODE_MODULES_FILE" \
    "[--int8 | --int8_reduce_range]" >&2
  exit 2
fi
mkdir -p "$dir"
"$case_binary" --out_dir="$dir" "${case_flags[@]}"
NODE_PATH=$node_modules node "$check_js" "${check_flags[@]}" "$dir"
