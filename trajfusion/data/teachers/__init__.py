"""Teachers behind one method, `sample_batch(problems) → K samples each`: a stored pool (replay),
transformers (CPU/GPU) and vLLM (lazy import; the `gpu` extra)."""
