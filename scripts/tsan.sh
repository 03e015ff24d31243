#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# CI's TSan stage: builds the concurrency scenarios (tests/common/conc_testutil.c, driven by
# tests/tsan/tsan_driver.c; Criterion's process arena cannot be mapped under TSan) with
# -fsanitize=thread into build-tsan ($RFJIT_TSAN_DIR) and runs them; the first race fails
# the stage (exit 66). No suppressions: LLVM compiles under the context's locks, a kernel's
# parts on threads of their own, each in its own LLVM context, after the process's first
# compile has made LLVM's lazily built state on one thread (runtime/jit.c warm_llvm); nothing
# in rfjit or in the uninstrumented LLVM libraries has needed one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
build=${RFJIT_TSAN_DIR:-build-tsan}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRFJIT_WERROR=ON \
    -DRFJIT_SANITIZE=thread >/dev/null
cmake --build "$build" -j2 --target rfjit_tsan_driver
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 exitcode=66" "$build/rfjit_tsan_driver"
