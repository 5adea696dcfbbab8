"""The data stage of build_data.py, one module per step:

    problems → pool (replay a stored pool, or sample in shards) → verified (verdicts, answer groups)
    → dataset (α, fused rows, stats, plots, card)

`identity` says where each output lives (a hash of what decides it), `budget` counts tokens,
`teachers/` holds the sampling backends; the algorithm itself stays in `trajfusion.core`.
"""
