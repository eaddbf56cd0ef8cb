#!/usr/bin/env bash
# Run here (Debian 12, network) before a GPU session: fills .gpu-carry/ (ignored by git) with what
# the GPU machine lacks for bench/gpu_session.sh. That machine has nvcc, CMake, ninja and a Python
# with numpy, but no network and none of moerun's Debian dev packages. About 35 MiB:
#   debs/     liburing, PCRE2, CLI11, doctest and pkgconf (Debian 12 packages; unpacked there into
#             a private root, nothing is installed)
#   wheels/   gguf and diskcache (PyPI) and llama_cpp (the py3-none wheel pip built for the test
#             venv, when pip's cache has it) for the test models and the gpu-logits tests. That
#             wheel's llama.cpp is built for this machine's CPU (GGML_NATIVE): on a GPU machine whose
#             CPU lacks an instruction set this one has, the gpu-logits tests die at once
#   llama.cpp.tar.gz  llama.cpp's source (from llama-cpp-python's sdist, the version the tests
#             pin), without docs, models and other backends, for llama-bench with CUDA
# Then, through the device tool: carry [".gpu-carry"], command `OUT=$OUT bash bench/gpu_session.sh ...`.
set -euo pipefail
cd "$(dirname "$0")/../.."
dst=.gpu-carry
mkdir -p "$dst/debs" "$dst/wheels"

(cd "$dst/debs" && apt-get download liburing-dev liburing2 libpcre2-dev libpcre2-8-0 libcli11-dev doctest-dev \
  pkgconf pkgconf-bin libpkgconf3 >/dev/null 2>&1) || { echo "gpu-carry: apt-get download failed" >&2; exit 1; }

venv=$(bash tools/sh/deps.sh 2>/dev/null | tail -1)
gguf_v=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('gguf'))")
lcp_v=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('llama_cpp_python'))")
dc_v=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('diskcache'))")
# llama_cpp imports diskcache, which that machine's Python lacks; the rest of both wheels' needs it has.
"$venv/bin/pip" download -q --no-deps --only-binary=:all: -d "$dst/wheels" "gguf==$gguf_v" "diskcache==$dc_v"
whl=$(find "${PIP_CACHE_DIR:-$HOME/.cache/pip}" -name "llama_cpp_python-$lcp_v-*.whl" 2>/dev/null | head -1 || true)
if [ -n "$whl" ]; then
  cp "$whl" "$dst/wheels/"
else
  echo "gpu-carry: no built llama_cpp_python-$lcp_v wheel in pip's cache: the gpu-logits tests will be left out" >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/pip" download -q --no-deps --no-binary=:all: -d "$tmp" "llama-cpp-python==$lcp_v"
tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
src=$(echo "$tmp"/llama_cpp_python-*/vendor/llama.cpp)
rm -rf "$src"/{docs,models,media,examples,benches,tests,gguf-py,conversion,scripts,.github}
for b in sycl vulkan opencl cann musa kompute metal hip rpc webgpu zdnn blas openvino; do rm -rf "$src/ggml/src/ggml-$b"; done
tar -czf "$dst/llama.cpp.tar.gz" -C "$(dirname "$src")" llama.cpp
du -sh "$dst" "$dst"/* >&2
