"""SLMRec-specific checks: the FAC term, bad settings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prismrec.models import SLMRec
from prismrec.models.slmrec import _raw_info_nce

def test_fac_info_nce_uses_raw_dot_products():
    first, second = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # logits (temperature 1): [[3, 1], [0, 2]]
    expected = (-np.log(np.exp(3) / (np.exp(3) + np.e)) - np.log(np.exp(2) / (1 + np.exp(2)))) / 2
    assert _raw_info_nce(first, second, 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="temperatures must be positive"):
        SLMRec(ssl_temperature=0.0)
