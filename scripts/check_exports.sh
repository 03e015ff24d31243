#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The shared library exports the public API and nothing else: every defined dynamic symbol
# of LIB (default build/librfjit.so) starts with rfjit_, and every RFJIT_API function of
# include/rfjit.h is among them. A ctest entry (check_exports) runs it on the built library.
set -euo pipefail
cd "$(dirname "$0")/.."
lib=${1:-build/librfjit.so}
defined=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sort)
stray=$(grep -v '^rfjit_' <<<"$defined" || true)
if [ -n "$stray" ]; then
    echo "check_exports: $lib exports symbols outside the API:" >&2
    echo "$stray" | head -20 >&2
    exit 1
fi
declared=$(grep -o 'rfjit_[a-z0-9_]*(' include/rfjit.h | tr -d '(' | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$defined") | grep -v '_fn$' || true)
if [ -n "$missing" ]; then
    echo "check_exports: $lib lacks declared functions:" >&2
    echo "$missing" >&2
    exit 1
fi
echo "check_exports: $(wc -l <<<"$defined") symbols, all rfjit_*, every declared function present"
