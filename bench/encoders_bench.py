"""Feature-store overhead: encode_catalog vs the bare encoder on the same batches.

For each encoder (default ``text:minilm`` on ML-100k titles/genres/plots and
``image:efficientnet-lite0`` on ML-100k posters) it measures, on 2 threads:

* bare: ``encoder.encode_batch`` over the same batches of present contents that the
  pipeline encodes (model forward plus the encoder's own decoding/preprocessing);
* pipeline: ``encode_catalog`` into a fresh store (content hashing, batching, one shard
  per batch written atomically, compaction, assembling the aligned result);
* second run: ``encode_catalog`` again over the unchanged catalog, from a new
  ``FeatureStore`` object (the shards are read from disk).

It also times cached reads of a 100k-item, 384-d store filled by a cheap hashing encoder.
Best of ``--repeats`` runs; results go to ``bench/results/<date>-encoders.md``.

Example:
    .venv/bin/python bench/encoders_bench.py                     # both encoders, write results
    .venv/bin/python bench/encoders_bench.py --encoders text:minilm --limit 200 --no-write
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prismrec.data.catalog import ItemCatalog  # noqa: E402
from prismrec.encoders.base import Encoder  # noqa: E402
from prismrec.encoders.store import FeatureStore, encode_catalog  # noqa: E402

ML100K = ROOT.parent / "shared" / "data" / "movielens-100k-mm"


def load_catalog(limit: int | None) -> ItemCatalog:
    """ML-100k items (title, genres, year, plot, poster) via the project's loader."""
    from prismrec.data.loaders.movielens import load_movielens_100k

    if not ML100K.is_dir():
        sys.exit(f"ML-100k multimodal data not found at {ML100K}")
    catalog = load_movielens_100k(ML100K).catalog
    if limit:
        catalog = ItemCatalog(catalog.item_ids[:limit], text={k: v[:limit] for k, v in catalog.text.items()},
                              media={k: v[:limit] for k, v in catalog.media.items()}, source=catalog.source)
    return catalog


def bare_seconds(encoder: Encoder, catalog: ItemCatalog, batch_size: int) -> tuple[float, int]:
    """Seconds for ``encode_batch`` over the pipeline's batches (present contents, catalog order)."""
    contents = [c for c in encoder.contents(catalog) if c is not None]
    started = time.perf_counter()
    for start in range(0, len(contents), batch_size):
        encoder.encode_batch(contents[start:start + batch_size])
    return time.perf_counter() - started, len(contents)


def pipeline_seconds(encoder: Encoder, catalog: ItemCatalog, root: Path, batch_size: int):
    """``(first run s, seconds inside encode_batch during it, second run s, report)``."""
    shutil.rmtree(root, ignore_errors=True)
    inner, inside = encoder.encode_batch, [0.0]

    def timed_encode_batch(contents):
        started = time.perf_counter()
        try:
            return inner(contents)
        finally:
            inside[0] += time.perf_counter() - started

    encoder.encode_batch = timed_encode_batch  # instance attribute: shadows the method for this run
    try:
        started = time.perf_counter()
        first = encode_catalog(encoder, catalog, FeatureStore(root), batch_size=batch_size, progress=False)
        first_seconds = time.perf_counter() - started
    finally:
        del encoder.encode_batch
    started = time.perf_counter()
    second = encode_catalog(encoder, catalog, FeatureStore(root), batch_size=batch_size, progress=False)
    second_seconds = time.perf_counter() - started
    assert second.report.n_encoded == 0, "second run should be served from the store"
    assert np.array_equal(first.features, second.features)
    return first_seconds, inside[0], second_seconds, first.report


def bench_encoder(spec: str, catalog: ItemCatalog, *, batch_size: int, repeats: int, work: Path) -> dict:
    import importlib

    from prismrec.encoders import create_encoder  # importing the package registers the built-ins

    try:  # a module not (yet) imported by the package registers itself on import
        importlib.import_module(f"prismrec.encoders.{spec.split(':')[0]}")
    except ModuleNotFoundError:
        pass
    encoder = create_encoder(spec)
    contents = [c for c in encoder.contents(catalog) if c is not None]
    encoder.encode_batch(contents[:batch_size])  # load the model and warm up outside the timings
    bare, firsts, insides, seconds, report = [], [], [], [], None
    for _ in range(repeats):  # interleaved, so load from other processes hits both alike
        bare_time, n_present = bare_seconds(encoder, catalog, batch_size)
        bare.append(bare_time)
        first, inside, second, report = pipeline_seconds(encoder, catalog, work / spec.replace(":", "_"),
                                                         batch_size)
        firsts.append(first)
        insides.append(inside)
        seconds.append(second)
    bare_best, first_best, second_best = min(bare), min(firsts), min(seconds)
    own = [(first - inside) / inside for first, inside in zip(firsts, insides)]
    return {"spec": spec, "encoder_id": report.encoder_id, "n_items": report.n_items, "n_present": n_present,
            "n_failed": report.n_failed, "bare_s": bare_best, "first_s": first_best, "second_s": second_best,
            "bare_ips": n_present / bare_best, "first_ips": n_present / first_best,
            "overhead": first_best / bare_best - 1, "speedup": first_best / second_best,
            "own_overhead": min(own), "own_seconds": [f - i for f, i in zip(firsts, insides)],
            "all_bare": bare, "all_first": firsts, "all_second": seconds, "report": str(report)}


class HashingEncoder(Encoder):
    """A cheap deterministic 384-d encoder (sha256 expanded), to fill a large store quickly."""

    modality, name, dim = "text", "bench:hashing", 384

    def contents(self, catalog):
        return list(catalog.text["title"])

    def weights_hash(self) -> str:
        return hashlib.sha256(b"bench-hashing-v1").hexdigest()

    def encode_batch(self, contents):
        raw = b"".join(hashlib.shake_256(c.encode()).digest(self.dim) for c in contents)
        vectors = np.frombuffer(raw, dtype=np.uint8).reshape(len(contents), self.dim)
        return vectors.astype(np.float32) / 255.0, [None] * len(contents)


def bench_large_store(n_items: int, work: Path) -> dict:
    """Cold cached read of ``n_items`` items (new FeatureStore object, shards read from disk)."""
    catalog = ItemCatalog(item_ids=[f"i{i}" for i in range(n_items)],
                          text={"title": [f"synthetic item title number {i}" for i in range(n_items)]})
    root = work / "large"
    started = time.perf_counter()
    encode_catalog(HashingEncoder(), catalog, FeatureStore(root), batch_size=1024, progress=False)
    fill = time.perf_counter() - started
    started = time.perf_counter()
    result = encode_catalog(HashingEncoder(), catalog, FeatureStore(root), batch_size=1024, progress=False)
    read = time.perf_counter() - started
    assert result.report.n_cached == n_items and result.mask.all()
    shards = len(FeatureStore(root).shard_paths(HashingEncoder().id))
    return {"n_items": n_items, "fill_s": fill, "read_s": read, "shards": shards}


def markdown(rows: list[dict], large: dict | None, command: str, batch_size: int, repeats: int) -> str:
    lines = [f"# Encoders: feature-store overhead ({datetime.date.today().isoformat()})", "",
             f"Command: `{command}`", "",
             f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, batch size {batch_size}, best of {repeats} "
             "(other jobs shared the 2 cores, so absolute figures are noisy).", "",
             "bare = `encoder.encode_batch` over the same batches; pipeline = `encode_catalog` into a fresh "
             "store; second run = `encode_catalog` again, unchanged catalog, new `FeatureStore` object.", "",
             "overhead = pipeline time / bare time - 1 (two separate runs: sensitive to load changes); "
             "store's own = pipeline time outside `encode_batch` / time inside it (same run: robust to load).", "",
             "| encoder | items (present) | bare items/s | pipeline items/s | overhead (target <= 15%) "
             "| store's own overhead | first run s | second run s | speed-up (target >= 50x) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['spec']}` | {r['n_items']} ({r['n_present']}) | {r['bare_ips']:.1f} | "
                     f"{r['first_ips']:.1f} | {100 * r['overhead']:+.1f}% | {100 * r['own_overhead']:.1f}% | {r['first_s']:.2f} | "
                     f"{r['second_s']:.3f} | {r['speedup']:.0f}x |")
    if large:
        lines += ["", f"Large store: {large['n_items']:,} items x 384 dims, cheap hashing encoder. Fill (encode + "
                      f"write + compact): {large['fill_s']:.2f} s; cold cached read of the whole catalog "
                      f"(hash contents, open {large['shards']} shard(s), one vectorised lookup): "
                      f"{large['read_s']:.2f} s."]
    lines += ["", "Raw timings (seconds, every repeat):", ""]
    for r in rows:
        lines.append(f"- `{r['encoder_id']}`: bare {_fmt(r['all_bare'])}; pipeline {_fmt(r['all_first'])}; "
                     f"second run {_fmt(r['all_second'])}; pipeline outside encode_batch {_fmt(r['own_seconds'])}")
    lines += ["", "Run reports:", "", "```"] + [r["report"] for r in rows] + ["```", ""]
    return "\n".join(lines)


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=["text:minilm", "image:efficientnet-lite0"])
    parser.add_argument("--limit", type=int, default=None, help="only the first N items")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--large", type=int, default=100_000, help="items in the large-store read test (0: skip)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write bench/results")
    args = parser.parse_args()
    torch.set_num_threads(2)
    catalog = load_catalog(args.limit)
    work = Path(tempfile.mkdtemp(prefix="prismrec-encoders-bench-"))
    try:
        rows = []
        for spec in args.encoders:
            rows.append(bench_encoder(spec, catalog, batch_size=args.batch_size, repeats=args.repeats, work=work))
            print(rows[-1]["report"], flush=True)
        large = bench_large_store(args.large, work) if args.large else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = ".venv/bin/python bench/encoders_bench.py " + " ".join(sys.argv[1:])
    text = markdown(rows, large, command.strip(), args.batch_size, args.repeats)
    print(text)
    if not args.no_write:
        out = ROOT / "bench" / "results" / f"{datetime.date.today().isoformat()}-encoders.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
