#!/usr/bin/env bash
# Proves that weights move from dive to PyTorch: for each model, trains one
# short epoch in C++ (writing model.safetensors) at the spec's quick input
# size, dumps the C++ logits of 16 test images with //tools:eval, loads the
# checkpoint into the model's PyTorch twin (models/pytorch_twins.py) and checks
# that the twin's logits on the same images agree within 1e-4.
#
#   models/twin_roundtrip.sh                    # every model
#   models/twin_roundtrip.sh resnet densenet    # some
#
# The models and sizes come from //models:zoo_json (zoo.py); //models:train
# trains any of them by name.
# Needs the PyTorch reference: tools/setup.sh --reference.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# "name size" per model, in the zoo's order.
specs=$(/usr/bin/python3 -c '
import sys; sys.path.insert(0, "models"); import zoo
for n in sys.argv[1:] or zoo.names():
    print(n, zoo.spec(n)["quick_input_size"])' "$@")

bazel build //tools:eval //models:train >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
while read -r m size; do
  bazel-bin/models/train --model="$m" --epochs=1 --train_limit=512 \
      --test_limit=64 --batch_size=32 --progress=false --resize="$size" \
      --out="$work/$m" > /dev/null 2>&1
  bazel-bin/tools/eval --checkpoint="$work/$m/model.safetensors" --limit=16 \
      --dump="$work/$m/dump.safetensors" > /dev/null 2>&1
  /usr/bin/python3 -m models.pytorch_twins compare \
      "$work/$m/model.safetensors" "$work/$m/dump.safetensors" || failed=1
done <<< "$specs"
exit "$failed"
