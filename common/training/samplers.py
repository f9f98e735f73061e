"""Row orders: length-grouped training batches in random order, and longest-first evaluation."""

import numpy as np
import pyarrow.compute as pc
import torch
from torch.utils.data import Sampler


def token_lengths(dataset) -> np.ndarray:
    """Tokens per row, read from the Arrow column in one call (Trainer's own pass goes row by row)."""
    return pc.list_value_length(dataset.with_format("arrow")["input_ids"]).to_numpy()


def longest_first_order(dataset) -> np.ndarray:
    """Row indices from the longest input to the shortest (stable), for evaluation batches."""
    return np.argsort(-token_lengths(dataset), kind="stable")


class ShuffledLengthGroupedSampler(Sampler):
    """Batches of similar length, in random order.

    Like transformers' LengthGroupedSampler, rows are shuffled, cut into groups of 50 batches and sorted
    by length within each group. That sampler then yields each group's batches longest to shortest, a
    saw-tooth through the epoch; here the batches are shuffled instead (what that is worth on CoNLL-2003:
    recipes/ner/README.md). The batch holding the longest row still comes first, so memory errors show early.

    The order depends on `seed` and the epoch alone (Trainer calls `set_epoch`), not on the global random
    state: a run resumed from a checkpoint sees the same batches as an uninterrupted one, and every
    process of a distributed run the same order.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int = 0, group_batches: int = 50):
        self.lengths, self.batch_size, self.seed, self.epoch = torch.tensor(lengths), batch_size, seed, 0
        self.group_size = batch_size * max(1, min(group_batches, len(lengths) // (batch_size * 4)))

    def __len__(self):
        return len(self.lengths)

    def set_epoch(self, epoch: int) -> None:
        """Trainer calls it each epoch: the batch order depends on the seed and the epoch only."""
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        rows = torch.randperm(len(self.lengths), generator=generator)
        batches = []
        for group in rows.split(self.group_size):
            by_length = group[torch.argsort(self.lengths[group], descending=True, stable=True)]
            batches.extend(by_length.split(self.batch_size))
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        longest = next(i for i, batch in enumerate(batches) if batch[0] == rows[torch.argmax(self.lengths[rows])])
        batches[0], batches[longest] = batches[longest], batches[0]
        return iter(torch.cat(batches).tolist())


def in_order(values, order: np.ndarray | None):
    """Rows predicted in `order` (longest_first_order) put back in the dataset's order; tuples element by element."""
    if values is None or order is None:
        return values
    if isinstance(values, tuple):
        return tuple(in_order(v, order) for v in values)
    return values[np.argsort(order, kind="stable")]
