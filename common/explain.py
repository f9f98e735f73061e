"""Explain what a saved classifier says about any text: which words pushed it to its prediction.

    python -m common.explain --model_dir out/sst2 --text "a gorgeous, witty film" --text "flat and tedious"
    python -m common.explain --model_dir out/sst2 --file texts.csv --text_column text --output_dir out/why
    python -m common.explain --model_dir out/nli --text "A man sleeps." --text_pair "Nobody is asleep."

Integrated Gradients over the input embeddings (common/evaluation/attributions.py); writes
explanations.html (open it in any browser, offline), explanations.png and explanations.json into
--output_dir (default: MODEL_DIR/explanations). A multi-label model gets one explanation per label it
assigns (or of its likeliest label when it assigns none).
"""

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script too

from common.config.errors import OptionError  # noqa: E402
from common.config.process import run_main  # noqa: E402

logger = logging.getLogger(__name__)


def refuse(message: str):
    """Stands in for argparse's error(): one line and exit status 2, through run_main."""
    raise OptionError(message)


def main(argv=None):
    """`python -m common.explain`: explain texts with a saved classifier into explanations/ (HTML, PNG, JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", required=True, help="A folder written by a classification recipe.")
    parser.add_argument("--text", action="append", default=[], help="A text to explain (repeat for more).")
    parser.add_argument("--file", help="A CSV, TSV or JSON-lines file of texts.")
    parser.add_argument("--text_pair", action="append", default=[],
                        help="The second text of a pair, once for each --text (a model trained on text pairs).")
    parser.add_argument("--text_column", default="text")
    parser.add_argument("--text_pair_column", help="The column of the second texts in --file.")
    parser.add_argument("--output_dir", help="Default: MODEL_DIR/explanations.")
    parser.add_argument("--max_seq_length", type=int, default=None, help="Longer texts: their start is explained.")
    parser.add_argument("--n_steps", type=int, default=50, help="Integration steps of Integrated Gradients.")
    parser.error = refuse  # one line and exit status 2, as the recipes
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=logging.INFO)

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from common.data.tables import read_table
    from common.evaluation.attributions import explain_texts
    from common.models.tokenizer import LOAD_ERRORS
    from common.outputs.explanations import write_explanations
    from common.tokens.tokenization import max_input_length

    texts, pairs = list(args.text), list(args.text_pair)
    if pairs and len(pairs) != len(texts):
        raise OptionError(f"--text_pair: give one for each --text ({len(texts)} texts, {len(pairs)} second texts)")
    if args.file:
        frame = read_table(args.file).frame
        for column in (args.text_column, args.text_pair_column):
            if column is not None and column not in frame:
                raise OptionError(f"{args.file}: no column {column!r} (columns: {', '.join(map(str, frame.columns))})")
        if bool(args.text_pair_column) != bool(pairs) and texts:
            raise OptionError("--text and --file together must both be pairs (--text_pair, --text_pair_column) or not")
        texts += frame[args.text_column].astype(str).tolist()
        if args.text_pair_column:
            pairs += frame[args.text_pair_column].astype(str).tolist()
    if not texts:
        raise OptionError("nothing to explain: give --text TEXT or --file FILE")
    model_dir = Path(args.model_dir)
    if not (model_dir / "config.json").is_file():
        raise OptionError(f"--model_dir {model_dir}: not a saved model folder (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    except LOAD_ERRORS as error:
        raise OptionError(f"--model_dir {model_dir}: cannot load a sequence classifier and its tokenizer ({error})") from None
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    max_length = max_input_length(tokenizer, model.config, args.max_seq_length)
    multi_label = model.config.problem_type == "multi_label_classification"
    explanations = explain_texts(model, tokenizer, texts, labels, max_length, n_steps=args.n_steps,
                                 text_pairs=pairs or None, multi_label=multi_label)
    for e in explanations:
        top = sorted(zip(e.scores, e.words), reverse=True)[:3]
        logger.info(f"{e.label} ({e.probabilities[e.label]:.3f}): {e.text[:60]!r}; most for it: "
                    + ", ".join(f"{w} {s:+.3f}" for s, w in top))
    write_explanations(args.output_dir or model_dir / "explanations", explanations)


if __name__ == "__main__":
    run_main(main)
