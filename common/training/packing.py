"""Packed training batches for token classification: the sentences of a random batch share rows.

A random batch of short sentences padded to its longest is mostly padding (CoNLL-2003: 32 sentences
of 20 subwords on average padded to about 52, 61% padding). Packed, the batch's sentences sit end to end in as few
rows as its longest sentence allows, each with positions from 0 and an attention mask that keeps it
to itself, so every token gets the logits of its sentence alone and the loss is the usual mean over
the batch's labelled tokens. The batches are the reference scripts' random ones, at about the cost
of length-grouped batches (5% padding left). `packing_error` checks this on the model itself before training, since
not every architecture takes explicit positions and a 4-D mask as given (RoBERTa counts its
positions from after the padding index, DeBERTa-v2 builds its own mask, flash attention takes none).
"""

import torch

# Per-token columns and what fills their padding; the attention mask is rebuilt, other columns refused.
PAD_VALUES = {"input_ids": None, "labels": -100, "token_type_ids": 0}
MASK_KINDS = ("bool", "additive")  # 4-D masks: sdpa takes booleans, eager attention adds the mask to its scores


def first_fit_rows(lengths: list[int], width: int) -> list[list[int]]:
    """Sequence indices per row, longest first into the first row with room (first-fit decreasing)."""
    rows, room = [], []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if row is None:
            rows.append([]), room.append(width)
            row = len(rows) - 1
        rows[row].append(i)
        room[row] -= lengths[i]
    return rows


class PackedBatchCollator:
    """Collates token-classification features into packed rows with `position_ids` and a 4-D mask."""

    def __init__(self, pad_token_id: int, mask_kind: str = "bool"):
        self.pad_values = {**PAD_VALUES, "input_ids": pad_token_id}
        self.mask_kind = mask_kind

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        columns = [key for key in features[0] if key != "attention_mask"]
        unknown = [key for key in columns if key not in self.pad_values]
        if unknown:
            raise ValueError(f"cannot pack the column(s) {unknown}: only {sorted(self.pad_values)} are known")
        lengths = [len(f["input_ids"]) for f in features]
        width = max(lengths)
        rows = first_fit_rows(lengths, width)
        batch = {key: torch.full((len(rows), width), self.pad_values[key], dtype=torch.long) for key in columns}
        batch["position_ids"] = torch.zeros((len(rows), width), dtype=torch.long)
        segment = torch.full((len(rows), width), -1)  # padding is a segment of its own: no row of the mask is empty
        for r, members in enumerate(rows):
            start = 0
            for s, i in enumerate(members):
                end = start + lengths[i]
                for key in columns:
                    batch[key][r, start:end] = torch.as_tensor(features[i][key])
                batch["position_ids"][r, start:end] = torch.arange(lengths[i])
                segment[r, start:end] = s
                start = end
        allowed = segment[:, None, :, None] == segment[:, None, None, :]
        if self.mask_kind == "bool":
            batch["attention_mask"] = allowed
        else:  # eager attention adds the mask to the scores
            batch["attention_mask"] = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
        return batch


def packing_error(model, features: list[dict], collator: PackedBatchCollator, tolerance: float = 1e-3) -> str | None:
    """Why packing would change this model's outputs on these features, or None if it does not."""
    if any(not isinstance(f.get("labels", []), list) for f in features):
        return "it is for token labels, and these rows have one label each"
    features = [{k: v for k, v in f.items() if k != "labels"} for f in features]
    device, was_training = next(model.parameters()).device, model.training
    model.eval()
    try:
        with torch.no_grad():
            batch = collator(features)
            rows = first_fit_rows([len(f["input_ids"]) for f in features], batch["input_ids"].shape[1])
            packed = model(**{k: v.to(device) for k, v in batch.items()}).logits
            difference = 0.0
            for r, members in enumerate(rows):
                start = 0
                for i in members:
                    alone = {k: torch.as_tensor([v]).to(device) for k, v in features[i].items()}
                    logits = model(**alone).logits[0]
                    end = start + len(logits)
                    difference = max(difference, (packed[r, start:end] - logits).abs().max().item())
                    start = end
    except (TypeError, ValueError, RuntimeError, ImportError) as error:  # ImportError: flash attention, not installed
        return f"the model does not take packed rows ({type(error).__name__}: {error})"
    finally:
        model.train(was_training)
    if difference > tolerance:
        return f"packed rows change its logits by up to {difference:.2g}"
    return None


def packing_collator(model, features: list[dict], pad_token_id: int) -> tuple[PackedBatchCollator | None, str | None]:
    """A collator whose packed rows give this model each sentence's own logits, or None and why there is none.

    The mask kind is found by trying each on the model (rather than read from its attention implementation,
    which transformers keeps in a private config field): the first that passes `packing_error` is used.
    """
    problems = []
    for kind in MASK_KINDS:
        collator = PackedBatchCollator(pad_token_id, kind)
        problem = packing_error(model, features, collator)
        if problem is None:
            return collator, None
        problems.append(f"with a {kind} mask, {problem}")
    return None, "; ".join(problems)
