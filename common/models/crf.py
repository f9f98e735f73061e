"""A linear-chain CRF over word-level emissions, with the transitions a tag scheme forbids made impossible.

Written here in plain torch ops rather than taken from `pytorch-crf`: that package (2019) has no way to
forbid transitions while keeping them learnable, needs a mask whose first step is on (our word masks
are gathered from subword positions, left-aligned here instead), and computes in the emissions' dtype;
this module is the forward algorithm and Viterbi in some 60 lines, always in float32.

Shapes: emissions (batch, words, tags), a boolean mask (batch, words) that is a prefix of each row.
"""

import functools
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModelForTokenClassification
from transformers.models.auto.auto_factory import _get_model_class

from common.config.errors import OptionError
from common.data.tag_schemes import parse_tag

logger = logging.getLogger(__name__)
CRF_FILE = "crf.safetensors"  # the transitions, beside the model (which pipeline() loads without them)

# The transitions start at 0 and must move by whole units: at an encoder's 5e-5 they barely would.
CRF_LEARNING_RATE = 5e-3  # (--crf_learning_rate)
IMPOSSIBLE = -1e4  # added to forbidden transitions: exp() of it vanishes in float32, and it stays finite


def allowed_transitions(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """IOB2: (start -> tag allowed, tag -> tag allowed). `I-X` only after `B-X` or `I-X`; never first."""
    def inside_of(label):
        prefix, kind = parse_tag(label)
        return kind if prefix == "I" else None

    n = len(labels)
    start = torch.tensor([inside_of(label) is None for label in labels])
    pairs = torch.ones(n, n, dtype=torch.bool)
    for j, label in enumerate(labels):
        kind = inside_of(label)
        if kind is not None:
            for i, previous in enumerate(labels):
                pairs[i, j] = parse_tag(previous)[1] == kind and parse_tag(previous)[0] in ("B", "I")
    return start, pairs


class CRF(nn.Module):
    """A linear-chain CRF over tag scores whose forbidden IOB2 transitions have a score of minus infinity."""

    def __init__(self, labels: list[str]):
        super().__init__()
        try:
            allowed_transitions(labels)
        except ValueError as error:
            raise OptionError(f"--crf needs IOB2 tags (B-X, I-X, O); these are not: {', '.join(labels)} ({error})") \
                from None
        self.labels = list(labels)
        self.start = nn.Parameter(torch.zeros(len(labels)))
        self.end = nn.Parameter(torch.zeros(len(labels)))
        self.transitions = nn.Parameter(torch.zeros(len(labels), len(labels)))

    def reset_parameters(self) -> None:
        """Every score 0: all allowed transitions equally likely, until training moves them."""
        for parameter in (self.start, self.end, self.transitions):
            nn.init.zeros_(parameter)

    @functools.cached_property
    def forbidden(self) -> tuple[torch.Tensor, torch.Tensor]:
        """IMPOSSIBLE where the tag scheme forbids a start or a transition, else 0. Computed from the labels when
        first used rather than kept as buffers: a model built by from_pretrained has no real tensors until loaded."""
        start, pairs = allowed_transitions(self.labels)
        return (~start).float() * IMPOSSIBLE, (~pairs).float() * IMPOSSIBLE

    def scores(self):
        """Start, transition and end scores in float32, forbidden ones at minus infinity."""
        start_mask, pair_mask = (mask.to(self.start.device) for mask in self.forbidden)
        return self.start.float() + start_mask, self.transitions.float() + pair_mask, self.end.float()

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z per row: the log-sum-exp of the scores of every tag path (forward algorithm)."""
        start, transitions, end = self.scores()
        emissions = emissions.float()
        alpha = start + emissions[:, 0]
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha[:, :, None] + transitions[None] + emissions[:, t, None, :], dim=1)
            alpha = torch.where(mask[:, t, None], step, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The score of each sentence's given tag path (masked positions do not count)."""
        start, transitions, end = self.scores()
        emissions, tags = emissions.float(), tags.clamp(min=0)
        score = start[tags[:, 0]] + emissions[:, 0].gather(1, tags[:, :1])[:, 0]
        on = mask[:, 1:].float()
        score = score + ((transitions[tags[:, :-1], tags[:, 1:]] +
                          emissions[:, 1:].gather(2, tags[:, 1:, None])[..., 0]) * on).sum(1)
        last = tags.gather(1, (mask.sum(1, keepdim=True) - 1).clamp(min=0))[:, 0]
        return score + end[last]

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of each row's tag path (rows without words give 0)."""
        has_words = mask[:, 0]
        value = self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)
        return torch.where(has_words, value, torch.zeros_like(value))

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor) -> list[int]:
        """The best tag path of one sentence (words, tags); forbidden transitions never taken."""
        start, transitions, end = self.scores()
        emissions = emissions.float()
        score, back = start + emissions[0], []
        for t in range(1, len(emissions)):
            total = score[:, None] + transitions
            score, best = total.max(dim=0)
            score = score + emissions[t]
            back.append(best)
        path = [int((score + end).argmax())]
        for best in reversed(back):
            path.append(int(best[path[-1]]))
        return path[::-1]


def word_level(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Emissions and tags at the labelled positions (each word's first subword), left-aligned per row."""
    mask = labels != -100
    counts = mask.sum(1)
    width = max(int(counts.max()), 1)
    order = torch.argsort((~mask).int(), dim=1, stable=True)[:, :width]  # labelled positions first, in order
    emissions = logits.gather(1, order[..., None].expand(-1, -1, logits.shape[-1]))
    tags = labels.gather(1, order)
    word_mask = torch.arange(width, device=labels.device)[None] < counts[:, None]
    return emissions, tags, word_mask


class CRFTagger:
    """What every CRF tagger class is (`crf_tagger_class`): a token classifier whose `crf` scores tag sequences."""

    crf: CRF


@functools.cache  # one subclass per base class
def crf_tagger_class(base: type) -> type:
    """`base` (a `...ForTokenClassification` class) built with a CRF over its tags (`config.id2label`) in `self.crf`.

    Given labels, forward returns the CRF's loss (negative log-likelihood over each word's first subword,
    a mean over sentences) beside the tag scores. It runs inside forward so that DDP sees the CRF's
    parameters used there, as it expects of every parameter. The class keeps its base's name: the saved
    config names the base class, which loads the final folder (saved without the CRF) in pipeline().
    """
    class Tagger(CRFTagger, base):
        accepts_loss_kwargs = False  # a mean of its own: Trainer divides it by the accumulation steps
        sequence_loss = True  # scores whole rows: no per-token loss stands in for it, no packed rows share it
        _keys_to_ignore_on_load_missing = [*(base._keys_to_ignore_on_load_missing or []), r"^crf\."]

        def __init__(self, config, *args, **kwargs):
            super().__init__(config, *args, **kwargs)
            self.crf = CRF([config.id2label[i] for i in range(config.num_labels)])

        def _init_weights(self, module):
            if isinstance(module, CRF):  # (from_pretrained builds on the meta device, then fills in what it lacks)
                module.reset_parameters()
            else:
                super()._init_weights(module)

        @functools.wraps(base.forward)  # the same signature: Trainer keeps the dataset columns forward takes
        def forward(self, *args, labels=None, **kwargs):
            outputs = super().forward(*args, **kwargs)
            if labels is not None:
                emissions, tags, mask = word_level(outputs.logits, labels)
                outputs.loss = self.crf.nll(emissions, tags, mask).sum() / len(tags)
            return outputs

        decoding = (f"CRF: Viterbi over each sentence's words (transitions in {CRF_FILE}; pipeline() uses the "
                    "emissions alone)")

        def decode_tags(self, emissions: torch.Tensor) -> list[int]:
            """The best tag path of one sentence's (words, tags) scores: Viterbi with the CRF's transitions."""
            return self.crf.viterbi(emissions)

        def save_beside(self, output_dir) -> str:
            """Write the CRF's scores to crf.safetensors in `output_dir`; the prefix of the weights written there,
            which the model folder (what pipeline() loads: the plain token classifier) leaves out."""
            save_crf(self.crf, output_dir)
            return "crf."

        def own_parameter_groups(self, args) -> list[dict]:
            """The CRF's scores in an optimizer group of their own, at --crf_learning_rate without weight decay."""
            rate = getattr(args, "crf_learning_rate", None)
            return [{"params": list(self.crf.parameters()), "weight_decay": 0.0,
                     "lr": CRF_LEARNING_RATE if rate is None else rate}]

    Tagger.__name__ = Tagger.__qualname__ = base.__name__
    return Tagger


class AutoModelForCRFTagging:
    """`AutoModelForTokenClassification` with a CRF: the CRF tagger of whichever architecture the config names,
    built by the same two calls. From an output folder of a CRF run, its transitions come from crf.safetensors."""

    @staticmethod
    def tagger_class(config) -> type:
        """The CRF tagger class over the token classifier AutoModelForTokenClassification builds for `config`."""
        return crf_tagger_class(_get_model_class(config, AutoModelForTokenClassification._model_mapping))

    @classmethod
    def from_config(cls, config, **kwargs):
        """A new model (random encoder and head, CRF scores 0) of the architecture `config` names."""
        return cls.tagger_class(config)._from_config(config, **kwargs)

    @classmethod
    def from_pretrained(cls, name, *args, config, **kwargs):
        """Pretrained weights with a new or saved CRF: `config` (with the tags in id2label) is required."""
        model = cls.tagger_class(config).from_pretrained(name, *args, config=config, **kwargs)
        saved = Path(name) / CRF_FILE
        if saved.is_file():
            model.crf.load_state_dict(load_file(str(saved)))
            logger.info(f"CRF transitions loaded from {saved}")
        return model


def save_crf(crf: CRF, output_dir) -> None:
    """The CRF's learned scores as crf.safetensors in `output_dir`, beside the model that pipeline() loads."""
    save_file({k: v.detach().cpu().contiguous() for k, v in crf.state_dict().items()},
              str(Path(output_dir) / CRF_FILE))
