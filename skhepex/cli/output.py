"""How the commands show results: progress lines and tables (standard library only)."""

import sys
import textwrap
import time

__all__ = ["COLUMN_HELP", "DEMO_COLUMNS", "NOT_WITHIN", "VARIANT_LEGEND", "Progress",
           "columns_text", "format_table", "rst_table"]

#: Footnote of the tables when a variant has no candidate within the tolerance.
NOT_WITHIN = ("* no candidate of this variant was within the tolerance on the validation "
              "split; the one with the best validation score is shown.")

#: One-line legend of the variants, printed above the tables.
VARIANT_LEGEND = ("variants: dense = no pruning; P = magnitude pruning only; Hunter = tile "
                  "pruning without permutation; PPTE = prune, permute, tile-prune, expand "
                  "(HE-PEx)")

#: Columns of the demo and bench tables, with their meaning.
COLUMN_HELP = {
    "variant": "the HE-PEx variant (see above)",
    "setting": "the selected candidate: weight sparsity s, tile sparsity t ('-': none)",
    "weight_ct": "weight ciphertexts (non-zero tiles) of the selected model",
    "ct_reduction": "fewer weight ciphertexts than dense, in %",
    "val_score": "validation accuracy (classification) or R2 (autoencoders): the "
                 "selection uses this split",
    "test_score": "held-out test score of the selected model: reported, never used to "
                  "select",
    "degradation": "relative loss of the test score against dense, in %; '*': no "
                   "candidate of the variant was within --tolerance",
    "he_ms_per_sample": "encrypted inference time per sample, end to end, in ms: the "
                        "median of --repeats timed runs after a warm-up, ± half their "
                        "range in % of the median",
    "packed_MB": "memory of the encoded model, in MiB",
    "he_agreement": "encrypted predictions equal to the plaintext ones, in %",
}
#: Columns of the tables, in order.
DEMO_COLUMNS = list(COLUMN_HELP)


def columns_text():
    """The ``columns:`` section of the commands' help.

    Returns
    -------
    text : str
        One line per column of :data:`COLUMN_HELP` (wrapped to 79 characters).
    """
    width = max(map(len, COLUMN_HELP))
    lines = [textwrap.fill(text, width=79, initial_indent=f"  {name:<{width}}  ",
                           subsequent_indent=" " * (width + 4), break_on_hyphens=False)
             for name, text in COLUMN_HELP.items()]
    return "columns:\n" + "\n".join(lines)


class Progress:
    """Progress lines with the elapsed time, on stderr.

    Parameters
    ----------
    quiet : bool, default=False
        Print nothing.

    Attributes
    ----------
    t0 : float
        ``time.perf_counter()`` at creation; the printed times are relative to it.
    """

    def __init__(self, quiet=False):
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, message):
        """Print one line ``[elapsed s] message`` unless quiet.

        Parameters
        ----------
        message : str
            The progress message.
        """
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:7.1f}s] {message}", file=sys.stderr,
                  flush=True)


def format_table(rows, columns, markdown=False):
    """Render rows as an aligned text or Markdown table.

    Parameters
    ----------
    rows : list of dict
        One dict per row; missing columns are left empty.
    columns : list of str
        Column names, in order (also the header).
    markdown : bool, default=False
        Render a Markdown (pipe) table instead of aligned plain text.

    Returns
    -------
    table : str
        The table, lines separated by newlines, without a trailing newline.
    """
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    if markdown:
        out = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |",
               "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |"
                for row in cells]
        return "\n".join(out)
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(out)


def rst_table(rows, columns):
    """Render rows as a reStructuredText ``list-table``.

    Parameters
    ----------
    rows : list of dict
        One dict per row; missing columns are left empty.
    columns : list of str
        Column names, in order (also the header row).

    Returns
    -------
    table : str
        The ``list-table`` directive; ``*`` in cells is escaped.
    """
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for i, row in enumerate([dict(zip(columns, columns))] + rows):
        for j, c in enumerate(columns):
            cell = str(row.get(c, "")).replace("*", r"\*")  # a footnote mark, not emphasis
            lines.append(("   * - " if j == 0 else "     - ") + cell)
    return "\n".join(lines)
