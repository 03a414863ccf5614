#!/usr/bin/env bash
# Prepare what scripts/gpu_record.sh needs on a GPU machine that reaches no network, in an ignored folder (.gpu/):
#   .gpu/wheels/        datasets and its pure-Python needs, and sentence-transformers, for Python 3.12
#   .gpu/model/         all-MiniLM-L6-v2 as a sentence-transformers folder, fp16 safetensors (45 MB; threephase loads
#                       it in fp32). all-MiniLM-L12-v2, the paper's model, cannot be had offline here.
#   .gpu/data/snips2/   the offline snips2 (train/validation/test.csv, labels.json) from $THREEPHASE_DATA_DIR
# Run it here, with the library's environment active and the `offline` extra installed. About 47 MB in all, inside
# the device tool's 64 MiB carry limit.
set -euo pipefail
cd "$(dirname "$0")/.."
carry=${CARRY:-.gpu}
data=${THREEPHASE_DATA_DIR:-../shared/data}
test -f "$data/snips2/train.csv" || { echo "prepare_gpu_carry: no snips2 in $data: set THREEPHASE_DATA_DIR" >&2; exit 2; }
git check-ignore -q "$carry/" || { echo "prepare_gpu_carry: $carry/ must be ignored by git (.gitignore)" >&2; exit 2; }
rm -rf "$carry" && mkdir -p "$carry/wheels" "$carry/data"
python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$carry/wheels" "datasets==5.2.0" "dill==0.4.1" "multiprocess==0.70.19" "sentence-transformers==6.2.0"
cp -r "$data/snips2" "$carry/data/snips2"
HF_HUB_OFFLINE=1 python - "$carry/model" <<'PY'
import sys

from threephase.models import open_body, packaged_model_path

body = open_body(packaged_model_path())
body.half().save_pretrained(sys.argv[1], safe_serialization=True)
PY
du -sh "$carry"/*
