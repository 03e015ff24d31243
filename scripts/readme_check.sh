#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the commands of the READMEs as written: every line of every ```sh block of README.md
# and python/README.md, in order, from the repository root, each in its own bash (so a cd in
# one line does not move the next). A block right after a line
#     <!-- readme-check: skip: REASON -->
# is not run and the reason is printed; `bash scripts/test.sh` is not run here because
# .ci/run runs it as its last step. Exit 1 on the first command that fails.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for readme in README.md python/README.md; do
    [ -f "$readme" ] || continue
    in_block=0 skip="" prev="" n=0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        if [ $in_block -eq 0 ]; then
            if [ "$line" = '```sh' ]; then
                in_block=1
                skip=$(sed -n 's/^<!-- readme-check: skip: \(.*\) -->$/\1/p' <<<"$prev")
                [ -n "$skip" ] && echo "readme_check: $readme:$n: skipped: $skip"
            fi
            prev=$line
            continue
        fi
        if [ "$line" = '```' ]; then
            in_block=0 prev=""
            continue
        fi
        cmd=${line%%#*}
        cmd=$(sed 's/[[:space:]]*$//' <<<"$cmd")
        [ -z "$cmd" ] || [ -n "$skip" ] && continue
        if [ "$cmd" = "bash scripts/test.sh" ]; then
            echo "readme_check: $readme:$n: '$cmd' is .ci/run's last step"
            continue
        fi
        echo "readme_check: $readme:$n: $cmd"
        start=$(date +%s)
        if ! bash -euo pipefail -c "$cmd" </dev/null; then
            echo "readme_check: $readme:$n: FAILED: $cmd" >&2
            status=1
            break
        fi
        echo "readme_check: $readme:$n: ok ($(($(date +%s) - start)) s)"
    done <"$readme"
    [ $status -eq 0 ] || break
done
exit $status
