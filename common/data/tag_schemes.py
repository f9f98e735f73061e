"""Entity tag schemes: checking tags, converting IOB1 and BIOES to IOB2, and tags <-> entity spans.

IOB2 is the working scheme: every entity starts with B-TYPE and continues with I-TYPE. IOB1 uses
B- only between two adjacent entities of one type (an entity otherwise starts with I-); BIOES marks
single-token entities S- and last tokens E-.
"""

import re

TAG = re.compile(r"^(O|([BIES])-(.+))$")


def parse_tag(tag: str) -> tuple[str, str | None]:
    """('B', 'PER') for 'B-PER', ('O', None) for 'O'; ValueError for anything else."""
    match = TAG.match(tag)
    if not match:
        raise ValueError(f"invalid tag {tag!r} (expected O, or B-, I-, E- or S- followed by a type)")
    return (match.group(2), match.group(3)) if match.group(2) else ("O", None)


def detect_scheme(tag_sequences) -> str:
    """'bioes' if any E-/S- tag occurs; 'iob1' if some entity starts with I-; else 'iob2'."""
    starts_with_i = False
    for tags in tag_sequences:
        previous = "O"
        for tag in tags:
            prefix, kind = parse_tag(tag)
            if prefix in ("E", "S"):
                return "bioes"
            if prefix == "I" and parse_tag(previous)[1] != kind:
                starts_with_i = True
            previous = tag
    return "iob1" if starts_with_i else "iob2"


def to_iob2(tags: list[str], scheme: str) -> list[str]:
    """Convert one sentence's tags from `scheme` ('iob1', 'iob2' or 'bioes') to IOB2."""
    converted, previous_kind = [], None
    for tag in tags:
        prefix, kind = parse_tag(tag)
        if scheme == "bioes":
            prefix = {"S": "B", "E": "I"}.get(prefix, prefix)
        elif prefix in ("E", "S"):
            raise ValueError(f"tag {tag!r} is not valid in {scheme.upper()}")
        if prefix == "I" and previous_kind != kind:
            prefix = "B"  # IOB1 (and sloppy IOB2): an entity that starts with I-
        converted.append("O" if prefix == "O" else f"{prefix}-{kind}")
        previous_kind = kind
    return converted


def tags_to_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """IOB2 tags -> [(type, start, end)] with `end` inclusive, as seqeval and CLUENER count."""
    spans, start, kind = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, tag_kind = parse_tag(tag)
        if start is not None and (prefix != "I" or tag_kind != kind):
            spans.append((kind, start, i - 1))
            start = None
        if prefix in ("B", "I") and start is None:
            start, kind = i, tag_kind
    return spans


def spans_to_tags(spans, length: int) -> list[str]:
    """[(type, start, end inclusive)] -> IOB2 tags; overlapping spans are an error naming both."""
    tags = ["O"] * length
    owner = [None] * length
    for span in sorted(spans, key=lambda s: (s[1], s[2])):
        kind, start, end = span
        if not 0 <= start <= end < length:
            raise ValueError(f"span {span} is outside the text (length {length})")
        for i in range(start, end + 1):
            if owner[i] is not None:
                raise ValueError(f"spans {owner[i]} and {span} overlap")
            owner[i] = span
            tags[i] = ("B-" if i == start else "I-") + kind
    return tags


def label_list_for(tag_sequences) -> list[str]:
    """'O', then B- and I- of every type in alphabetical order; I-X is always there when B-X is."""
    kinds = sorted({parse_tag(tag)[1] for tags in tag_sequences for tag in tags} - {None})
    return ["O"] + [f"{prefix}-{kind}" for kind in kinds for prefix in ("B", "I")]


def entity_types(label_list: list[str]) -> list[str]:
    """The entity types of an IOB2 tag set (B-PER, I-PER, ... -> PER), sorted."""
    return sorted({parse_tag(label)[1] for label in label_list if label != "O"})


def forbidden_transitions(tag_sequences: list[list[str]]) -> int:
    """How many places in these IOB2 sequences no scheme allows (`O I-X`, `B-X I-Y`, a sentence opening with `I-X`)."""
    count = 0
    for tags in tag_sequences:
        previous = "O"
        for tag in tags:
            prefix, kind = parse_tag(tag)
            if prefix == "I" and not (parse_tag(previous)[0] in ("B", "I") and parse_tag(previous)[1] == kind):
                count += 1
            previous = tag
    return count
