"""Which words made a classifier decide: Integrated Gradients (captum) on the input embeddings, per word.

For a text x and the class the model predicts, F(x) is that class's logit. The baseline is the same
sequence with every ordinary token replaced by the pad token (special tokens kept, so position and
sentence structure stay). `LayerIntegratedGradients` integrates the gradient of F along the straight
line from the baseline's token embeddings to the text's, in 50 steps by default; the token scores
then add up to F(x) - F(baseline) (completeness), up to the integral's error, which captum reports
as the convergence delta. The model runs in float32 and eval mode. A word's score is the sum of its
subwords' (a Chinese character is a word of its own: BERT-style Chinese tokenizers split them).
"""

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from captum.attr import LayerIntegratedGradients

from common.config.errors import OptionError

logger = logging.getLogger(__name__)


@dataclass
class Explanation:
    text: str
    words: list[str]
    spans: list[tuple[int, int]]  # each word's characters in `text`
    scores: list[float]  # one per word, towards the explained class
    label: str  # the class explained (the predicted one unless asked)
    probabilities: dict[str, float]
    true_label: str | None
    f_text: float  # the explained class's logit for the text
    f_baseline: float  # and for the baseline
    convergence_delta: float  # sum of scores - (f_text - f_baseline)
    truncated: bool  # the text was longer than the model's input: only its start is explained

    def to_dict(self) -> dict:
        return asdict(self)


def _forward(model):
    def logits(input_ids, attention_mask, token_type_ids=None):
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        return model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
    return logits


def explain_texts(model, tokenizer, texts: list[str], label_list: list[str], max_length: int,
                  true_labels: list[str | None] | None = None, n_steps: int = 50) -> list[Explanation]:
    """An explanation of the predicted class of each text (single texts; words from the fast tokenizer)."""
    model = model.float().eval()
    device = next(model.parameters()).device
    forward = _forward(model)
    integrated = LayerIntegratedGradients(forward, model.get_input_embeddings())
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    explanations = []
    for i, text in enumerate(texts):
        encoded = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True,
                            return_special_tokens_mask=True, return_tensors="pt")
        truncated = len(tokenizer(text, add_special_tokens=False)["input_ids"]) > \
            max_length - tokenizer.num_special_tokens_to_add(pair=False)
        word_ids = encoded.word_ids(0)
        offsets = encoded.pop("offset_mapping")[0].tolist()
        special = encoded.pop("special_tokens_mask").bool()
        inputs = {k: v.to(device) for k, v in encoded.items()}
        baseline = torch.where(special.to(device), inputs["input_ids"], torch.full_like(inputs["input_ids"], pad))
        extra = (inputs["attention_mask"], inputs.get("token_type_ids"))
        with torch.no_grad():
            logits = forward(inputs["input_ids"], *extra)[0]
            target = int(logits.argmax())
            f_baseline = float(forward(baseline, *extra)[0, target])
        attributions, delta = integrated.attribute(inputs["input_ids"], baselines=baseline, target=target,
                                                   additional_forward_args=extra, n_steps=n_steps,
                                                   internal_batch_size=n_steps, return_convergence_delta=True)
        token_scores = attributions.sum(-1)[0].detach().cpu().numpy().astype(np.float64)
        words, spans, scores = words_of(word_ids, offsets, token_scores, text)
        probabilities = torch.softmax(logits.float(), -1).tolist()
        explanations.append(Explanation(
            text=text, words=words, spans=spans, scores=scores, label=label_list[target],
            probabilities={name: float(p) for name, p in zip(label_list, probabilities)},
            true_label=true_labels[i] if true_labels else None, f_text=float(logits[target]), f_baseline=f_baseline,
            convergence_delta=float(delta[0]), truncated=truncated))
    return explanations


def words_of(word_ids, offsets, token_scores, text: str):
    """Sum subword scores into words (in order); each word's span and text from the tokens' offsets."""
    spans, scores = {}, {}
    for word, (start, end), score in zip(word_ids, offsets, token_scores):
        if word is None:
            continue
        first, last = spans.get(word, (start, end))
        spans[word] = (min(first, start), max(last, end))
        scores[word] = scores.get(word, 0.0) + float(score)
    order = sorted(spans)
    return [text[spans[w][0]:spans[w][1]] for w in order], [spans[w] for w in order], [scores[w] for w in order]


def choose_examples(probabilities: np.ndarray, gold: np.ndarray, n: int) -> list[int]:
    """Up to n rows: per class, the most confident correct and the most confident wrong predictions, in turn."""
    predicted = probabilities.argmax(-1)
    confidence = probabilities.max(-1)
    queues = []
    for c in range(probabilities.shape[1]):
        for correct in (True, False):
            rows = np.flatnonzero((gold == c) & ((predicted == gold) == correct))
            queues.append(list(rows[np.argsort(-confidence[rows], kind="stable")]))
    chosen = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(int(queue.pop(0)))
    return chosen


def check_explain_examples(data_args, raw) -> None:
    """Before training: --explain_examples needs single texts with one label each, and a validation split."""
    if not data_args.explain_examples:
        return
    if data_args.multi_label or raw.text_pair_column:
        raise OptionError("--explain_examples explains single texts with one label each (not multi-label rows or "
                          "text pairs); `python -m common.explain` explains any text with a saved model")
    if "validation" not in raw.splits:
        raise OptionError("--explain_examples explains validation texts and there is no validation split")


def explain_validation(model, tokenizer, raw, prediction, label_list: list[str], n: int, max_length: int,
                       output_dir) -> dict:
    """Explain up to n validation texts (confident correct and wrong ones of each class) into output_dir/explanations."""
    from scipy.special import softmax

    from common.evaluation.metrics import logits_of
    from common.outputs.explanations import write_explanations

    frame = raw.splits["validation"].frame
    if n > len(frame):
        logger.warning(f"--explain_examples {n}: the validation set has {len(frame)} texts; explaining all of them")
    logits = logits_of(prediction.predictions)
    gold = np.asarray(prediction.label_ids, dtype=int)
    rows = choose_examples(softmax(np.asarray(logits, dtype=np.float64), -1), gold, n)
    explanations = explain_texts(model, tokenizer, [frame[raw.text_column].iloc[i] for i in rows], label_list,
                                 max_length, [label_list[gold[i]] for i in rows])
    folder = Path(output_dir) / "explanations"
    write_explanations(folder, explanations, f"Validation texts explained ({len(rows)})")
    relative = [abs(e.convergence_delta) / max(abs(e.f_text - e.f_baseline), 1e-12) for e in explanations]
    return {"explanations": {"folder": "explanations", "texts": len(rows), "validation_rows": [int(r) for r in rows],
                             "max_relative_completeness_error": float(max(relative, default=0.0))}}
