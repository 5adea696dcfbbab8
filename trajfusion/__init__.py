"""TrajFusion: fused wrong→reflection→correct trajectories for math-reasoning SFT."""

__version__ = "0.1.0"
