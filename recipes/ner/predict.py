"""Tag new text with a model the NER recipe trained, decoded as the recipe decodes (Viterbi if it has a CRF).

    python recipes/ner/predict.py --model_dir out/ner --text "John Smith visited Paris ."

From Python: `tag_sentences("out/ner", [["John", "Smith", "visited", "Paris", "."]])` gives one tag per word.
Long sentences are windowed as in training; `pipeline("token-classification")` also loads the folder,
but uses the word scores alone, without the CRF's transitions.
"""

import argparse

import numpy as np
import torch

from common.config.arguments import ModelArguments
from common.models.heads import load_token_classifier, tag_decoder
from common.models.tokenizer import load_tokenizer
from common.tokens.word_labels import encode_tagged_split


def tag_sentences(model_dir: str, sentences: list[list[str]], max_length: int = 128, stride: int = 32,
                  batch_size: int = 32) -> list[list[str]]:
    """One IOB2 tag per word of every sentence, in order."""
    tokenizer = load_tokenizer(ModelArguments(model_name_or_path=str(model_dir)), words_given=True)
    model = load_token_classifier(str(model_dir)).eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    features = encode_tagged_split(sentences, None, tokenizer, model.config.label2id, max_length, stride)
    rows = features.dataset
    logits = np.zeros((len(rows), max(len(ids) for ids in rows["input_ids"]), len(labels)), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = tokenizer.pad(rows[start:start + batch_size], return_tensors="pt")
            out = model(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
            logits[start:start + len(out.logits), :out.logits.shape[1]] = out.logits.float().numpy()
    return features.tags(logits, labels, tag_decoder(model))


def main():
    """`python recipes/ner/predict.py --model_dir OUT --text ...`: one tag per word, printed."""
    parser = argparse.ArgumentParser(description="Tag text with a trained NER output folder.")
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--text", required=True, help="one sentence; words are split at spaces")
    args = parser.parse_args()
    words = args.text.split()
    for word, tag in zip(words, tag_sentences(args.model_dir, [words])[0]):
        print(f"{word}\t{tag}")


if __name__ == "__main__":
    main()
