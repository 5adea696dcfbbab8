"""The data stage of build_data.py: problems → teacher pool → verified pool → fused dataset.

One module per step (problems, sampling, verification, calibration, report/plots, audit), teachers
under `teachers/`, the wiring and caching in `stages`; the algorithm itself stays in `trajfusion.core`.
"""
