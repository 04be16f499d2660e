#!/usr/bin/env bash
# Quantizes every zoo model to int8, exports it as a QDQ ONNX graph and
# checks, in ONNX Runtime, that the graph gives dive's int8 logits on
# 1,000 Fashion-MNIST test images (tools/onnx_qdq_parity_case.cc,
# tools/onnx/check_parity.js --int8).
#
#   onnx_qdq_parity_test.sh CASE_BINARY CHECK_PARITY_JS NODE_MODULES_FILE
set -euo pipefail

case_binary=$1
check_js=$2
# Any file inside node_modules locates it.
node_modules=${3%%/node_modules/*}/node_modules
[[ -d $node_modules ]] || node_modules=$(dirname "$(dirname "$3")")

dir=${TEST_TMPDIR:?}/onnx_qdq_parity
mkdir -p "$dir"
"$case_binary" --out_dir="$dir" --images=1000
NODE_PATH=$node_modules node "$check_js" --int8 "$dir"
