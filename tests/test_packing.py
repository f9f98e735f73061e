"""Packed training batches: rows, positions, masks, the same logits and loss as padding, and the fallback."""

import logging

import datasets
import pytest
import torch
from transformers import (AutoModelForTokenClassification, DataCollatorForTokenClassification, DebertaV2Config,
                          DebertaV2ForTokenClassification, DistilBertConfig, DistilBertForTokenClassification,
                          ElectraConfig, ElectraForTokenClassification, ErnieConfig, ErnieForTokenClassification,
                          RobertaConfig, RobertaForTokenClassification)

from common.config.arguments import ModelArguments, RecipeTrainingArguments
from common.models.tokenizer import load_tokenizer
from common.training.packing import PackedBatchCollator, first_fit_rows, packing_error
from common.training.trainer import RecipeTrainer

SENTENCES = [[2, 7, 8, 9, 10, 3], [2, 11, 3], [2, 12, 13, 14, 3], [2, 15, 16, 3], [2, 17, 3]]
LABELS = [[-100, 0, 1, -100, 2, -100], [-100, 1, -100], [-100, 2, 2, 0, -100], [-100, 0, 1, -100], [-100, 2, -100]]


def features():
    return [{"input_ids": ids, "token_type_ids": [0] * len(ids), "labels": labels}
            for ids, labels in zip(SENTENCES, LABELS)]


def test_first_fit_rows_fill_rows_longest_first():
    assert first_fit_rows([5, 3, 4, 2, 1], 5) == [[0], [2, 4], [1, 3]]
    assert first_fit_rows([6, 3, 5, 4, 3], 6) == [[0], [2], [3], [1, 4]]


def test_packed_batch_layout_positions_and_mask():
    batch = PackedBatchCollator(pad_token_id=0)(features())
    # widths 6,3,5,4,3 in rows of 6: [0], [2], [3], [1, 4]
    assert batch["input_ids"].tolist() == [[2, 7, 8, 9, 10, 3], [2, 12, 13, 14, 3, 0], [2, 15, 16, 3, 0, 0],
                                           [2, 11, 3, 2, 17, 3]]
    assert batch["position_ids"][3].tolist() == [0, 1, 2, 0, 1, 2]
    assert batch["labels"][3].tolist() == [-100, 1, -100, -100, 2, -100]
    assert batch["labels"][1].tolist() == [-100, 2, 2, 0, -100, -100]
    mask = batch["attention_mask"][3, 0].int().tolist()
    assert mask[0] == [1, 1, 1, 0, 0, 0] and mask[4] == [0, 0, 0, 1, 1, 1]
    assert batch["attention_mask"][2, 0, 4].tolist() == [False] * 4 + [True] * 2  # padding sees only padding
    with pytest.raises(ValueError, match="pixel_values"):
        PackedBatchCollator(0)([{"input_ids": [2, 3], "pixel_values": [0, 1]}])


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_rows_give_each_sentence_its_own_logits_and_the_padded_loss(tiny_bert, attention):
    model = AutoModelForTokenClassification.from_pretrained(str(tiny_bert), num_labels=3, attn_implementation=attention)
    model.eval()
    collator = PackedBatchCollator(0, "bool" if attention == "sdpa" else "additive")
    assert packing_error(model, features(), collator) is None
    with torch.no_grad():
        packed = model(**collator(features()))
        padded = model(**DataCollatorForTokenClassification(load_tokenizer(ModelArguments(str(tiny_bert))))(features()))
        torch.testing.assert_close(packed.logits[3, 3:6], padded.logits[4, :3], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(packed.logits[0], padded.logits[0], atol=1e-5, rtol=1e-4)
    assert packed.loss.item() == pytest.approx(padded.loss.item(), rel=1e-5)  # mean over the same labelled tokens


def tiny(config_class, model_class, **extra):
    torch.manual_seed(0)
    config = config_class(vocab_size=40, num_labels=3, **extra)
    return model_class(config)


def tiny_roberta():
    return tiny(RobertaConfig, RobertaForTokenClassification, hidden_size=32, num_hidden_layers=1,
                num_attention_heads=2, intermediate_size=64, max_position_embeddings=40, pad_token_id=1)


SMALL = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def test_packing_is_checked_on_each_architecture():
    distilbert = tiny(DistilBertConfig, DistilBertForTokenClassification, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    assert packing_error(distilbert, features(), PackedBatchCollator(0)) is None
    electra = tiny(ElectraConfig, ElectraForTokenClassification, embedding_size=16, **SMALL)
    assert packing_error(electra, features(), PackedBatchCollator(0)) is None
    ernie = tiny(ErnieConfig, ErnieForTokenClassification, use_task_id=True, **SMALL)
    assert packing_error(ernie, features(), PackedBatchCollator(0)) is None
    one_label_each = [{"input_ids": [2, 7, 3], "labels": 1}]
    assert "token labels" in packing_error(distilbert, one_label_each, PackedBatchCollator(0))
    deberta = tiny(DebertaV2Config, DebertaV2ForTokenClassification, **SMALL)  # builds its own 2-D mask
    assert "does not take packed rows" in packing_error(deberta, features(), PackedBatchCollator(0))
    # RoBERTa's positions start after its padding index, so positions from 0 change the logits
    assert "change its logits" in packing_error(tiny_roberta(), features(), PackedBatchCollator(1))
    flash = tiny_roberta()
    flash.config._attn_implementation = "flash_attention_2"
    assert "does not take packed rows" in packing_error(flash, features(), PackedBatchCollator(1))


def trainer_for(model, tmp_path, tiny_bert):
    rows = features() * 4
    dataset = datasets.Dataset.from_dict({key: [r[key] for r in rows] for key in rows[0]})
    args = RecipeTrainingArguments(output_dir=str(tmp_path / "o"), per_device_train_batch_size=5, report_to="none",
                                   train_sampling_strategy="random", pack_batches=True)
    tokenizer = load_tokenizer(ModelArguments(str(tiny_bert)))
    return RecipeTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         data_collator=DataCollatorForTokenClassification(tokenizer))


def test_trainer_packs_training_batches_only(tmp_path, tiny_bert):
    trainer = trainer_for(AutoModelForTokenClassification.from_pretrained(str(tiny_bert), num_labels=3), tmp_path,
                          tiny_bert)
    batches = list(trainer.get_train_dataloader())
    assert len(batches) == 4 and all(b["attention_mask"].dim() == 4 and "position_ids" in b for b in batches)
    assert sum(int((b["labels"] != -100).sum()) for b in batches) == 4 * 10  # every labelled token, once
    assert isinstance(trainer.data_collator, DataCollatorForTokenClassification)  # evaluation stays padded
    assert trainer.packs_batches is True  # what the results report


def test_trainer_falls_back_to_padding_and_says_why(tmp_path, tiny_bert, caplog):
    trainer = trainer_for(tiny_roberta(), tmp_path, tiny_bert)
    with caplog.at_level(logging.WARNING):
        batch = next(iter(trainer.get_train_dataloader()))
    assert batch["attention_mask"].dim() == 2 and "position_ids" not in batch
    assert "pack_batches: not packing" in caplog.text
    assert trainer.packs_batches is False  # so the results report padded batches
