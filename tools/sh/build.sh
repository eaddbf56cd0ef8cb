#!/usr/bin/env bash
# Installs what is missing (tools/sh/deps.sh), configures and builds moerun into build/.
#   MOERUN_BUILD_DIR   build folder (default: build)
#   MOERUN_CMAKE_ARGS  extra cmake arguments (e.g. -DMOERUN_CUDA=OFF)
# CI (CI=true) builds with warnings as errors. Prints the venv python on the last line.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${MOERUN_BUILD_DIR:-$root/build}
venv=$(bash "$root/tools/sh/deps.sh" | tail -n 1)
werror=OFF
[ "${CI:-}" = "true" ] && werror=ON
mkdir -p "$build"
ln -sfn "$venv" "$build/venv"   # the cached test venv, reachable from the build folder
echo "[build] configuring $build" >&2
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMOERUN_WERROR=$werror \
      -DMOERUN_PYTHON="$venv/bin/python" ${MOERUN_CMAKE_ARGS:-} >"$build/configure.log" 2>&1 \
  || { cat "$build/configure.log" >&2; exit 1; }
grep -E '^-- moerun:' "$build/configure.log" >&2 || true
echo "[build] compiling ($(nproc) jobs)" >&2
cmake --build "$build" -j"$(nproc)" >&2
echo "$venv/bin/python"
