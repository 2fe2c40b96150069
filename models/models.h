/*
 * models.h - XGBoost model bundles: load and check, score, explain, train, save.
 *
 * A bundle is a directory holding the XGBoost model (model.json or model.ubj, exactly as
 * libxgboost writes it) and manifest.json (format below, docs/models.md). A vg_model_t is
 * immutable after load except for scratch buffers used while scoring, so: one thread at a
 * time per model (the engine's processing thread); loading is independent per call, so hot
 * reload is "load the new bundle, swap the pointer between micro-batches, free the old one".
 * "No model" is a NULL vg_model_t * and every caller treats it as a normal state.
 *
 * manifest.json:
 *   { "format": "vigil-model-bundle/1", "model_file": "model.json",
 *     "features": ["amount", ...],            in model input order
 *     "catalog_version": "...", "xgboost_version": "1.7.4",
 *     "trained_at": "RFC 3339", "train_window": {"from": "...", "to": "..."},
 *     "train_rows": N, "train_positives": N, "params": {...},
 *     "metrics": {"auc_roc": 0.87, ...},      any name -> number
 *     "score_distribution": {"edges": [...], "shares": [...], "missing": 0.0},
 *     "distributions": [{"feature": "amount", "edges": [...], "shares": [...],
 *                        "missing": 0.0}, ...] }   quantile bins, see vg_feature_bins_t
 */
#ifndef VG_MODELS_H
#define VG_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"

typedef struct vg_model vg_model_t;

/*
 * Loads the bundle in directory dir and checks its manifest against the running catalogue:
 * features[0..nfeatures) must equal the manifest's features, same names in the same order,
 * and catalog_version the manifest's catalogue version. Returns NULL with a message in errbuf
 * on any problem, never crashes on a corrupt model file. The mismatch messages are exactly:
 *   "model bundle DIR does not match catalogue: missing features a, b; extra features c;
 *    reordered features d, e"
 * (only the parts that apply), where "missing" are catalogue features the bundle lacks,
 * "extra" are bundle features the catalogue lacks, and "reordered" are features both have
 * whose order among the common features differs (listed in catalogue order), and
 *   "model bundle DIR was trained on catalogue V1, running catalogue is V2".
 * features == NULL accepts the bundle's own features and catalog_version == NULL any
 * catalogue (for inspection and evaluation tools). The model is set to nthread = 1.
 */
vg_model_t *vg_model_load(const char *dir, const char *const *features, size_t nfeatures,
                          const char *catalog_version, char *errbuf, size_t errlen);
void vg_model_free(vg_model_t *model);

/* "BUNDLE@HASH": the bundle directory's base name and 16 hex digits of the content hash of
 * the model file and the manifest, so two bundles with equal bytes have equal versions.
 * Valid while the model lives. */
const char *vg_model_version(const vg_model_t *model);
/* The version a bundle directory would load as (vg_model_version), from its bytes alone,
 * without loading the model: what an engine polls to notice a new bundle at its path. Reads
 * the manifest and the model file it names; an error if either is missing. */
vg_err_t vg_bundle_version(const char *dir, char *out, size_t outlen, char *errbuf, size_t errlen);

/* The model's input features, in order; names valid while the model lives. */
size_t vg_model_nfeatures(const vg_model_t *model);
const char *vg_model_feature(const vg_model_t *model, size_t i);
/* The catalogue version from the manifest ("" for a freshly trained model). */
const char *vg_model_catalog_version(const vg_model_t *model);
/* The manifest's text as loaded or as it would be saved (NULL for a model never saved or
 * loaded); valid while the model lives. */
const char *vg_model_manifest_text(const vg_model_t *model);

/*
 * Scores nrows rows (row-major nrows x nfeatures floats, NAN = missing) into scores[nrows]:
 * the probability of fraud, exactly as libxgboost predicts it. Single-threaded; uses the
 * C API path measured fastest (in-place dense prediction, see docs/models.md).
 */
vg_err_t vg_model_score(vg_model_t *model, const float *rows, size_t nrows, float *scores,
                        char *errbuf, size_t errlen);

/* Sets the threads vg_model_score lets libxgboost use (default 1). More threads help large
 * batches only on a machine with idle cores; under load they cost far more than they give
 * (docs/models.md has the figures). */
vg_err_t vg_model_set_threads(vg_model_t *model, int nthread, char *errbuf, size_t errlen);

/* The C API's prediction paths, for benchmarks and for tests that compare paths. */
typedef enum vg_model_path {
    VG_MODEL_PATH_DENSE = 0,   /* XGBoosterPredictFromDense (in place) */
    VG_MODEL_PATH_DMATRIX = 1, /* XGDMatrixCreateFromMat + XGBoosterPredictFromDMatrix */
    VG_MODEL_PATH_TREES = 2,   /* vigil's own traversal of the compiled trees (no C API) */
} vg_model_path_t;

/* Like vg_model_score through a chosen path and thread count; margin != 0 returns the raw
 * margin (log-odds) instead of the probability. Restores the model's thread setting. */
vg_err_t vg_model_score_path(vg_model_t *model, vg_model_path_t path, int nthread, int margin,
                             const float *rows, size_t nrows, float *scores, char *errbuf,
                             size_t errlen);

/* One reason code: feature index (into the model's features), the row's value, and the
 * feature's contribution to the margin (log-odds). */
typedef struct vg_reason {
    uint32_t feature;
    float value;
    float contribution;
} vg_reason_t;

/*
 * Top-k feature contributions for one row, by |contribution| descending (ties: lower feature
 * index first), into out[0..*nout), *nout = min(k, nfeatures). Contributions are Saabas path
 * attributions computed from the compiled trees: exact per path, bias + sum = raw margin
 * (docs/models.md explains the choice and its cost against TreeSHAP). Thread-safe: several
 * threads may explain with one model at once.
 */
vg_err_t vg_model_explain(vg_model_t *model, const float *row, size_t k, vg_reason_t *out,
                          size_t *nout, char *errbuf, size_t errlen);

/* All contributions of one row: contribs[nfeatures] and *bias, summing to the margin. */
void vg_model_contribs(const vg_model_t *model, const float *row, double *contribs, double *bias);

/* The C API's own contributions for nrows rows (nrows x (nfeatures + 1), bias last):
 * approx = 0 is exact TreeSHAP, approx = 1 Saabas. The baseline vg_model_explain beats. */
vg_err_t vg_model_contribs_xgb(vg_model_t *model, int approx, const float *rows, size_t nrows,
                               float *out, char *errbuf, size_t errlen);

/* ---- training ---- */

typedef struct vg_train_params {
    int trees;               /* boosting rounds (default 100) */
    int max_depth;           /* default 6 */
    double eta;              /* learning rate (default 0.3) */
    double scale_pos_weight; /* weight of the fraud class (default 1) */
    uint64_t seed;           /* default 0; training is deterministic for a given seed */
    int nthread;             /* training threads (default 1; results do not depend on it) */
    const char *tree_method; /* "hist" (default), "exact", "approx" */
    /* Optional validation slice (e.g. the last days of the training window), borrowed for
     * the call: with early_stopping_rounds > 0, training stops when average precision on it
     * has not improved for that many rounds and keeps the best round's trees. */
    const float *valid_rows;
    const float *valid_labels;
    size_t valid_nrows;
    int early_stopping_rounds;
    /* Called after each round (for a progress line); valid_ap is NAN without validation. */
    void (*progress)(int round, int trees, double valid_ap, void *ctx);
    void *progress_ctx;
} vg_train_params_t;

void vg_train_params_default(vg_train_params_t *params);

/*
 * Trains a binary:logistic model through the C API on nrows rows (row-major, NAN = missing)
 * with labels 0/1, and computes each feature's quantile bins from the rows. The returned
 * model scores and explains like a loaded one; save it with vg_model_save_bundle. Feature
 * names are copied. NULL with a message on error.
 */
vg_model_t *vg_model_train(const float *rows, const float *labels, size_t nrows, size_t nfeatures,
                           const char *const *feature_names, const vg_train_params_t *params,
                           char *errbuf, size_t errlen);

/* Rounds the trained model kept (params->trees, or the best round + 1 with early stopping)
 * and the validation average precision at that round (NAN without validation). */
int vg_model_rounds(const vg_model_t *model);
double vg_model_valid_ap(const vg_model_t *model);

/* Evaluation figures written into the manifest. */
typedef struct vg_metric_kv {
    const char *name;
    double value;
} vg_metric_kv_t;

typedef struct vg_bundle_info {
    const char *catalog_version; /* required */
    const char *train_from;      /* training window, RFC 3339 or any text; NULL = "" */
    const char *train_to;
    int64_t trained_at_ms; /* 0 = now */
    const char *format;    /* "json" (default when NULL) or "ubj" */
    const vg_metric_kv_t *metrics;
    size_t nmetrics;
} vg_bundle_info_t;

/*
 * Writes model + manifest.json into dir (created if missing; existing files replaced, each
 * through a temporary file and rename). To publish a bundle to a running engine, write it to
 * a fresh directory and rename the directory into place. Sets the model's catalogue version,
 * manifest text and version as if it had been loaded from dir.
 */
vg_err_t vg_model_save_bundle(vg_model_t *model, const char *dir, const vg_bundle_info_t *info,
                              char *errbuf, size_t errlen);

/* ---- training distributions (for drift) ---- */

/* One feature's training distribution: nedges increasing cut points (deciles of the
 * non-missing training values, duplicates removed) define nedges + 1 bins, bin i holding
 * edges[i-1] < v <= edges[i]; shares[nedges + 1] are the share of training rows per bin and
 * missing the share of NAN, all summing to 1. */
typedef struct vg_feature_bins {
    size_t nedges;
    double *edges;
    double *shares;
    double missing;
} vg_feature_bins_t;

/* Feature i's bins, valid while the model lives. */
const vg_feature_bins_t *vg_model_bins(const vg_model_t *model, size_t i);
/* The deciles of the model's scores on its own training rows, for score drift. */
const vg_feature_bins_t *vg_model_score_bins(const vg_model_t *model);

#endif
