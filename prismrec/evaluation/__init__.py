"""Evaluation: pure metric functions, one batched evaluator, significance tests, reports."""
from prismrec.evaluation.evaluator import EvaluationResult, Evaluator

__all__ = ["Evaluator", "EvaluationResult"]
