#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time each (FUZZ_SECONDS, 60 by default; a target
# name as argument runs only that one) and prints, per target, the runs, executions per second
# and the corpus it ended with. The corpus kept in the repository (fuzz/corpus/<target>) seeds
# each run and is never written by it; a crash fails the run, its input is left in
# fuzz/artifacts/<target>/ and the command that replays it is printed. FUZZ_KEEP=1 merges what a
# run found that adds coverage into the repository's corpus, minimised (then commit it).
#
# The toolchain is stable; cargo-fuzz's sanitizer and coverage flags are -Z flags, hence
# RUSTC_BOOTSTRAP=1 for this build alone (the product builds never use it).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
ensure_cargo_fuzz

SECONDS_EACH=${FUZZ_SECONDS:-60}
cd "$ROOT/fuzz"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR}-fuzz"
mapfile -t targets < <(if [ $# -gt 0 ]; then printf '%s\n' "$@"; else cargo fuzz list; fi)

timed "Building ${#targets[@]} fuzz targets (AddressSanitizer, release)" "2 minutes" \
  cargo fuzz build -O
WORK=$(mktemp -d /tmp/clawloops-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
report=()
for target in "${targets[@]}"; do
  step "Fuzzing $target for ${SECONDS_EACH} s"
  mkdir -p "$WORK/$target" "corpus/$target" "artifacts/$target"
  dict=()
  [ -f "dict/$target.dict" ] && dict=("-dict=dict/$target.dict")
  # New inputs go to the run's own corpus (first directory); the repository's only seeds it.
  if ! cargo fuzz run -O "$target" "$WORK/$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "${dict[@]}" 2>"$WORK/$target.log"; then
    tail -40 "$WORK/$target.log" >&2
    die "fuzz target $target failed; replay: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O $target artifacts/$target/<file>)"
  fi
  if [ "${FUZZ_KEEP:-0}" = 1 ]; then
    # The smallest set of inputs (each at most 2 KiB) that covers what the old corpus and this
    # run covered, with the hand-written seeds kept as they are.
    mkdir -p "$WORK/$target.min"
    cargo fuzz run -O "$target" "$WORK/$target.min" "corpus/$target" "$WORK/$target" -- \
      -set_cover_merge=1 -max_len=2048 2>>"$WORK/$target.merge.log"
    find "corpus/$target" -type f ! -name 'seed-*' -delete
    cp -n "$WORK/$target.min"/* "corpus/$target/"
  fi
  runs=$(grep -Eo '^stat::number_of_executed_units: *[0-9]+' "$WORK/$target.log" | grep -Eo '[0-9]+$' || echo 0)
  secs=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$WORK/$target.log" | grep -Eo 'in [0-9]+' | grep -Eo '[0-9]+' || echo "$SECONDS_EACH")
  [ "$secs" -gt 0 ] || secs=1
  units=$(ls "$WORK/$target" "corpus/$target" | grep -vc ':$' || true)
  cov=$(grep -Eo 'cov: [0-9]+' "$WORK/$target.log" | tail -1 | grep -Eo '[0-9]+' || echo "?")
  report+=("$(printf '%-20s %10s runs %5s s %9s exec/s  coverage %5s  corpus %5s  crashes 0' "$target" "$runs" "$secs" $((runs / secs)) "$cov" "$units")")
done
step "Fuzzing report"
printf '  %s\n' "${report[@]}"
