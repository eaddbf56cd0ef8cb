#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job on a built-in default:
# generate a small OLMoE-shaped test model (random weights, the real gpt-neox tokenizer, Q4_K),
# print its structure with `moerun inspect`, then generate text from it with `moerun run`
# (greedy; the text is noise because the weights are random, the speed and memory report are
# real). Idempotent: the second run reuses the packages, the venv, the build and the model.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${MOERUN_BUILD_DIR:-$root/build}
py=$(bash "$root/tools/sh/build.sh" | tail -n 1)
model="$build/models/quickstart-olmoe-q4_k.gguf"
if [ ! -f "$model" ]; then
  echo "[quickstart] generating a default test model: $model" >&2
  mkdir -p "$build/models"
  "$py" "$root/tools/python/gen_model.py" --arch olmoe --type Q4_K --layers 4 --experts 16 --top-k 4 \
        --embd 256 --ff 512 --seed 1 --out "$model" >&2
fi
echo "[quickstart] $build/tools/moerun inspect --no-tensors $model" >&2
"$build/tools/moerun" inspect --no-tensors "$model"
echo "[quickstart] $build/tools/moerun run -m $model -p 'The quick brown fox' -n 32 --temp 0" >&2
"$build/tools/moerun" run -m "$model" -p "The quick brown fox" -n 32 --temp 0
# The same run with a memory budget below the model: experts come through the expert cache
# (io_uring + O_DIRECT), the text is identical, and --stats shows the cache at work.
echo "[quickstart] $build/tools/moerun run -m $model -p 'The quick brown fox' -n 32 --temp 0 -c 512 --host-mem 36MiB --stats" >&2
"$build/tools/moerun" run -m "$model" -p "The quick brown fox" -n 32 --temp 0 -c 512 --host-mem 36MiB --stats
