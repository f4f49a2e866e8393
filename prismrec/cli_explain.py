"""``prismrec foundation explanations`` (train + score) and ``prismrec explain RUN --user --item``.

Mounted by :func:`prismrec.cli_foundation.register`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

DEFAULT_REVIEWS = "../shared/data/amazon-musical-instruments/reviews_Musical_Instruments_5.json.gz"


def explanations(
    out: Path = typer.Option(..., "--out", help="Run folder: model/, results.json, results.md, explanations.csv."),
    reviews: Path = typer.Option(Path(DEFAULT_REVIEWS), help="Amazon reviews (JSON lines, .gz allowed)."),
    preset: str = typer.Option("mini", help="T5 preset."),
    epochs: int = typer.Option(5),
    learning_rate: float = typer.Option(1e-3),
    max_reviews: Optional[int] = typer.Option(None, help="Use only the first N reviews (smoke runs)."),
    seed: int = typer.Option(0),
    threads: Optional[int] = typer.Option(None),
) -> None:
    """Train the explanation model on review summaries; score it, the nearest-review and the constant baseline."""
    from prismrec import cli

    @cli._friendly_errors
    def run() -> None:
        from prismrec.data.loaders.amazon import load_amazon_review_texts
        from prismrec.foundation.explanation import NearestReview, score_explanations, split_reviews
        from prismrec.foundation.generator import ExplanationGenerator
        from prismrec.cli_foundation import _run_record
        from prismrec.io import atomic_write_frame, atomic_write_json, atomic_write_text
        from prismrec.provenance import run_provenance

        at_start = run_provenance()
        cli._setup(threads)
        frame = load_amazon_review_texts(reviews)
        if max_reviews:
            frame = frame.iloc[:max_reviews]
        split = split_reviews(frame, seed=seed)
        started = time.perf_counter()
        generator = ExplanationGenerator(preset=preset, epochs=epochs, learning_rate=learning_rate, seed=seed).fit(split.train, progress=True)
        fit_seconds = time.perf_counter() - started
        generator.save(out / "model")
        test = split.test
        references = [str(s) for s in test["summary"]]
        outputs = {
            "foundation (T5, trained templates)": generator.generate(test["user"], test["item"]),
            "foundation (T5, held-out template: zero-shot)": generator.generate(test["user"], test["item"],
                                                                                template="explanation-3"),
            "nearest review (retrieval baseline)": NearestReview().fit(split.train).predict(test["user"], test["item"]),
            # a model that says one phrase to everyone must not look good: the floor any method has to beat
            "most common training summary (constant baseline)":
                [str(split.train["summary"].mode().iloc[0])] * len(test),
        }
        scores = {name: {**score_explanations(texts, references), "distinct_outputs": len(set(texts))}
                  for name, texts in outputs.items()}
        report = {"data": str(reviews), "target": "the review's summary line", "split": "random 8:1:1 reviews",
                  "test_reviews": len(test), "dropped_unknown": split.dropped, "fit_seconds": round(fit_seconds, 1),
                  "tuning": generator.tuning_report_, "scores": scores,
                  **_run_record(at_start, {"reviews": str(reviews), "max_reviews": max_reviews, "seed": seed,
                                          "threads": threads, "generator": generator.params})}
        atomic_write_json(out / "results.json", report)
        lines = ["# Explanations: review summary lines", "", f"{len(test)} test reviews of {reviews}", "",
                 "| method | BLEU-4 | ROUGE-1 | ROUGE-2 | ROUGE-L | distinct outputs |", "|---|---|---|---|---|---|"]
        lines += [f"| {name} | {s['bleu4']:.2f} | {s['rouge1']:.2f} | {s['rouge2']:.2f} | {s['rougeL']:.2f} "
                  f"| {s['distinct_outputs']} of {len(test)} |" for name, s in scores.items()]
        atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
        columns = dict(zip(("generated", "generated_zero_shot", "retrieved", "constant"), outputs.values()))
        atomic_write_frame(test[["user", "item"]].assign(reference=references, **columns), out / "explanations.csv")
        cli.out_console.print_json(json.dumps(scores))

    run()


def explain(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="Run folder of `prismrec foundation explanations`."),
    user: str = typer.Option(..., "--user", help="Raw user id."),
    item: str = typer.Option(..., "--item", help="Raw item id."),
    template: str = typer.Option("explanation-1", help="Prompt template name."),
) -> None:
    """Generate the explanation (review summary) the model expects USER to give ITEM."""
    from prismrec import cli

    @cli._friendly_errors
    def run() -> None:
        from prismrec.foundation.generator import ExplanationGenerator

        generator = ExplanationGenerator.load(run_dir / "model")
        cli.out_console.print(generator.generate([user], [item], template=template)[0], highlight=False)

    run()
