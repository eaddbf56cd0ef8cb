#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job on a built-in default.
# Today's main job: generate a small OLMoE-shaped test model (real gpt-neox tokenizer, Q4_K
# weights) and run `moerun inspect` on it. Idempotent; the second run reuses everything.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${MOERUN_BUILD_DIR:-$root/build}
py=$(bash "$root/tools/sh/build.sh" | tail -n 1)
model="$build/models/quickstart-olmoe-q4_k.gguf"
if [ ! -f "$model" ]; then
  echo "[quickstart] generating a default test model: $model" >&2
  mkdir -p "$build/models"
  "$py" "$root/tools/python/gen_model.py" --arch olmoe --type Q4_K --layers 4 --experts 16 --top-k 4 \
        --embd 256 --ff 256 --seed 1 --out "$model" >&2
fi
echo "[quickstart] $build/tools/moerun inspect $model" >&2
"$build/tools/moerun" inspect "$model"
