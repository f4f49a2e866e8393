"""``prismrec recommend`` and ``prismrec serve``: use a bundle written by ``prismrec fit --out RUN``.

Registered onto :data:`prismrec.cli.app` when :mod:`prismrec.cli` is imported.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prismrec.cli import _friendly_errors, _setup, app, console, out_console


@app.command()
@_friendly_errors
def recommend(
    run: Path = typer.Argument(..., help="Bundle folder written by `prismrec fit --out RUN`."),
    user: Optional[str] = typer.Option(None, "--user", help="Raw user id."),
    all_users: bool = typer.Option(False, "--all", help="Every user of the bundle (batch inference)."),
    k: int = typer.Option(10, "-k", min=1, max=1000, help="Items per user."),
    exclude_seen: bool = typer.Option(True, help="Leave out the user's training items."),
    out: Optional[Path] = typer.Option(None, "--out", help="With --all: write user, rank, item, score (.parquet/.csv)."),
    batch_size: int = typer.Option(1024, help="Users scored per batch."),
) -> None:
    """Top-k items for one user (a table) or for all users (a file)."""
    import numpy as np
    import pandas as pd
    from rich.table import Table

    from prismrec.io import atomic_write_frame
    from prismrec.serving.bundle import load_bundle

    _setup(None)
    if (user is None) == (not all_users):
        raise ValueError("give exactly one of --user U or --all")
    bundle = load_bundle(run)
    exclude = bundle.train if exclude_seen else None
    if all_users:
        if out is None:
            raise ValueError("--all needs --out FILE (.parquet or .csv)")
        users = np.arange(len(bundle.users))
        items, scores = bundle.model.recommend(users, k, exclude=exclude, batch_size=batch_size)
        width = items.shape[1]
        frame = pd.DataFrame({"user": np.repeat(bundle.users.raw_ids, width).astype(str),
                              "rank": np.tile(np.arange(1, width + 1), len(users)),
                              "item": bundle.items.to_raw(items.reshape(-1)).astype(str),
                              "score": scores.reshape(-1)})
        atomic_write_frame(frame[np.isfinite(frame["score"])], out)
        console.print(f"wrote {out}: {len(users)} users x {width} items")
        return
    row = bundle.users.to_index([user], what="user")
    items, scores = bundle.model.recommend(row, k, exclude=exclude)
    titles = bundle.catalog.text.get("title") if bundle.catalog is not None else None
    table = Table(title=f"top {k} for user {user} ({bundle.info.get('model_name', type(bundle.model).__name__)})")
    for column in ("rank", "item", "title", "score"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for rank, (item, score) in enumerate(zip(items[0], scores[0]), 1):
        if np.isfinite(score):
            title = titles[item] if titles is not None and titles[item] is not None else ""
            table.add_row(str(rank), str(bundle.items.raw_ids[item]), title, f"{score:.4f}")
    out_console.print(table)


@app.command()
@_friendly_errors
def serve(
    run: Path = typer.Argument(..., help="Bundle folder written by `prismrec fit --out RUN`."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(8000),
    state: Optional[Path] = typer.Option(None, help="Folder for the SQLite store, uploads and features (default RUN/state)."),
    feature_cache: Optional[Path] = typer.Option(None, help="Feature store for new items (default STATE/features)."),
    ann_threshold: int = typer.Option(200_000, help="Use the faiss HNSW index from this many items on."),
    ef_search: int = typer.Option(64, "--ef-search", min=1,
                                  help="HNSW candidates per query (ANN index only): higher is slower, with better recall."),
    threads: int = typer.Option(1, help="Torch threads per request."),
    response_cache: int = typer.Option(64, "--response-cache", min=0,
                                       help="MiB of encoded recommendation lists kept until feedback or a new "
                                            "item changes them (0: compute every request)."),
    http: str = typer.Option("auto", help="uvicorn's HTTP parser: auto (httptools when installed), httptools, h11."),
    loop: str = typer.Option("auto", help="uvicorn's event loop: auto (uvloop when installed), uvloop, asyncio."),
) -> None:
    """Serve the bundle over HTTP (API docs at /docs, web page at /). Writes need PRISMREC_API_KEY if it is set."""
    import gc

    import uvicorn

    from prismrec.encoders.store import FeatureStore
    from prismrec.serving.app import ServingSettings, create_app
    from prismrec.serving.bundle import load_bundle
    from prismrec.serving.engine import ServingEngine

    _setup(threads)
    state = state or run / "state"
    engine = ServingEngine(load_bundle(run), state_dir=state, ann_threshold=ann_threshold, warm_up=True,
                           ef_search=ef_search, feature_store=FeatureStore(feature_cache) if feature_cache else None)
    console.print(f"serving {run} ({type(engine.model).__name__}, {len(engine.user_ids)} users, "
                  f"{len(engine.catalog)} items, {engine.index.kind} index) on http://{host}:{port}/  "
                  f"state: {state}")
    settings = ServingSettings(response_cache_bytes=response_cache * 1024 * 1024)
    application = create_app(engine, settings)
    # The loaded engine (id maps, catalogue, seen sets) is ~250k long-lived objects: a full garbage
    # collection over them took ~200 ms on the 2-core machine, a pause every request in flight waits
    # for. They live as long as the server, so move them out of the collector's reach.
    gc.collect()
    gc.freeze()
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False, http=http, loop=loop)


@app.command("index")
@_friendly_errors
def build_index(
    run: Path = typer.Argument(..., help="Bundle folder written by `prismrec fit --out RUN`."),
    threads: int = typer.Option(2, help="Threads for the build (faiss OpenMP)."),
) -> None:
    """Build the HNSW graph of the bundle's items once, into RUN/index/; `serve` then reads it at start."""
    import time

    import faiss

    from prismrec.serving.bundle import build_bundle_index

    _setup(threads)
    faiss.omp_set_num_threads(threads)
    started = time.perf_counter()
    path = build_bundle_index(run)
    console.print(f"wrote {path} in {time.perf_counter() - started:.1f}s")
