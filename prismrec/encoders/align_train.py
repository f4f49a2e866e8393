"""Training of the ``align`` dual encoder: frozen towers, trainable heads, resumable epochs.

``train_alignment`` encodes the catalog once with each tower (cached on disk), keeps items
that have both an image and text, holds out a seeded fraction of them, trains the heads
with AdamW (a checkpoint every epoch, resumable), and reports held-out image->text and
text->image Recall@1/5/10 for the trained heads, the untrained heads and random scores.
"""
from __future__ import annotations

import copy
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from prismrec.encoders.align import (
    AlignmentHeads, checkpoint_dir, create_towers, read_checkpoint, save_checkpoint)
from prismrec.encoders.align_report import AlignmentReport, retrieval_report
from prismrec.encoders.base import EncodedItems, Encoder

#: what must match for ``resume=True`` to continue a checkpoint
_RESUME_KEYS = ("text_encoder", "image_encoder", "text_template", "objective", "shared_dim", "head",
                "batch_size", "learning_rate", "weight_decay", "heldout_fraction", "seed", "adaptation")


def tower_features(encoder: Encoder, catalog, feature_store: str | Path, *, progress: bool = True) -> EncodedItems:
    """``encoder``'s features of every catalog item, through the feature store (cached, resumable).

    Example:
        >>> text = tower_features(create_encoder("text:minilm"), catalog, "features")  # doctest: +SKIP
    """
    from prismrec.encoders.store import encode_catalog

    return encode_catalog(encoder, catalog, feature_store, progress=progress)


def split_pairs(mask: np.ndarray, *, heldout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of the rows where ``mask`` is True into (train rows, held-out rows), each sorted.

    Example:
        >>> train, heldout = split_pairs(np.ones(10, bool), heldout_fraction=0.2, seed=0)
        >>> len(train), len(heldout), sorted([*train, *heldout]) == list(range(10))
        (8, 2, True)
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    rows = np.flatnonzero(mask)
    n_heldout = int(round(heldout_fraction * len(rows)))
    if len(rows) - n_heldout < 2 or n_heldout < 2:
        raise ValueError(f"only {len(rows)} items have both an image and text; need at least 2 for training and "
                         f"2 held out with heldout_fraction={heldout_fraction}")
    order = np.random.default_rng(seed).permutation(rows)
    return np.sort(order[n_heldout:]), np.sort(order[:n_heldout])


@dataclass
class _Pairs:
    text: torch.Tensor
    image: torch.Tensor


def _init_heads(config: dict, train: _Pairs) -> AlignmentHeads:
    with torch.random.fork_rng():
        torch.manual_seed(config["seed"])
        heads = AlignmentHeads(text_dim=config["text_dim"], image_dim=config["image_dim"],
                               shared_dim=config["shared_dim"], head=config["head"], objective=config["objective"])
    heads.set_standardisation(train.text, train.image)
    return heads


def _resume_state(folder: Path, config: dict, heads: AlignmentHeads, optimizer, adapted=None) -> tuple[int, list]:
    """Load a compatible checkpoint into ``heads``/``optimizer`` (and the adapted text tower);
    return (next epoch, history)."""
    meta, state, found = read_checkpoint(folder)
    different = [key for key in (*_RESUME_KEYS, "train_items_digest") if meta["config"].get(key) != config.get(key)]
    if different:
        raise ValueError(f"{found / 'alignment.json'}: cannot resume, the run differs in {', '.join(different)}; "
                         "use another output_dir or resume=False")
    heads.load_state_dict(state)
    if adapted is not None:
        from prismrec.adapt.finetune import load_adapter_file

        adapted.tower.load_trainable_state_dict(load_adapter_file(found, meta), str(found))
    optimizer.load_state_dict(torch.load(found / meta["optimizer_file"], weights_only=True))
    return int(meta["epoch"]), list(meta.get("history", []))


def _text_features(text_tower, catalog, store, adaptation: str, options, seed: int, progress: bool):
    """``(adapted tower or None, text features)``: the frozen tower's, or the adapted tower's initial ones."""
    if adaptation == "none":
        return None, tower_features(text_tower, catalog, store, progress=progress)
    from prismrec.adapt.finetune import adapted_training_tower

    return adapted_training_tower(text_tower, catalog, store, adaptation, options, seed=seed, progress=progress)


def _optimizer(heads: AlignmentHeads, adapted, learning_rate: float, weight_decay: float):
    """AdamW over the heads and, when the text tower trains, its trainable tensors (own rate if set)."""
    groups = [{"params": list(heads.parameters())}]
    if adapted is not None:
        tower_rate = adapted.adaptation.learning_rate
        groups.append({"params": list(adapted.parameters()), **({} if tower_rate is None else {"lr": tower_rate})})
    return torch.optim.AdamW(groups, lr=learning_rate, weight_decay=weight_decay)


def _adapted_text_of(adapted, train_rows: np.ndarray):
    """Text features of training positions through the adapted tower (train mode, with gradients)."""
    rows = torch.from_numpy(np.asarray(train_rows, dtype=np.int64))

    def text_of(batch: torch.Tensor) -> torch.Tensor:
        adapted.train()
        return adapted(rows[batch])
    return text_of


def _train_epoch(heads: AlignmentHeads, optimizer, train: _Pairs, *, batch_size: int, seed: int, epoch: int,
                 text_of=None) -> float:
    """One epoch; ``text_of(batch positions)`` computes the text features when the text tower trains too."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(train.text), generator=generator)
    heads.train()
    losses = []
    with torch.random.fork_rng():  # dropout in a trained text tower: seeded per epoch, so resuming is exact
        torch.manual_seed(seed * 1_000_003 + epoch)
        losses = _train_steps(heads, optimizer, train, order, batch_size, text_of)
    heads.eval()
    return float(np.mean(losses))


def _train_steps(heads, optimizer, train: _Pairs, order, batch_size: int, text_of) -> list[float]:
    losses = []
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        if len(batch) < 2:  # a contrastive batch of one has no negatives
            continue
        loss = heads.loss(train.text[batch] if text_of is None else text_of(batch), train.image[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@contextmanager
def _one_thread():
    """Heads are small: one thread avoids the synchronisation cost of multi-threaded tiny kernels."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class _Progress:
    enabled: bool
    bar: object = field(default=None)

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[bold]align[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn())
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def train_alignment(catalog, *, text_encoder: str = "text:minilm", image_encoder: str = "image:efficientnet-lite0",
                    text_template: str | None = None, objective: str = "contrastive", head: str = "mlp",
                    shared_dim: int = 256, epochs: int = 10, batch_size: int = 128, learning_rate: float = 1e-3,
                    weight_decay: float = 0.01, heldout_fraction: float = 0.2, seed: int = 0,
                    output_dir: str | Path, feature_store: str | Path | None = None, resume: bool = True,
                    progress: bool = True, adaptation: str = "none",
                    adaptation_options: dict | None = None) -> AlignmentReport:
    """Train the ``align`` heads on the catalog's image-text pairs; checkpoint and report in ``output_dir``.

    Tower features are cached in ``feature_store`` (default ``output_dir/features``), so a
    rerun or a resumed run never encodes an item twice. The checkpoint (``output_dir/checkpoint``) loads as ``create_encoder("align:<output_dir>")``.
    With ``resume=True`` a compatible checkpoint there continues at its next epoch.
    ``adaptation`` (``lora | adapter | prompt | full``) also trains the text tower's top layers
    (options of :class:`prismrec.adapt.AdaptationConfig` in ``adaptation_options``); the
    checkpoint then holds the adapter tensors too (see :mod:`prismrec.adapt.finetune`).

    Example:
        >>> report = train_alignment(data.catalog, text_template="{title}. {plot}",
        ...                          epochs=30, output_dir="runs/align-ml100k")  # doctest: +SKIP
        >>> report.recall["trained"]["image->text"]["R@10"]  # doctest: +SKIP
    """
    if batch_size < 2 or epochs < 0:
        raise ValueError(f"need batch_size >= 2 and epochs >= 0, got batch_size={batch_size}, epochs={epochs}")
    output_dir = Path(output_dir)
    text_tower, image_tower = create_towers(text_encoder, image_encoder, text_template)
    store = Path(feature_store) if feature_store is not None else output_dir / "features"
    adapted, text = _text_features(text_tower, catalog, store, adaptation, adaptation_options, seed, progress)
    image = tower_features(image_tower, catalog, store, progress=progress)
    train_rows, heldout_rows = split_pairs(text.mask & image.mask, heldout_fraction=heldout_fraction, seed=seed)
    pairs = {name: _Pairs(torch.from_numpy(text.features[rows]), torch.from_numpy(image.features[rows]))
             for name, rows in (("train", train_rows), ("heldout", heldout_rows))}
    train_ids = [str(i) for i in catalog.item_ids[train_rows]]
    config = {"text_encoder": text_encoder, "image_encoder": image_encoder, "text_template": text_template,
              "objective": objective, "shared_dim": shared_dim, "head": head, "batch_size": batch_size,
              "learning_rate": learning_rate, "weight_decay": weight_decay, "heldout_fraction": heldout_fraction,
              "seed": seed, "text_dim": text.features.shape[1], "image_dim": image_tower.dim,
              "adaptation": None if adapted is None else adapted.adaptation.to_dict(),
              "train_items_digest": hashlib.sha256("\n".join(train_ids).encode()).hexdigest()}
    heads = _init_heads(config, pairs["train"])
    untrained = copy.deepcopy(heads)
    optimizer = _optimizer(heads, adapted, learning_rate, weight_decay)
    folder = output_dir / "checkpoint"
    start_epoch, history = 0, []
    if resume and (folder / "alignment.json").is_file():
        start_epoch, history = _resume_state(checkpoint_dir(folder), config, heads, optimizer, adapted)
    untrained_heldout_text = pairs["heldout"].text
    text_of = None if adapted is None else _adapted_text_of(adapted, train_rows)
    if adapted is not None:  # a resumed tower: held-out text through its loaded adapter
        pairs["heldout"].text = adapted.encode_all(heldout_rows)
    towers = {role: {"spec": spec, "id": tower.id, "weights_hash": tower.weights_hash()}
              for role, spec, tower in (("text", text_encoder, text_tower), ("image", image_encoder, image_tower))}
    with _Progress(progress) as bars, _one_thread():
        task = bars.bar.add_task("epochs", total=epochs, completed=min(start_epoch, epochs)) if bars.bar else None
        for epoch in range(start_epoch, epochs):
            loss = _train_epoch(heads, optimizer, pairs["train"], batch_size=batch_size, seed=seed, epoch=epoch,
                                text_of=text_of)
            if adapted is not None:
                pairs["heldout"].text = adapted.encode_all(heldout_rows)
            heldout = retrieval_report(heads, pairs["heldout"].text, pairs["heldout"].image)
            history.append({"epoch": epoch + 1, "loss": loss, "heldout_mean_recall": heldout["mean"]})
            save_checkpoint(folder, heads, optimizer.state_dict(), {
                "epoch": epoch + 1, "config": config, "towers": towers, "history": history,
                "heldout_items": [str(i) for i in catalog.item_ids[heldout_rows]]},
                text_adapter=None if adapted is None else adapted.tower.trainable_state_dict())
            if task is not None:
                bars.bar.update(task, advance=1, description=f"epoch {epoch + 1} loss {loss:.4f}")
    report = AlignmentReport.build(
        trained=heads, untrained=untrained, heldout=(pairs["heldout"].text, pairs["heldout"].image),
        config=config, towers=towers, n_train=len(train_rows), epochs=history[-1]["epoch"] if history else 0,
        resumed_from_epoch=start_epoch,
        history=history, checkpoint_dir=str(folder), seed=seed)
    if adapted is not None:  # the untrained baseline: untrained heads over the unadapted tower
        report.recall["untrained"] = retrieval_report(untrained, untrained_heldout_text, pairs["heldout"].image)
    report.save(output_dir)
    return report
