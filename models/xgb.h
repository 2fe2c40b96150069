/*
 * xgb.h - vigil's narrow interface to libxgboost (internal to models/).
 *
 * xgb.c is the only file that includes xgboost/c_api.h; everything else in models/ talks to
 * a booster through these functions, which translate XGBoost's errors (XGBGetLastError) into
 * vg_err_t + errbuf at the boundary. A vg_xgb_t owns one BoosterHandle. Prediction output is
 * copied into caller memory, because XGBoost's own output buffers live only until the next
 * call on the same booster.
 */
#ifndef VG_MODELS_XGB_H
#define VG_MODELS_XGB_H

#include <stddef.h>

#include "engine/common.h"

typedef struct vg_xgb vg_xgb_t;

/* What a prediction returns, per row: the probability, the raw margin, or the per-feature
 * contributions (nfeatures + 1 values per row, the last being the bias). */
typedef enum vg_xgb_out {
    VG_XGB_PROB = 0,
    VG_XGB_MARGIN = 1,
    VG_XGB_CONTRIBS = 2,        /* exact TreeSHAP */
    VG_XGB_CONTRIBS_APPROX = 3, /* Saabas path attribution */
} vg_xgb_out_t;

/* The prediction paths of the C API that vigil measures (see docs/models.md). */
typedef enum vg_xgb_path {
    VG_XGB_DENSE = 0,   /* XGBoosterPredictFromDense: in-place, __array_interface__ */
    VG_XGB_DMATRIX = 1, /* XGDMatrixCreateFromMat + XGBoosterPredictFromDMatrix */
} vg_xgb_path_t;

/* Training parameters as XGBoost names them; see vg_train_params_t in models.h. */
typedef struct vg_xgb_train_params {
    int trees;
    int max_depth;
    double eta;
    double scale_pos_weight;
    unsigned long long seed;
    int nthread;
    const char *tree_method;
    /* Optional validation set for early stopping (valid_nrows == 0: none). */
    const float *valid_rows;
    const float *valid_labels;
    size_t valid_nrows;
    int early_stopping_rounds; /* 0: train every round */
    /* Scores the validation predictions (probabilities) after each round; higher is better. */
    double (*metric)(const float *scores, const float *labels, size_t n);
    /* Called after each round with the validation figure (NAN without validation). */
    void (*progress)(int round, int trees, double valid_metric, void *ctx);
    void *progress_ctx;
} vg_xgb_train_params_t;

/* What training did: rounds kept (the best round + 1 with early stopping) and its figure. */
typedef struct vg_xgb_train_result {
    int rounds;
    double valid_metric;
} vg_xgb_train_result_t;

/* Loads a model (XGBoost JSON or UBJ) from bytes. NULL with XGBoost's message on error. */
vg_xgb_t *vg_xgb_load(const void *data, size_t len, char *errbuf, size_t errlen);
/* Trains a binary:logistic booster on row-major float rows (NAN = missing). */
vg_xgb_t *vg_xgb_train(const float *rows, const float *labels, size_t nrows, size_t nfeatures,
                       const vg_xgb_train_params_t *params, vg_xgb_train_result_t *result,
                       char *errbuf, size_t errlen);
void vg_xgb_free(vg_xgb_t *xgb);

/* Serializes the model as "json" or "ubj" into a malloc'd buffer the caller frees. */
vg_err_t vg_xgb_save(vg_xgb_t *xgb, const char *format, char **data, size_t *len, char *errbuf,
                     size_t errlen);
/* Sets the booster's thread count for prediction (XGBoost's nthread parameter). */
vg_err_t vg_xgb_set_nthread(vg_xgb_t *xgb, int nthread, char *errbuf, size_t errlen);
/* Number of input features and of boosted rounds the model holds. */
vg_err_t vg_xgb_shape(vg_xgb_t *xgb, size_t *nfeatures, int *rounds, char *errbuf, size_t errlen);

/*
 * Predicts nrows rows (row-major, nfeatures floats each, NAN = missing) through the chosen
 * C API path into out: nrows values, or nrows * (nfeatures + 1) for contributions.
 */
vg_err_t vg_xgb_predict(vg_xgb_t *xgb, vg_xgb_path_t path, vg_xgb_out_t what, const float *rows,
                        size_t nrows, size_t nfeatures, float *out, char *errbuf, size_t errlen);

/* "1.7.4": the version of the linked libxgboost. */
void vg_xgb_version(char out[32]);

#endif
