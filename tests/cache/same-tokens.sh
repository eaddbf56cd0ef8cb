#!/usr/bin/env bash
# Results must not depend on the cache: the same prompt, seed and model give the same tokens with
# experts read in place and through the expert cache at any slot count (down to one slot), with
# every policy, per-layer or global, with and without prefetch, and under forced routing.
#   same-tokens.sh MOERUN MODEL WORKDIR
# MOERUN_DEVICE_BACKEND (default cpu-device) is the backend of the device-pass runs. With
# MOERUN_SAME_TOKENS_DEVICE_ONLY=1 only those run, against a reference run on that backend with a
# slot for every expert (a CUDA backend sums in another order than the CPU pass, so its tokens are
# compared with its own).
set -euo pipefail
moerun=$1 model=$2 work=$3
backend=${MOERUN_DEVICE_BACKEND:-cpu-device}
device_only=${MOERUN_SAME_TOKENS_DEVICE_ONLY:-0}
mkdir -p "$work"
prompt="The quick brown fox jumps over the lazy dog. Once upon a time"
common=(-m "$model" -p "$prompt" -n 24 -t 2 -c 256 --no-display-prompt --ignore-eos)
n_layer=$("$moerun" inspect "$model" --no-tensors | awk '/^ *layers [0-9]+,/ {gsub(",", "", $2); print $2; exit}')
[[ "$n_layer" =~ ^[0-9]+$ ]] || { echo "FAIL: cannot read the layer count of $model"; exit 1; }
top_k=$("$moerun" inspect "$model" --no-tensors | awk '/^ *experts: [0-9]+, used per token/ {gsub(",", "", $6); print $6; exit}')
[[ "$top_k" =~ ^[0-9]+$ ]] || { echo "FAIL: cannot read the experts used per token of $model"; exit 1; }
checks=0
run() {  # run NAME ARGS... -> $work/NAME.txt (generated text only)
    local name=$1; shift
    "$moerun" run "${common[@]}" "$@" >"$work/$name.txt" 2>"$work/$name.log" || {
        echo "FAIL: $name: moerun exited with $?"; cat "$work/$name.log"; exit 1; }
}
same() {  # same REF NAME ARGS...
    local ref=$1 name=$2; shift 2
    run "$name" "$@"
    if ! cmp -s "$work/$ref.txt" "$work/$name.txt"; then
        echo "FAIL: $name ($*) differs from $ref"; diff "$work/$ref.txt" "$work/$name.txt" | head -5; exit 1
    fi
    checks=$((checks + 1))
}
if [ "$device_only" = 1 ]; then
    # exit 77 (ctest: skipped) where the backend cannot run here
    if ! "$moerun" run -m "$model" -p "$prompt" -n 1 -c 64 --backend "$backend" >/dev/null 2>"$work/probe.log"; then
        if grep -q "no usable CUDA device" "$work/probe.log"; then echo "SKIP: $(cat "$work/probe.log")"; exit 77; fi
        echo "FAIL: moerun cannot run on $backend"; cat "$work/probe.log"; exit 1
    fi
    run greedy --temp 0 --backend "$backend" --trace-out "$work/greedy.trace"
    run sampled --temp 0.9 --top-k 40 --seed 1234 --backend "$backend"
else
    run greedy --temp 0 --trace-out "$work/greedy.trace"
    grep -q "experts .* read in place" "$work/greedy.log" || { echo "FAIL: reference run did not read experts in place"; exit 1; }
    for policy in lru slru lfu segment least-stale; do
        for slots in 1 3 17; do
            same greedy "greedy-$policy-$slots" --temp 0 --cache-slots "$slots" --cache-policy "$policy"
        done
        same greedy "greedy-$policy-per-layer" --temp 0 --cache-slots "$n_layer" --cache-per-layer --cache-policy "$policy"
    done
    same greedy greedy-no-prefetch --temp 0 --cache-slots 5 --prefetch none
    same greedy greedy-pinned --temp 0 --cache-slots 5 --pin-hot 3 --pin-profile "$work/greedy.trace"
    run sampled --temp 0.9 --top-k 40 --seed 1234
    same sampled sampled-lru-2 --temp 0.9 --top-k 40 --seed 1234 --cache-slots 2
    same sampled sampled-slru-per-layer --temp 0.9 --top-k 40 --seed 1234 --cache-slots "$((2 * n_layer))" --cache-per-layer --cache-policy slru
    # Forced routing from the trace this run recorded reproduces the run; Belady needs that future.
    same greedy forced --temp 0 --routing-trace "$work/greedy.trace"
    for policy in belady lru; do
        same greedy "forced-$policy-2" --temp 0 --routing-trace "$work/greedy.trace" --cache-slots 2 --cache-policy "$policy"
    done
fi
# The device forward pass ($backend): a slot per expert, the fewest slots (top-k:
# every layer evicts), and device slots over a one-slot host cache; the same tokens each time.
same greedy device-all --temp 0 --backend "$backend"
same greedy device-min --temp 0 --backend "$backend" --device-slots "$top_k"
same greedy device-min-cached --temp 0 --backend "$backend" --device-slots "$((top_k + 1))" --cache-slots 1
same sampled device-sampled --temp 0.9 --top-k 40 --seed 1234 --backend "$backend" --device-slots "$top_k"
# Transfers per expert copied (demand misses and prefetches): three from the mapped file (the
# tensors lie apart), one out of a host cache slot (one span).
transfers_per_expert() {  # transfers_per_expert NAME N
    awk -v per="$2" '
        /slot hits [0-9]+, misses/ { for (i = 1; i <= NF; i++) { if ($i == "misses") m = $(i + 1) + 0; if ($i == "transfers") t = $(i - 1) + 0 } }
        /experts copied ahead/ { for (i = 1; i <= NF; i++) if ($i == "experts" && $(i + 1) == "copied") p = $(i - 1) + 0 }
        END { exit !(m > 0 && t == per * (m + p)) }' "$work/$1.log" ||
        { echo "FAIL: $1 did not copy each expert in $2 transfer(s)"; grep "moerun: device" "$work/$1.log"; exit 1; }
}
transfers_per_expert device-min 3
transfers_per_expert device-min-cached 1
grep -q "device [a-z]*: .* $top_k expert slots; slot hits [0-9]*, misses [1-9]" "$work/device-min.log" ||
    { echo "FAIL: the device run did not report its slots and misses"; cat "$work/device-min.log"; exit 1; }
# Device prefetch (copies on the copy queue, which the CPU backend runs only when compute waits for
# them) and the slot policies: where an expert comes from never changes a token.
for policy in lru least-stale; do
    for pf in transition previous; do
        same greedy "device-prefetch-$policy-$pf" --temp 0 --backend "$backend" --device-slots "$((top_k + 2))" \
            --cache-policy "$policy" --device-prefetch "$pf"
    done
done
grep -q "device prefetch (previous): [1-9][0-9]* experts copied ahead" "$work/device-prefetch-lru-previous.log" ||
    { echo "FAIL: the device prefetch run copied nothing ahead"; cat "$work/device-prefetch-lru-previous.log"; exit 1; }
same sampled device-prefetch-sampled --temp 0.9 --top-k 40 --seed 1234 --backend "$backend" \
    --device-slots "$((top_k + 2))" --device-prefetch transition
same greedy device-prefetch-cached --temp 0 --backend "$backend" --device-slots "$((top_k + 2))" --cache-slots 2
# Prefetch through the expert cache: NVMe reads ahead for predicted experts not in RAM, copies
# from the cache's slots for those in it (the host waits for them before a slot is refilled).
same greedy device-prefetch-cached-big --temp 0 --backend "$backend" --device-slots "$((top_k + 2))" \
    --cache-slots "$((n_layer * top_k))" --device-prefetch transition --stats
grep -q "device prefetch (transition): [1-9][0-9]* experts copied ahead" "$work/device-prefetch-cached-big.log" ||
    { echo "FAIL: no device prefetch through the expert cache"; cat "$work/device-prefetch-cached-big.log"; exit 1; }
# CPU fallback: misses computed on the host cores, their rows summed with the device's in rank
# order: every miss, the cost model's choice, through the host cache, sampled, and beside prefetch.
# The same tokens on every backend: the host computes a miss's row as the backend would
# (Backend::host_math: the CPU kernels for the CPU backend, CUDA's order of operations for CUDA).
same greedy device-fallback-always --temp 0 --backend "$backend" --device-slots "$top_k" --cpu-fallback always \
    --device-prefetch none
grep -q "cpu fallback (always): [1-9][0-9]* slot misses computed on the CPU" "$work/device-fallback-always.log" ||
    { echo "FAIL: --cpu-fallback always computed no miss on the CPU"; cat "$work/device-fallback-always.log"; exit 1; }
same greedy device-fallback-auto --temp 0 --backend "$backend" --device-slots "$((top_k + 2))" --cpu-fallback auto
grep -q "cpu fallback (auto): .* measured: copy [0-9.]* GB/s" "$work/device-fallback-auto.log" ||
    { echo "FAIL: --cpu-fallback auto printed no measured bandwidths"; cat "$work/device-fallback-auto.log"; exit 1; }
same greedy device-fallback-cached --temp 0 --backend "$backend" --device-slots "$top_k" --cache-slots 2 \
    --cpu-fallback always
same sampled device-fallback-sampled --temp 0.9 --top-k 40 --seed 1234 --backend "$backend" \
    --device-slots "$((top_k + 2))" --cpu-fallback always
# Exclusive tiers: experts copied up leave the host cache and evicted ones are copied back into
# it from their device slots (a wrong byte there would change a later token), with prefetch,
# sampling and the CPU fallback.
same greedy device-exclusive --temp 0 --backend "$backend" --device-slots "$((top_k + 2))" --cache-slots 3 \
    --exclusive-tiers --device-prefetch none
grep -q "exclusive tiers: [1-9][0-9]* experts written back to the host cache" "$work/device-exclusive.log" ||
    { echo "FAIL: --exclusive-tiers wrote nothing back"; cat "$work/device-exclusive.log"; exit 1; }
same greedy device-exclusive-prefetch --temp 0 --backend "$backend" --device-slots "$((top_k + 2))" \
    --cache-slots "$((n_layer * top_k))" --exclusive-tiers --device-prefetch transition
grep -q "exclusive tiers: [1-9][0-9]* experts written back .* ([1-9][0-9]* for prefetches)" \
    "$work/device-exclusive-prefetch.log" ||
    { echo "FAIL: --exclusive-tiers wrote no prefetch's victim back"; cat "$work/device-exclusive-prefetch.log"; exit 1; }
# A prefetch's victim goes back on the copy queue ahead of the prefetch's own copy, into a host
# slot that must not be that copy's source: host and device sizes where it often would be, all
# nine pairs on the CPU backend (a fraction of a second a run), three elsewhere.
for cs in 3 "$((top_k + 1))" "$((2 * top_k))"; do
    for ds in "$top_k" "$((top_k + 2))" "$((2 * top_k))"; do
        if [ "$backend" != cpu-device ] && ! { [ "$cs" = 3 ] && [ "$ds" = "$top_k" ]; } &&
            ! { [ "$cs" = "$((top_k + 1))" ] && [ "$ds" = "$((top_k + 2))" ]; } &&
            ! { [ "$cs" = "$((2 * top_k))" ] && [ "$ds" = "$((2 * top_k))" ]; }; then
            continue
        fi
        same greedy "device-exclusive-prefetch-$cs-$ds" --temp 0 --backend "$backend" --device-slots "$ds" \
            --cache-slots "$cs" --exclusive-tiers --device-prefetch transition
    done
done
same sampled device-exclusive-sampled --temp 0.9 --top-k 40 --seed 1234 --backend "$backend" \
    --device-slots "$((top_k + 1))" --cache-slots 5 --exclusive-tiers
same greedy device-exclusive-fallback --temp 0 --backend "$backend" --device-slots "$top_k" --cache-slots 3 \
    --exclusive-tiers --cpu-fallback auto
fails() {  # fails NAME PATTERN ARGS...: moerun must exit 1 with PATTERN on stderr
    local name=$1 pattern=$2; shift 2
    if "$moerun" run "${common[@]}" "$@" >/dev/null 2>"$work/$name.log"; then echo "FAIL: $name succeeded"; exit 1; fi
    grep -q -- "$pattern" "$work/$name.log" || { echo "FAIL: $name: no '$pattern'"; cat "$work/$name.log"; exit 1; }
}
fails device-too-few "slots cannot hold the $top_k experts a token uses" --backend "$backend" --device-slots "$((top_k - 1))"
[ "$device_only" = 1 ] || fails device-no-backend "\-\-device-slots needs a device backend" --device-slots "$top_k"
fails device-mem-small "device memory 1 MiB holds .* at least [0-9]* MiB are needed" --backend "$backend" --device-mem 1MiB
# The fallback's two host paths are measured on this model's experts (moerun bench --expert-cpu).
if [ "$device_only" != 1 ]; then
    "$moerun" bench -m "$model" --expert-cpu -r 1 -t 2 >"$work/expert-cpu.md" 2>&1 ||
        { echo "FAIL: moerun bench --expert-cpu"; cat "$work/expert-cpu.md"; exit 1; }
    [ "$(grep -cE "^\| .* \| 2 \| (CPU kernels|CUDA's order) .*\| [0-9.]+ \| [0-9.]+ \|$" "$work/expert-cpu.md")" = 2 ] ||
        { echo "FAIL: moerun bench --expert-cpu printed no two rows"; cat "$work/expert-cpu.md"; exit 1; }
    # The matrix kernels alone: 1, 8 and 64 tokens for each weight type of the model.
    "$moerun" bench -m "$model" --kernels -r 1 >"$work/kernels.md" 2>&1 ||
        { echo "FAIL: moerun bench --kernels"; cat "$work/kernels.md"; exit 1; }
    for n_tok in 1 8 64; do
        grep -qE "^\| [a-z_]+.* \| [A-Z0-9_]+ \| [0-9]+ x [0-9]+ \| $n_tok \| [0-9.]+ \| [0-9.]+ \|$" "$work/kernels.md" ||
            { echo "FAIL: moerun bench --kernels printed no $n_tok-token row"; cat "$work/kernels.md"; exit 1; }
    done
fi
[ "$device_only" = 1 ] || fails fallback-no-backend "\-\-cpu-fallback needs a device backend" --cpu-fallback always
fails device-belady "belady is not available for device slots" --backend "$backend" --cache-policy belady \
    --routing-trace "$work/greedy.trace"
if [ "$device_only" = 1 ]; then
    echo "same tokens in $checks device configurations on $backend (slots, prefetch, fallback, exclusive tiers, sampling)"
    exit 0
fi
# The cache was really used: misses were read through it (stats table present).
run stats --temp 0 --cache-slots 2 --stats
grep -q "^| all |" "$work/stats.log" || { echo "FAIL: --stats printed no cache table"; cat "$work/stats.log"; exit 1; }
# The recorded trace replays in the profiler (same policy code) with the model's expert sizes.
"$moerun" profile replay "$work/greedy.trace" --model "$model" --size 8 --json >"$work/profile.json" ||
    { echo "FAIL: moerun profile cannot replay the trace moerun run wrote"; exit 1; }
grep -q '"bytes_per_token": [0-9]' "$work/profile.json" || { echo "FAIL: profile gave no bytes per token"; exit 1; }
echo "same tokens in $checks cache configurations (policies x slot counts x partitions, prefetch, sampling, forced routing)"
