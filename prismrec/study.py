"""A study: one command runs a grid of comparisons and reports them together.

The grid: encoders (groups of named features) x content models x encoder paradigms, plus
baselines run once per scenario, over scenarios (a warm split, a cold-start item split, and
a sparsity curve that keeps 10%, 25%, 50% of each user's training interactions), each with
several seeds. Every scenario is an ordinary ``compare`` run in ``<out>/<scenario>/``; the
study adds ``results.json``, ``results.md`` and ``report.html`` across scenarios.

Example:
    >>> report = run_study(load_study("configs/lmm_study.yaml"), "runs/study")  # doctest: +SKIP
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from prismrec.config import ConfigError, parse_config
from prismrec.experiment import run_comparison
from prismrec.io import atomic_write_json, atomic_write_text
from prismrec.provenance import run_provenance

PARADIGMS = ("frozen", "finetuned", "end2end")


@dataclass
class StudyConfig:
    name: str
    base: dict  # data, feature_cache, threads, seeds, evaluation: shared by every scenario
    encoders: dict  # encoder name -> {feature name: feature spec}
    content_models: list
    baselines: list
    scenarios: dict  # scenario name -> split section (strategy, options, train_fraction)
    paradigms: list = field(default_factory=lambda: ["frozen"])
    source: str = "<dict>"
    #: ``{"trials": N, "scenarios": [...], "metric": "ndcg@20", "seed": 0}``: every model of those
    #: scenarios (baselines included) is tuned with the same budget on validation before it runs
    tune: dict | None = None


_KEYS = {"name", "data", "feature_cache", "threads", "seeds", "evaluation", "encoders", "content_models",
         "baselines", "splits", "sparsity", "paradigms", "tune"}
_TUNE_KEYS = {"trials", "scenarios", "metric", "seed"}


def parse_study(raw: dict, source: str = "<dict>") -> StudyConfig:
    """Validate a study mapping; each scenario's run config is checked by :func:`parse_config` up front."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a study must be a mapping")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; a study has {sorted(_KEYS)}")
    for key in ("data", "encoders", "content_models", "splits"):
        if not raw.get(key):
            raise ConfigError(f"{source}: missing required key '{key}'")
    paradigms = raw.get("paradigms", ["frozen"])
    bad = [p for p in paradigms if p not in PARADIGMS]
    if bad:
        raise ConfigError(f"{source}: paradigms {bad} unknown; choose from {list(PARADIGMS)}")
    splits = {name: dict(spec) for name, spec in raw["splits"].items()}
    sparsity = raw.get("sparsity")
    if sparsity and sparsity.get("split") not in splits:
        raise ConfigError(f"{source}: sparsity.split must name one of the splits {sorted(splits)}")
    scenarios = {}
    for name, spec in splits.items():  # a sparsity curve runs from its sparsest point up to its full split
        if sparsity and name == sparsity["split"]:
            for fraction in sorted(sparsity.get("fractions", [])):
                if fraction < 1:
                    scenarios[f"{name}@{fraction:g}"] = {**spec, "train_fraction": fraction}
        scenarios[name] = spec
    base = {k: raw[k] for k in ("data", "feature_cache", "threads", "seeds", "evaluation") if k in raw}
    tune = _parse_tune(raw.get("tune"), scenarios, source)
    study = StudyConfig(raw.get("name", "study"), base, raw["encoders"], raw["content_models"],
                        raw.get("baselines", []), scenarios, list(paradigms), source, tune)
    for scenario in scenarios:
        scenario_config(study, scenario)  # every run is validated before anything trains
    return study


def _parse_tune(tune, scenarios: dict, source: str) -> dict | None:
    if tune is None:
        return None
    if not isinstance(tune, dict):
        raise ConfigError(f"{source}: tune must be a mapping with {sorted(_TUNE_KEYS)}")
    unknown = sorted(set(tune) - _TUNE_KEYS)
    if unknown:
        raise ConfigError(f"{source}: tune has unknown key(s) {unknown}; it takes {sorted(_TUNE_KEYS)}")
    trials = tune.get("trials")
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise ConfigError(f"{source}: tune.trials must be a whole number >= 1, got {trials!r}")
    names = tune.get("scenarios", list(scenarios))
    missing = [n for n in names if n not in scenarios]
    if missing:
        raise ConfigError(f"{source}: tune.scenarios names {missing}, which are not scenarios of this study; "
                          f"its scenarios are {list(scenarios)}")
    return {"trials": trials, "scenarios": list(names), "metric": str(tune.get("metric", "ndcg@20")),
            "seed": int(tune.get("seed", 0))}


def load_study(path: str | Path) -> StudyConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: study file not found")
    return parse_study(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, source=str(path))


def model_name(model: str, encoder: str, paradigm: str) -> str:
    return f"{model}-{encoder}-{paradigm}"


def feature_spec(spec: dict, paradigm: str) -> dict | None:
    """A study feature under ``paradigm``, or ``None`` when this feature does not take part in it.

    A feature may carry ``paradigm_train: {finetuned: {...}, end2end: {...}}``: the ``train``
    options of each paradigm (an alignment's options are not an end2end adapter's). A feature
    with such a map takes part only in the paradigms it names; one without it takes part in
    every paradigm as written, unless its own ``train`` (an alignment) pins it to ``frozen``.
    """
    by_paradigm = spec.get("paradigm_train")
    base = {k: v for k, v in spec.items() if k != "paradigm_train"}
    if paradigm == "frozen":
        return base
    if by_paradigm is not None:
        if paradigm not in by_paradigm:
            return None
        return {**base, "encoder_mode": paradigm, "train": by_paradigm[paradigm] or {}}
    if "train" in base:
        return None  # e.g. an aligned encoder trained by the study: its train options are the alignment's
    return {**base, "encoder_mode": paradigm}


def grid(study: StudyConfig) -> tuple[list[tuple[dict, str, str]], list[str]]:
    """``([(content model spec, encoder, paradigm), ...], [skipped combination, ...])`` in report order."""
    runs, skipped = [], []
    for spec in study.content_models:
        missing = [s for s in spec.get("scenarios", []) if s not in study.scenarios]
        if missing:
            raise ConfigError(f"{study.source}: content model {spec['name']!r} lists scenario(s) {missing}; the "
                              f"study's scenarios are {list(study.scenarios)}")
        unknown = [e for e in spec.get("encoders", []) if e not in study.encoders]
        if unknown:
            raise ConfigError(f"{study.source}: content model {spec['name']!r} lists encoder(s) {unknown}, which the "
                              f"study does not define; its encoders are {list(study.encoders)}")
        for encoder, feature_specs in study.encoders.items():
            if encoder not in spec.get("encoders", study.encoders):
                continue
            for paradigm in spec.get("paradigms", study.paradigms):
                if paradigm not in study.paradigms:
                    raise ConfigError(f"{study.source}: content model {spec['name']!r} lists paradigm {paradigm!r}, "
                                      f"which is not among the study's paradigms {study.paradigms}")
                if all(feature_spec(f, paradigm) is not None for f in feature_specs.values()):
                    runs.append((spec, encoder, paradigm))
                else:
                    skipped.append(f"{model_name(spec['name'], encoder, paradigm)} (encoder {encoder!r} declares no "
                                   f"paradigm_train.{paradigm})")
    return runs, skipped


def scenario_config(study: StudyConfig, scenario: str):
    """The ``compare`` config of one scenario: baselines, then every content model x encoder x paradigm."""
    raw = copy.deepcopy(study.base)
    raw["name"] = f"{study.name}: {scenario}"
    raw["split"] = copy.deepcopy(study.scenarios[scenario])
    features, models = {}, []
    for encoder, specs in study.encoders.items():
        for paradigm in study.paradigms:
            for feature, spec in specs.items():
                if feature_spec(spec, paradigm) is not None:
                    features[f"{encoder}.{feature}.{paradigm}"] = feature_spec(spec, paradigm)
    for baseline in study.baselines:
        entry = {k: v for k, v in baseline.items() if k != "encoder"}
        if "encoder" in baseline:  # a content baseline on one fixed encoder (frozen)
            entry["features"] = [f"{baseline['encoder']}.{f}.frozen" for f in study.encoders[baseline["encoder"]]]
        models.append(entry)
    for spec, encoder, paradigm in grid(study)[0]:
        if scenario not in spec.get("scenarios", [scenario]):
            continue  # a model run only where it is asked for (an expensive one on the sparse points, say)
        entry = {"name": model_name(spec["name"], encoder, paradigm), "model": spec.get("model", spec["name"]),
                 "params": spec.get("params", {}), "features": [f"{encoder}.{f}.{paradigm}"
                                                                for f in study.encoders[encoder]]}
        models.append({**entry, **{key: spec[key] for key in ("tuned", "search_space") if key in spec}})
    used = {f for m in models for f in m.get("features", [])}
    raw["features"] = {name: spec for name, spec in features.items() if name in used}
    raw["models"] = models
    first = study.content_models[0]["name"]
    reference = model_name(first, next(iter(study.encoders)), "frozen")
    raw.setdefault("evaluation", {})
    raw["evaluation"] = {**raw["evaluation"], "reference": reference, "all_pairs": True}
    return parse_config(raw, source=study.source)


def select_scenarios(study: StudyConfig, names: list[str] | None) -> list[str]:
    """The scenarios to run, in the study's order: all of them, or the ``names`` given (checked).

    Example:
        >>> select_scenarios(study, ["warm@0.1", "warm@0.25"])  # doctest: +SKIP
        ['warm@0.1', 'warm@0.25']
    """
    if not names:
        return list(study.scenarios)
    missing = [n for n in names if n not in study.scenarios]
    if missing:
        raise ConfigError(f"{study.source}: --scenarios names {missing}, which are not scenarios of this study; "
                          f"its scenarios are {list(study.scenarios)}")
    return [s for s in study.scenarios if s in names]


def run_study(study: StudyConfig, out_dir: str | Path, *, progress: bool = False, log=print,
              scenarios: list[str] | None = None) -> dict:
    """Run every scenario (or only ``scenarios``) into ``<out>/<scenario>/`` and write the study's own reports."""
    from prismrec.study_report import study_html, study_markdown

    out = Path(out_dir)
    reports = {}
    for scenario in select_scenarios(study, scenarios):
        config = scenario_config(study, scenario)
        tuned = study.tune is not None and scenario in study.tune["scenarios"]
        if tuned:
            for model in config.models:  # where the tuning below leaves <model>/best_params.json
                model.tuned = str((out / scenario / "tuning").resolve())
        key = scenario_key(config, study.tune if tuned else None)
        done = _finished_scenario(out / scenario, key)
        if done is not None:
            log(f"== scenario {scenario}: already finished with this exact config, reusing {out / scenario}")
            reports[scenario] = done
            continue
        log(f"== scenario {scenario}")
        if tuned:
            _tune_scenario(config, out / scenario / "tuning", study.tune, progress, log)
        extra = {"scenario_key": key}  # in results.json, it marks the scenario finished
        if tuned:
            extra["tuning"] = {**study.tune, "folder": str(out / scenario / "tuning"),
                               "selection": f"valid {study.tune['metric']} on the first seed's split (test never seen)"}
        reports[scenario] = run_comparison(config, out / scenario, progress=progress, log=log, extra=extra)
    summary = {"name": study.name, "source": study.source, "paradigms": study.paradigms, "skipped": grid(study)[1],
               "encoders": study.encoders, "scenarios": {s: {"split": r["split"], "protocol": r["protocol"],
                                                             "reference_model": r["reference_model"],
                                                             "headline": r["headline"], "seeds": r["seeds"],
                                                             "models": r["models"], "pairwise": r.get("pairwise"),
                                                             "tuning": r.get("tuning")}
                                                         for s, r in reports.items()},
               "provenance": run_provenance()}
    atomic_write_json(out / "results.json", summary)
    atomic_write_text(out / "results.md", study_markdown(summary))
    atomic_write_text(out / "report.html", study_html(summary))
    return summary


def _tune_scenario(config, folder: Path, tune: dict, progress: bool, log) -> None:
    """Tune every model of the scenario with the same trial budget (resumable: Optuna's SQLite study)."""
    from prismrec.tuning import tune_models

    log(f"   tuning every model with {tune['trials']} trials on valid {tune['metric']} (TPE seed {tune['seed']})")
    own = copy.deepcopy(config)
    for model in own.models:
        model.tuned = None  # tune from the configured parameters, not from an earlier result
    tune_models(own, folder, trials=tune["trials"], metric=tune["metric"], seed=tune["seed"], progress=progress,
                log=log)


def scenario_key(config, tune: dict | None = None) -> str:
    """A hash of a scenario's full resolved config: a rerun reuses a finished scenario only if this matches."""
    content = asdict(config) if tune is None else {"config": asdict(config), "tune": tune}
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _finished_scenario(folder: Path, key: str) -> dict | None:
    """The scenario's report when ``folder`` holds a finished run of the same config (a stopped study resumes)."""
    path = folder / "results.json"
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # damaged or half-written by something else: run it again
    return report if report.get("scenario_key") == key else None
