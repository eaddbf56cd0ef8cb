#!/usr/bin/env bash
# Installs what moerun needs on Debian 12 (as root), only what is missing, and
# prepares the Python test/oracle virtual environment in a cache outside the clone.
#   Debian packages: build tools, liburing, Eigen, CLI11, doctest, clang (fuzzing).
#   Python venv: gguf, numpy, llama-cpp-python (built from source for the CPU, once),
#   kept in ${MOERUN_CACHE:-~/.cache/moerun}/venv-<key>, keyed by the pinned versions.
# Prints the venv path on the last line of stdout.
set -euo pipefail

PKGS=(build-essential cmake git pkg-config ninja-build liburing-dev libeigen3-dev libcli11-dev
      doctest-dev libpcre2-dev clang clang-format libclang-rt-dev python3 python3-venv python3-dev)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[deps] installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  echo "[deps] Debian packages present" >&2
fi

# --- Python virtual environment (tests and tools only) ---
LLAMA_CPP_PYTHON_VERSION=0.3.36
GGUF_VERSION=0.19.0
NUMPY_VERSION=2.4.6
PY=${MOERUN_PYTHON:-python3}
pyver=$($PY -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key="py${pyver}-lcp${LLAMA_CPP_PYTHON_VERSION}-gguf${GGUF_VERSION}-np${NUMPY_VERSION}"
cache=${MOERUN_CACHE:-$HOME/.cache/moerun}
venv="$cache/venv-$key"
if [ -f "$venv/.complete" ]; then
  echo "[deps] python venv cached: $venv" >&2
else
  echo "[deps] creating python venv $venv (llama-cpp-python builds llama.cpp from source: several minutes, once)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  $PY -m venv "$venv" >&2
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q "numpy==$NUMPY_VERSION" "gguf==$GGUF_VERSION" >&2
  # CPU build of llama.cpp; native ISA of this machine, as a user's pip install would give.
  CMAKE_ARGS="-DGGML_CUDA=OFF -DGGML_METAL=OFF -DLLAMA_BUILD_TESTS=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$venv/bin/pip" install -q --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >&2
  "$venv/bin/python" -c "import gguf, numpy, llama_cpp; print('[deps] venv ok: llama_cpp', llama_cpp.__version__)" >&2
  touch "$venv/.complete"
fi
echo "$venv"
