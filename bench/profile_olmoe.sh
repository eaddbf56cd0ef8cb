#!/usr/bin/env bash
# moerun profile on the shipped OLMoE routing trace: replay timing, hit-rate curves with the
# Belady bound (per-layer and global slots, per domain, per-sequence spread), SRP/SCH and routing
# statistics, and the HTML report. Writes bench/results/profile-olmoe.md (+ .html, .json).
#
#   bash bench/profile_olmoe.sh [build/tools/moerun] [trace] [model.gguf]
# With a GGUF of the trace's shape (default /tmp/bench/olmoe-1b-7b-q4k.gguf when it exists, see
# bench/README.md) the tables also give MiB moved per token.
set -euo pipefail
cd "$(dirname "$0")/.."
MOERUN=${1:-build/tools/moerun}
TRACE=${2:-../shared/data/traces/olmoe-1b-7b-decode-general-coding.bin}
[ -f "$TRACE" ] || TRACE=/work/shared/data/traces/olmoe-1b-7b-decode-general-coding.bin
MODEL=${3:-/tmp/bench/olmoe-1b-7b-q4k.gguf}
MODEL_ARG=()
[ -f "$MODEL" ] && MODEL_ARG=(--model "$MODEL")
OUT=bench/results/profile-olmoe
SIZES=8,16,24,32,48
POLICIES=lru,slru,lfu,segment,least-stale

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# Timing: the issue's case, 4 policies x 5 sizes (+ Belady at each size = 25 replays), per-layer,
# whole trace, one thread and every thread; best of 3.
declare -A best
for t in 1 0; do
    best[$t]=999
    for rep in 1 2 3; do
        a=$(now); "$MOERUN" profile replay "$TRACE" --policy lru,slru,lfu,segment --size $SIZES --no-by-domain -t $t > /dev/null; b=$(now)
        s=$(elapsed "$a" "$b")
        best[$t]=$(awk -v x="${best[$t]}" -v y="$s" 'BEGIN { print (y < x ? y : x) }')
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

CMD_REPLAY="$MOERUN profile replay $TRACE ${MODEL_ARG[*]} --policy $POLICIES --size $SIZES --per-layer --per-sequence --html $OUT.html"
CMD_GLOBAL="$MOERUN profile replay $TRACE ${MODEL_ARG[*]} --policy $POLICIES --global --no-by-domain"
CMD_PREFETCH="$MOERUN profile replay $TRACE --policy lru,slru,belady --size 16,24,32 --prefetch oracle-next-layer --no-by-domain"
CMD_STATS="$MOERUN profile stats $TRACE --segment 1,2,4,8,16 --size $SIZES"
CMD_STATS_GLOBAL="$MOERUN profile stats $TRACE --segment 1,2,4,8,16 --global --no-by-domain"
a=$(now); replay=$($CMD_REPLAY); b=$(now); t_replay=$(elapsed "$a" "$b")
"$MOERUN" profile replay "$TRACE" --policy $POLICIES --size $SIZES --per-layer --per-sequence --stats --json > $OUT.json
a=$(now); global=$($CMD_GLOBAL); b=$(now); t_global=$(elapsed "$a" "$b")
prefetch=$($CMD_PREFETCH | sed -n '/^details/,/^$/p')
a=$(now); stats=$($CMD_STATS); b=$(now); t_stats=$(elapsed "$a" "$b")
a=$(now); stats_global=$($CMD_STATS_GLOBAL | sed -n '/^SCH/,/^$/p'); b=$(now); t_stats_global=$(elapsed "$a" "$b")

{
    echo "# moerun profile on the shipped OLMoE trace"
    echo
    echo "Written by \`bash bench/profile_olmoe.sh\` at commit $(git rev-parse --short HEAD) on $(date -u +%Y-%m-%d),"
    echo "$(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), shared machine:"
    echo "load average $load_before before the timing runs, $load_after after."
    echo
    echo "Trace: \`$(basename "$TRACE")\` (MOETRC01): OLMoE-1B-7B, 16 MoE layers x 64 experts, top-8, 200"
    echo "sequences in two domains (ids 0 and 1, 100 sequences each; the data README names them general and"
    echo "coding but does not say which id is which), 25,600 decoded tokens."
    if [ ${#MODEL_ARG[@]} -gt 0 ]; then
        echo "Expert sizes for MiB per token: \`$MODEL\` (the OLMoE-1B-7B shape at Q4_K, 3.38 MiB per expert; see bench/README.md)."
    else
        echo "No expert sizes in the trace and no model given: bytes per token are not shown (\`--model GGUF\` adds them)."
    fi
    echo
    echo "## Replay time"
    echo
    echo "\`moerun profile replay TRACE --policy lru,slru,lfu,segment --size $SIZES --no-by-domain -t T\`:"
    echo "4 policies x 5 sizes, plus Belady at each size (25 replays of 25,600 tokens x 16 layers x top-8 = 3.3 M"
    echo "expert uses each), per-layer slots; wall time of the whole command (reading the trace included), best of 3:"
    echo
    echo "| threads | seconds |"
    echo "|---|---|"
    echo "| 1 | ${best[1]} |"
    echo "| all ($(nproc)) | ${best[0]} |"
    echo
    echo "The full runs below: per-layer replay with 5 policies + Belady, 3 scopes (all, domain 0, domain 1) and"
    echo "per-sequence replays (each sequence alone) in ${t_replay} s; global replay ${t_global} s; stats ${t_stats} s"
    echo "(per-layer, 3 scopes); global SCH ${t_stats_global} s."
    echo
    echo "## Hit rate per policy and size, per-layer slots"
    echo
    echo "\`$CMD_REPLAY\`"
    echo
    echo "Sizes are slots per layer (8 = top_k: only the current token's experts fit). The cache stays warm"
    echo "across sequences. \"gap\" is Belady's hit rate minus the policy's, in points."
    echo
    echo '```'
    echo "$replay"
    echo '```'
    echo
    echo "## Global slots (one cache for all 16 layers)"
    echo
    echo "\`$CMD_GLOBAL\` (default sizes: 8,16,24,32,48 x 16 layers)"
    echo
    echo '```'
    echo "$global" | sed -n '/^hit rate/,/^$/p'
    echo '```'
    echo
    echo "## Upper bound of prefetching"
    echo
    echo "\`$CMD_PREFETCH\`: after each layer, the next layer's experts are loaded exactly (an oracle)."
    echo "Every use is then a hit, but the loads per token (misses + prefetches) stay about those of the"
    echo "policy without prefetch (LRU: exactly its misses per token): prefetching hides transfer latency, it"
    echo "does not remove transfers. Only Belady's eviction lowers them."
    echo
    echo '```'
    echo "$prefetch"
    echo '```'
    echo
    echo "## SRP, SCH, overlap and popularity"
    echo
    echo "\`$CMD_STATS\`"
    echo
    echo '```'
    echo "$stats"
    echo '```'
    echo
    echo "SCH with one global cache (sizes 128..768 total slots = 8..48 per layer):"
    echo "\`$CMD_STATS_GLOBAL\`"
    echo
    echo '```'
    echo "$stats_global"
    echo '```'
    echo
    echo "The HTML report: \`$OUT.html\` (made by the first command); the JSON of the same run with the"
    echo "locality metrics: \`$OUT.json\`."
    echo
    cat <<'NOTES'
## Notes (read off the tables above; the numbers are those of this run)

- At 8 slots per layer (= top_k) only the current token's experts fit: every policy, Belady
  included, scores the same 45.1%, which is the consecutive-token overlap (45.2%).
- Per-layer slots: from 16 slots on the practical policies are within 2 points of each other
  and 8-13 points below Belady (LRU 63.4/76.0/84.9% at 16/24/32 slots, Belady 76.4/87.3/93.2%).
  SLRU and segment are the best of them overall; least-stale equals LRU exactly with per-layer
  partitions (within a layer's partition staleness orders like recency).
- Rankings differ by domain: LFU is the worst policy on domain 0 but the best at 16-32 slots on
  domain 1. Domain 1 is more local (higher SRP at every m, higher SCH and hit rates at every size)
  and its sequences are alike (p10-p90 of LRU at 24 slots: 77.6-83.1%); domain 0's spread is wide
  (60.4-91.1%). Do not tune a policy to this file alone.
- Global slots (one cache for all layers): with only one token's worth of slots (128) SLRU, LFU
  and segment collapse (10.6%, 8.5%, 20.2%) while LRU and least-stale keep the per-layer 45.1%; from
  256 slots on global LRU is within 3 points of per-layer LRU at the same total memory, least-stale
  is the best practical policy (63.4% at 256), and Belady gains from the freedom (80.5% vs 76.4%).
- SRP falls from 0.785 (m=2) to 0.544 (m=16): a fixed group per 16-token segment covers routing
  only about as well as F1 0.54. SCH grows with the lookahead L up to L=4 at 8 slots and L=8 at 16
  slots, then drops (use counts over a long window misjudge near reuse); at 24+ slots it keeps growing; at 16 slots SCH(L=16) = 75.8% is close to Belady's 76.4%, but the two are
  not directly comparable (SCH counts first uses into free slots as hits, starts each sequence
  empty, averages per sequence, and evicts by use count in the window rather than next use).
- Timing: the machine has 2 cores and other builds ran at the same time (load about 2), so the
  second thread gained little; one replay of 3.3 M expert uses takes about 0.1 s.
NOTES
} > $OUT.md
echo "wrote $OUT.md, $OUT.html, $OUT.json"
