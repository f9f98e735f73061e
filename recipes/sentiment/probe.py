"""Counterfactual probe (`--counterfactual_probe builtin|FILE`): the same template sentences with person
words of different groups, scored by the trained model (templates and groups: probe.yaml beside this file).

Reports each group's mean positive probability and the largest gap between groups, with a 95%
bootstrap interval from resampling the templates (the sentences of one template are not independent).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from common.config.errors import OptionError

BUILTIN = Path(__file__).parent / "probe.yaml"


@dataclass
class ProbeArguments:
    """The counterfactual probe's one option."""

    counterfactual_probe: str | None = field(
        default=None, metadata={"help": "After training, score template sentences that differ only in a person "
                                        "word: 'builtin' (recipes/sentiment/probe.yaml) or a YAML file of templates "
                                        "and groups. Mean positive probability per group and the largest gap."}
    )


def read_probe(source: str) -> dict:
    """The probe's templates and groups of person words, checked ('builtin': probe.yaml beside this file)."""
    path = BUILTIN if source == "builtin" else Path(source)
    if not path.is_file():
        raise OptionError(f"--counterfactual_probe {source}: no such file (or 'builtin')")
    probe = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(probe, dict) or not probe.get("templates") or not isinstance(probe.get("groups"), dict) \
            or len(probe["groups"]) < 2:
        raise OptionError(f"{path}: a probe needs 'templates' and at least two 'groups' of person words")
    for template in probe["templates"]:
        if template.count("{person}") != 1:
            raise OptionError(f"{path}: template {template!r} must hold {{person}} exactly once")
    return {**probe, "source": str(path)}


def positive_probabilities(model, tokenizer, sentences: list[str], positive: int, batch_size: int = 64) -> np.ndarray:
    """The model's probability of the positive class for each sentence, in batches."""
    model.eval()
    device = next(model.parameters()).device
    scores = []
    with torch.no_grad():
        for start in range(0, len(sentences), batch_size):
            batch = tokenizer(sentences[start:start + batch_size], padding=True, return_tensors="pt").to(device)
            scores.append(torch.softmax(model(**batch).logits.float(), -1)[:, positive].cpu().numpy())
    return np.concatenate(scores)


def run_probe(model, tokenizer, probe: dict, label_list: list[str], seed: int, n_boot: int = 1000) -> dict:
    """Each group's mean positive probability over the templates, and the largest gap with a bootstrap
    interval over templates."""
    positive = label_list.index("positive") if "positive" in label_list else len(label_list) - 1
    groups, templates = probe["groups"], probe["templates"]
    # scores[g][t, w]: group g, template t, person word w
    scores = {g: positive_probabilities(model, tokenizer, [t.replace("{person}", w) for t in templates for w in words],
                                        positive).reshape(len(templates), len(words))
              for g, words in groups.items()}
    means = {g: float(s.mean()) for g, s in scores.items()}
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(n_boot):
        chosen = rng.integers(0, len(templates), len(templates))
        resampled = [s[chosen].mean() for s in scores.values()]
        gaps.append(max(resampled) - min(resampled))
    return {"counterfactual_probe": {
        "description": probe.get("description", "").strip(), "source": probe["source"],
        "positive_label": label_list[positive], "templates": len(templates),
        "groups": {g: {"mean_positive": means[g], "sentences": int(scores[g].size)} for g in groups},
        "largest_gap": max(means.values()) - min(means.values()),
        "largest_gap_ci": [float(np.quantile(gaps, 0.025)), float(np.quantile(gaps, 0.975))],
        "interval": f"bootstrap over templates, {n_boot} resamples, 2.5%-97.5% quantiles"}}
