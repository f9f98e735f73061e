"""The CRF head: forward algorithm and Viterbi against brute force, forbidden transitions, word gathering."""

import itertools

import pytest
import torch

from common.data.tag_schemes import forbidden_transitions
from common.models.crf import CRF, allowed_transitions, word_level

LABELS = ["O", "B-PER", "I-PER", "B-LOC"]  # 4 tags; I-PER only after B-PER or I-PER


def random_crf(seed):
    torch.manual_seed(seed)
    crf = CRF(LABELS)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


def all_paths(crf, emissions):
    start, transitions, end = crf.scores()
    for path in itertools.product(range(len(LABELS)), repeat=len(emissions)):
        score = start[path[0]] + end[path[-1]] + sum(emissions[t, k] for t, k in enumerate(path))
        score = score + sum(transitions[a, b] for a, b in zip(path, path[1:]))
        yield path, score


@pytest.mark.parametrize("seed, words", [(0, 1), (1, 3), (2, 5), (3, 4)])
def test_log_partition_and_viterbi_equal_brute_force(seed, words):
    crf = random_crf(seed)
    emissions = torch.randn(words, len(LABELS))
    paths = list(all_paths(crf, emissions))
    log_z = torch.logsumexp(torch.stack([s for _, s in paths]), 0)
    assert crf.log_partition(emissions[None], torch.ones(1, words, dtype=torch.bool)).item() == \
        pytest.approx(log_z.item(), abs=1e-5)
    best_path, best_score = max(paths, key=lambda p: p[1].item())
    assert tuple(crf.viterbi(emissions)) == best_path
    tags = torch.tensor([best_path])
    assert crf.path_score(emissions[None], tags, torch.ones(1, words, dtype=torch.bool)).item() == \
        pytest.approx(best_score.item(), abs=1e-5)


def test_padding_does_not_change_a_rows_likelihood():
    crf = random_crf(4)
    emissions = torch.randn(2, 5, len(LABELS))
    tags = torch.tensor([[1, 2, 0, 3, 0], [3, 0, 1, 0, 0]])
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    batch = crf.nll(emissions, tags, mask)
    alone = crf.nll(emissions[1:, :3], tags[1:, :3], torch.ones(1, 3, dtype=torch.bool))
    assert batch[1].item() == pytest.approx(alone.item(), abs=1e-5)
    assert (batch > 0).all()


def test_forbidden_transitions_are_never_decoded():
    crf = random_crf(5)
    start, pairs = allowed_transitions(LABELS)
    assert start.tolist() == [True, True, False, True]
    assert pairs[:, 2].tolist() == [False, True, True, False]  # I-PER after B-PER or I-PER only
    for seed in range(20):
        torch.manual_seed(seed)
        emissions = torch.randn(6, len(LABELS))
        emissions[:, 2] += 3  # softmax would pick I-PER everywhere
        path = [LABELS[k] for k in crf.viterbi(emissions)]
        assert forbidden_transitions([path]) == 0
    assert forbidden_transitions([["I-PER", "O", "I-PER"], ["B-PER", "I-PER", "B-LOC", "I-PER"]]) == 3


def test_word_level_takes_first_subwords_left_aligned():
    logits = torch.arange(2 * 5 * 2, dtype=torch.float).reshape(2, 5, 2)
    labels = torch.tensor([[-100, 1, -100, 0, -100], [-100, 0, 1, 1, -100]])
    emissions, tags, mask = word_level(logits, labels)
    assert tags.tolist() == [[1, 0, -100], [0, 1, 1]] and mask.tolist() == [[True, True, False], [True, True, True]]
    assert emissions[0, :2].tolist() == [logits[0, 1].tolist(), logits[0, 3].tolist()]


def test_tags_outside_iob2_are_refused_by_name():
    from common.config.errors import OptionError

    with pytest.raises(OptionError, match=r"--crf needs IOB2 tags \(B-X, I-X, O\); these are not: O, PER, LOC"):
        CRF(["O", "PER", "LOC"])


@pytest.mark.slow
def test_the_crf_loss_is_the_same_with_one_and_two_processes(tmp_path, make_bert, repo, synthetic_conll):
    """Same global batch (1 x 16 or 2 x 8), fp32, no dropout: the logged CRF losses agree at every step."""
    import json
    import os
    import subprocess
    import sys

    words = ["john", "smith", "##son", "visit", "##ed", "berlin", "##x", "in", "paris", "and", "met", "ann"]
    model = make_bert(tmp_path / "bert", words=words)
    train = synthetic_conll(tmp_path / "train.txt", 48, 0)

    def run(launcher, out, batch_size):
        flags = ["recipes/ner/run.py", "--model", str(model), "--train_file", str(train), "--crf", "True",
                 "--do_eval", "False", "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end",
                 "False", "--train_sampling_strategy", "sequential", "--max_steps", "3", "--logging_steps", "1",
                 "--learning_rate", "1e-3", "--per_device_train_batch_size", str(batch_size), "--bf16", "False",
                 "--disable_tqdm", "True", "--output_dir", str(out)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo)}
        done = subprocess.run(launcher + flags, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        state = json.loads((out / "trainer_state.json").read_text())
        return [e["loss"] for e in state["log_history"] if "loss" in e]

    one = run([sys.executable], tmp_path / "one", 16)
    two = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547"],
              tmp_path / "two", 8)
    assert len(one) == len(two) == 3 and two == pytest.approx(one, rel=1e-4)


@pytest.mark.parametrize("flag, rate", [(None, 5e-3), (0.02, 0.02)])
def test_the_crf_trains_in_its_own_optimizer_group_at_crf_learning_rate(tiny_bert, tmp_path, flag, rate):
    from common.config.arguments import RecipeTrainingArguments
    from common.models.crf import AutoModelForCRFTagging
    from common.training.trainer import RecipeTrainer

    model = AutoModelForCRFTagging.from_pretrained(tiny_bert, config=tagger_config(tiny_bert))
    crf = model.crf
    args = RecipeTrainingArguments(output_dir=str(tmp_path), learning_rate=5e-5, crf_learning_rate=flag,
                                   report_to="none")
    optimizer = RecipeTrainer(model=model, args=args).create_optimizer()
    crf_ids = {id(p) for p in crf.parameters()}
    groups = [(g["lr"], {id(p) for p in g["params"]}) for g in optimizer.param_groups]
    assert [lr for lr, ids in groups if ids & crf_ids] == [rate]
    assert all(not ids & crf_ids for lr, ids in groups if lr == 5e-5)
    assert sum(len(ids) for _, ids in groups) == len(list(model.parameters()))


def tagger_config(model_dir):
    from transformers import AutoConfig

    from common.models.heads import label_settings

    return AutoConfig.from_pretrained(model_dir, **label_settings(LABELS))


def test_a_crf_tagger_is_built_with_its_crf_by_either_auto_call_and_reloads_its_transitions(tiny_bert, tmp_path):
    """Built, not swapped: from_pretrained (which builds on the meta device) and from_config both give the CRF
    zero scores and the masks of the tags, the encoder and head are those of the plain token classifier with
    the same seed, and an output folder's crf.safetensors comes back."""
    from transformers import AutoModelForTokenClassification, set_seed

    from common.models.crf import CRF_FILE, AutoModelForCRFTagging, CRFTagger
    from common.models.heads import decoding_of, load_token_classifier, tag_decoder

    config = tagger_config(tiny_bert)
    set_seed(0)
    plain = AutoModelForTokenClassification.from_pretrained(tiny_bert, config=config)
    set_seed(0)
    tagger = AutoModelForCRFTagging.from_pretrained(tiny_bert, config=config)
    assert isinstance(tagger, CRFTagger) and type(tagger).__name__ == type(plain).__name__
    assert tag_decoder(plain) is None and decoding_of(plain).startswith("softmax") and decoding_of(tagger).startswith("CRF")
    crf_weights = {k: v for k, v in tagger.state_dict().items() if k.startswith("crf.")}
    assert sorted(crf_weights) == ["crf.end", "crf.start", "crf.transitions"]
    assert all(torch.equal(v, torch.zeros_like(v)) for v in crf_weights.values())
    assert all(torch.equal(v, tagger.state_dict()[k]) for k, v in plain.state_dict().items())
    start, transitions, _ = tagger.crf.scores()  # I-PER may not open a sentence nor follow O or B-LOC
    assert start.tolist() == [0, 0, -1e4, 0] and transitions[:, 2].tolist() == [-1e4, 0, 0, -1e4]
    assert AutoModelForCRFTagging.from_config(config).crf.transitions.abs().sum() == 0

    with torch.no_grad():
        tagger.crf.transitions.fill_(0.5)
    tagger.save_pretrained(tmp_path, state_dict={k: v for k, v in tagger.state_dict().items()
                                                 if not k.startswith(tagger.save_beside(tmp_path))})
    reloaded = load_token_classifier(str(tmp_path))  # the folder's crf.safetensors: a CRF tagger again
    assert (tmp_path / CRF_FILE).is_file() and torch.equal(reloaded.crf.transitions, torch.full((4, 4), 0.5))
    assert tag_decoder(reloaded)(torch.tensor([[0.0, 0, 5, 0]])) == [0]  # Viterbi: I-PER may not open a sentence
