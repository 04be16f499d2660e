#!/usr/bin/env bash
# Bounds Bazel's disk cache (.bazelrc's --disk_cache), which Bazel 4 never
# prunes: while it holds more than MAX_GB gigabytes (default
# DIVE_DISK_CACHE_MAX_GB, else 10), removes its least recently used entries
# (by the later of access and modification time) until it holds 80% of that.
#
#   tools/prune_disk_cache.sh [DIR [MAX_GB]]
#
# DIR defaults to ~/.cache/dive/bazel-disk-cache. Only regular files inside
# DIR are removed (never a symlink's target), and only from a directory that
# looks like a Bazel disk cache (its ac/ and cas/ folders), so a mistyped DIR
# loses nothing.
set -euo pipefail

dir="${1:-$HOME/.cache/dive/bazel-disk-cache}"
max_gb="${2:-${DIVE_DISK_CACHE_MAX_GB:-10}}"
if ! [[ "$max_gb" =~ ^[0-9]+$ ]] || ((max_gb == 0)); then
  echo "prune_disk_cache.sh: MAX_GB must be a positive whole number, not '$max_gb'" >&2
  exit 2
fi
# Nothing cached yet: no folder, or an empty one.
[[ -d "$dir" && -n "$(ls -A "$dir")" ]] || exit 0
if [[ -L "$dir" || ! -d "$dir/ac" || ! -d "$dir/cas" ]]; then
  echo "prune_disk_cache.sh: $dir is not a Bazel disk cache (no ac/ and cas/); left alone" >&2
  exit 2
fi

limit=$((max_gb * 1024 * 1024 * 1024))
used=$(du -sb "$dir" | cut -f1)
((used > limit)) || exit 0
target=$((limit * 8 / 10))
# "time size path", least recently used first; paths are Bazel's hex digests.
find "$dir" -type f -printf '%A@ %T@ %s %p\n' |
  awk '{ t = ($1 > $2) ? $1 : $2; print t, $3, $4 }' | sort -n |
  while read -r _ size path; do
    # Read to the end even when done: leaving early would kill sort with
    # SIGPIPE once its output passes the pipe's buffer, failing the
    # pipeline (pipefail) after a successful prune.
    ((used > target)) || continue
    rm -f -- "$path"
    used=$((used - size))
  done
echo "prune_disk_cache.sh: $dir pruned to about $((target / 1024 / 1024)) MiB (limit ${max_gb} GiB)" >&2
