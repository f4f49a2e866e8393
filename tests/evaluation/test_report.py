import numpy as np

from prismrec.evaluation.evaluator import EvaluationResult
from prismrec.evaluation.report import ModelRun, build_report, markdown_table


def run(name, values):
    values = np.asarray(values, dtype=np.float32)
    return ModelRun(name, EvaluationResult(np.arange(len(values)), {"ndcg@10": values},
                                           {"ndcg@10": float(values.mean())}, np.zeros((len(values), 1))))


def test_table_marks_significant_gains_and_losses_with_direction():
    rng = np.random.default_rng(0)
    base = rng.random(200)
    report = build_report([
        run("base", base),
        run("better", base + 0.05 + rng.normal(0, 0.01, 200)),
        run("worse", base - 0.05 + rng.normal(0, 0.01, 200)),
        run("same", base + rng.normal(0, 0.01, 200)),
    ])
    table = markdown_table(report)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ") and "model" not in line}
    assert "▲" in rows["better"] and "▼" not in rows["better"]
    assert "▼" in rows["worse"]
    assert "▲" not in rows["same"] and "▼" not in rows["same"]
    assert report["models"]["worse"]["paired_t_test_vs_base"]["ndcg@10"]["p_value"] < 0.05
