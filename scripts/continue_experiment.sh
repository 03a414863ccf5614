#!/usr/bin/env bash
# Go on with the book's experiment ("When do the phases help?") where its committed records stop, in the declared
# order, and bring each finished setting's records back into the book. Takes hours on 2 CPU cores; safe to kill and
# rerun: every run the runs file holds is skipped, and a killed run resumes from its checkpoints.
#
# Usage: scripts/continue_experiment.sh [STEP ...]     (default: every step below, in order)
#   Steps, each a setting at its declared draws x seeds: long-tail, long-tail-tuned, long-tail-equal-pairs,
#   few-shot, unlabelled, full-sst5 (three-phase and ft, seed by seed; tens of minutes a run on 2 CPU cores:
#   the chapter's table under "The paper's claim" states what a run cost).
# Environment: OUT (reproductions/phases-help), JOBS (2: runs at once, one thread each), PYTHON (python).
# After each step: book/results/phases_help_runs.jsonl and the chapter's files are rebuilt; commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-reproductions/phases-help}; jobs=${JOBS:-2}; python=${PYTHON:-python}
mkdir -p "$out"
# The committed records seed the runs file, so that nothing they hold trains again.
if [ ! -s "$out/phases_help_runs.jsonl" ] && [ -s book/results/phases_help_runs.jsonl ]; then
    cp book/results/phases_help_runs.jsonl "$out/phases_help_runs.jsonl"
fi

experiment() { "$python" -m threephase experiment --jobs "$jobs" --out "$out" "$@"; }
publish() {  # the records back into the book, and its tables rebuilt from them
    cp "$out/phases_help_runs.jsonl" book/results/phases_help_runs.jsonl
    "$python" -m threephase experiment --report --out book/results
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(long-tail long-tail-tuned long-tail-equal-pairs few-shot unlabelled full-sst5)
for step in "${steps[@]}"; do
    case $step in
        # one seed at a time, three-phase beside ft, so that every seed that ends is a whole pair in the book
        full-sst5) for seed in 0 1 2; do
                       experiment --settings full-sst5 --variants three-phase,ft --seeds "$seed,"; publish
                   done ;;
        long-tail|long-tail-tuned|long-tail-equal-pairs|few-shot|unlabelled) experiment --settings "$step" ;;
        *) echo "continue_experiment: unknown step '$step'" >&2; exit 2 ;;
    esac
    publish
    echo "continue_experiment: $step done; commit book/results/phases_help*"
done
