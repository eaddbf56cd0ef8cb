"""moerun_gen: random-weight MoE GGUF test models (see tools/python/gen_model.py)."""
