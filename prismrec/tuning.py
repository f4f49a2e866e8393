"""Hyperparameter tuning that never sees the test set: Optuna TPE (seeded), selection on validation.

``tune_models`` runs ``trials`` trials per model on the config's split (first seed), each
trial fitting on train and scoring on valid with the shared evaluator. The chosen setting is
then evaluated once on test. Per model it writes ``<out>/<model>/trials.csv`` and
``best_params.json``; the Optuna study lives in ``<out>/optuna.db`` (SQLite), so a stopped
run resumes with the trials it still owes. ``compare`` takes the chosen parameters with
``models[i].tuned: <out>/<model>/best_params.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from prismrec.config import ConfigError, ExperimentConfig
from prismrec.evaluation.evaluator import Evaluator
from prismrec.io import atomic_write_frame, atomic_write_json, atomic_write_text
from prismrec.models.registry import create_model, get_model_class
from prismrec.pipeline import compute_features, evaluate_on_test, fit_model, load_data, model_params, split_data
from prismrec.provenance import run_provenance
from prismrec.search_spaces import search_space, suggest


def _validation_score(model, split, metric: str, cold_start_candidates: str) -> float:
    name, _, k = metric.partition("@")
    evaluator = Evaluator(ks=(int(k),), metrics=(name,))
    candidates, label = split.ranking_candidates("valid", cold_start_candidates)
    return evaluator.evaluate(model, split.valid, exclude=split.train, candidate_items=candidates,
                              candidates_label=label)[metric]


def _study(out: Path, name: str, seed: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(out / 'optuna.db').resolve()}"
    return optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                               sampler=optuna.samplers.TPESampler(seed=seed))


def tune_models(config: ExperimentConfig, out_dir: str | Path, *, models: list[str] | None = None, trials: int = 20,
                metric: str = "ndcg@20", seed: int = 0, progress: bool = False, log=print) -> dict:
    """Tune each named model (default: all) with the same ``trials`` budget; returns ``{model: best}``.

    Example:
        >>> best = tune_models(load_config("configs/ml100k.yaml"), "runs/tune", trials=20)  # doctest: +SKIP
        >>> best["bpr"]["params"]["learning_rate"]  # doctest: +SKIP
    """
    if trials < 1:
        raise ValueError(f"--trials must be at least 1, got {trials}")
    names = [m.name for m in config.models]
    chosen = models or names
    unknown = [m for m in chosen if m not in names]
    if unknown:
        raise ConfigError(f"{config.source}: no model named {unknown}; the config has {names}")
    model_configs = [m for m in config.models if m.name in chosen]
    spaces = {m.name: search_space(m.registry_name, get_model_class(m.registry_name), m.search_space,
                                   f"{config.source}: models {m.name!r}: ") for m in model_configs}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_data(config)
    config.models = model_configs
    features = compute_features(config, dataset, progress=progress, log=log)
    split = split_data(config, dataset)
    evaluator_config = config.evaluation
    results = {}
    for model_config in model_configs:
        space = spaces[model_config.name]
        budget = trials if space else 1  # nothing to search: one fit is the whole budget
        study = _study(out, model_config.name, seed)
        done = len([t for t in study.trials if t.state.name == "COMPLETE"])
        log(f"tuning {model_config.name}: {budget} trials ({done} already done), selecting on valid {metric}")

        def objective(trial, model_config=model_config, space=space):
            params = {**model_params(model_config), **suggest(trial, space)}
            model = create_model(model_config.registry_name, params)
            started = time.perf_counter()
            fit_model(model_config, model, split, features, progress=progress,
                      cold_start_candidates=evaluator_config.cold_start_candidates)
            trial.set_user_attr("fit_seconds", time.perf_counter() - started)
            if hasattr(model, "best_epoch_"):
                trial.set_user_attr("best_epoch", int(model.best_epoch_))
            return _validation_score(model, split, metric, evaluator_config.cold_start_candidates)

        if budget - done > 0:
            study.optimize(objective, n_trials=budget - done, show_progress_bar=progress)
        results[model_config.name] = _finish(config, model_config, study, space, split, features, metric, seed, out)
        log(f"  {model_config.name}: best valid {metric}={study.best_value:.4f} with {study.best_params}; "
            f"test {metric}={results[model_config.name]['test_metrics'].get(metric, float('nan')):.4f}")
    return results


def _finish(config, model_config, study, space, split, features, metric, seed, out: Path) -> dict:
    """Refit the chosen setting, evaluate it once on test, write trials.csv and best_params.json."""
    from prismrec.pipeline import make_evaluator

    params = {**model_params(model_config), **study.best_params}
    model = create_model(model_config.registry_name, params)
    fit_model(model_config, model, split, features, progress=False,
              cold_start_candidates=config.evaluation.cold_start_candidates)
    test = evaluate_on_test(model, split, make_evaluator(config),
                            cold_start_candidates=config.evaluation.cold_start_candidates)
    rows = [{"trial": t.number + 1, "state": t.state.name, f"valid_{metric}": t.value, **t.params,
             "fit_seconds": t.user_attrs.get("fit_seconds"), "best_epoch": t.user_attrs.get("best_epoch")}
            for t in study.trials]
    folder = out / model_config.name
    atomic_write_frame(pd.DataFrame(rows), folder / "trials.csv")
    best = {"model": model_config.registry_name, "name": model_config.name, "params": model.get_params(),
            "tuned": study.best_params, "search_space": space, "selection": f"valid {metric} (test never seen)",
            "valid_value": study.best_value, "best_trial": study.best_trial.number + 1, "trials": len(rows),
            "test_protocol": test.protocol, "test_metrics": test.summary, "sampler": f"TPE seed {seed}",
            "config_source": config.source, "provenance": run_provenance()}
    atomic_write_json(folder / "best_params.json", best)
    atomic_write_text(folder / "tuning.md", f"# Tuning {model_config.name}\n\n{len(rows)} trials, TPE seed {seed}, "
                      f"selected on valid {metric}: {study.best_value:.4f} (trial {best['best_trial']}).\n\n"
                      f"Chosen: `{json.dumps(study.best_params)}`\n\nTest ({test.protocol}), evaluated once: "
                      + ", ".join(f"{k}={v:.4f}" for k, v in test.summary.items() if "@" in k) + "\n")
    return best


def load_tuned_params(path: str | Path, model_name: str, where: str) -> dict:
    """The chosen hyperparameters of a ``best_params.json`` (a file, or a tune folder holding ``<model>/``)."""
    path = Path(path)
    if path.is_dir():
        path = path / model_name / "best_params.json"
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no tuning result at {path} (run prismrec tune first)")
    return dict(json.loads(path.read_text(encoding="utf-8"))["tuned"])
