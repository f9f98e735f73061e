"""Which words made a classifier decide: Integrated Gradients (captum) on the input embeddings, per word.

For a text x and the class the model predicts, F(x) is that class's logit. The baseline is the same
sequence with every ordinary token replaced by the pad token (special tokens kept, so position and
sentence structure stay). `LayerIntegratedGradients` integrates the gradient of F along the straight
line from the baseline's token embeddings to the text's, in 50 steps by default; the token scores
then add up to F(x) - F(baseline) (completeness), up to the integral's error, which captum reports
as the convergence delta. The model runs in float32 and eval mode. A word's score is the sum of its
subwords' (a Chinese character is a word of its own: BERT-style Chinese tokenizers split them).
A text pair is explained in both its texts (the baseline pads both); a multi-label model once per label
it assigns, F being that label's logit.
"""

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch

from common.config.errors import OptionError

logger = logging.getLogger(__name__)


@dataclass
class Explanation:
    """One explained text: its words (of both texts for a pair), each word's score towards the explained
    class, and the check of completeness (the scores add up to F(text) - F(baseline))."""

    text: str
    words: list[str]  # the words of `text`, then those of `text_pair`
    spans: list[tuple[int, int]]  # each word's characters in its own text
    segments: list[int]  # each word's text: 0 for `text`, 1 for `text_pair`
    scores: list[float]  # one per word, towards the explained class
    label: str  # the class explained (by default the prediction; multi-label: each label assigned)
    predicted: list[str]  # what the model predicts: one class, or (multi-label) every label it assigns
    probabilities: dict[str, float]  # softmax over classes; multi-label: each label's own sigmoid
    true_label: str | None  # multi-label: the true labels, joined by ", "
    f_text: float  # the explained class's logit for the text
    f_baseline: float  # and for the baseline
    convergence_delta: float  # sum of scores - (f_text - f_baseline)
    truncated: bool  # the text was longer than the model's input: only its start is explained
    text_pair: str | None = None
    multi_label: bool = False

    def to_dict(self) -> dict:
        """The explanation as plain values, for JSON."""
        return asdict(self)


def _forward(model):
    def logits(input_ids, attention_mask, token_type_ids=None):
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        return model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
    return logits


def explain_texts(model, tokenizer, texts: list[str], label_list: list[str], max_length: int,
                  true_labels: list[str | None] | None = None, n_steps: int = 50, text_pairs: list[str] | None = None,
                  multi_label: bool = False, targets: list[list[int]] | None = None) -> list[Explanation]:
    """Explanations of each text (or text pair): of the classes in `targets`, by default of the prediction
    (multi-label: one explanation per label assigned, or of the likeliest label when none is)."""
    from captum.attr import LayerIntegratedGradients  # (0.35 s to import: only runs that explain pay it)

    model = model.float().eval()
    device = next(model.parameters()).device
    forward = _forward(model)
    integrated = LayerIntegratedGradients(forward, model.get_input_embeddings())
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    explanations = []
    for i, text in enumerate(texts):
        pair = text_pairs[i] if text_pairs is not None else None
        encoded = tokenizer(text, pair, truncation=True, max_length=max_length, return_offsets_mapping=True,
                            return_special_tokens_mask=True, return_tensors="pt")
        truncated = len(tokenizer(text, pair, add_special_tokens=False)["input_ids"]) > \
            max_length - tokenizer.num_special_tokens_to_add(pair=pair is not None)
        word_ids, sequence_ids = encoded.word_ids(0), encoded.sequence_ids(0)
        offsets = encoded.pop("offset_mapping")[0].tolist()
        special = encoded.pop("special_tokens_mask").bool()
        inputs = {k: v.to(device) for k, v in encoded.items()}
        baseline = torch.where(special.to(device), inputs["input_ids"], torch.full_like(inputs["input_ids"], pad))
        extra = (inputs["attention_mask"], inputs.get("token_type_ids"))
        with torch.no_grad():
            logits = forward(inputs["input_ids"], *extra)[0].float()
            f_baselines = forward(baseline, *extra)[0].float()
        probabilities = (torch.sigmoid(logits) if multi_label else torch.softmax(logits, -1)).tolist()
        predicted = torch.nonzero(logits > 0).flatten().tolist() if multi_label else [int(logits.argmax())]
        explained = targets[i] if targets is not None else predicted or [int(logits.argmax())]
        for target in explained:
            attributions, delta = integrated.attribute(inputs["input_ids"], baselines=baseline, target=target,
                                                       additional_forward_args=extra, n_steps=n_steps,
                                                       internal_batch_size=n_steps, return_convergence_delta=True)
            token_scores = attributions.sum(-1)[0].detach().cpu().numpy().astype(np.float64)
            words, spans, segments, scores = words_of(word_ids, sequence_ids, offsets, token_scores, (text, pair))
            explanations.append(Explanation(
                text=text, words=words, spans=spans, segments=segments, scores=scores, label=label_list[target],
                predicted=[label_list[c] for c in predicted],
                probabilities={name: float(p) for name, p in zip(label_list, probabilities)},
                true_label=true_labels[i] if true_labels else None, f_text=float(logits[target]),
                f_baseline=float(f_baselines[target]), convergence_delta=float(delta[0]), truncated=truncated,
                text_pair=pair, multi_label=multi_label))
    return explanations


def words_of(word_ids, sequence_ids, offsets, token_scores, texts: tuple[str, str | None]):
    """Sum subword scores into words (in order, the first text's before the second's); each word's span in its
    own text, from the tokens' offsets."""
    spans, scores = {}, {}
    for word, sequence, (start, end), score in zip(word_ids, sequence_ids, offsets, token_scores):
        if word is None or sequence is None:
            continue
        key = (sequence, word)  # word numbers start again in the second text
        first, last = spans.get(key, (start, end))
        spans[key] = (min(first, start), max(last, end))
        scores[key] = scores.get(key, 0.0) + float(score)
    order = sorted(spans)
    return ([texts[s][spans[s, w][0]:spans[s, w][1]] for s, w in order], [spans[key] for key in order],
            [s for s, _ in order], [scores[key] for key in order])


def choose_examples(probabilities: np.ndarray, gold: np.ndarray, n: int,
                    multi_label: bool = False) -> list[tuple[int, int]]:
    """Up to n (row, class to explain): per class, the most confident right and the most confident wrong
    decisions, in turn. Single-label: right or wrong among the rows of that true class, explaining the
    prediction; multi-label: that label assigned rightly, or assigned or missed wrongly, explaining it."""
    queues = []
    if multi_label:
        assigned, confidence = probabilities >= 0.5, np.abs(probabilities - 0.5)
        for c in range(probabilities.shape[1]):
            right = np.flatnonzero(assigned[:, c] & (gold[:, c] == 1))
            wrong = np.flatnonzero(assigned[:, c] != (gold[:, c] == 1))
            queues += [[(int(r), c) for r in rows[np.argsort(-confidence[rows, c], kind="stable")]]
                       for rows in (right, wrong)]
    else:
        predicted, confidence = probabilities.argmax(-1), probabilities.max(-1)
        for c in range(probabilities.shape[1]):
            for correct in (True, False):
                rows = np.flatnonzero((gold == c) & ((predicted == gold) == correct))
                queues.append([(int(r), int(predicted[r])) for r in rows[np.argsort(-confidence[rows], kind="stable")]])
    chosen = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return chosen


def check_explain_examples(analysis_args, raw) -> None:
    """Before training: --explain_examples needs a validation split."""
    if analysis_args.explain_examples and "validation" not in raw.splits:
        raise OptionError("--explain_examples explains validation texts and there is no validation split")


def explain_validation(model, tokenizer, raw, prediction, label_list: list[str], n: int, max_length: int,
                       multi_label: bool = False) -> tuple[dict, list]:
    """Explain up to n validation texts (confident right and wrong decisions of each class): the facts for
    all_results.json, and the explanations (common.outputs.analysis writes them to explanations/)."""
    from common.evaluation.metrics import logits_of, probabilities

    frame = raw.splits["validation"].frame
    gold = np.asarray(prediction.label_ids, dtype=int)
    chosen = choose_examples(probabilities(np.asarray(logits_of(prediction.predictions), dtype=np.float64),
                                           multi_label), gold, n, multi_label)
    if len(chosen) < n:
        offered = f"{len(chosen)} right or wrong decisions on labels" if multi_label else f"{len(frame)} texts"
        logger.warning(f"--explain_examples {n}: the validation set has {offered}; explaining all of them")
    rows = [row for row, _ in chosen]
    true = [", ".join(label_list[j] for j in np.flatnonzero(gold[i])) if multi_label else label_list[gold[i]]
            for i in rows]
    pairs = [frame[raw.text_pair_column].iloc[i] for i in rows] if raw.text_pair_column else None
    explanations = explain_texts(model, tokenizer, [frame[raw.text_column].iloc[i] for i in rows], label_list,
                                 max_length, true, text_pairs=pairs, multi_label=multi_label,
                                 targets=None if not multi_label else [[c] for _, c in chosen])
    relative = [abs(e.convergence_delta) / max(abs(e.f_text - e.f_baseline), 1e-12) for e in explanations]
    facts = {"texts": len(rows), "validation_rows": rows,
             **({"labels_explained": [label_list[c] for _, c in chosen]} if multi_label else {}),
             "max_relative_completeness_error": float(max(relative, default=0.0))}
    return facts, explanations
