/*
 * xgb.c - the only file that includes xgboost/c_api.h.
 *
 * Wraps a BoosterHandle (vg_xgb_t) with load, train, save and predict. Every C API call is
 * checked; on failure the function returns VG_ERR_MODEL with XGBGetLastError()'s text in
 * errbuf, so callers never see XGBoost types or error conventions. Invariants: a vg_xgb_t
 * always holds a valid booster; DMatrix handles never outlive the call that created them;
 * prediction results are copied out before the next call on the booster, because XGBoost
 * reuses its output buffer.
 */
#include "models/xgb.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <xgboost/c_api.h>

struct vg_xgb {
    BoosterHandle booster;
};

/* XGBoost's last error on this thread, with the trailing newline and stack dump removed:
 * the first line says what went wrong, the rest is C++ frames a user cannot act on. */
static vg_err_t xgb_fail(char *errbuf, size_t errlen, const char *what)
{
    const char *msg = XGBGetLastError();
    if (!msg || !*msg)
        msg = "unknown XGBoost error";
    /* "[06:03:43] ./src/common/json.cc:407: Expecting ..." -> "Expecting ...": the time and
     * XGBoost's source location only make equal errors look different. */
    if (msg[0] == '[') {
        const char *p = strchr(msg, ']');
        const char *q = p ? strstr(p, ": ") : NULL;
        if (q && (size_t)(q - p) < 200 && !memchr(p, '\n', (size_t)(q - p)))
            msg = q + 2;
    }
    /* First line only, and printable: XGBoost quotes raw bytes of the input it choked on. */
    char line[VG_ERRLEN];
    size_t n = 0;
    for (; msg[n] && msg[n] != '\n' && n + 1 < sizeof(line); n++)
        line[n] = (unsigned char)msg[n] < 0x20 || (unsigned char)msg[n] >= 0x7f ? '?' : msg[n];
    line[n] = '\0';
    return vg_errf(errbuf, errlen, VG_ERR_MODEL, "%s: %s", what, line);
}

/* libxgboost prints its warnings to stderr; route them through vigil's log instead, so they
 * carry a timestamp and a subsystem like every other line. */
static void xgb_log(const char *msg)
{
    vg_warn("xgboost", "%s", msg);
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void register_log(void)
{
    XGBRegisterLogCallback(xgb_log);
}

vg_xgb_t *vg_xgb_load(const void *data, size_t len, char *errbuf, size_t errlen)
{
    /* Bundles hold JSON or UBJ models, both objects starting with '{'. XGBoost would read
     * anything else as its legacy binary format, whose loader trusts the sizes it reads. */
    if (len == 0 || ((const unsigned char *)data)[0] != '{') {
        vg_errf(errbuf, errlen, VG_ERR_MODEL,
                "cannot load model: not an XGBoost JSON or UBJ model (first byte 0x%02x)",
                len ? ((const unsigned char *)data)[0] : 0);
        return NULL;
    }
    pthread_once(&log_once, register_log);
    BoosterHandle booster = NULL;
    if (XGBoosterCreate(NULL, 0, &booster) != 0) {
        xgb_fail(errbuf, errlen, "cannot create booster");
        return NULL;
    }
    if (XGBoosterLoadModelFromBuffer(booster, data, (bst_ulong)len) != 0) {
        xgb_fail(errbuf, errlen, "cannot load model");
        XGBoosterFree(booster);
        return NULL;
    }
    vg_xgb_t *xgb = vg_xcalloc(1, sizeof(*xgb));
    xgb->booster = booster;
    return xgb;
}

void vg_xgb_free(vg_xgb_t *xgb)
{
    if (!xgb)
        return;
    XGBoosterFree(xgb->booster);
    free(xgb);
}

static int set_param(BoosterHandle booster, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_param(BoosterHandle booster, const char *name, const char *fmt, ...)
{
    char value[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    return XGBoosterSetParam(booster, name, value);
}

/* Probabilities of the validation matrix after the rounds so far; dvalid is in the booster's
 * cache, so each call only adds the newest tree. */
static int predict_valid(BoosterHandle booster, DMatrixHandle dvalid, size_t n, float *out)
{
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *result = NULL;
    const char *config = "{\"type\":0,\"training\":false,\"iteration_begin\":0,"
                         "\"iteration_end\":0,\"strict_shape\":false}";
    if (XGBoosterPredictFromDMatrix(booster, dvalid, config, &shape, &dim, &result) != 0)
        return -1;
    memcpy(out, result, n * sizeof(float));
    return 0;
}

vg_xgb_t *vg_xgb_train(const float *rows, const float *labels, size_t nrows, size_t nfeatures,
                       const vg_xgb_train_params_t *params, vg_xgb_train_result_t *result,
                       char *errbuf, size_t errlen)
{
    DMatrixHandle dmats[2] = {NULL, NULL};
    BoosterHandle booster = NULL;
    vg_xgb_t *xgb = NULL;
    float *vpred = NULL;
    pthread_once(&log_once, register_log);
    size_t nv = params->valid_nrows;
    int ndmats = nv ? 2 : 1;
    result->rounds = 0;
    result->valid_metric = NAN;
    if (XGDMatrixCreateFromMat(rows, nrows, nfeatures, NAN, &dmats[0]) != 0) {
        xgb_fail(errbuf, errlen, "cannot build training matrix");
        return NULL;
    }
    if (XGDMatrixSetFloatInfo(dmats[0], "label", labels, nrows) != 0) {
        xgb_fail(errbuf, errlen, "cannot set labels");
        goto out_free_dmatrix;
    }
    if (nv && XGDMatrixCreateFromMat(params->valid_rows, nv, nfeatures, NAN, &dmats[1]) != 0) {
        xgb_fail(errbuf, errlen, "cannot build validation matrix");
        goto out_free_dmatrix;
    }
    if (XGBoosterCreate(dmats, (bst_ulong)ndmats, &booster) != 0) {
        xgb_fail(errbuf, errlen, "cannot create booster");
        goto out_free_dmatrix;
    }
    /* seed_per_iteration and a fixed seed make training a pure function of the inputs. */
    if (set_param(booster, "objective", "binary:logistic") != 0 ||
        set_param(booster, "max_depth", "%d", params->max_depth) != 0 ||
        set_param(booster, "eta", "%.17g", params->eta) != 0 ||
        set_param(booster, "scale_pos_weight", "%.17g", params->scale_pos_weight) != 0 ||
        set_param(booster, "seed", "%llu", params->seed) != 0 ||
        set_param(booster, "seed_per_iteration", "1") != 0 ||
        set_param(booster, "nthread", "%d", params->nthread) != 0 ||
        set_param(booster, "tree_method", "%s", params->tree_method) != 0 ||
        set_param(booster, "verbosity", "0") != 0) {
        xgb_fail(errbuf, errlen, "bad training parameter");
        goto out_free_booster;
    }
    vpred = nv ? vg_xmalloc(nv * sizeof(*vpred)) : NULL;
    int best = -1;
    double best_metric = -INFINITY;
    for (int i = 0; i < params->trees; i++) {
        if (XGBoosterUpdateOneIter(booster, i, dmats[0]) != 0) {
            xgb_fail(errbuf, errlen, "training failed");
            goto out_free_booster;
        }
        double metric = NAN;
        if (nv) {
            if (predict_valid(booster, dmats[1], nv, vpred) != 0) {
                xgb_fail(errbuf, errlen, "validation prediction failed");
                goto out_free_booster;
            }
            metric = params->metric(vpred, params->valid_labels, nv);
            /* Strictly better only: on a plateau the smaller model wins. */
            if (best < 0 || metric > best_metric) {
                best = i;
                best_metric = metric;
            }
        }
        if (params->progress)
            params->progress(i + 1, params->trees, metric, params->progress_ctx);
        if (nv && params->early_stopping_rounds > 0 && i - best >= params->early_stopping_rounds)
            break;
    }
    result->rounds = params->trees;
    if (nv && params->early_stopping_rounds > 0) {
        int rounds = 0;
        XGBoosterBoostedRounds(booster, &rounds);
        if (best + 1 < rounds) {
            BoosterHandle sliced = NULL;
            if (XGBoosterSlice(booster, 0, best + 1, 1, &sliced) != 0) {
                xgb_fail(errbuf, errlen, "cannot keep the best round");
                goto out_free_booster;
            }
            XGBoosterFree(booster);
            booster = sliced;
        }
        result->rounds = best + 1;
    }
    result->valid_metric = nv ? best_metric : NAN;
    if (nv && params->early_stopping_rounds <= 0)
        result->valid_metric = params->metric(vpred, params->valid_labels, nv);
    xgb = vg_xcalloc(1, sizeof(*xgb));
    xgb->booster = booster;
    booster = NULL;
out_free_booster:
    if (booster)
        XGBoosterFree(booster);
out_free_dmatrix:
    free(vpred);
    XGDMatrixFree(dmats[0]);
    if (dmats[1])
        XGDMatrixFree(dmats[1]);
    return xgb;
}

vg_err_t vg_xgb_save(vg_xgb_t *xgb, const char *format, char **data, size_t *len, char *errbuf,
                     size_t errlen)
{
    char config[64];
    snprintf(config, sizeof(config), "{\"format\":\"%s\"}", format);
    bst_ulong n = 0;
    const char *out = NULL;
    if (XGBoosterSaveModelToBuffer(xgb->booster, config, &n, &out) != 0)
        return xgb_fail(errbuf, errlen, "cannot serialize model");
    /* One spare NUL byte, so a JSON dump can be parsed as a C string. */
    char *copy = vg_xmalloc(n + 1);
    memcpy(copy, out, n);
    copy[n] = '\0';
    *data = copy;
    *len = n;
    return VG_OK;
}

vg_err_t vg_xgb_set_nthread(vg_xgb_t *xgb, int nthread, char *errbuf, size_t errlen)
{
    if (set_param(xgb->booster, "nthread", "%d", nthread) != 0)
        return xgb_fail(errbuf, errlen, "cannot set nthread");
    return VG_OK;
}

vg_err_t vg_xgb_shape(vg_xgb_t *xgb, size_t *nfeatures, int *rounds, char *errbuf, size_t errlen)
{
    bst_ulong nf = 0;
    int r = 0;
    if (XGBoosterGetNumFeature(xgb->booster, &nf) != 0)
        return xgb_fail(errbuf, errlen, "cannot read the model's feature count");
    if (XGBoosterBoostedRounds(xgb->booster, &r) != 0)
        return xgb_fail(errbuf, errlen, "cannot read the model's round count");
    *nfeatures = nf;
    *rounds = r;
    return VG_OK;
}

/* Copies a prediction out of XGBoost's buffer after checking it has the expected size. */
static vg_err_t copy_out(const bst_ulong *shape, bst_ulong dim, const float *result, size_t expect,
                         float *out, char *errbuf, size_t errlen)
{
    size_t got = 1;
    for (bst_ulong i = 0; i < dim; i++)
        got *= shape[i];
    if (got != expect)
        return vg_errf(
            errbuf, errlen, VG_ERR_MODEL,
            "prediction returned %zu values, expected %zu (is this a multi-class model?)", got,
            expect);
    memcpy(out, result, expect * sizeof(float));
    return VG_OK;
}

vg_err_t vg_xgb_predict(vg_xgb_t *xgb, vg_xgb_path_t path, vg_xgb_out_t what, const float *rows,
                        size_t nrows, size_t nfeatures, float *out, char *errbuf, size_t errlen)
{
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *result = NULL;
    char config[160];
    /* "missing" only matters to in-place prediction; NaN is XGBoost's default as well. */
    snprintf(config, sizeof(config),
             "{\"type\":%d,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
             "\"strict_shape\":false,\"missing\":NaN,\"cache_id\":0}",
             (int)what);
    if (nrows == 0)
        return VG_OK;
    size_t expect = nrows;
    if (what == VG_XGB_CONTRIBS || what == VG_XGB_CONTRIBS_APPROX)
        expect *= nfeatures + 1;
    vg_err_t err = VG_OK;
    if (path == VG_XGB_DENSE) {
        char iface[200];
        snprintf(iface, sizeof(iface),
                 "{\"data\":[%llu,true],\"shape\":[%zu,%zu],\"typestr\":\"<f4\",\"version\":3}",
                 (unsigned long long)(uintptr_t)rows, nrows, nfeatures);
        if (XGBoosterPredictFromDense(xgb->booster, iface, config, NULL, &shape, &dim, &result) !=
            0)
            return xgb_fail(errbuf, errlen, "prediction failed");
        err = copy_out(shape, dim, result, expect, out, errbuf, errlen);
    } else {
        DMatrixHandle dmat = NULL;
        if (XGDMatrixCreateFromMat(rows, nrows, nfeatures, NAN, &dmat) != 0)
            return xgb_fail(errbuf, errlen, "cannot build prediction matrix");
        if (XGBoosterPredictFromDMatrix(xgb->booster, dmat, config, &shape, &dim, &result) != 0)
            err = xgb_fail(errbuf, errlen, "prediction failed");
        else
            err = copy_out(shape, dim, result, expect, out, errbuf, errlen);
        XGDMatrixFree(dmat);
    }
    return err;
}

void vg_xgb_version(char out[32])
{
    int major = 0, minor = 0, patch = 0;
    XGBoostVersion(&major, &minor, &patch);
    snprintf(out, 32, "%d.%d.%d", major, minor, patch);
}
