/*
 * bench_model.c - what scoring and reason codes cost, per row, for a 100-tree depth-6 model
 * over 30 features (trained here on synthetic data, so the benchmark needs no files).
 *
 * Scoring: each C API path (in-place dense prediction, DMatrix + predict) at nthread 1 and 2,
 * batched (2,000 rows per call, a micro-batch) and single-row (500 calls of one row), plus
 * vigil's own traversal of the compiled trees for comparison. Reason codes: µs per flagged
 * row for vigil's Saabas contributions (vg_model_explain) against the C API's exact TreeSHAP
 * (pred_contribs) as the baseline, batched over the flagged rows of a micro-batch (2%) and
 * one row per call, and the C API's approximate (Saabas) contributions.
 *
 * Each figure is the best of REPS repetitions (a shared machine adds noise, never speed).
 * Usage: bench_model [rows-per-batch]
 */
#include "models/models.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NF     30
#define NTRAIN 2000
#define REPS   7

static uint64_t rng_state = 12345;
static double rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static void make_rows(float *rows, float *labels, size_t n)
{
    for (size_t r = 0; r < n; r++) {
        float *x = rows + r * NF;
        double z = -3.0;
        for (size_t f = 0; f < NF; f++) {
            x[f] = (float)(rnd() * 10.0);
            if (f < 8)
                z += (f % 2 ? 0.3 : -0.2) * x[f] * (rnd() + 0.5) / 2.0;
            if (rnd() < 0.03)
                x[f] = NAN;
        }
        if (labels)
            labels[r] = rnd() < 1.0 / (1.0 + exp(-z)) ? 1.0f : 0.0f;
    }
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_model: %s: %s\n", what, err);
    exit(1);
}

/* µs per row for scoring nrows rows in calls of `per_call` rows (one repetition). */
static double time_score(vg_model_t *model, vg_model_path_t path, int nthread, const float *rows,
                         size_t nrows, size_t per_call, float *out)
{
    char err[VG_ERRLEN];
    int64_t t0 = vg_mono_ns();
    for (size_t r = 0; r < nrows; r += per_call) {
        size_t n = nrows - r < per_call ? nrows - r : per_call;
        if (vg_model_score_path(model, path, nthread, 0, rows + r * NF, n, out + r, err,
                                sizeof(err)) != VG_OK)
            die("score", err);
    }
    return (double)(vg_mono_ns() - t0) / 1e3 / (double)nrows;
}

int main(int argc, char **argv)
{
    size_t batch = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
    if (batch == 0)
        batch = 2000;
    char err[VG_ERRLEN];
    const char *names[NF];
    char namebuf[NF][16];
    for (size_t f = 0; f < NF; f++) {
        snprintf(namebuf[f], sizeof(namebuf[f]), "f%02zu", f);
        names[f] = namebuf[f];
    }
    float *train = malloc(NTRAIN * NF * sizeof(float)), *labels = malloc(NTRAIN * sizeof(float));
    make_rows(train, labels, NTRAIN);
    vg_train_params_t params;
    vg_train_params_default(&params);
    params.trees = 100;
    params.max_depth = 6;
    params.nthread = 1;
    int64_t t0 = vg_mono_ns();
    vg_model_t *model = vg_model_train(train, labels, NTRAIN, NF, names, &params, err, sizeof(err));
    if (!model)
        die("train", err);
    printf("model: 100 trees, depth 6, %d features; trained on %d rows in %.2f s\n", NF, NTRAIN,
           (double)(vg_mono_ns() - t0) / 1e9);

    float *rows = malloc(batch * NF * sizeof(float));
    float *out = malloc(batch * sizeof(float)), *ref = malloc(batch * sizeof(float));
    make_rows(rows, NULL, batch);
    if (vg_model_score_path(model, VG_MODEL_PATH_DMATRIX, 1, 0, rows, batch, ref, err,
                            sizeof(err)) != VG_OK)
        die("score", err);

    printf("\nscoring, us per row (batch = %zu rows per call; single = 1 row per call)\n", batch);
    printf("%-44s %10s %10s\n", "path", "batched", "single");
    struct {
        const char *label;
        vg_model_path_t path;
        int nthread;
    } paths[] = {
        {"DMatrix + PredictFromDMatrix, nthread 1", VG_MODEL_PATH_DMATRIX, 1},
        {"DMatrix + PredictFromDMatrix, nthread 2", VG_MODEL_PATH_DMATRIX, 2},
        {"PredictFromDense (in place), nthread 1 *", VG_MODEL_PATH_DENSE, 1},
        {"PredictFromDense (in place), nthread 2", VG_MODEL_PATH_DENSE, 2},
        {"vigil compiled trees (no C API)", VG_MODEL_PATH_TREES, 1},
    };
    /* Repetitions interleave the paths, so a burst of load on the shared machine hits all
     * of them rather than one; each figure is the best repetition. */
    double batched[VG_ARRAY_LEN(paths)], single[VG_ARRAY_LEN(paths)], maxdiff[VG_ARRAY_LEN(paths)];
    for (size_t p = 0; p < VG_ARRAY_LEN(paths); p++)
        batched[p] = single[p] = INFINITY, maxdiff[p] = 0;
    for (int rep = 0; rep < REPS; rep++) {
        for (size_t p = 0; p < VG_ARRAY_LEN(paths); p++) {
            double b = time_score(model, paths[p].path, paths[p].nthread, rows, batch, batch, out);
            batched[p] = fmin(batched[p], b);
            for (size_t r = 0; r < batch; r++)
                maxdiff[p] = fmax(maxdiff[p], fabs((double)out[r] - (double)ref[r]));
            /* Single-row calls over the first 500 rows: enough to time, short at nthread 2. */
            double s = time_score(model, paths[p].path, paths[p].nthread, rows,
                                  batch < 500 ? batch : 500, 1, out);
            single[p] = fmin(single[p], s);
        }
    }
    for (size_t p = 0; p < VG_ARRAY_LEN(paths); p++)
        printf("%-44s %10.3f %10.3f   (max |diff| vs DMatrix %.1g)\n", paths[p].label, batched[p],
               single[p], maxdiff[p]);
    printf("* = the path vg_model_score uses\n");

    /* Reason codes for the flagged 2% of a micro-batch. */
    size_t nflag = batch / 50 ? batch / 50 : 1;
    float *flagged = malloc(nflag * NF * sizeof(float));
    for (size_t i = 0; i < nflag; i++)
        memcpy(flagged + i * NF, rows + (i * 50) * NF, NF * sizeof(float));
    float *contribs = malloc(nflag * (NF + 1) * sizeof(float));
    vg_reason_t reasons[5];
    size_t nout;
    double mine = INFINITY, shap_batch = INFINITY, shap_single = INFINITY, saabas_xgb = INFINITY;
    for (int rep = 0; rep < REPS; rep++) {
        int64_t t = vg_mono_ns();
        for (size_t i = 0; i < nflag; i++)
            vg_model_explain(model, flagged + i * NF, 5, reasons, &nout, err, sizeof(err));
        mine = fmin(mine, (double)(vg_mono_ns() - t) / 1e3 / (double)nflag);
        t = vg_mono_ns();
        if (vg_model_contribs_xgb(model, 0, flagged, nflag, contribs, err, sizeof(err)) != VG_OK)
            die("contribs", err);
        shap_batch = fmin(shap_batch, (double)(vg_mono_ns() - t) / 1e3 / (double)nflag);
        t = vg_mono_ns();
        for (size_t i = 0; i < nflag; i++)
            if (vg_model_contribs_xgb(model, 0, flagged + i * NF, 1, contribs, err, sizeof(err)) !=
                VG_OK)
                die("contribs", err);
        shap_single = fmin(shap_single, (double)(vg_mono_ns() - t) / 1e3 / (double)nflag);
        t = vg_mono_ns();
        if (vg_model_contribs_xgb(model, 1, flagged, nflag, contribs, err, sizeof(err)) != VG_OK)
            die("contribs", err);
        saabas_xgb = fmin(saabas_xgb, (double)(vg_mono_ns() - t) / 1e3 / (double)nflag);
    }
    printf("\nreason codes, us per flagged row (%zu flagged rows = 2%% of the batch, top 5)\n",
           nflag);
    printf("%-58s %10.3f\n", "C API exact TreeSHAP (pred_contribs), batched [baseline]",
           shap_batch);
    printf("%-58s %10.3f\n", "C API exact TreeSHAP (pred_contribs), one row per call", shap_single);
    printf("%-58s %10.3f\n", "C API approximate (Saabas) contribs, batched", saabas_xgb);
    printf("%-58s %10.3f\n", "vigil Saabas on compiled trees + top-k (vg_model_explain) *", mine);
    printf("* = what vg_model_explain does; speed-up over the baseline: %.0fx\n",
           shap_batch / mine);

    free(contribs);
    free(flagged);
    free(rows);
    free(out);
    free(ref);
    free(train);
    free(labels);
    vg_model_free(model);
    return 0;
}
