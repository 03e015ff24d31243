#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# CI's pip stage: `pip install .[bfloat16]` from this checkout into a fresh venv (Debian's
# python3, no system site packages, so the wheel's declared dependencies are all it gets), then
# python/tests on that venv from a scratch directory outside the checkout, with none of the
# variables the ctest entry `python` sets (RFJIT_LIBRARY, RFJIT_CLI, PYTHONPATH, RFJIT_CACHE_DIR,
# RFJIT_WISDOM) and HOME in the scratch directory, so the library's caches land there and
# nothing but the installed package can be imported or loaded. Checks first that rfjit, its
# torch module (rfjit/torch.py, found without importing torch) and librfjit come from the
# venv and that the wheel's version is the library's. The venv has no torch, so the tests
# that need it (test_torch_module, test_compat's performer-pytorch parity) say they skip.
# The wheel is built from scratch each time, in pip's isolated build environment
# (scikit-build-core from PyPI), as a user's `pip install` builds it; pip's download cache is
# kept as usual. Exit 1 on the first thing that is wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
say() { echo "pip_check: $*" >&2; }
bash scripts/deps.sh
work=$(mktemp -d /tmp/rfjit_pip_XXXXXX)
trap 'rm -rf "$work"' EXIT
unset RFJIT_LIBRARY RFJIT_CLI PYTHONPATH RFJIT_CACHE_DIR RFJIT_WISDOM LD_LIBRARY_PATH

/usr/bin/python3 -m venv "$work/venv"
py=$work/venv/bin/python3
say "pip install $src[bfloat16] into $work/venv"
start=$(date +%s)
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} "$py" -m pip install -q \
    --disable-pip-version-check "$src[bfloat16]"
say "installed in $(($(date +%s) - start)) s"

mkdir "$work/home" "$work/run"
cd "$work/run"
export HOME=$work/home
"$py" - "$work/venv" <<'PY'
import importlib.metadata, importlib.util, os, sys
import rfjit
venv = os.path.realpath(sys.argv[1]) + os.sep
lib = rfjit._lib._name
spec = importlib.util.find_spec("rfjit.torch")
if spec is None:
    sys.exit("pip_check: the wheel lacks rfjit/torch.py")
for what, path in (("rfjit", rfjit.__file__), ("rfjit.torch", spec.origin), ("librfjit", lib)):
    if not os.path.realpath(path).startswith(venv):
        sys.exit("pip_check: %s is %s, outside the venv %s" % (what, path, venv))
dist = importlib.metadata.version("rfjit")
if dist != rfjit.version():
    sys.exit("pip_check: the wheel is %s but its library says %s" % (dist, rfjit.version()))
print("pip_check: rfjit %s from %s, library %s" % (dist, os.path.dirname(rfjit.__file__),
                                                   os.path.basename(lib)), file=sys.stderr)
PY
say "python/tests on the installed package"
"$py" -m unittest discover -s "$src/python/tests"
