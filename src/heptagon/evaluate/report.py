"""Tables of the quoted numbers (markdown for ``report.md``, rich for the terminal)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.table import Table

from heptagon.artifacts.metrics import (
    AnomalyMetrics,
    FlavourMetrics,
    Measured,
    MulticlassMetrics,
    RegressionMetrics,
    Rejection,
    SampleMetrics,
    Yields,
)

__all__ = [
    "SUMMARY_COLUMNS",
    "format_value",
    "markdown_report",
    "markdown_table",
    "rich_table",
    "summary_rows",
]

SUMMARY_COLUMNS = (
    "sample",
    "AUC",
    "accuracy",
    "1/eps_B @ eps_S=0.3",
    "1/eps_B @ eps_S=0.5",
    "eps_S @ eps_B=1%",
    "1/JSD @ eps_S=0.5",
)


def format_value(entry: Measured | None, digits: int = 4) -> str:
    """``value +- err`` with ``digits`` significant digits; a rejection with no background
    passing shows its lower limit (``> limit``)."""
    if entry is None:
        return "-"
    if entry.value is None:
        limit = entry.lower_limit if isinstance(entry, Rejection) else None
        return f"> {limit:.{digits}g}" if limit is not None else "-"
    text = f"{entry.value:.{digits}g}"
    return f"{text} +- {entry.err:.2g}" if entry.err is not None else text


def summary_rows(metrics_by_sample: Mapping[str, SampleMetrics]) -> list[list[str]]:
    """One row per sample of a classifier's headline numbers (a binary classifier's
    working points; a multi-class one's or a regression's headline only)."""
    rows = []
    for name, m in metrics_by_sample.items():
        if isinstance(m, RegressionMetrics):
            rows.append([name, "-", "-", "-", "-", "-", "-"])
        elif isinstance(m, AnomalyMetrics):  # the score's AUC, all held-out classes
            rows.append([name, format_value(m.auc), "-", "-", "-", "-", "-"])
        elif isinstance(m, MulticlassMetrics):
            rows.append([name, format_value(m.auc), format_value(m.accuracy), "-", "-", "-", "-"])
        else:
            rows.append(
                [
                    name,
                    format_value(m.auc),
                    format_value(m.accuracy),
                    format_value(m.rejection_at_eff.get("0.3")),
                    format_value(m.rejection_at_eff.get("0.5")),
                    format_value(m.eff_at_mistag.get("0.01")),
                    format_value(m.jsd_inverse_at_eff.get("0.5")),
                ]
            )
    return rows


def rich_table(title: str, metrics_by_sample: Mapping[str, SampleMetrics]) -> Table:
    """The summary as a rich table."""
    table = Table(*SUMMARY_COLUMNS, title=title)
    for row in summary_rows(metrics_by_sample):
        table.add_row(*row)
    return table


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _yields_section(name: str, yields: Yields) -> list[str]:
    """Expected events per process in the region and passing the best S/sqrt(B) cut."""
    rows = [[p, f"{v.region:.4g}", f"{v.passing:.4g}"] for p, v in yields.processes.items()]
    return [
        f"## {name}: expected events at {yields.lumi_fb:g} fb^-1",
        "",
        f"Signal {yields.signal}; best cut on its score {yields.best_cut:.4g}: "
        f"S/sqrt(B) = {yields.s_over_sqrt_b:.3g}.",
        "",
        markdown_table(["process", "region", "passing the cut"], rows),
    ]


def _anomaly_section(name: str, m: AnomalyMetrics) -> list[str]:
    """Per anomaly score and held-out class: AUC and the signal efficiency at the rate."""
    rows = []
    for score, by_class in m.scores.items():
        for c, v in by_class.items():
            at = v.eff_at_rate
            rate = f"{at.rate_hz / 1e3:.4g} kHz" + ("" if at.reached else " (lowest reachable)")
            rows.append([score, c, format_value(v.auc), rate, format_value(at.signal_eff)])
    return [
        f"## {name}: anomaly scores (background: {', '.join(m.background)})",
        "",
        f"Rates are eps_B x {m.reference_rate_hz / 1e6:g} MHz; the model's score is {m.score}.",
        "",
        markdown_table(["score", "signal", "AUC", "rate", "eps_S at the rate"], rows),
    ]


def _flavour_section(name: str, f: FlavourMetrics) -> list[str]:
    """The CMS discriminants as binary taggers and the BvsAll working points."""
    taggers = [
        ("BvsAll", "b vs uds+g", f.b_vs_light),
        ("BvsAll", "b vs c", f.b_vs_c),
        ("CvsL", "c vs uds+g", f.c_vs_light),
        ("CvsB", "c vs b", f.c_vs_b),
    ]
    rows = [
        [
            disc,
            pair,
            format_value(m.auc),
            format_value(m.rejection_at_eff.get("0.7")),
            ", ".join(f"{k}: {format_value(v, 3)}" for k, v in m.eff_at_mistag.items()) or "-",
        ]
        for disc, pair, m in taggers
    ]
    wps = [
        [k, f"{wp.light_mistag:g}", f"{wp.threshold:.4g}", f"{wp.b_eff:.4g}",
         f"{wp.c_eff:.4g}", f"{wp.light_eff:.4g}"]
        for k, wp in f.working_points.items()
    ]  # fmt: skip
    return [
        f"## {name}: heavy-flavour tagging (docs/flavour.md)",
        "",
        markdown_table(
            ["discriminant", "signal vs background", "AUC", "1/eps_B @ eps_S=0.7", "eps_S @ eps_B"],
            rows,
        ),
        "",
        markdown_table(["BvsAll WP", "light mistag", "cut", "b eff", "c eff", "light eff"], wps),
    ]


def markdown_report(
    title: str,
    metrics_by_sample: Mapping[str, SampleMetrics],
    plots: Sequence[Path],
    base: Path,
    notes: Sequence[str] = (),
) -> str:
    """``report.md``: the summary table (one row per test sample: the robustness check),
    per-class numbers for multi-class models, and the PNG plots (paths relative to
    ``base``)."""
    parts = [f"# {title}", ""]
    parts += [*notes, ""] if notes else []
    parts += [
        "Uncertainties: bootstrap over the test set. Rejections are 1/eps_B at the signal "
        "efficiency given; `> x` is a lower limit (95% CL) where no background passes.",
        "",
        markdown_table(SUMMARY_COLUMNS, summary_rows(metrics_by_sample)),
        "",
    ]
    for name, m in metrics_by_sample.items():
        if isinstance(m, MulticlassMetrics):
            for by_class, title in (
                (m.per_class, "one-vs-rest"),
                (m.pairwise_vs_QCD, "each vs QCD"),
            ):
                if by_class:
                    parts += [f"## {name}: {title}", ""]
                    parts.append(markdown_table(SUMMARY_COLUMNS, summary_rows(by_class)))
                    parts.append("")
        if isinstance(m, MulticlassMetrics) and m.flavour is not None:
            parts += [*_flavour_section(name, m.flavour), ""]
        if isinstance(m, AnomalyMetrics):
            parts += [*_anomaly_section(name, m), ""]
        elif not isinstance(m, RegressionMetrics) and m.yields is not None:
            parts += [*_yields_section(name, m.yields), ""]
    pngs = [p for p in plots if p.suffix == ".png"]
    if pngs:
        parts += ["## Plots", ""]
        parts += [f"![{p.stem}]({p.relative_to(base).as_posix()})" for p in pngs]
        parts.append("")
    return "\n".join(parts)
