"""Why the small Chinese models trained here are RoFormer: how fast each position encoding learns to read a neighbour.

    python bench/positions.py [--steps 1000] [--length 128] [--models ernie,roformer]

Each model (2 layers, hidden 128, 2 heads, as the Chinese recipe's scratch rows) is trained as a masked
language model on made-up text in which every token is fixed by the one before it (a random permutation
of a 200-token vocabulary, followed from a random start). 15% of the tokens are masked; a model that
attends to the left neighbour predicts them almost exactly, one that spreads its attention does not.
Prints the training loss at each tenth of the steps: learned absolute positions (ERNIE, BERT) against
rotary ones (RoFormer). The argument is in docs/pretraining.md, "Why RoFormer".
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`

from bench.harness import print_table  # noqa: E402

VOCABULARY, FIRST_TOKEN, MASK_ID = 200, 10, 4  # ids below FIRST_TOKEN are left for special tokens


def successor_batch(successor, rows: int, length: int, generator):
    """Token sequences that follow `successor` from a random start, 15% masked; the inputs and labels."""
    import torch

    ids = torch.empty(rows, length, dtype=torch.long)
    ids[:, 0] = torch.randint(FIRST_TOKEN, VOCABULARY, (rows,), generator=generator)
    for k in range(1, length):
        ids[:, k] = successor[ids[:, k - 1] - FIRST_TOKEN]
    masked = torch.rand(rows, length, generator=generator) < 0.15
    labels = torch.where(masked, ids, -100)
    return ids.masked_fill(masked, MASK_ID), labels


def training_losses(model_type: str, steps: int, length: int, seed: int) -> dict[int, float]:
    """The training loss at every tenth of `steps`, by step (Adam, lr 1e-3, batches of 32)."""
    import torch
    from transformers import AutoConfig, AutoModelForMaskedLM

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    config = AutoConfig.for_model(model_type, vocab_size=VOCABULARY, hidden_size=128, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=512, max_position_embeddings=512)
    model = AutoModelForMaskedLM.from_config(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    successor = torch.randperm(VOCABULARY - FIRST_TOKEN, generator=generator) + FIRST_TOKEN
    losses, every = {}, max(1, steps // 10)
    for step in range(1, steps + 1):
        inputs, labels = successor_batch(successor, 32, length, generator)
        loss = model(input_ids=inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % every == 0 or step == steps:
            losses[step] = loss.item()
    return losses


def main():
    """Each model's losses, one row each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--length", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--models", default="ernie,roformer", help="model types (transformers' names)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    losses = {name: training_losses(name, args.steps, args.length, args.seed) for name in args.models.split(",")}
    steps = list(next(iter(losses.values())))
    print(f"# Masked-token loss on text where each token follows from the one before ({args.length} tokens, "
          f"seed {args.seed})\n")
    print_table(["model", *(f"step {n}" for n in steps)],
                [(name, *(f"{by_step[n]:.3f}" for n in steps)) for name, by_step in losses.items()])


if __name__ == "__main__":
    main()
