/*
 * backtest.h - judge rule sets and models against labels over decisions from a replay.
 *
 * A backtest does not run a second pipeline: `vigil replay` already writes, per
 * transaction, the features exactly as they were served and the original transaction. The
 * backtest reads those decision records, and for each side (a baseline and a candidate,
 * each a rule file and/or a model bundle) compiles the rules against the catalogue,
 * scores the rows with the side's model and evaluates the rules, both sides over the very
 * same feature vectors. Rules and models never touch state, so both sides see the state
 * the replay built.
 *
 * Labels judge with hindsight: a transaction is fraud if the labels say so, whatever the
 * label's ts (the latest label of a transaction, by label ts, wins; unlabelled = legit).
 *
 * Invariants: records are consumed in any order (days are kept as a range that grows both
 * ways); a record outside [from, to) is counted as skipped and judged by nothing; a side
 * that is absent (no rules and no model) is not reported. Record order matters only for
 * which changed-decision examples are kept (the first ones met, per transition).
 */
#ifndef VG_BACKTEST_H
#define VG_BACKTEST_H

#include "engine/common.h"

#include <stdint.h>
#include <stdio.h>

enum { VG_BT_BASELINE = 0, VG_BT_CANDIDATE = 1, VG_BT_SIDES = 2 };

typedef struct vg_backtest_opts {
    const char *catalog_path; /* required: the catalogue the decisions were replayed with */
    const char *rules_path[VG_BT_SIDES]; /* NULL: the side has no rules */
    const char *model_dir[VG_BT_SIDES];  /* NULL: the side has no model */
    const char *lists_dir;               /* NULL: each rule file's directory */
    int64_t from_ms;                     /* window [from_ms, to_ms), event time */
    int64_t to_ms;
    size_t examples_per_change; /* examples kept per from->to transition (default 5) */
} vg_backtest_opts_t;

void vg_backtest_opts_default(vg_backtest_opts_t *opts);

typedef struct vg_backtest vg_backtest_t;

/* Loads the catalogue, each side's rules and model. NULL + errbuf on error (a rule file's
 * errors, a bundle that does not match the catalogue), or when no side has rules or a
 * model. */
vg_backtest_t *vg_backtest_new(const vg_backtest_opts_t *opts, char *errbuf, size_t errlen);
void vg_backtest_free(vg_backtest_t *bt);

/* Non-zero when side s has rules or a model. */
int vg_backtest_has_side(const vg_backtest_t *bt, int side);

/* One label line (the labels contract). Bad lines are VG_ERR_INPUT with the reason. A label
 * added after decisions applies only to decisions added after it (add labels first). */
vg_err_t vg_backtest_add_label(vg_backtest_t *bt, const char *line, size_t len, char *errbuf,
                               size_t errlen);
/* Reads a labels file (JSON lines, plain or gzip); errors name the file and line. */
vg_err_t vg_backtest_load_labels(vg_backtest_t *bt, const char *path, char *errbuf, size_t errlen);

/* One decision record as `vigil replay` writes it (features, txn, catalog). Records are
 * evaluated in batches: call vg_backtest_finish() after the last one. VG_ERR_INPUT on a
 * record that does not parse or whose features do not match the catalogue. */
vg_err_t vg_backtest_add_decision(vg_backtest_t *bt, const char *line, size_t len, char *errbuf,
                                  size_t errlen);
/* Evaluates what is still buffered; after it, the reports below are complete. */
vg_err_t vg_backtest_finish(vg_backtest_t *bt, char *errbuf, size_t errlen);

/* Records judged (in the window) and skipped (outside it). */
uint64_t vg_backtest_judged(const vg_backtest_t *bt);
uint64_t vg_backtest_skipped(const vg_backtest_t *bt);

/* The report: as JSON (docs/backtest.md has the layout), as a plain-text table, and as a
 * self-contained HTML page (inline CSS and SVG, no script, no external resource; every
 * string from the data is escaped). */
void vg_backtest_json(const vg_backtest_t *bt, vg_buf_t *out);
void vg_backtest_table(const vg_backtest_t *bt, vg_buf_t *out);
void vg_backtest_html(const vg_backtest_t *bt, vg_buf_t *out);

#endif
