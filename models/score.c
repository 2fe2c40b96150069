/*
 * score.c - batched scoring of feature rows.
 *
 * vg_model_score is the engine's hot path: one call per micro-batch through
 * XGBoosterPredictFromDense (in-place prediction over the caller's row-major array, no
 * DMatrix built), with the booster at nthread = 1 unless vg_model_set_threads says otherwise:
 * the engine scores on one thread and the other cores belong to librdkafka and RocksDB
 * (tests/bench/bench_model.c, docs/models.md). Other paths stay callable for the
 * benchmark and for tests that check one path against another.
 */
#include "models/model_impl.h"

#include <math.h>

vg_err_t vg_model_score(vg_model_t *model, const float *rows, size_t nrows, float *scores,
                        char *errbuf, size_t errlen)
{
    return vg_xgb_predict(model->xgb, VG_XGB_DENSE, VG_XGB_PROB, rows, nrows, model->nfeatures,
                          scores, errbuf, errlen);
}

vg_err_t vg_model_set_threads(vg_model_t *model, int nthread, char *errbuf, size_t errlen)
{
    if (nthread < 1)
        return vg_errf(errbuf, errlen, VG_ERR_CONFIG, "model threads must be at least 1, got %d",
                       nthread);
    vg_err_t err = vg_xgb_set_nthread(model->xgb, nthread, errbuf, errlen);
    if (!err)
        model->nthread = nthread;
    return err;
}

vg_err_t vg_model_score_path(vg_model_t *model, vg_model_path_t path, int nthread, int margin,
                             const float *rows, size_t nrows, float *scores, char *errbuf,
                             size_t errlen)
{
    size_t nf = model->nfeatures;
    if (path == VG_MODEL_PATH_TREES) {
        /* Float accumulation in tree order and the float sigmoid, as XGBoost's CPU
         * predictor does them. */
        for (size_t r = 0; r < nrows; r++) {
            float m = vg_trees_margin(model, rows + r * nf, model->base_margin);
            scores[r] = margin ? m : 1.0f / (1.0f + expf(-m));
        }
        return VG_OK;
    }
    vg_err_t err = VG_OK;
    if (nthread != model->nthread &&
        (err = vg_xgb_set_nthread(model->xgb, nthread, errbuf, errlen)))
        return err;
    err = vg_xgb_predict(model->xgb, path == VG_MODEL_PATH_DENSE ? VG_XGB_DENSE : VG_XGB_DMATRIX,
                         margin ? VG_XGB_MARGIN : VG_XGB_PROB, rows, nrows, nf, scores, errbuf,
                         errlen);
    if (nthread != model->nthread) {
        char ignored[VG_ERRLEN];
        vg_xgb_set_nthread(model->xgb, model->nthread, ignored, sizeof(ignored));
    }
    return err;
}

vg_err_t vg_model_contribs_xgb(vg_model_t *model, int approx, const float *rows, size_t nrows,
                               float *out, char *errbuf, size_t errlen)
{
    /* In-place prediction only does values and margins; contributions need a DMatrix. */
    return vg_xgb_predict(model->xgb, VG_XGB_DMATRIX,
                          approx ? VG_XGB_CONTRIBS_APPROX : VG_XGB_CONTRIBS, rows, nrows,
                          model->nfeatures, out, errbuf, errlen);
}
