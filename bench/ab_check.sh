#!/usr/bin/env bash
# A/B speed check against an earlier commit, on this CPU, with no stored
# baseline: builds the benchmark binaries of BASE (default HEAD^) in a
# temporary worktree and output base, builds this tree's, and runs
# bench/ab.py over both (alternating, one-sided Mann-Whitney U test).
#
#   bench/ab_check.sh                 against HEAD^
#   bench/ab_check.sh origin/main     against another commit
#   bench/ab_check.sh HEAD^ --rounds 12 --slowdown 0.05   (flags go to ab.py)
#
# The base build shares the action cache of .bazelrc's --disk_cache (or the
# one in DIVE_DISK_CACHE), so only what differs between the two commits is
# compiled. A base that has no commit to compare against, or does not build,
# is reported and skipped (exit 0): the check needs both builds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

base_rev="${1:-HEAD^}"
shift || true
TARGETS=(//bench:gemm_benchmark //bench:kernel_benchmark
         //bench:model_benchmark)
cache_flags=()
[[ -n "${DIVE_DISK_CACHE:-}" ]] && cache_flags=(--disk_cache="$DIVE_DISK_CACHE")

if ! base=$(git rev-parse --verify --quiet "$base_rev^{commit}"); then
  echo "ab: no commit $base_rev to compare against; skipped"
  exit 0
fi
head=$(git rev-parse HEAD)
work=$(mktemp -d "${TMPDIR:-/tmp}/dive-ab.XXXXXX")
cleanup() {
  if [[ -d "$work/output_base" ]]; then
    bazel --output_base="$work/output_base" shutdown >/dev/null 2>&1 || true
    chmod -R u+w "$work/output_base" 2>/dev/null || true
  fi
  git worktree remove --force "$work/base" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "ab: base ${base:0:12} ($base_rev), head ${head:0:12} plus any local changes"
git worktree add --detach --quiet "$work/base" "$base"
# The base's own output base, under $work: removed with it.
if ! (cd "$work/base" &&
      bazel --output_base="$work/output_base" build "${cache_flags[@]}" \
        --symlink_prefix=/ "${TARGETS[@]}"); then
  echo "ab: the base commit's benchmarks do not build; skipped"
  exit 0
fi
base_bin=$(cd "$work/base" &&
           bazel --output_base="$work/output_base" info bazel-bin)/bench
bazel build "${cache_flags[@]}" "${TARGETS[@]}"
# Not the bazel-bin symlink: it follows whichever --config ran last.
head_bin=$(bazel info bazel-bin)/bench
python3 -m bench.ab --base_bin_dir="$base_bin" --head_bin_dir="$head_bin" "$@"
