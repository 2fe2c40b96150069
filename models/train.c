/*
 * train.c - training through the C API, and each feature's training distribution.
 *
 * Training is a pure function of (rows, labels, parameters): binary:logistic with a fixed
 * seed, no subsampling, so the same inputs give byte-identical models. The quantile bins
 * written to the manifest are computed here from the training rows, because only here are
 * the rows at hand.
 */
#include "models/model_impl.h"
#include "models/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void vg_train_params_default(vg_train_params_t *params)
{
    params->trees = 100;
    params->max_depth = 6;
    params->eta = 0.3;
    params->scale_pos_weight = 1.0;
    params->seed = 0;
    params->nthread = 1;
    params->tree_method = "hist";
    params->valid_rows = NULL;
    params->valid_labels = NULL;
    params->valid_nrows = 0;
    params->early_stopping_rounds = 0;
    params->progress = NULL;
    params->progress_ctx = NULL;
}

static int double_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Decile cut points of feature f's non-missing values (the value at rank floor(q * (m - 1))
 * for q = 0.1 .. 0.9), duplicates removed, then the bin shares of the same rows. */
static void compute_bins(vg_feature_bins_t *b, const float *rows, size_t nrows, size_t nf, size_t f,
                         double *scratch)
{
    size_t m = 0;
    for (size_t r = 0; r < nrows; r++) {
        float v = rows[r * nf + f];
        if (!isnan(v))
            scratch[m++] = v;
    }
    qsort(scratch, m, sizeof(*scratch), double_cmp);
    free(b->edges);
    free(b->shares);
    b->edges = vg_xcalloc(9, sizeof(double));
    b->nedges = 0;
    for (int q = 1; m > 0 && q <= 9; q++) {
        double v = scratch[(size_t)floor(q / 10.0 * (double)(m - 1))];
        if (b->nedges == 0 || v > b->edges[b->nedges - 1])
            b->edges[b->nedges++] = v;
    }
    b->shares = vg_xcalloc(b->nedges + 1, sizeof(double));
    vg_metric_bin_shares(rows + f, nrows, nf, b->edges, b->nedges, b->shares, &b->missing);
}

const vg_feature_bins_t *vg_model_score_bins(const vg_model_t *model)
{
    return &model->score_bins;
}

int vg_model_rounds(const vg_model_t *model)
{
    return model->rounds;
}

double vg_model_valid_ap(const vg_model_t *model)
{
    return model->valid_ap;
}

vg_model_t *vg_model_train(const float *rows, const float *labels, size_t nrows, size_t nfeatures,
                           const char *const *feature_names, const vg_train_params_t *params,
                           char *errbuf, size_t errlen)
{
    if (nrows == 0 || nfeatures == 0) {
        vg_errf(errbuf, errlen, VG_ERR_INPUT, "nothing to train on (%zu rows, %zu features)", nrows,
                nfeatures);
        return NULL;
    }
    if (params->trees < 1 || params->max_depth < 1 || !(params->eta > 0) ||
        !(params->scale_pos_weight > 0)) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG,
                "training parameters out of range: trees and max depth must be at least 1, "
                "eta and scale_pos_weight positive");
        return NULL;
    }
    /* Only XGBoost's CPU tree methods; the name stored in the model is a literal, so the model
     * never points into the caller's parameters. */
    static const char *const methods[] = {"hist", "exact", "approx"};
    const char *method = NULL;
    for (size_t i = 0; i < VG_ARRAY_LEN(methods); i++)
        if (!params->tree_method || strcmp(params->tree_method, methods[i]) == 0) {
            method = methods[i];
            break;
        }
    if (!method) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG, "tree method %s: use hist, exact or approx",
                params->tree_method);
        return NULL;
    }
    vg_xgb_train_params_t xp = {
        .trees = params->trees,
        .max_depth = params->max_depth,
        .eta = params->eta,
        .scale_pos_weight = params->scale_pos_weight,
        .seed = params->seed,
        .nthread = params->nthread > 0 ? params->nthread : 1,
        .tree_method = method,
        .valid_rows = params->valid_rows,
        .valid_labels = params->valid_labels,
        .valid_nrows = params->valid_rows && params->valid_labels ? params->valid_nrows : 0,
        .early_stopping_rounds = params->early_stopping_rounds,
        .metric = vg_metric_ap,
        .progress = params->progress,
        .progress_ctx = params->progress_ctx,
    };
    vg_xgb_train_result_t result;
    vg_xgb_t *xgb = vg_xgb_train(rows, labels, nrows, nfeatures, &xp, &result, errbuf, errlen);
    if (!xgb)
        return NULL;
    vg_model_t *model = vg_model_wrap(xgb, feature_names, nfeatures, errbuf, errlen);
    if (!model)
        return NULL;
    model->params = *params;
    model->params.tree_method = method;
    /* The data pointers were borrowed for the call only. */
    model->params.valid_rows = model->params.valid_labels = NULL;
    model->params.progress = NULL;
    model->params.progress_ctx = NULL;
    model->rounds = result.rounds;
    model->valid_ap = result.valid_metric;
    model->train_rows = nrows;
    for (size_t r = 0; r < nrows; r++)
        model->train_positives += labels[r] != 0.0f;
    double *scratch = vg_xmalloc(nrows * sizeof(*scratch));
    for (size_t f = 0; f < nfeatures; f++)
        compute_bins(&model->bins[f], rows, nrows, nfeatures, f, scratch);
    /* The training scores' distribution, the reference for score drift. */
    float *scores = vg_xmalloc(nrows * sizeof(*scores));
    if (vg_model_score(model, rows, nrows, scores, errbuf, errlen) != VG_OK) {
        free(scores);
        free(scratch);
        vg_model_free(model);
        return NULL;
    }
    compute_bins(&model->score_bins, scores, nrows, 1, 0, scratch);
    free(scores);
    free(scratch);
    return model;
}
