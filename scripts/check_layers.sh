#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks the layering of docs/architecture.md on the built objects: every library function a
# layer's objects call is defined in that layer or a lower one (core < est < gen < runtime <
# tuner < api), and only the facade (api/) calls public rfjit_* functions, so the layers below
# it use the internal API and get their errors back in an rj_diag. Usage: check_layers.sh
# BUILD_DIR (the objects are BUILD_DIR/CMakeFiles/rfjit_<layer>.dir/**.o). Exit 1 on a
# violation, naming the caller's object, the symbol and the layer that defines it.
set -u
build=${1:?usage: check_layers.sh BUILD_DIR}
layers=(core est gen runtime tuner api)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in "${!layers[@]}"; do
    dir="$build/CMakeFiles/rfjit_${layers[$i]}.dir"
    # inside the layer's directory, objects are named by their sources (core/base.c.o): no
    # spaces, whatever the build directory is called
    mapfile -t objs < <(cd "$dir" 2>/dev/null && find . -name '*.o' | sed 's|^\./||' | sort)
    [ ${#objs[@]} -gt 0 ] || { echo "check_layers: no objects in $dir (build first)" >&2; exit 1; }
    (cd "$dir" && nm -A --defined-only -g "${objs[@]}") |
        awk -v l="$i" '{print $NF, l}' >>"$tmp/defs"
    (cd "$dir" && nm -A -u "${objs[@]}") |
        awk -v l="$i" '{o = $1; sub(/:$/, "", o); print $NF, l, o}' >>"$tmp/uses"
done
awk -v names="${layers[*]}" '
    BEGIN { split(names, L, " ") }
    NR == FNR { def[$1] = $2; next }
    ($1 in def) && def[$1] > $2 {
        printf "check_layers: %s calls %s, defined in %s/ above it\n", $3, $1,
               L[def[$1] + 1]; bad = 1
    }
    ($1 in def) && $1 ~ /^rfjit_/ && L[$2 + 1] != "api" {
        printf "check_layers: %s calls the public %s (the internal API is below it)\n",
               $3, $1; bad = 1
    }
    END { exit bad }' "$tmp/defs" "$tmp/uses" >&2
