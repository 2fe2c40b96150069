/*
 * evaluate.c - a model's figures on a dataset: AUC ROC, average precision, card
 * precision@k per UTC day, precision and recall at a threshold. Scoring goes through
 * vg_model_score, the same path the engine serves with.
 */
#include "models/dataset.h"
#include "models/metrics.h"
#include "models/models.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

vg_err_t vg_model_evaluate(vg_model_t *model, const vg_dataset_t *ds, size_t k, double threshold,
                           vg_eval_t *out, float *scores, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (ds->nfeatures != vg_model_nfeatures(model))
        return vg_errf(errbuf, errlen, VG_ERR_INPUT,
                       "dataset has %zu columns, the model %zu features", ds->nfeatures,
                       vg_model_nfeatures(model));
    for (size_t i = 0; i < ds->nfeatures; i++)
        if (strcmp(ds->features[i], vg_model_feature(model, i)) != 0)
            return vg_errf(errbuf, errlen, VG_ERR_INPUT,
                           "dataset column %zu is %s, the model's feature %s", i, ds->features[i],
                           vg_model_feature(model, i));
    size_t n = ds->nrows;
    float *s = scores ? scores : vg_xmalloc((n ? n : 1) * sizeof(float));
    /* In micro-batch sized calls, like the engine. */
    vg_err_t err = VG_OK;
    for (size_t r = 0; r < n && !err; r += 2000) {
        size_t m = n - r < 2000 ? n - r : 2000;
        err = vg_model_score(model, ds->rows + r * ds->nfeatures, m, s + r, errbuf, errlen);
    }
    if (!err) {
        out->rows = n;
        for (size_t r = 0; r < n; r++)
            out->frauds += ds->labels[r] != 0.0f;
        out->auc_roc = vg_metric_auc(s, ds->labels, n);
        out->average_precision = vg_metric_ap(s, ds->labels, n);
        out->threshold = threshold;
        vg_metric_pr_at(s, ds->labels, n, threshold, &out->precision, &out->recall);
        vg_card_obs_t *obs = vg_xmalloc((n ? n : 1) * sizeof(*obs));
        for (size_t r = 0; r < n; r++) {
            int64_t day = ds->ts[r] / 86400000;
            if (ds->ts[r] < 0 && ds->ts[r] % 86400000)
                day--;
            obs[r] = (vg_card_obs_t){day, ds->card[r], s[r], ds->labels[r] != 0.0f};
        }
        out->k = k;
        out->card_precision_at_k = vg_metric_card_precision_at_k(obs, n, k, &out->days);
        free(obs);
    }
    if (s != scores)
        free(s);
    return err;
}
