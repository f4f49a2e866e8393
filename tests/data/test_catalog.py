import numpy as np

from prismrec.data import IdMap, ItemCatalog


def make_catalog(tmp_path):
    (tmp_path / "1.jpg").write_bytes(b"not really a jpeg")
    return ItemCatalog(
        item_ids=["1", "2", "3"],
        text={"title": ["Heat", "  ", None], "plot": ["A heist.", np.nan, "Space."], "genres": ["Crime", None, None]},
        media={"image": [str(tmp_path / "1.jpg"), str(tmp_path / "missing.jpg"), None]},
    )


def test_missing_text_is_masked_never_empty_string(tmp_path):
    catalog = make_catalog(tmp_path)
    assert catalog.text["title"].tolist() == ["Heat", None, None]
    assert catalog.text_mask("plot").tolist() == [True, False, True]


def test_compose_text_drops_missing_fields_and_separators(tmp_path):
    catalog = make_catalog(tmp_path)
    assert catalog.compose_text("{title}. {genres}. {plot}") == ["Heat. Crime. A heist.", None, "Space."]


def test_media_mask_requires_existing_file(tmp_path):
    catalog = make_catalog(tmp_path)
    assert catalog.media_mask("image").tolist() == [True, False, False]
    assert catalog.summary() == {"text:title": 1, "text:plot": 2, "text:genres": 1, "image": 1}


def test_aligned_to_reorders_and_fills_missing(tmp_path):
    aligned = make_catalog(tmp_path).aligned_to(IdMap(["3", "9", "1"]))
    assert aligned.item_ids.tolist() == ["3", "9", "1"]
    assert aligned.text["plot"].tolist() == ["Space.", None, "A heist."]
    assert aligned.media_paths("image")[1] is None
