#!/usr/bin/env bash
# README command 2 (and .ci/run): install what is missing, build, and run the whole test suite:
#   1. the main build (g++, CUDA compiled when nvcc is found): ctest labels unit, oracle, gpu
#      (gpu tests skip without a device);
#   2. the CUDA emulator build (MOERUN_CUDA=EMULATE, tests/cuda-emu): kernels/cuda compiled as
#      C++ and run on the CPU, so the gpu label runs (CUDA kernels against the CPU backend and
#      llama.cpp, the device configurations' same tokens on CUDA, the emulator's own checks);
#      no GPU speed or hardware behaviour is claimed from it;
#   3. a clang build with ASan+UBSan and libFuzzer: ctest label fuzz (the GGUF reader fuzzed
#      for MOERUN_FUZZ_SECONDS, default 60) and the unit tests again under the sanitizers.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${MOERUN_BUILD_DIR:-$root/build}
start=$(date +%s)

bash "$root/tools/sh/build.sh" >/dev/null
echo "[test] main build: unit, oracle and gpu tests" >&2
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" -L 'unit|oracle|gpu'

werror=OFF
[ "${CI:-}" = "true" ] && werror=ON
emu_build="$build-cuda-emu"
echo "[test] CUDA emulator build: the gpu label with kernels/cuda on the CPU: $emu_build" >&2
cmake -S "$root" -B "$emu_build" -DCMAKE_BUILD_TYPE=Release -DMOERUN_CUDA=EMULATE -DMOERUN_WERROR=$werror \
  -DMOERUN_PYTHON="$build/venv/bin/python" -DMOERUN_TEST_MODELS_DIR="$build/test-models" \
  >"$emu_build.configure.log" 2>&1 || { cat "$emu_build.configure.log" >&2; exit 1; }
cmake --build "$emu_build" -j"$(nproc)" >&2
ctest --test-dir "$emu_build" --output-on-failure -j"$(nproc)" -L gpu

fuzz_build="$build-fuzz"
echo "[test] clang build with ASan+UBSan and libFuzzer: $fuzz_build" >&2
CC=clang CXX=clang++ cmake -S "$root" -B "$fuzz_build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOERUN_CUDA=OFF \
  -DMOERUN_FUZZ=ON -DMOERUN_SANITIZE="address;undefined" -DMOERUN_WERROR=$werror \
  -DMOERUN_FUZZ_SECONDS="${MOERUN_FUZZ_SECONDS:-60}" >"$fuzz_build.configure.log" 2>&1 \
  || { cat "$fuzz_build.configure.log" >&2; exit 1; }
cmake --build "$fuzz_build" -j"$(nproc)" >&2
ctest --test-dir "$fuzz_build" --output-on-failure -j"$(nproc)" -L 'unit|fuzz'
echo "[test] all passed in $(( $(date +%s) - start )) s" >&2
