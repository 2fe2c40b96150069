/*
 * dataset.h - training and evaluation sets from served decisions and labels.
 *
 * A decision (DESIGN.md) carries the feature vector exactly as the engine served it, as an
 * object name -> value; joining decisions with labels therefore gives training rows with no
 * train/serve skew. Decisions and labels are JSON lines files.
 */
#ifndef VG_MODELS_DATASET_H
#define VG_MODELS_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"

typedef struct vg_dataset {
    size_t nrows;
    size_t nfeatures;
    char **features; /* names, in column order */
    float *rows;     /* nrows x nfeatures, row-major, NAN = missing or null */
    float *labels;   /* 1 fraud, 0 legit */
    int64_t *ts;     /* decision time, epoch ms */
    uint64_t *card;  /* vg_hash64 of card_id */
    char *catalog;   /* the "catalog" version of the first decision read ("" if none) */
    /* What the join did, for the progress line and the manifest. */
    size_t decisions_read; /* decisions in the window */
    size_t labelled_fraud; /* rows labelled fraud */
    size_t labelled_legit; /* rows labelled legit by a label */
    size_t matured_legit;  /* rows with no label after the maturity period: legit */
    size_t immature;       /* rows left out: unlabelled and too recent */
    size_t duplicates;     /* decisions for a txn_id already seen (the last one is kept) */
    size_t known_dropped;  /* rows of cards already known compromised (drop_known_frauds) */
} vg_dataset_t;

typedef struct vg_dataset_opts {
    int64_t from_ms, to_ms; /* decisions with from <= ts < to */
    /* Labels count only if known (label ts) at or before as_of_ms; INT64_MAX for evaluation
     * on ground truth. An unlabelled decision counts as legit once as_of - ts >= maturity_ms,
     * and is left out before. */
    int64_t as_of_ms;
    int64_t maturity_ms;
    /* Columns to extract (e.g. a model's features); NULL = the keys of the first decision's
     * "features" object, in order. */
    const char *const *features;
    size_t nfeatures;
    /* The Fraud Detection Handbook's test set: when set, a row is dropped if its card had a
     * transaction at or after known_from_ms, before to_ms, whose fraud label was known (label
     * ts) by the start of the row's UTC day. Such cards are blocked already; scoring them
     * again says nothing about the model. */
    int drop_known_frauds;
    int64_t known_from_ms;
} vg_dataset_opts_t;

/*
 * Reads decisions and labels files and joins them into *ds (which the caller frees with
 * vg_dataset_free). Lines that are not valid decisions or labels are an error naming the
 * file and line: training on silently skipped data is worse than not training. A decision
 * whose top-level ts lies outside the window (and outside [known_from, to) when dropping
 * known frauds) is skipped after reading only its ts, so a bad line there goes unnoticed:
 * a full parse of a long history would cost 20x more.
 */
vg_err_t vg_dataset_load(const char *decisions_path, const char *labels_path,
                         const vg_dataset_opts_t *opts, vg_dataset_t *ds, char *errbuf,
                         size_t errlen);
void vg_dataset_free(vg_dataset_t *ds);

/* Parses "FROM..TO" (RFC 3339 dates or times; a bare date means midnight UTC) into
 * [from, to) in epoch ms. */
vg_err_t vg_parse_window(const char *s, int64_t *from_ms, int64_t *to_ms, char *errbuf,
                         size_t errlen);

/* ---- evaluation ---- */

typedef struct vg_model vg_model_t;

/* A model's figures on a dataset (see metrics.h for each definition). */
typedef struct vg_eval {
    size_t rows, frauds, days;
    double auc_roc, average_precision;
    size_t k;
    double card_precision_at_k;
    double threshold, precision, recall;
} vg_eval_t;

/*
 * Scores ds with model (ds's columns must be the model's features, in order: load the
 * dataset with opts.features = the model's) and computes the figures; days for card
 * precision@k are UTC calendar days of the decision time. scores (optional, ds->nrows) gets
 * the scores.
 */
vg_err_t vg_model_evaluate(vg_model_t *model, const vg_dataset_t *ds, size_t k, double threshold,
                           vg_eval_t *out, float *scores, char *errbuf, size_t errlen);

#endif
