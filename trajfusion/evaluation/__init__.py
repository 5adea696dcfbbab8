"""Evaluation: the project's lm-eval tasks run on a student or checkpoint, graded by the project's verifier.

Kept import-light: `trajfusion.tasks.utils` imports from here inside lm-eval.
"""
