#!/usr/bin/env bash
# bench/gpu_session.sh -- what issue 6 asks of a GPU machine, in steps that each fit one command of
# the device tool (10 minutes); a step whose output is there already is skipped, so calls on a
# machine still warm go on where the last one stopped.
#
#   info    nvidia-smi and the toolchain into $OUT/gpu.txt
#   build   CUDA build (Release, MOERUN_CUDA=ON, sm_${MOERUN_GPU_ARCH:-90}) in build-gpu
#   test    ctest -L gpu: the CUDA kernels against the CPU backend (test-gpu-*) and, when the Python
#           there has gguf and llama_cpp, the CUDA forward pass against llama.cpp (gpu-logits-cuda-*)
#   model   the ${MOERUN_GPU_PRESET:-qwen3-30b-a3b} shape at its preset types (Q4_K experts) with
#           random weights, and a routing trace recorded from it on the CPU backend (sampled hot,
#           so that the tokens and their routing vary: a random model's greedy text repeats), unless
#           MOERUN_GPU_TRACE names one
#   llama   llama.cpp's llama-bench built with CUDA from $LLAMA_CPP_SRC (a llama.cpp source tree)
#   bench   bench/device_slots.py --backend cuda at 100/50/25/10% of the experts resident, with the
#           llama.cpp --n-cpu-moe baseline when llama-bench was built
#   extras  the open questions at 25% resident, each a table of its own: --device-graphs against
#           none (does recording the dense part pay?), and all three tiers (--host-mem at a third of
#           the experts: NVMe -> pinned host cache -> device slots), inclusive and --exclusive-tiers
#           (do the copies back down cost less than the disk reads they save?), and the CPU
#           fallback's expert speed on the host cores (moerun bench --expert-cpu)
#
#   OUT=/path bash bench/gpu_session.sh info build test     # first call
#   OUT=/path bash bench/gpu_session.sh model llama bench   # second call
#   OUT=/path bash bench/gpu_session.sh extras              # third call, when device time is left
#
# What that machine lacks (no network; moerun's Debian dev packages, gguf and llama_cpp for Python,
# llama.cpp's source) travels in .gpu-carry/, made here by tools/sh/gpu-carry.sh and named in the
# device tool's carry: the packages are unpacked into a private root ($WORK/root) that the build
# finds through pkg-config and CMAKE_PREFIX_PATH, the wheels go into $WORK/site, and the source
# into $WORK/llama.cpp (unless LLAMA_CPP_SRC names one). Wheels in .whl/ are installed too.
# Writes logs and the result table under $OUT; the table goes into bench/results/ by hand, with
# the GPU's name in its file name. MOERUN_GPU_BACKEND=cpu-device, MOERUN_GPU_FRACTIONS and
# MOERUN_GPU_NGEN make a short dry run of the model and bench steps on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/moerun-gpu-out}
WORK=${MOERUN_GPU_WORK:-/tmp/moerun-gpu}
PRESET=${MOERUN_GPU_PRESET:-qwen3-30b-a3b}
ARCH=${MOERUN_GPU_ARCH:-90}
BACKEND=${MOERUN_GPU_BACKEND:-cuda}
FRACTIONS=${MOERUN_GPU_FRACTIONS:-1,0.5,0.25,0.1}
NGEN=${MOERUN_GPU_NGEN:-64}
JOBS=$(nproc)
mkdir -p "$OUT" "$WORK"
steps=("$@")
((${#steps[@]})) || steps=(info build test model llama bench extras)

say() { echo "[gpu-session $(date +%T)] $*" >&2; }

# Carried things, unpacked once per machine.
wheels=$(compgen -G ".gpu-carry/wheels/*.whl" || true; compgen -G ".whl/*.whl" || true)
if [ -n "$wheels" ] && [ ! -f "$WORK/site/.done" ]; then
  # shellcheck disable=SC2086
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" $wheels
  touch "$WORK/site/.done"
fi
[ -d "$WORK/site" ] && export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
PY=$(command -v python3)
root="$WORK/root"
if compgen -G ".gpu-carry/debs/*.deb" >/dev/null && [ ! -f "$root/.done" ]; then
  for f in .gpu-carry/debs/*.deb; do dpkg -x "$f" "$root"; done
  touch "$root/.done"
fi
cmake_deps=()
if [ -f "$root/.done" ]; then
  lib="$root/usr/lib/x86_64-linux-gnu"
  export PKG_CONFIG_LIBDIR="$lib/pkgconfig:$root/usr/share/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root"
  export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  cmake_deps=(-DPKG_CONFIG_EXECUTABLE="$root/usr/bin/pkgconf" -DCMAKE_PREFIX_PATH="$root/usr")
fi
if [ -z "${LLAMA_CPP_SRC:-}" ] && [ -f .gpu-carry/llama.cpp.tar.gz ]; then
  [ -d "$WORK/llama.cpp" ] || tar -xzf .gpu-carry/llama.cpp.tar.gz -C "$WORK"
  LLAMA_CPP_SRC="$WORK/llama.cpp"
fi

model="$WORK/$PRESET.gguf"
trace=${MOERUN_GPU_TRACE:-$WORK/$PRESET-decode.bin}  # e.g. the shipped OLMoE trace for olmoe-1b-7b
llama_bench="$WORK/llama-build/bin/llama-bench"

for step in "${steps[@]}"; do
  case "$step" in
  info)
    { nvidia-smi; nvidia-smi --query-gpu=name,memory.total,pcie.link.gen.max,pcie.link.width.max --format=csv;
      nvcc --version; cmake --version | head -1; "$PY" --version; nproc; free -g; } >"$OUT/gpu.txt" 2>&1 || true
    say "info: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
    ;;
  build)
    py_opt=()
    "$PY" -c "import gguf, numpy" 2>/dev/null && py_opt=(-DMOERUN_PYTHON="$PY")
    cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOERUN_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "${cmake_deps[@]}" "${py_opt[@]}" >"$OUT/build.log" 2>&1
    cmake --build build-gpu -j"$JOBS" >>"$OUT/build.log" 2>&1
    say "build: done ($(grep -c warning "$OUT/build.log" || true) warning lines)"
    ;;
  test)
    excl=()
    "$PY" -c "import gguf, llama_cpp" 2>/dev/null || { excl=(-E gpu-logits); say "test: no llama_cpp here, gpu-logits-cuda-* left out"; }
    ctest --test-dir build-gpu -L gpu "${excl[@]}" --output-on-failure -j4 >"$OUT/ctest-gpu.log" 2>&1 || true
    tail -n 25 "$OUT/ctest-gpu.log" >&2
    # One generation through the CUDA pass, for the CLI's backend line and a first speed figure.
    m=$(ls build-gpu/test-models/*Q4_K_M*.gguf 2>/dev/null | head -1 || true)
    [ -n "$m" ] && build-gpu/tools/moerun run -m "$m" -p "The GPU says" -n 32 --backend cuda >"$OUT/run-cuda.log" 2>&1 || true
    ;;
  model)
    if [ ! -f "$model" ]; then
      "$PY" tools/python/gen_model.py --preset "$PRESET" --out "$model" >"$OUT/model.log" 2>&1
    fi
    if [ ! -f "$trace" ]; then
      build-gpu/tools/moerun run -m "$model" --backend cpu -p "Write a function that sorts a list of numbers." \
        -n 256 --seed 1 --temp 1.5 --top-k 0 --top-p 1 --trace-out "$trace" >>"$OUT/model.log" 2>&1
    fi
    say "model: $(du -hL "$model" | cut -f1) $model, trace $trace"
    ;;
  llama)
    if [ -z "${LLAMA_CPP_SRC:-}" ]; then say "llama: LLAMA_CPP_SRC not set, skipped"; continue; fi
    if [ ! -x "$llama_bench" ]; then
      cmake -S "$LLAMA_CPP_SRC" -B "$WORK/llama-build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF >"$OUT/llama-build.log" 2>&1
      cmake --build "$WORK/llama-build" --target llama-bench -j"$JOBS" >>"$OUT/llama-build.log" 2>&1
    fi
    say "llama: $llama_bench"
    ;;
  bench)
    lb=()
    [ -x "$llama_bench" ] && lb=(--llama-bench "$llama_bench")
    gpu=$({ nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "$BACKEND"; } | head -1 |
      tr -c 'A-Za-z0-9\n' '-' | tr -s '-')
    PYTHONUNBUFFERED=1 "$PY" bench/device_slots.py --model "$model" --moerun build-gpu/tools/moerun --backend "$BACKEND" \
      --trace "$trace" --fractions "$FRACTIONS" --n-gen "$NGEN" --reps 2 "${lb[@]}" \
      --out "$OUT/device-slots-$PRESET-${gpu:-gpu}.md" \
      2>&1 | tee "$OUT/bench.log" >&2
    ;;
  extras)
    gpu=$({ nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "$BACKEND"; } | head -1 |
      tr -c 'A-Za-z0-9\n' '-' | tr -s '-')
    common=(--model "$model" --moerun build-gpu/tools/moerun --backend "$BACKEND" --trace "$trace" --fractions 0.25
      --n-gen "$NGEN" --reps 2)
    PYTHONUNBUFFERED=1 "$PY" bench/device_slots.py "${common[@]}" --prefetch transition --fallback off \
      --moerun-args=--device-graphs --out "$OUT/device-slots-$PRESET-${gpu:-gpu}-graphs.md" \
      2>&1 | tee "$OUT/extras.log" >&2
    # A third of the experts' bytes in host RAM, plus what the host keeps of the dense weights.
    host_mib=$(build-gpu/tools/moerun inspect "$model" --no-tensors |
      awk '/expert bytes/ { v = $3; u = $4; m = (u ~ /GiB/) ? v * 1024 : v; printf "%d", m / 3 + 512; exit }')
    if [ -n "$host_mib" ]; then
      PYTHONUNBUFFERED=1 "$PY" bench/device_slots.py "${common[@]}" --host-mem "${host_mib}MiB" \
        --out "$OUT/device-slots-$PRESET-${gpu:-gpu}-host-cache.md" 2>&1 | tee -a "$OUT/extras.log" >&2
      PYTHONUNBUFFERED=1 "$PY" bench/device_slots.py "${common[@]}" --host-mem "${host_mib}MiB" \
        --moerun-args=--exclusive-tiers --out "$OUT/device-slots-$PRESET-${gpu:-gpu}-host-cache-exclusive.md" \
        2>&1 | tee -a "$OUT/extras.log" >&2
    else
      say "extras: cannot read the expert bytes of $model, three-tier run skipped"
    fi
    # The CPU fallback's host speed on this machine's cores: 8-bit CPU kernels against the CUDA
    # kernels' order (what a CUDA run's fallback computes).
    build-gpu/tools/moerun bench -m "$model" --expert-cpu -r 3 >"$OUT/expert-cpu-$PRESET-${gpu:-gpu}.md" \
      2>>"$OUT/extras.log" || say "extras: moerun bench --expert-cpu failed"
    ;;
  *)
    echo "gpu_session.sh: unknown step '$step' (info build test model llama bench extras)" >&2
    exit 2
    ;;
  esac
done
