"""A comparison: every model of a config, on one split per seed, reported with statistics.

Output folder (one seed): ``results.json``, ``results.md``, ``report.html``,
``split/{train,valid,test}.csv`` and ``<model>/{topk.csv,per_user.npz}``. With several
seeds each seed's split and lists go to ``seed-<s>/``. With ``save_models`` each model is also
written as a serving bundle to ``models/<model>/`` (the model fitted on the first seed's split). Every results file records the
package version, git commit, full resolved config, seeds and date.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from prismrec.config import ExperimentConfig
from prismrec.data.splits import split_options
from prismrec.evaluation.breakdown import recall_by_popularity
from prismrec.evaluation.documents import report_html, results_markdown
from prismrec.evaluation.report import ModelRun, build_report
from prismrec.io import atomic_write_frame, atomic_write_json, atomic_write_text
from prismrec.pipeline import (
    build_models, compute_features, evaluate_on_test, fit_model, load_data, make_evaluator, split_data, topk_frame,
    write_split)
from prismrec.provenance import run_provenance


def resolve_seeds(config: ExperimentConfig, override=None) -> list[int | None]:
    """The seeds to run: ``override`` (``--seeds``) or the config's ``seeds``; ``[None]`` means one run as configured.

    A count ``n`` runs ``base .. base+n-1`` where ``base`` is the split's configured seed (else 0).

    Example:
        >>> from prismrec.config import parse_config
        >>> cfg = parse_config({"data": {"loader": "recbole_ml100k"}, "models": [{"name": "bpr"}],
        ...                     "split": {"options": {"seed": 2024}}, "seeds": 3})
        >>> resolve_seeds(cfg)
        [2024, 2025, 2026]
    """
    seeds = override if override is not None else config.seeds
    if seeds is None:
        return [None]
    if isinstance(seeds, int):
        base = config.split.options.get("seed", 0) if "seed" in split_options(config.split.strategy) else 0
        return [int(base) + i for i in range(seeds)]
    return list(seeds)


def check_output_folder(out) -> Path | None:
    if out is None:
        return None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the results (it is created if missing)")
    return out


def run_comparison(config: ExperimentConfig, out_dir: str | Path | None = None, *, seeds=None,
                   progress: bool = True, save_models: bool = False, log=print, extra: dict | None = None) -> dict:
    """Fit and evaluate every model of ``config`` on one split per seed; write the outputs to ``out_dir``
    (with ``save_models``, also a servable bundle per model, see the module docstring). ``extra``
    entries join the report and its ``results.json`` (a study's scenario key, say)."""
    out = check_output_folder(out_dir)
    if save_models and out is None:
        raise ValueError("save_models needs an output folder (--out DIR) to write models/<name>/ into")
    provenance = run_provenance()  # at the start: the commit and versions the run's code came from
    seed_list = resolve_seeds(config, seeds)
    dataset = load_data(config)
    log(f"data: {dataset!r}")
    features = compute_features(config, dataset, progress=progress, log=log)
    build_models(config, seed_list[0])  # every model is checked before any trains
    evaluator = make_evaluator(config)
    runs = {m.name: ModelRun(m.name) for m in config.models}
    splits, per_user_key = {}, None
    for seed in seed_list:
        split = split_data(config, dataset, seed)
        splits[seed] = repr(split)
        where = out if out is None or len(seed_list) == 1 else out / f"seed-{seed}"
        log(f"split{'' if seed is None else f' (seed {seed})'}: {split!r}")
        if where is not None:
            write_split(split, where / "split")
        candidates, label = split.ranking_candidates("test", config.evaluation.cold_start_candidates)
        evaluator.check_rankable(split.train.n_items if candidates is None else len(candidates),
                                 None if candidates is None else label)  # before any model trains
        for model_config, model in build_models(config, seed):
            log(f"fitting {model_config.name} ...")
            seconds = fit_model(model_config, model, split, features, progress=progress,
                                cold_start_candidates=config.evaluation.cold_start_candidates)
            result = evaluate_on_test(model, split, evaluator,
                                      cold_start_candidates=config.evaluation.cold_start_candidates,
                                      mask_valid=config.evaluation.mask_valid)
            run = runs[model_config.name]
            run.results[seed], run.fit_seconds[seed] = result, seconds
            _record_model(run, model_config, model, features, seed, split, result, config.evaluation.topk)
            log(f"  {model_config.name}: fit {seconds:.1f}s, " +
                ", ".join(f"{k}={result.summary[k]:.4f}" for k in list(result.summary)[:4]))
            if where is not None:
                atomic_write_frame(topk_frame(result, split.train, config.evaluation.topk),
                                   where / model_config.name / "topk.csv")
                result.save(where / model_config.name / "per_user.npz")
            if save_models and seed == seed_list[0]:
                from prismrec.serving.bundle import bundle_from_fit

                bundle_from_fit(out / "models" / model_config.name, config, model_config, dataset, split, model,
                                features.info, seed=seed)
    report = {**_report(config, list(runs.values()), evaluator, dataset, splits, seed_list, provenance),
              **(extra or {})}
    if out is not None:
        write_documents(report, list(runs.values()), out)
    return report


def _record_model(run: ModelRun, model_config, model, features, seed, split, result, k: int) -> None:
    run.info["model"] = model_config.registry_name
    run.info.setdefault("params", model.get_params())  # as fitted for the first seed (each seed sets 'seed')
    run.info["features"] = {name: features.info[name] for name in model_config.features if name in features.info}
    if hasattr(model, "best_epoch_"):
        run.info.setdefault("best_epoch", []).append(int(model.best_epoch_))
    breakdown = recall_by_popularity(result.topk, result.users, split.test, split.train, k)
    run.info.setdefault("_breakdowns", []).append(breakdown)


def _mean_breakdown(breakdowns: list[dict]) -> dict:
    out = {}
    for group in breakdowns[0]:
        values = [b[group]["recall"] for b in breakdowns if b[group]["recall"] is not None]
        out[group] = {"recall": float(np.mean(values)) if values else None,
                      "users": int(np.mean([b[group]["users"] for b in breakdowns])),
                      "test_interactions": int(np.mean([b[group]["test_interactions"] for b in breakdowns]))}
    return out


def _report(config, runs, evaluator, dataset, splits, seed_list, provenance) -> dict:
    for run in runs:
        run.info["breakdown"] = _mean_breakdown(run.info.pop("_breakdowns"))
    ev = config.evaluation
    first = next(iter(runs[0].results.values()))
    # keys as computed: '/sampledN' only when negatives were really sampled
    headline = ev.headline or [key for name in ("recall", "ndcg") for key in first.per_user
                               if key.startswith(f"{name}@")]
    context = {
        "name": config.name, "data": repr(dataset),
        "split": "; ".join(f"seed {s}: {r}" if s is not None else r for s, r in splits.items()),
        "masked_at_test": ["train", "valid"] if ev.mask_valid else ["train"], "breakdown_k": ev.topk,
        "config": {"source": config.source, "data": asdict(config.data), "split": asdict(config.split),
                   "features": {n: asdict(f) for n, f in config.features.items()},
                   "evaluation": asdict(ev), "feature_cache": config.feature_cache, "threads": config.threads,
                   "seeds": [s for s in seed_list if s is not None] or None,
                   "models": [{"name": r.name, "model": r.info.get("model"), "params": r.info.get("params"),
                               "features": list(r.info.get("features", {}))} for r in runs]},
        "provenance": {**provenance, "finished": run_provenance()["date"]},
    }
    report = build_report(runs, headline=headline, reference=ev.reference, all_pairs=ev.all_pairs, context=context)
    report["seeds"] = [s for s in seed_list if s is not None] or [None]
    return report


def write_documents(report: dict, runs: list[ModelRun], out: Path) -> None:
    """``results.json``, ``results.md`` and ``report.html`` in ``out``."""
    atomic_write_json(out / "results.json", report)
    atomic_write_text(out / "results.md", results_markdown(report))
    metric = report["headline"][0]
    per_user = {run.name: run.seed_averaged(metric)[1] for run in runs if metric in
                next(iter(run.results.values())).per_user}
    atomic_write_text(out / "report.html", report_html(report, per_user))
