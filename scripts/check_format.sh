#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks that the C lines changed since BASE (default HEAD~1: what the last commit or merge
# brought) are formatted as .clang-format says; the rest of the tree is left as it is. Prints
# clang-format's diff and exits 1 when they are not. Usage: check_format.sh [BASE]. Without
# git, or outside a clone (a tree unpacked from an archive), or with no BASE in the history,
# there are no changed lines to check: it says so and exits 0. Uncommitted edits count as
# changes, so running it before a commit checks what the commit will bring.
set -uo pipefail
cd "$(dirname "$0")/.."
say() { echo "check_format: $*" >&2; }
base=${1:-HEAD~1}

if ! command -v git >/dev/null; then
    say "skipped: git is not installed, so there are no changed lines to check"
    exit 0
fi
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    say "skipped: $PWD is not a git clone (an archive's tree has no history to diff against)"
    exit 0
fi
if ! git rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
    say "skipped: $base is not in this clone's history (a first commit, or a shallow clone)"
    exit 0
fi
# Debian's clang-format-14 ships both; the unversioned name is the clang-format package's.
fmt=$(command -v clang-format-14 || command -v clang-format) ||
    { say "clang-format-14 is missing (bash scripts/deps.sh installs it)"; exit 1; }
fmtdiff=$(command -v clang-format-diff-14 || command -v clang-format-diff) ||
    { say "clang-format-diff-14 is missing (bash scripts/deps.sh installs it)"; exit 1; }

# The library, tools, benchmarks, examples and tests; not runtime/target_names.c, which
# scripts/gen_target_names.sh writes. Deleted files have no lines left to check.
paths=('*.c' '*.h' ':!runtime/target_names.c')
changed=$(git diff --name-only --diff-filter=d "$base" -- "${paths[@]}" | wc -l)
out=$(git diff -U0 --no-color --diff-filter=d "$base" -- "${paths[@]}" |
      "$fmtdiff" -p1 -binary "$fmt" -style file) || { say "$fmtdiff failed"; exit 1; }
if [ -n "$out" ]; then
    printf '%s\n' "$out"
    say "the lines above, changed since $base, are not formatted as .clang-format says;"
    say "fix them with: git diff -U0 $base -- '*.c' '*.h' | $(basename "$fmtdiff") -p1 -i"
    exit 1
fi
say "ok: the changed lines of $changed C file(s) since $base are formatted"
