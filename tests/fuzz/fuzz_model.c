/*
 * fuzz_model.c - model files from a bundle, as an attacker or a bad disk could write them.
 *
 * The property: whatever the bytes, loading either fails with a message or yields a model
 * that scores and explains without touching memory it should not. The bytes go through the
 * same sequence as vg_model_load: vigil's own check (JSON or UBJ decode, tree validation),
 * then libxgboost's loader only if the check passed (libxgboost 1.7 crashes on some
 * malformed trees, which is why the check exists), then tree compilation and the
 * cross-check against libxgboost's predictions.
 */
#include "models/model_impl.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[VG_ERRLEN];
    int unparsed = 0;
    if (vg_model_bytes_check((const char *)data, size, &unparsed, err, sizeof(err)) != VG_OK)
        return 0;
    vg_xgb_t *xgb = vg_xgb_load(data, size, err, sizeof(err));
    if (!xgb)
        return 0;
    size_t nf = 0;
    int rounds = 0;
    if (vg_xgb_shape(xgb, &nf, &rounds, err, sizeof(err)) != VG_OK || nf == 0 || nf > 4096) {
        vg_xgb_free(xgb);
        return 0;
    }
    char **names = calloc(nf, sizeof(*names));
    char buf[32];
    for (size_t i = 0; i < nf; i++) {
        snprintf(buf, sizeof(buf), "f%zu", i);
        names[i] = vg_xstrdup(buf);
    }
    vg_model_t *model = vg_model_wrap(xgb, (const char *const *)names, nf, err, sizeof(err));
    if (model) {
        float *row = calloc(nf, sizeof(float)), score = 0;
        vg_reason_t reasons[3];
        size_t nout = 0;
        row[0] = NAN;
        vg_model_score(model, row, 1, &score, err, sizeof(err));
        vg_model_explain(model, row, 3, reasons, &nout, err, sizeof(err));
        free(row);
        vg_model_free(model);
    }
    for (size_t i = 0; i < nf; i++)
        free(names[i]);
    free(names);
    return 0;
}
