#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The kernel templates (gen/tmpl/) are written in the IR helper layer's vocabulary (gen/ir.h):
# index arithmetic, slot accesses, loads, stores and arithmetic go through rj_ir_* helpers, so
# an nsw flag, an alignment or an index formula is spelled once. The LLVM builders a template
# may call directly are the decisions: selects, compares and the boolean logic of masks (And,
# Not). Exit 1 with the offending lines otherwise.
set -u
cd "$(dirname "$0")/.."
allowed='LLVMBuild(Select|ICmp|FCmp|And|Not)'
bad=$(grep -n -E -o 'LLVMBuild[A-Za-z0-9]*' gen/tmpl/*.[ch] | grep -v -E ":$allowed\$" |
      cut -d: -f1,2 | sort -u)
if [ -n "$bad" ]; then
    echo "check_ir_helpers: LLVM builders in gen/tmpl/ outside selects, compares and mask logic" \
         "(add or use an rj_ir_* helper in gen/ir.h):" >&2
    for at in $bad; do
        echo "  $at: $(sed -n "${at#*:}p" "${at%%:*}" | sed 's/^ *//')" >&2
    done
    exit 1
fi
