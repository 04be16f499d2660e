#!/usr/bin/env bash
# .ci/run's bookkeeping, on made-up inputs: the Bazel summary count (cached
# tests apart), the step table and the WARNING past the time threshold; and
# tools/prune_disk_cache.sh's bound.
#
#   ci_run_test.sh CI_RUN PRUNE_DISK_CACHE
set -uo pipefail

ci_run=$(realpath "$1")
prune=$(realpath "$2")
tmp=${TEST_TMPDIR:?}
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

export HOME="$tmp/home"  # .ci/run names its disk cache under it
# Sourcing defines the functions and state without running main.
# shellcheck source=/dev/null
source "$ci_run"

# --- count_bazel_results: the last summary only; cached passes counted apart.
cat >"$tmp/bazel.log" <<'LOG'
//old:test_from_an_earlier_summary                   PASSED in 1.0s
INFO: Elapsed time: 12.0s, Critical Path: 3.0s
//tensor:shape_test                                  PASSED in 0.1s
//tensor:gemm_test                          (cached) PASSED in 2.1s
//tensor:ops_test                                    FAILED in 2 out of 3 in 1.2s
//nn:conv_test                                       TIMEOUT in 60.0s
//train:training_test                       (cached) PASSED in 27.0s
//tools:eval_test                                    FAILED TO BUILD
LOG
count_bazel_results "$tmp/bazel.log"
[[ "$PASSED $FAILED" == "3 3" ]] || fail "counted $PASSED passed, $FAILED failed, not 3 and 3"
[[ "$TESTS_RUN $TESTS_CACHED" == "4 2" ]] ||
  fail "counted $TESTS_RUN run and $TESTS_CACHED cached, not 4 and 2"

# --- the summary: each step's time and the total; no WARNING under the
# threshold, one naming the three slowest steps over it.
STEP_NAMES=(setup test bench sanitize)
STEP_SECONDS=(7 1200 19 1300)
STEP_RESULTS=(ok ok ok FAILED)
WARN_SECONDS=3600
summary=$(print_summary)
echo "$summary"
grep -qE '^sanitize +1300s +FAILED$' <<<"$summary" || fail "no sanitize row"
grep -qE '^total +2526s' <<<"$summary" || fail "no total of 2526s"
grep -q '^bazel tests: 4 ran, 2 from the cache$' <<<"$summary" ||
  fail "no test count line"
grep -q WARNING <<<"$summary" && fail "a WARNING under the threshold"
WARN_SECONDS=60
summary=$(print_summary)
grep -qx 'WARNING: CI took 2526s, over 60s; slowest steps: sanitize 1300s, test 1200s, bench 19s' \
  <<<"$summary" || fail "no WARNING naming the slowest steps: $summary"

# --- step: records the time and result, and a failing step marks the run.
step_quick() { count 2 0; }
step_broken() { return 3; }
STEP_NAMES=() STEP_SECONDS=() STEP_RESULTS=() STATUS=0 PASSED=0 FAILED=0
step quick 2>/dev/null
((STATUS == 0)) || fail "a passing step failed the run"
step broken 2>/dev/null
[[ "${STEP_NAMES[*]} ${STEP_RESULTS[*]}" == "quick broken ok FAILED" ]] ||
  fail "steps recorded as ${STEP_NAMES[*]} ${STEP_RESULTS[*]}"
((STATUS == 1 && PASSED == 2 && FAILED == 1)) ||
  fail "after a broken step: status $STATUS, $PASSED passed, $FAILED failed"

# --- prune_disk_cache.sh: over the bound, the oldest entries go first; a
# folder that is not a disk cache is refused and left alone.
cache="$tmp/cache"
mkdir -p "$cache/ac" "$cache/cas"
for i in 1 2 3 4 5 6; do
  truncate -s 300M "$cache/cas/blob$i"  # sparse: counted, not written
  touch -d "2026-01-0$i" "$cache/cas/blob$i"
done
"$prune" "$cache" 1 2>/dev/null || fail "prune_disk_cache.sh failed"
left=$(cd "$cache/cas" && echo *)
[[ "$left" == "blob5 blob6" ]] || fail "after pruning to 1 GiB: $left, not blob5 blob6"
mkdir -p "$tmp/precious" && echo keep >"$tmp/precious/file"
"$prune" "$tmp/precious" 1 2>/dev/null && fail "pruned a folder that is no cache"
[[ -f "$tmp/precious/file" ]] || fail "removed a file outside any cache"
"$prune" "$cache" zero 2>/dev/null && fail "took MAX_GB 'zero'"
mkdir "$tmp/empty"
"$prune" "$tmp/empty" 1 || fail "refused an empty folder (a cache not yet used)"
# A real cache has many entries: the list of those kept is longer than a
# pipe's buffer (a failed prune here once failed CI's setup step).
many="$tmp/many"
mkdir -p "$many/ac" "$many/cas"
truncate -s 1200M "$many/cas/old_blob" && touch -d 2026-01-01 "$many/cas/old_blob"
(cd "$many/ac" && seq -f "entry_with_a_long_name_like_a_sha256_digest_%06g" 1 4000 |
   xargs touch)
"$prune" "$many" 1 2>/dev/null || fail "prune_disk_cache.sh failed on a cache of many entries"
[[ ! -e "$many/cas/old_blob" && -e "$many/ac/entry_with_a_long_name_like_a_sha256_digest_004000" ]] ||
  fail "the oldest entry was not the one removed"

if ((failures)); then
  echo "$failures failures" >&2
  exit 1
fi
echo PASS
