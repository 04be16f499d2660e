#!/usr/bin/env bash
# Proves that weights move from dive to PyTorch: for each model, trains one
# short epoch in C++ (writing model.safetensors), dumps the C++ logits of 16
# test images with //tools:eval, loads the checkpoint into the model's PyTorch
# twin (models/pytorch_twins.py) and checks that the twin's logits on the same
# images agree within 1e-4.
#
#   models/twin_roundtrip.sh                    # every model
#   models/twin_roundtrip.sh resnet densenet    # some
#
# Needs the PyTorch reference: tools/setup.sh --reference.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

models=("$@")
((${#models[@]})) || models=(softmax mlp mlp_dropout lenet bn_lenet alexnet vgg nin googlenet resnet densenet)
declare -A size=([alexnet]=96 [vgg]=64 [nin]=96 [googlenet]=64 [resnet]=64 [densenet]=64)

label() { case "$1" in mlp_dropout) echo "//models/mlp:train";; *) echo "//models/$1:train";; esac; }

bazel build //tools:eval $(for m in "${models[@]}"; do label "$m"; done) >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for m in "${models[@]}"; do
  bin="bazel-bin/$(label "$m" | sed 's|^//||; s|:|/|')"
  flags=(--epochs=1 --train_limit=512 --test_limit=64 --batch_size=32
         --progress=false --out="$work/$m")
  [[ "$m" == mlp_dropout ]] && flags+=(--dropout)
  [[ -n "${size[$m]:-}" ]] && flags+=(--resize="${size[$m]}")
  "$bin" "${flags[@]}" > /dev/null 2>&1
  bazel-bin/tools/eval --checkpoint="$work/$m/model.safetensors" --limit=16 \
      --dump="$work/$m/dump.safetensors" > /dev/null 2>&1
  /usr/bin/python3 models/pytorch_twins.py compare \
      "$work/$m/model.safetensors" "$work/$m/dump.safetensors" || failed=1
done
exit "$failed"
