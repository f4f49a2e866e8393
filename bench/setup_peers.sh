#!/usr/bin/env bash
# Create the peer-library virtual environments used by bench/run_all.py.
#
#   bash bench/setup_peers.sh
#
# bench/.envs/cornac   : Cornac (BPR in Cython, VBPR in torch) + implicit (BPR reference)
# bench/.envs/recbole  : RecBole 1.2.1 with the dependency versions it runs on
#
# torch is always pinned to 2.13.0: that is the CPU wheel on this machine's disk;
# any other version would download gigabytes. Idempotent: an existing env is reused.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENVS="$HERE/.envs"
PY="${PYTHON:-python3.11}"
mkdir -p "$ENVS"

make_env() {  # make_env NAME
    if [ ! -x "$ENVS/$1/bin/python" ]; then
        "$PY" -m venv "$ENVS/$1"
        "$ENVS/$1/bin/python" -m pip install -q --upgrade pip setuptools wheel
    fi
}

setup_cornac() {
    make_env cornac
    local pip="$ENVS/cornac/bin/python -m pip"
    $pip install -q "torch==2.13.0" cornac pandas  # pandas: the runner reads the split CSVs
    # implicit ships manylinux wheels; it is optional (BPR reference only).
    $pip install -q --only-binary=:all: implicit || echo "implicit: no wheel, skipped" >&2
    "$ENVS/cornac/bin/python" -c "import cornac, torch; print('cornac', cornac.__version__, 'torch', torch.__version__)"
}

setup_recbole() {
    make_env recbole
    local pip="$ENVS/recbole/bin/python"
    "$pip" -m pip install -q "torch==2.13.0" "numpy==1.26.4" "pandas==2.2.3" \
        "scipy==1.11.4" "scikit-learn==1.5.2"
    "$pip" -m pip install -q --no-deps "recbole==1.2.1"
    # What recbole's config/data/model/trainer modules import (the runner does
    # not use recbole.quick_start, which would also pull in ray).
    "$pip" -m pip install -q "colorlog==4.7.2" "colorama==0.4.4" texttable psutil pyyaml tqdm tensorboard
    "$ENVS/recbole/bin/python" -c "import recbole, torch; from recbole.config import Config; from recbole.trainer import Trainer; from recbole.model.general_recommender import LightGCN; print('recbole', recbole.__version__, 'torch', torch.__version__)"
}

case "${1:-all}" in
    cornac) setup_cornac ;;
    recbole) setup_recbole ;;
    all) setup_cornac; setup_recbole ;;
    *) echo "usage: $0 [all|cornac|recbole]" >&2; exit 2 ;;
esac
