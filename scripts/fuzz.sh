#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# CI's fuzz stage: builds the libFuzzer targets of tests/fuzz (the .npy reader, the wisdom
# parser, the disk-cache entry reader, descriptor validation) with clang-19, ASan and UBSan
# into build-fuzz ($RFJIT_FUZZ_DIR), and runs each for SECONDS (default 60) on a copy of its
# seed corpus (tests/fuzz/corpus/<target>), so the repository's corpus stays as committed,
# with the target's dictionary (tests/fuzz/<target>.dict) when it has one.
# Prints one line per target: executions, exec/s, coverage (cov: edges, ft: features) and
# corpus size; exits 1 if any target found a crash, leak, timeout or out-of-memory, whose
# reproducer is left in the scratch directory the line names.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
bash scripts/deps.sh clang-19 libclang-rt-19-dev
build=${RFJIT_FUZZ_DIR:-build-fuzz}
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang-19 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DRFJIT_FUZZ=ON -DRFJIT_SANITIZE=address,undefined -DRFJIT_BUILD_TESTS=OFF >/dev/null
targets=(npy wisdom dcache desc)
cmake --build "$build" -j2 --target "${targets[@]/#/fuzz_}"
scratch=$(mktemp -d /tmp/rfjit_fuzz_XXXXXX)
status=0
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t/corpus" "$scratch/$t/crashes"
    cp tests/fuzz/corpus/"$t"/* "$scratch/$t/corpus/"
    rc=0
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="$PWD/tests/fuzz/$t.dict")
    (cd "$scratch/$t/crashes" &&
        "$OLDPWD/$build/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
            -rss_limit_mb=2048 -malloc_limit_mb=2048 "${dict[@]}" "$scratch/$t/corpus" \
            >"$scratch/$t/log" 2>&1) ||
        rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$scratch/$t/log" | tail -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t/log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$scratch/$t/log")
    cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([^ ]*\).*/cov \1, ft \2, corpus \3/p' \
        <<<"$done_line")
    if [ $rc -ne 0 ] || [ -z "$done_line" ]; then
        echo "fuzz_$t: FAILED (exit $rc) after ${execs:-?} runs; log and reproducer in $scratch/$t"
        grep -E 'ERROR|SUMMARY|runtime error' "$scratch/$t/log" | head -5 || true
        status=1
    else
        echo "fuzz_$t: ${seconds} s, $execs runs, $rate exec/s, $cov"
    fi
done
[ $status -eq 0 ] && rm -rf "$scratch"
exit $status
