"""Write an evaluation or A/B result as a report folder: results.json, report.md, report.html (inline SVG plots)."""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from typing import Any

SETS = ("forget", "paraphrased", "perturbed", "retain", "real_authors", "world_facts")
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]


def endpoint_table(result: dict[str, Any]) -> str:
    lines = [
        "| endpoint | set | n | leak (key-fact) | leak (ROUGE-L) | blocked | ROUGE-L recall | latency p50/p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ep in result["endpoints"]:
        for name in SETS:
            s = ep["sets"].get(name)
            if s:
                lines.append(
                    f"| {ep['name']} | {name} | {s['n']} | {s['leak_keyfact']:.1%} | {s['leak_rouge']:.1%} "
                    f"| {s['blocked']:.1%} | {s['rouge_recall_mean']:.3f} "
                    f"| {s['latency_ms_p50']:.1f} / {s['latency_ms_p95']:.1f} |"
                )
    return "\n".join(lines)


def attack_table(result: dict[str, Any]) -> str:
    """Per attack class, each endpoint's leak on forget cases and false blocks on their benign twins."""
    arms = [ep for ep in result["endpoints"] if "attacks" in ep]
    if not arms:
        return ""
    classes = sorted({c for ep in arms for c in ep["attacks"]["classes"]} - {"all"})

    def cell(figures: dict[str, Any] | None) -> str:
        if not figures:
            return "–"
        leak = "–" if figures["leak"] is None else f"{figures['leak']:.0%}"
        blocks = "–" if figures["false_blocks"] is None else f"{figures['false_blocks']:.0%}"
        return f"{leak} / {blocks}"

    head = "| attack (forget n / benign n) | " + " | ".join(ep["name"] for ep in arms) + " |"
    lines = [head, "|---|" + "---|" * len(arms)]
    for c in [*classes, "all"]:
        first = arms[0]["attacks"]["classes"].get(c) if c != "all" else arms[0]["attacks"]["all"]
        label = f"{'**all**' if c == 'all' else c} ({first['n']} / {first['benign_n']})" if first else c
        cells = [cell(ep["attacks"]["classes"].get(c) if c != "all" else ep["attacks"]["all"]) for ep in arms]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _svg_open(w: int, h: int) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">'


def _leak_vs_block(result: dict[str, Any]) -> str:
    """Scatter: leak on forget+paraphrased (x) against false blocks on retain (y), one point per endpoint."""
    w, h, pad = 460, 340, 50
    parts = [
        _svg_open(w, h),
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#333"/>',
        f'<line x1="{pad}" y1="10" x2="{pad}" y2="{h - pad}" stroke="#333"/>',
        f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">leak rate, forget + paraphrased (key-fact)</text>',
        f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">false blocks, retain</text>',
    ]
    points = []
    for ep in result["endpoints"]:
        f, p, r = (ep["sets"].get(k, {}) for k in ("forget", "paraphrased", "retain"))
        n = f.get("n", 0) + p.get("n", 0)
        leak = (f.get("leak_keyfact", 0) * f.get("n", 0) + p.get("leak_keyfact", 0) * p.get("n", 0)) / n if n else 0
        points.append((ep["name"], leak, r.get("blocked", 0.0)))
    xmax = min(1.0, max([0.05, *(x for _, x, _ in points)]) * 1.1)
    ymax = max([0.05, *(y for _, _, y in points)]) * 1.1
    for tick in range(5):
        tx, ty = tick / 4 * xmax, tick / 4 * ymax
        px, py = pad + tx / xmax * (w - pad - 10), h - pad - ty / ymax * (h - pad - 10)
        parts.append(f'<text x="{px}" y="{h - pad + 14}" text-anchor="middle">{tx:.0%}</text>')
        parts.append(f'<text x="{pad - 4}" y="{py + 4}" text-anchor="end">{ty:.1%}</text>')
    placed: list[tuple[float, float]] = []
    for i, (name, x, y) in enumerate(points):
        px, py = pad + x / xmax * (w - pad - 10), h - pad - y / ymax * (h - pad - 10)
        color = COLORS[i % len(COLORS)]
        ly = py - 6
        while any(abs(lx - px) < 80 and abs(ly - oy) < 12 for lx, oy in placed):
            ly -= 13  # stack labels of points that coincide
        placed.append((px, ly))
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{6 - min(i, 3)}" fill="{color}" fill-opacity="0.8"/>')
        parts.append(f'<text x="{px + 9:.1f}" y="{ly:.1f}" fill="{color}">{html.escape(name)}</text>')
    return "".join(parts) + "</svg>"


def _bars(result: dict[str, Any], metric: str, title: str, sets: tuple[str, ...], fmt: str = "{:.0%}") -> str:
    """Grouped bars: one group per question set, one bar per endpoint."""
    eps = result["endpoints"]
    w, h, pad, group = 220 + 110 * len(sets), 260, 50, 90
    values = [[ep["sets"].get(s, {}).get(metric, 0.0) or 0.0 for s in sets] for ep in eps]
    vmax = max([1e-9, *(v for row in values for v in row)])
    bar = group / max(1, len(eps))
    parts = [
        _svg_open(w, h),
        f'<text x="{pad}" y="14" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - 170}" y2="{h - pad}" stroke="#333"/>',
        f'<line x1="{pad}" y1="30" x2="{pad}" y2="{h - pad}" stroke="#333"/>',
        f'<text x="{pad - 4}" y="34" text-anchor="end">{fmt.format(vmax)}</text>',
        f'<text x="{pad - 4}" y="{h - pad}" text-anchor="end">{fmt.format(0)}</text>',
    ]
    for j, s in enumerate(sets):
        gx = pad + 10 + j * 110
        parts.append(f'<text x="{gx + group / 2}" y="{h - pad + 14}" text-anchor="middle">{s}</text>')
        for i, row in enumerate(values):
            bh = row[j] / vmax * (h - pad - 30)  # the y axis runs from y=30 down to the baseline
            x, y = gx + i * bar, h - pad - bh
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" height="{bh:.1f}" '
                f'fill="{COLORS[i % len(COLORS)]}"><title>{html.escape(eps[i]["name"])}: '
                f"{fmt.format(row[j])}</title></rect>"
            )
    for i, ep in enumerate(eps):
        parts.append(
            f'<rect x="{w - 160}" y="{34 + i * 14}" width="10" height="10" fill="{COLORS[i % len(COLORS)]}"/>'
            f'<text x="{w - 146}" y="{43 + i * 14}">{html.escape(ep["name"])}</text>'
        )
    return "".join(parts) + "</svg>"


def write_ab_report(result: dict[str, Any], out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = json.dumps(result, indent=2).encode()
    (out / "results.json").write_bytes(data)
    manifest = {
        "format": result.get("format"),
        "sha256": hashlib.sha256(data).hexdigest(),
        "registry_version": result.get("registry", {}).get("version"),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    cfg = result["config"]
    intro = (
        f"TOFU {cfg['split']} ({len(cfg['authors'])} authors forgotten), seed {cfg['seed']}, "
        f"retain questions: {cfg['retain_limit'] or 'all'}. Leak = the answer reveals the gold answer "
        "(key-fact match; ROUGE-L recall >= 0.5 shown beside it). Blocked = refused or filtered."
    )
    if "oracle:" in command:
        intro += (
            " Simulated: the oracle arms are memorizing reference models, and oracle:unlearned only simulates a "
            "weight-edited model; no weights were edited."
        )
    table = endpoint_table(result)
    attacks = attack_table(result)
    if attacks:
        attacks = (
            "## Attacks\n\nThe same attack cases against every endpoint, each cell: leak on the forget cases / "
            "false blocks on their benign twins.\n\n" + attacks + "\n\n"
        )
    (out / "report.md").write_text(
        f"# A/B report\n\n{intro}\n\nCommand:\n\n```\n{command}\n```\n\n{table}\n\n{attacks}"
        "Plots: see report.html (leak vs false blocks per endpoint; leak and blocks per question set; latency).\n"
    )
    plots = [
        _leak_vs_block(result),
        _bars(
            result,
            "leak_keyfact",
            "Gold answer revealed (key-fact): a leak on forget sets, utility on the others",
            SETS,
        ),
        _bars(result, "blocked", "Blocked share per question set", SETS),
        _bars(result, "latency_ms_p50", "Latency p50 (ms) per question set", SETS, "{:.1f} ms"),
    ]
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in line.strip("|").split("|")) + "</tr>"
        for line in table.splitlines()[2:]
    )
    header = "".join(f"<th>{html.escape(c.strip())}</th>" for c in table.splitlines()[0].strip("|").split("|"))
    (out / "report.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>forget-guard A/B report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}svg{margin:1em 1em 0 0}</style></head><body>"
        f"<h1>forget-guard A/B report</h1><p>{html.escape(intro)}</p><pre>{html.escape(command)}</pre>"
        f"<div>{''.join(plots)}</div><table><tr>{header}</tr>{rows}</table></body></html>"
    )
