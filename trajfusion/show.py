"""Look inside a fused dataset: rows with each segment kind in its own colour.

    python -m trajfusion.show outputs/fused/adaptive-<data_id> --n 2
    python -m trajfusion.show outputs/fused/adaptive-<data_id> --id math-l5-0042
    python -m trajfusion.show outputs/fused/adaptive-<data_id> --n 5 --html rows.html   # one self-contained page

Each row shows its error rate r, distinct wrong answers u, error budget k, the answer groups and
models of the fused wrong paths, and the length of its RFT twin (the same problem in an RFT dataset
of the same pool, when one was built beside it).
"""

from __future__ import annotations

import argparse
import html
import sys
from dataclasses import dataclass
from pathlib import Path

from trajfusion.io import DataError, atomic_write_bytes, read_json, read_jsonl

# kind → (terminal style, HTML background); the HTML colours are what the browser test looks for
KINDS = {
    "error": ("bold red", "#ffc9c9"),
    "reflection": ("yellow", "#ffe08a"),
    "correct": ("green", "#b8f0c0"),
    "feedback": ("cyan", "#b9d7ff"),
    "answer": ("bold magenta", "#e3c6ff"),
    "format": ("dim", "#e6e6e6"),
}
LEGEND = ("error", "reflection", "correct", "feedback", "answer")


@dataclass
class Shown:
    row: dict
    twin_tokens: int | None  # n_tokens of the same problem in the RFT dataset of the same pool


def assistant_text(row: dict) -> str:
    return next(m["content"] for m in row["messages"] if m["role"] == "assistant")


def prompt_text(row: dict) -> str:
    return next((m["content"] for m in row["messages"] if m["role"] == "user"), "")


def pieces(row: dict) -> list[tuple[str, str]]:
    """(kind, text) covering the whole assistant message; text outside every segment is `format`."""
    text, out, at = assistant_text(row), [], 0
    for seg in sorted(row.get("segments") or [], key=lambda s: s["start"]):
        if seg["start"] > at:
            out.append(("format", text[at:seg["start"]]))
        out.append((seg["kind"], text[seg["start"]:seg["end"]]))
        at = max(at, seg["end"])
    if at < len(text):
        out.append(("format", text[at:]))
    return out


def facts(item: Shown) -> list[tuple[str, str]]:
    """The row's numbers, as label/value pairs (the same in both views)."""
    row = item.row
    errors = [s for s in row.get("sources") or [] if s["kind"] == "error"]
    correct = [s for s in row.get("sources") or [] if s["kind"] == "correct"]
    groups = ", ".join(f"g{s['group']}={s['pred']}" for s in errors) or "-"
    models = sorted({s["model"] for s in row.get("sources") or []})
    if row.get("fusion") == "rft":
        twin = "this is the RFT row"
    elif item.twin_tokens is None:
        twin = "no RFT dataset of this pool beside it (python build_data.py fusion=rft)"
    else:
        twin = f"{item.twin_tokens} tokens (this row {row.get('n_tokens')}, +{row.get('n_tokens', 0) - item.twin_tokens})"
    return [
        ("id", str(row["id"])), ("fusion", str(row.get("fusion"))),
        ("r", f"{row['r']:.3f}  ({row.get('n_wrong')} wrong of {row.get('K')} samples)" if row.get("r") is not None else "-"),
        ("u", f"{row.get('u')} distinct wrong answers"),
        ("k", f"{row.get('k')} (k_max {row.get('k_max')}, alpha {row.get('alpha')}); fused errors {row.get('n_errors')}"),
        ("answer", str(row.get("answer"))),
        ("error groups", groups),
        ("models", ", ".join(models) + (f"; correct path from {correct[0]['model']}" if correct else "")),
        ("tokens", str(row.get("n_tokens"))), ("RFT twin", twin),
    ]


def _same_pool(a: dict, b: dict) -> bool:
    ia, ib = a.get("identity") or {}, b.get("identity") or {}
    return all(ia.get(k) == ib.get(k) for k in ("pool", "verifier", "budget", "correct", "seed"))


def rft_twin_tokens(dataset_dir: Path) -> dict[str, int]:
    """Problem id → n_tokens in an RFT dataset of the same pool, verifier and budget next to this one."""
    manifest = read_json(dataset_dir / "manifest.json")
    for candidate in sorted(dataset_dir.parent.glob("rft-*")):
        other = candidate / "manifest.json"
        if candidate != dataset_dir and other.exists() and (candidate / "data.jsonl").exists() and _same_pool(manifest, read_json(other)):
            return {row["id"]: row["n_tokens"] for _, row in read_jsonl(candidate / "data.jsonl")}
    return {}


def select(dataset_dir: Path, ids: list[str] | None, n: int) -> list[Shown]:
    data = dataset_dir / "data.jsonl"
    if not data.exists():
        raise ValueError(f"{dataset_dir}: no data.jsonl (give a directory under <data_root>/fused/)")
    chosen: list[dict] = []
    for _, row in read_jsonl(data):
        if ids is not None:
            if row["id"] in ids:
                chosen.append(row)
        elif len(chosen) < n:
            chosen.append(row)
        else:
            break
    if ids is not None:
        missing = sorted(set(ids) - {r["id"] for r in chosen})
        if missing:
            raise ValueError(f"{data}: no row with id {', '.join(missing)}")
    twins = rft_twin_tokens(dataset_dir)
    return [Shown(row, twins.get(row["id"])) for row in chosen]


# ----------------------------------------------------------------------------- terminal


def render_terminal(items: list[Shown], dataset_dir: Path, console=None) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    legend = Text("segments: ")
    for kind in LEGEND:
        legend.append(f" {kind} ", style=KINDS[kind][0])
    console.print(Text(f"{dataset_dir}", style="bold"), legend)
    for item in items:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for label, value in facts(item):
            table.add_row(label, value)
        body = Text()
        for kind, text in pieces(item.row):
            body.append(text, style=KINDS.get(kind, ("", ""))[0])
        console.print(Panel(table, title=f"row {item.row['id']}", expand=False))
        console.print(Text("problem: ", style="bold") + Text(prompt_text(item.row)))
        console.print(body)
        console.print()


# ----------------------------------------------------------------------------- HTML

_CSS = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#111}
table.facts{border-collapse:collapse;margin:8px 0}table.facts td{padding:2px 12px 2px 0;vertical-align:top}
table.facts td:first-child{font-weight:600}
.msg{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:13px;line-height:1.5;border:1px solid #ccc;padding:10px}
.row{margin-bottom:32px}.legend span{padding:2px 8px;margin-right:6px;font-family:ui-monospace,monospace}
""" + "".join(f".k-{kind}{{background:{colour}}}" for kind, (_, colour) in KINDS.items())


def render_html(items: list[Shown], dataset_dir: Path) -> str:
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(dataset_dir.name)}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{esc(dataset_dir.name)}</h1><p>{esc(str(dataset_dir))}</p>",
             "<p class='legend'>" + "".join(f"<span class='k-{k}'>{k}</span>" for k in LEGEND) + "</p>"]
    for item in items:
        rows = "".join(f"<tr><td>{esc(label)}</td><td>{esc(value)}</td></tr>" for label, value in facts(item))
        body = "".join(f"<span class='k-{esc(kind)}' title='{esc(kind)}'>{esc(text)}</span>" for kind, text in pieces(item.row))
        parts.append(f"<div class='row' id='{esc(str(item.row['id']))}'><h2>row {esc(str(item.row['id']))}</h2>"
                     f"<table class='facts'>{rows}</table><p><b>problem:</b> {esc(prompt_text(item.row))}</p>"
                     f"<div class='msg'>{body}</div></div>")
    parts.append("</body></html>\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", type=Path, help="a dataset directory, <data_root>/fused/<fusion>-<data_id>")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--id", action="append", dest="ids", help="row id to show (repeatable)")
    which.add_argument("--n", type=int, default=1, help="the first N rows (default 1)")
    parser.add_argument("--html", type=Path, help="write the same view as one self-contained HTML page")
    args = parser.parse_args(argv)
    try:
        items = select(args.dataset_dir, args.ids, args.n)
    except (DataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.html:
        atomic_write_bytes(args.html, render_html(items, args.dataset_dir).encode("utf-8"))
        print(f"wrote {args.html} ({len(items)} rows)")
    else:
        render_terminal(items, args.dataset_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
