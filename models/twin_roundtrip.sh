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
# The models, their trainers and sizes come from //models:zoo_json (zoo.py).
# Needs the PyTorch reference: tools/setup.sh --reference.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# "name target size flags..." per model, in the zoo's order.
specs=$(/usr/bin/python3 -c '
import sys; sys.path.insert(0, "models"); import zoo
for n in sys.argv[1:] or zoo.names():
    s = zoo.spec(n)
    print(n, s["train_target"], s["quick_input_size"], *s["train_flags"])' "$@")

bazel build //tools:eval $(awk '{print $2}' <<< "$specs" | sort -u) >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
while read -r m target size extra; do
  bin="bazel-bin/$(sed 's|^//||; s|:|/|' <<< "$target")"
  # shellcheck disable=SC2086  # extra: the spec's flags, one word each
  "$bin" --epochs=1 --train_limit=512 --test_limit=64 --batch_size=32 \
      --progress=false --resize="$size" --out="$work/$m" $extra > /dev/null 2>&1
  bazel-bin/tools/eval --checkpoint="$work/$m/model.safetensors" --limit=16 \
      --dump="$work/$m/dump.safetensors" > /dev/null 2>&1
  /usr/bin/python3 -m models.pytorch_twins compare \
      "$work/$m/model.safetensors" "$work/$m/dump.safetensors" || failed=1
done <<< "$specs"
exit "$failed"
