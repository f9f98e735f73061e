"""Hub datasets through `datasets.load_dataset` (needs Hub access at run time): their splits under our split names."""

from common.data.tables import from_dataframe

HUB_SPLITS = {"train": "train", "validation": "validation", "dev": "validation", "valid": "validation", "test": "test"}


def hub_splits(name: str, config: str | None, notes: list[str]) -> dict:
    """`load_dataset(name, config)` as {our split name: (the Hub's split name, Dataset)}; other splits are noted."""
    import datasets

    splits = {}
    for key, dataset in datasets.load_dataset(name, config).items():
        if key in HUB_SPLITS:
            splits[HUB_SPLITS[key]] = (key, dataset)
        else:
            notes.append(f"{name}: split '{key}' not used (only train, validation/dev and test are)")
    return splits


def load_hub_dataset(name: str, config: str | None, notes: list[str]) -> tuple[dict, list | None]:
    """A Hub (or local `load_dataset`) dataset's splits as Splits, and its ClassLabel names if the label column has them."""
    import datasets

    loaded = hub_splits(name, config, notes)
    splits = {split: from_dataframe(dataset.to_pandas(), f"{name} [{key}]") for split, (key, dataset) in loaded.items()}
    first = next(dataset for _, dataset in loaded.values())
    label_feature = next((f for f in first.features.values() if isinstance(f, datasets.ClassLabel)), None)
    return splits, (label_feature.names if label_feature else None)
