"""Explain what a saved classifier says about any text: which words pushed it to its prediction.

    python -m common.explain --model_dir out/sst2 --text "a gorgeous, witty film" --text "flat and tedious"
    python -m common.explain --model_dir out/sst2 --file texts.csv --text_column text --output_dir out/why

Integrated Gradients over the input embeddings (common/evaluation/attributions.py); writes
explanations.html (open it in any browser, offline), explanations.png and explanations.json into
--output_dir (default: MODEL_DIR/explanations).
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
    raise OptionError(message)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", required=True, help="A folder written by a classification recipe.")
    parser.add_argument("--text", action="append", default=[], help="A text to explain (repeat for more).")
    parser.add_argument("--file", help="A CSV, TSV or JSON-lines file of texts.")
    parser.add_argument("--text_column", default="text")
    parser.add_argument("--output_dir", help="Default: MODEL_DIR/explanations.")
    parser.add_argument("--max_seq_length", type=int, default=None, help="Longer texts: their start is explained.")
    parser.add_argument("--n_steps", type=int, default=50, help="Integration steps of Integrated Gradients.")
    parser.error = refuse  # one line and exit status 2, as the recipes
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=logging.INFO)

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from common.data.tables import read_table
    from common.evaluation.attributions import explain_texts
    from common.outputs.explanations import write_explanations
    from common.tokens.tokenization import max_input_length

    texts = list(args.text)
    if args.file:
        frame = read_table(args.file).frame
        if args.text_column not in frame:
            raise OptionError(f"{args.file}: no column {args.text_column!r} (columns: {', '.join(map(str, frame.columns))})")
        texts += frame[args.text_column].astype(str).tolist()
    if not texts:
        raise OptionError("nothing to explain: give --text TEXT or --file FILE")
    model_dir = Path(args.model_dir)
    if not (model_dir / "config.json").is_file():
        raise OptionError(f"--model_dir {model_dir}: not a saved model folder (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    except (OSError, ValueError) as error:
        raise OptionError(f"--model_dir {model_dir}: cannot load a sequence classifier and its tokenizer ({error})") from None
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    max_length = max_input_length(tokenizer, model.config, args.max_seq_length)
    explanations = explain_texts(model, tokenizer, texts, labels, max_length, n_steps=args.n_steps)
    for e in explanations:
        top = sorted(zip(e.scores, e.words), reverse=True)[:3]
        logger.info(f"{e.label} ({e.probabilities[e.label]:.3f}): {e.text[:60]!r}; most for it: "
                    + ", ".join(f"{w} {s:+.3f}" for s, w in top))
    write_explanations(args.output_dir or model_dir / "explanations", explanations)


if __name__ == "__main__":
    run_main(main)
