"""The CRF head: forward algorithm and Viterbi against brute force, forbidden transitions, word gathering."""

import itertools

import pytest
import torch

from common.models.crf import CRF, allowed_transitions, forbidden_transitions, word_level

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
