"""Cross-modal retrieval figures for the ``align`` encoder: Recall@k, baselines, JSON + Markdown."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from prismrec.io import atomic_write_json, atomic_write_text

KS = (1, 5, 10)
DIRECTIONS = ("image->text", "text->image")


def recall_at_k(scores: torch.Tensor, ks=KS) -> dict[str, float]:
    """Recall@k of square ``scores[query, candidate]`` whose correct candidate is the diagonal.

    A query's rank is the number of candidates scored strictly above its own pair.

    Example:
        >>> recall_at_k(torch.tensor([[0.9, 0.1], [0.8, 0.2]]), ks=(1, 2))
        {'R@1': 0.5, 'R@2': 1.0}
    """
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"retrieval scores must be square [n, n], got {tuple(scores.shape)}")
    rank = (scores > scores.diagonal()[:, None]).sum(dim=1)
    return {f"R@{k}": float((rank < k).float().mean()) for k in ks}


def _with_mean(directions: dict[str, dict[str, float]]) -> dict:
    values = [v for direction in directions.values() for v in direction.values()]
    return {**directions, "mean": sum(values) / len(values)}


def retrieval_report(heads, text_features: torch.Tensor, image_features: torch.Tensor, ks=KS) -> dict:
    """Held-out image->text and text->image Recall@k of paired tower features through ``heads``."""
    with torch.no_grad():
        text_emb, image_emb = heads.embed_text(text_features), heads.embed_image(image_features)
    scores = image_emb @ text_emb.T
    return _with_mean({"image->text": recall_at_k(scores, ks), "text->image": recall_at_k(scores.T, ks)})


def random_baselines(n: int, *, seed: int, ks=KS) -> tuple[dict, dict]:
    """(expected Recall@k of random ranking = min(k, n)/n, one empirical run with seeded Gaussian scores)."""
    expected = {f"R@{k}": min(k, n) / n for k in ks}
    generator = torch.Generator().manual_seed(seed)
    empirical = {direction: recall_at_k(torch.randn(n, n, generator=generator), ks) for direction in DIRECTIONS}
    return _with_mean({direction: dict(expected) for direction in DIRECTIONS}), _with_mean(empirical)


@dataclass
class AlignmentReport:
    """Held-out retrieval of the trained heads against untrained heads and random scores.

    ``recall[model][direction]["R@k"]`` with models ``trained``, ``untrained``,
    ``random_expected``, ``random_empirical`` and directions ``image->text``, ``text->image``.
    """

    objective: str
    recall: dict
    n_train_pairs: int
    n_heldout_pairs: int
    epochs: int
    resumed_from_epoch: int
    checkpoint_dir: str
    config: dict = field(default_factory=dict)
    towers: dict = field(default_factory=dict)
    history: list = field(default_factory=list)

    @classmethod
    def build(cls, *, trained, untrained, heldout, config, towers, n_train, epochs, resumed_from_epoch, history,
              checkpoint_dir, seed) -> "AlignmentReport":
        text, image = heldout
        expected, empirical = random_baselines(len(text), seed=seed)
        recall = {"trained": retrieval_report(trained, text, image), "untrained": retrieval_report(untrained, text, image),
                  "random_expected": expected, "random_empirical": empirical}
        return cls(objective=config["objective"], recall=recall, n_train_pairs=n_train, n_heldout_pairs=len(text),
                   epochs=epochs, resumed_from_epoch=resumed_from_epoch, checkpoint_dir=checkpoint_dir,
                   config=config, towers=towers, history=history)

    def to_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}

    def to_markdown(self) -> str:
        """A table: one row per model, one column per direction and k."""
        ks = list(next(iter(self.recall["trained"].values())))
        header = [f"{d} {k}" for d in DIRECTIONS for k in ks]
        lines = [f"# Alignment retrieval ({self.objective})", "",
                 f"Towers: text `{self.config.get('text_encoder')}`, image `{self.config.get('image_encoder')}`; "
                 f"text template `{self.config.get('text_template')}`.",
                 f"Held-out pairs: {self.n_heldout_pairs} (train pairs: {self.n_train_pairs}); epochs: {self.epochs} "
                 f"(resumed from epoch {self.resumed_from_epoch}).", "",
                 "| model | " + " | ".join(header) + " | mean |", "|---" * (len(header) + 2) + "|"]
        for model, figures in self.recall.items():
            cells = [f"{figures[d][k]:.4f}" for d in DIRECTIONS for k in ks]
            lines.append(f"| {model} | " + " | ".join(cells) + f" | {figures['mean']:.4f} |")
        return "\n".join(lines) + "\n"

    def save(self, output_dir: str | Path) -> tuple[Path, Path]:
        """Write ``alignment_report.json`` and ``alignment_report.md`` atomically; return their paths."""
        output_dir = Path(output_dir)
        json_path, markdown_path = output_dir / "alignment_report.json", output_dir / "alignment_report.md"
        atomic_write_json(json_path, self.to_dict())
        atomic_write_text(markdown_path, self.to_markdown())
        return json_path, markdown_path
