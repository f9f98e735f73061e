"""Explanations written three ways: a self-contained HTML page, a PNG of the same, and the scores as JSON.

Words are shaded by their attribution towards the explained class (the predicted one unless chosen): green for, red
against, the strongest word of each text at full colour. The page needs no internet (inline CSS, no
scripts); each word's score is in its tooltip.
"""

import html
import json
import logging
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common.training.output_dir import final_path  # noqa: E402

logger = logging.getLogger(__name__)


def _shade(score: float, scale: float) -> tuple[float, float, float, float]:
    strength = min(abs(score) / scale, 1.0) if scale else 0.0
    return (0.1, 0.6, 0.2, strength * 0.75) if score >= 0 else (0.85, 0.15, 0.15, strength * 0.75)


def _css(rgba) -> str:
    r, g, b, a = rgba
    return f"rgba({int(r * 255)},{int(g * 255)},{int(b * 255)},{a:.2f})"


def _pieces(explanation: dict, segment: int = 0):
    """(piece of text, score or None) in order: one text's words and the text between them, so nothing is lost."""
    text = explanation["text"] if segment == 0 else explanation.get("text_pair") or ""
    position, segments = 0, explanation.get("segments") or [0] * len(explanation["words"])
    for (start, end), score, word_segment in zip(explanation["spans"], explanation["scores"], segments):
        if word_segment != segment:
            continue
        if start > position:
            yield text[position:start], None
        yield text[start:end], score
        position = end
    if position < len(text):
        yield text[position:], None


def _segments(explanation: dict) -> list[int]:
    """The segments to show: the text, and the second text of a pair."""
    return [0, 1] if explanation.get("text_pair") is not None else [0]


def _heading(e: dict) -> str:
    if e.get("multi_label"):
        right = e["true_label"] is not None and (e["label"] in e["predicted"]) == (
            e["label"] in e["true_label"].split(", "))
        verdict = "" if e["true_label"] is None else " (right)" if right else " (wrong)"
        return (f"explained {e['label']} (probability {e['probabilities'][e['label']]:.3f}){verdict}; predicted "
                f"{', '.join(e['predicted']) or 'no label'}" + (
                    f"; true {e['true_label'] or 'no label'}" if e["true_label"] is not None else ""))
    verdict = "" if e["true_label"] is None else (" (correct)" if e["true_label"] == e["label"] else " (wrong)")
    probabilities = ", ".join(f"{name} {p:.3f}" for name, p in e["probabilities"].items())
    return (f"predicted {e['label']}" + (f", true {e['true_label']}" if e["true_label"] is not None else "")
            + f"{verdict}; probabilities: {probabilities}")


def write_html(path, explanations: list[dict], title: str) -> Path:
    """A self-contained page (no script, no link): each text with its words shaded by score."""
    blocks = []
    for e in explanations:
        scale = max((abs(s) for s in e["scores"]), default=0.0)
        words = '</div><div class="text pair">'.join(
            "".join(html.escape(piece) if score is None else
                    f'<span style="background:{_css(_shade(score, scale))}" title="{score:+.4f}">'
                    f"{html.escape(piece)}</span>" for piece, score in _pieces(e, segment))
            for segment in _segments(e))
        note = " The text was longer than the model's input: only its start is explained." if e["truncated"] else ""
        blocks.append(f'<div class="example"><div class="head">{html.escape(_heading(e))}</div>'
                      f'<div class="text">{words}</div><div class="check">sum of scores {sum(e["scores"]):+.4f}; '
                      f'F(text) - F(baseline) {e["f_text"] - e["f_baseline"]:+.4f}; convergence delta '
                      f'{e["convergence_delta"]:+.2e}.{html.escape(note)}</div></div>')
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; color: #222; }}
.example {{ border: 1px solid #ccc; border-radius: 6px; padding: 0.8em 1em; margin: 1em 0; }}
.head {{ font-weight: bold; margin-bottom: 0.5em; }}
.text {{ font-size: 1.15em; line-height: 1.9; }}
.text span {{ padding: 0.1em 0.15em; border-radius: 3px; }}
.pair {{ border-top: 1px dashed #bbb; margin-top: 0.4em; padding-top: 0.3em; }}
.check {{ color: #666; font-size: 0.85em; margin-top: 0.5em; }}
.legend span {{ padding: 0.1em 0.4em; border-radius: 3px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="legend">Integrated Gradients towards the class explained: <span style="background:rgba(25,153,51,0.75)">for
</span> <span style="background:rgba(216,38,38,0.75)">against</span>; the strongest word of each text at full colour.
Hover a word for its score. A text pair shows its second text under the first.</p>
{''.join(blocks)}
</body></html>
"""
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path


CJK_FONTS = ["Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Source Han Sans SC",
             "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC"]


def _font_family(explanations: list[dict]) -> list[str]:
    """DejaVu Sans, then a CJK font for Chinese text if one is installed (the PNG shows boxes without one)."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    cjk = [name for name in CJK_FONTS if name in installed]
    texts = "".join(e["text"] + (e.get("text_pair") or "") for e in explanations)
    if not cjk and any("\u4e00" <= ch <= "\u9fff" for ch in texts):
        logger.warning("No CJK font is installed: explanations.png shows boxes for Chinese characters "
                       "(explanations.html shows them with the browser's fonts)")
    return ["DejaVu Sans", *cjk]


def write_png(path, explanations: list[dict], title: str, width: float = 10.0) -> Path:
    """The same shaded words, laid out line by line with matplotlib (measured first, then placed)."""
    with warnings.catch_warnings(), matplotlib.rc_context({"font.family": _font_family(explanations)}):
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")  # said once above
        return _write_png(path, explanations, title, width)


def _write_png(path, explanations: list[dict], title: str, width: float) -> Path:
    margin, line, space = 0.15, 0.3, 0.07
    scratch = plt.figure(figsize=(width, 2))
    renderer = scratch.canvas.get_renderer()

    def measure(piece: str) -> float:
        text = scratch.text(0, 0, piece, fontsize=10)
        size = text.get_window_extent(renderer).width / scratch.dpi
        text.remove()
        return size

    placed, y = [("title", title, margin, 0.35, None)], 0.35 + 0.25  # (kind, text, x, y from the top, colour)
    for e in explanations:
        placed.append(("head", _heading(e), margin, y, None))
        y += line
        scale = max((abs(s) for s in e["scores"]), default=0.0)
        for segment in _segments(e):
            x = margin
            if segment == 1:  # the second text of a pair on its own line, marked
                y += line
                placed.append(("head", "second text:", x, y, None))
                x += measure("second text:") + space
            for piece, score in _pieces(e, segment):
                for word in piece.split():
                    size = measure(word)
                    if x + size > width - margin and x > margin:
                        x, y = margin, y + line
                    placed.append(("word", word, x, y, None if score is None else _shade(score, scale)))
                    x += size + space
        y += line * 1.6
    plt.close(scratch)
    height = y + 0.1
    figure = plt.figure(figsize=(width, height))
    for kind, text, x, top, colour in placed:
        style = {"title": {"fontsize": 12, "weight": "bold"}, "head": {"fontsize": 9, "weight": "bold"},
                 "word": {"fontsize": 10}}[kind]
        box = {"facecolor": colour, "edgecolor": "none", "pad": 1.5} if colour is not None else None
        figure.text(x / width, 1 - top / height, text, va="top", bbox=box, **style)
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_explanations(folder, explanations, title: str = "Why the model said it") -> list[Path]:
    """explanations.html, explanations.png and explanations.json in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = [e.to_dict() if hasattr(e, "to_dict") else e for e in explanations]
    written = [write_html(folder / "explanations.html", records, title),
               write_png(folder / "explanations.png", records, title)]
    json_path = folder / "explanations.json"
    json_path.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    written.append(json_path)
    logger.info(f"Explanations of {len(records)} text(s) written to {final_path(folder)}/explanations.html (.png, .json)")
    return written
