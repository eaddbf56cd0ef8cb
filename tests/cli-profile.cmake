# CLI tests of `moerun profile` (label unit), on the small traces of tests/data/traces/. Included
# from tests/CMakeLists.txt after cli.cmake (moerun_cli_test).
#
# textbook-lru.csv is the reference string 0 1 2 0 1 3 0 1 2 3 (one layer, top-1, 4 experts).
# By hand: 3 slots: LRU hits at 0 1 (tokens 3 4) and 0 1 (tokens 6 7) = 4; Belady also keeps 3
# for token 9 = 5. 2 slots: LRU never hits; Belady hits tokens 3, 6 and 9 = 3. 4 misses are cold.
set(_prof ${CMAKE_CURRENT_LIST_DIR}/data/traces)

moerun_cli_test(profile-help ARGS "profile|replay|--help" RC 0 STDOUT "total slots with --global")
moerun_cli_test(profile-lru-belady-json
                ARGS "profile|replay|${_prof}/textbook-lru.csv|--policy|lru,belady|--size|2,3|--json" RC 0
                STDOUT ".policy.: .lru., .size.: 2, .tokens.: 10, .accesses.: 10, .hits.: 0, .misses.: 10, .cold_misses.: 4.*.policy.: .lru., .size.: 3, .tokens.: 10, .accesses.: 10, .hits.: 4,.*.policy.: .belady., .size.: 2, .tokens.: 10, .accesses.: 10, .hits.: 3,.*.policy.: .belady., .size.: 3, .tokens.: 10, .accesses.: 10, .hits.: 5,")
# The table shows the Belady column even when belady is not asked for.
moerun_cli_test(profile-lru-table ARGS "profile|replay|${_prof}/textbook-lru.csv|--policy|lru|--size|3" RC 0
                STDOUT "size +lru +belady\n +3 +40.0% +50.0%")
moerun_cli_test(profile-global ARGS "profile|replay|${_prof}/two-layers.csv|--global|--size|4,6|--json" RC 0
                STDOUT ".partitioning.: .global.")
moerun_cli_test(profile-oracle-prefetch
                ARGS "profile|replay|${_prof}/two-layers.csv|--prefetch|oracle-next-layer|--size|4" RC 0
                STDOUT "prefetch oracle-next-layer")
moerun_cli_test(profile-stats ARGS "profile|stats|${_prof}/two-layers.csv|--size|2,4" RC 0
                STDOUT "consecutive-token overlap 58.3%.*\n +0 +50.0%.*\n +1 +66.7%")
moerun_cli_test(profile-stats-json ARGS "profile|stats|${_prof}/textbook-lru.csv|--segment|1|--size|3|--json" RC 0
                STDOUT ".srp.: .{.segment.: 1, .windows.: 10, .srp.: 1,")

# Expert bytes from a GGUF (1728 bytes per expert); a model of another shape is refused.
set(_prof_gguf ${CMAKE_CURRENT_LIST_DIR}/fuzz/corpus/gguf/moe-olmoe-q4_0.gguf)
moerun_cli_test(profile-model-bytes
                ARGS "profile|replay|${_prof}/one-layer-two-experts.csv|--model|${_prof_gguf}|--size|1|--policy|lru|--json"
                RC 0 STDOUT ".expert_bytes.: .1728.*.policy.: .lru., .size.: 1,[^}]*.bytes_per_token.: 1728,")
moerun_cli_test(profile-model-mismatch ARGS "profile|replay|${_prof}/two-layers.csv|--model|${_prof_gguf}" RC 1
                STDERR "the model has 1 MoE layers x 2 experts but the trace has 2 x 6")

# Bad input: exit 1 and a message naming the file and the problem.
moerun_cli_test(profile-missing-file ARGS "profile|replay|${_prof}/no-such-trace.csv" RC 1 STDERR "no-such-trace.csv")
moerun_cli_test(profile-bad-missing-layer ARGS "profile|replay|${_prof}/bad-missing-layer.csv" RC 1
                STDERR "bad-missing-layer.csv: line 4: layer: .*no row for layer 1")
moerun_cli_test(profile-bad-expert-id ARGS "profile|stats|${_prof}/bad-expert-id.csv" RC 1
                STDERR "bad-expert-id.csv: line 4: expert: expert id 9 out of range")
moerun_cli_test(profile-bad-truncated ARGS "profile|replay|${_prof}/bad-truncated.moetrc" RC 1
                STDERR "bad-truncated.moetrc: offset 36: .*cannot fit")
moerun_cli_test(profile-size-below-topk ARGS "profile|replay|${_prof}/two-layers.csv|--size|1" RC 1
                STDERR "--size 1 is below top_k 2")
moerun_cli_test(profile-unknown-policy ARGS "profile|replay|${_prof}/two-layers.csv|--policy|fifo" RC 1
                STDERR "unknown policy 'fifo'")
moerun_cli_test(profile-unknown-domain ARGS "profile|replay|${_prof}/two-layers.csv|--domain|3" RC 1
                STDERR "no sequence has domain 3")
# Predictors on 0 1 2 0 1 3 0 1 2 3 (one layer, so d=1 is the next token). previous never
# repeats; transition, worked by hand: it learns 0->1 by token 3 and is right after tokens 3, 6
# (0->1) and 7 (1->2 and 1->3 tie, the lower id wins): 3 of 9.
moerun_cli_test(profile-predict ARGS "profile|predict|${_prof}/textbook-lru.csv|--distance|1" RC 0
                STDOUT "all +previous +0.0%.*\nall +transition +33.3%")
moerun_cli_test(profile-predict-json
                ARGS "profile|predict|${_prof}/textbook-lru.csv|--distance|1|--predictor|transition|--json" RC 0
                STDOUT ".predictor.: .transition., .distance.: 1, .precision.: 0.333333, .recall.: 0.333333, .predictions.: 9,")
moerun_cli_test(profile-predict-unknown ARGS "profile|predict|${_prof}/two-layers.csv|--predictor|mlp" RC 1
                STDERR "unknown predictor 'mlp' .known: previous, transition.")
moerun_cli_test(profile-predict-distance ARGS "profile|predict|${_prof}/two-layers.csv|--distance|3" RC 1
                STDERR "--distance: 3 is outside 1..n_layers .2.")
moerun_cli_test(profile-replay-predictor-prefetch
                ARGS "profile|replay|${_prof}/two-layers.csv|--prefetch|transition|--size|4" RC 0
                STDOUT "prefetch transition")
moerun_cli_test(profile-replay-unknown-prefetch ARGS "profile|replay|${_prof}/two-layers.csv|--prefetch|magic" RC 1
                STDERR "unknown prefetcher 'magic' .known: none, oracle-next-layer, previous, transition.")

# --html writes one page with inline SVG plots.
add_test(NAME cli-profile-html
         COMMAND ${CMAKE_COMMAND} -DCMD=$<TARGET_FILE:moerun>
                 "-DARGS=profile|replay|${_prof}/two-layers.csv|--size|2,3,4|--html|${CMAKE_CURRENT_BINARY_DIR}/profile-test.html"
                 -DFILE=${CMAKE_CURRENT_BINARY_DIR}/profile-test.html "-DFILE_REGEX=^<!DOCTYPE html>.*<svg .*belady.*expert popularity.*</html>"
                 -P ${CMAKE_CURRENT_LIST_DIR}/cli-file-expect.cmake)
set_tests_properties(cli-profile-html PROPERTIES LABELS unit TIMEOUT 30)
