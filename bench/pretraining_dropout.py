"""What dropout costs a pretraining step of the small RoFormer: step time with the model's dropout and without.

    python bench/pretraining_dropout.py [--model PRETRAINED_FOLDER] [--steps 10] [--rounds 3]

Builds the pretraining recipe's small model (configs/zh_corpus.yaml's architecture: RoFormer, 2 layers, hidden
128; a vocabulary of --vocabulary tokens) or loads --model, scores the masked positions only as the recipe
does, and times forward, backward and AdamW on random blocks of 16 x 256 with 15% masked (bf16 autocast
where the recipes train in bf16), with the model's dropout and with --pretraining_dropout 0, in alternating
rounds in this process. Then one profiled step of each: the share of its CPU time in dropout's random draws
(aten::bernoulli_). Nothing is asserted; the write-up is in docs/pretraining.md.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes" / "pretraining"))  # its modules, as run.py does

from bench.harness import print_table  # noqa: E402
from common.config.hardware import bf16_supported  # noqa: E402
from common.models.scratch import SPECIAL_TOKENS, ScratchArguments, character_tokenizer, scratch_config  # noqa: E402
from model import masked_lm_class, set_dropout  # noqa: E402


def small_model(args):
    """The recipe's small RoFormer over args.vocabulary tokens (Han characters and the special tokens), or the
    --model folder, scoring the masked positions only as the recipe's does."""
    from transformers import AutoConfig

    if args.model:
        return masked_lm_class(AutoConfig.from_pretrained(args.model)).from_pretrained(args.model)
    characters = "".join(chr(0x4E00 + k) for k in range(args.vocabulary - len(SPECIAL_TOKENS)))
    tokenizer = character_tokenizer([characters], han_continuations=False)  # as the recipe builds its own
    config = scratch_config(ScratchArguments(scratch_model_type="roformer"), tokenizer)
    return masked_lm_class(config)._from_config(config)


def main():
    """Alternating timed rounds with and without dropout, then one profiled step of each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a pretrained folder (default: a new small RoFormer)")
    parser.add_argument("--vocabulary", type=int, default=8169, help="the new model's vocabulary (zh_corpus: 8,169)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import torch
    from torch.profiler import profile

    torch.manual_seed(0)
    model = small_model(args).train()
    own = next(m.p for m in model.modules() if isinstance(m, torch.nn.Dropout))
    ids = torch.randint(5, model.config.vocab_size, (args.batch, args.length))
    labels = torch.where(torch.rand(ids.shape) < 0.15, ids, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_supported()):
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    settings = {f"model's own ({own})": own, "--pretraining_dropout 0": 0.0}
    seconds = {name: [] for name in settings}
    for _ in range(args.rounds):
        for name, probability in settings.items():
            set_dropout(model, probability)
            step()  # warm-up
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            seconds[name].append((time.perf_counter() - start) / args.steps)
    rows, reference = [], statistics.median(seconds[f"model's own ({own})"])
    for name, probability in settings.items():
        set_dropout(model, probability)
        with profile() as profiled:
            step()
        events = profiled.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        draws = [e for e in events if e.key == "aten::bernoulli_"]
        median = statistics.median(seconds[name])
        rows.append((name, f"{median * 1000:.1f}", f"{args.batch * args.length / median:,.0f}",
                     f"{reference / median:.2f}x",
                     f"{sum(e.count for e in draws)} calls, {sum(e.self_cpu_time_total for e in draws) / total:.0%}"))
    print(f"# A pretraining step of {args.batch} blocks of {args.length}: medians of {args.rounds} rounds of "
          f"{args.steps} steps ({'bf16' if bf16_supported() else 'fp32'})\n")
    print_table(["dropout", "ms per step", "tokens/s", "steps per minute vs the model's own",
                 "dropout's random draws: calls, share of the step"], rows)


if __name__ == "__main__":
    main()
