"""Supervised fine-tuning on fused datasets: schemas, templates and label masks, packing, the HF
Trainer (+ DeepSpeed) wiring and rank-0 tracking (metrics.jsonl, W&B)."""
