#!/usr/bin/env bash
# Exports every zoo model to ONNX and checks, in ONNX Runtime, that the ONNX
# graph gives dive's logits on 16 Fashion-MNIST images (tools/onnx_parity_case.cc,
# tools/onnx/check_parity.js).
#
#   onnx_parity_test.sh CASE_BINARY CHECK_PARITY_JS NODE_MODULES_FILE
set -euo pipefail

case_binary=$1
check_js=$2
# Any file inside node_modules locates it.
node_modules=${3%%/node_modules/*}/node_modules
[[ -d $node_modules ]] || node_modules=$(dirname "$(dirname "$3")")

dir=${TEST_TMPDIR:?}/onnx_parity
mkdir -p "$dir"
"$case_binary" --out_dir="$dir"
NODE_PATH=$node_modules node "$check_js" "$dir"
