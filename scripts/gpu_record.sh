#!/usr/bin/env bash
# The GPU record: the paper preset on the full snips2, seed 0, in bf16, for three-phase and ft, then joint if the
# time budget allows. One call on a GPU machine that has PyTorch, transformers and sentence-transformers but no
# `datasets` and no network; what it lacks comes from the folder that scripts/prepare_gpu_carry.sh fills.
#
# Usage: scripts/gpu_record.sh RECORD_DIR [--set KEY=VALUE ...]
#   RECORD_DIR gets <variant>.config.json and <variant>.metrics.json per run (no weights) and gpu_record.log.
#   Extra arguments go to every `threephase run` (a tiny --set override tests the script on a CPU).
# Environment: CARRY (.gpu), PYTHON (python3), BUDGET_S (540: joint runs only if it should end within it),
#   TOTAL_S (780) and CHECK_S (300): the bf16 accuracy check runs last, only if it should end within TOTAL_S,
#   RUNS_DIR (/tmp/threephase-gpu-runs: the run folders; a rerun resumes them).
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:?usage: scripts/gpu_record.sh RECORD_DIR [--set KEY=VALUE ...]}; shift
carry=${CARRY:-.gpu}; python=${PYTHON:-python3}; budget=${BUDGET_S:-540}; runs=${RUNS_DIR:-/tmp/threephase-gpu-runs}
for need in model/modules.json data/snips2/train.csv wheels; do
    test -e "$carry/$need" || { echo "gpu_record: $carry/$need is missing: run scripts/prepare_gpu_carry.sh" >&2; exit 2; }
done
mkdir -p "$records" "$runs"
exec > >(tee -a "$records/gpu_record.log") 2>&1
start=$(date +%s)

# Install only the carried wheels whose package is missing here or older than the library needs.
site="$runs/site"
wanted=$("$python" - "$carry/wheels" <<'PY'
import sys
from importlib import metadata
from pathlib import Path

from packaging.version import Version

minimum = {"datasets": "3.0", "dill": "0.3", "multiprocess": "0.70", "sentence_transformers": "5.6"}
for wheel in sorted(Path(sys.argv[1]).glob("*.whl")):
    name = wheel.name.split("-")[0]
    try:
        have = Version(metadata.version(name.replace("_", "-")))
    except metadata.PackageNotFoundError:
        have = None
    if have is None or have < Version(minimum.get(name, "0")):
        print(wheel)
PY
)
if [ -n "$wanted" ]; then
    echo "gpu_record: installing $(echo $wanted | xargs -n1 basename | tr '\n' ' ')"
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" $wanted
fi
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export HF_HOME="$runs/hf" MPLCONFIGDIR="$runs/mpl"
"$python" -c "
import datasets, sentence_transformers, threephase, torch, transformers
print('gpu_record: torch', torch.__version__, 'transformers', transformers.__version__, 'sentence-transformers',
      sentence_transformers.__version__, 'datasets', datasets.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

run_variant() {
    local variant=$1; shift
    local begin=$(date +%s)
    "$python" -m threephase run --dataset snips2 --data-dir "$carry/data" --preset paper --model "$carry/model" \
        --variant "$variant" --seed 0 --output "$runs/snips2-$variant" --resume "$@"
    cp "$runs/snips2-$variant/config.json" "$records/$variant.config.json"
    cp "$runs/snips2-$variant/metrics.json" "$records/$variant.metrics.json"
    echo "gpu_record: $variant took $(( $(date +%s) - begin )) s"
    last=$(( $(date +%s) - begin ))
}

run_variant three-phase "$@"
three_phase_s=$last
run_variant ft "$@"
elapsed=$(( $(date +%s) - start ))
if (( elapsed + three_phase_s < budget )); then
    run_variant joint "$@"
else
    echo "gpu_record: joint skipped: ${elapsed} s used, three-phase took ${three_phase_s} s, budget ${budget} s"
fi
# Then, if the time allows, the paired bf16 - fp32 accuracy check (benchmarks/precision_check.py) on the GPU: the
# cpu preset's quickstart on snips2 over CHECK_SEEDS seeds in each precision. No CPU here computes bf16 fast enough.
elapsed=$(( $(date +%s) - start ))
if (( elapsed + ${CHECK_S:-300} < ${TOTAL_S:-780} )); then
    "$python" benchmarks/precision_check.py --device cuda --settings quickstart --seeds "${CHECK_SEEDS:-5}" \
        --data-dir "$carry/data" --model "$carry/model" --runs-dir "$runs/precision" \
        --out "$records/precision_check.json" || echo "gpu_record: the precision check failed"
else
    echo "gpu_record: precision check skipped: ${elapsed} s used of ${TOTAL_S:-780} s"
fi
echo "gpu_record: done in $(( $(date +%s) - start )) s; records in $records"
