/*
 * bundle.c - model bundles on disk: load and check against the catalogue, save.
 *
 * Loading goes from cheap to expensive and stops at the first problem: read and parse
 * manifest.json, compare its features and catalogue version with the running catalogue, read
 * the model file, let libxgboost parse it, compile its trees and cross-check them against
 * libxgboost's own predictions. Every failure is one message starting "model bundle DIR",
 * because the engine logs it as is when a hot reload is refused. The model's version is a
 * hash of exactly the bytes loaded (model file, then manifest), so equal bundles have equal
 * versions wherever they live; save computes it over the bytes it writes, the same way.
 */
#include "models/model_impl.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MANIFEST_FORMAT "vigil-model-bundle/1"

static char **copy_names(const char *const *names, size_t n)
{
    char **out = vg_xcalloc(n ? n : 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = vg_xstrdup(names[i]);
    return out;
}

void vg_model_free(vg_model_t *model)
{
    if (!model)
        return;
    vg_xgb_free(model->xgb);
    for (size_t i = 0; i < model->nfeatures; i++) {
        free(model->features[i]);
        if (model->bins) {
            free(model->bins[i].edges);
            free(model->bins[i].shares);
        }
    }
    free(model->features);
    free(model->bins);
    free(model->score_bins.edges);
    free(model->score_bins.shares);
    free(model->catalog_version);
    free(model->manifest_text);
    free(model->nodes);
    free(model->means);
    free(model->roots);
    free(model);
}

/* Compares the compiled trees with libxgboost on a row of missing values and a row of zeros:
 * a parser bug or a model feature vigil does not understand shows here, at load, rather than
 * as wrong reasons in production. */
static vg_err_t cross_check(vg_model_t *model, char *errbuf, size_t errlen)
{
    size_t nf = model->nfeatures;
    float *rows = vg_xmalloc(2 * (nf ? nf : 1) * sizeof(*rows));
    float margin[2];
    for (size_t i = 0; i < nf; i++) {
        rows[i] = NAN;
        rows[nf + i] = 0.0f;
    }
    vg_err_t err = vg_xgb_predict(model->xgb, VG_XGB_DENSE, VG_XGB_MARGIN, rows, 2, nf, margin,
                                  errbuf, errlen);
    for (size_t r = 0; !err && r < 2; r++) {
        float mine = vg_trees_margin(model, rows + r * nf, model->base_margin);
        if (fabsf(mine - margin[r]) > 1e-4f * (1.0f + fabsf(margin[r])))
            err = vg_errf(errbuf, errlen, VG_ERR_MODEL,
                          "compiled trees disagree with libxgboost (margin %.9g vs %.9g)",
                          (double)mine, (double)margin[r]);
    }
    free(rows);
    return err;
}

vg_model_t *vg_model_wrap(vg_xgb_t *xgb, const char *const *features, size_t nfeatures,
                          char *errbuf, size_t errlen)
{
    vg_model_t *model = vg_xcalloc(1, sizeof(*model));
    model->xgb = xgb;
    size_t nf = 0;
    int rounds = 0;
    char *json = NULL;
    size_t len = 0;
    if (vg_xgb_shape(xgb, &nf, &rounds, errbuf, errlen) != VG_OK)
        goto out_fail;
    if (nf != nfeatures) {
        vg_errf(errbuf, errlen, VG_ERR_MODEL, "model has %zu features, %zu names given", nf,
                nfeatures);
        goto out_fail;
    }
    model->nfeatures = nf;
    model->rounds = rounds;
    model->valid_ap = NAN;
    model->features = copy_names(features, nf);
    model->bins = vg_xcalloc(nf ? nf : 1, sizeof(*model->bins));
    for (size_t i = 0; i < nf; i++)
        model->bins[i].shares = vg_xcalloc(1, sizeof(double));
    model->score_bins.shares = vg_xcalloc(1, sizeof(double));
    model->catalog_version = vg_xstrdup("");
    /* The engine scores on its one processing thread; XGBoost's thread pool only adds
     * synchronisation to micro-batches this size (docs/models.md has the figures). */
    model->nthread = 1;
    if (vg_xgb_set_nthread(xgb, 1, errbuf, errlen) != VG_OK)
        goto out_fail;
    if (vg_xgb_save(xgb, "json", &json, &len, errbuf, errlen) != VG_OK)
        goto out_fail;
    if (vg_trees_compile(model, json, len, errbuf, errlen) != VG_OK)
        goto out_fail;
    if (cross_check(model, errbuf, errlen) != VG_OK)
        goto out_fail;
    free(json);
    return model;
out_fail:
    free(json);
    vg_model_free(model);
    return NULL;
}

/* Reads DIR/name whole; the message names the bundle and the file. */
static vg_err_t read_bundle_file(const char *dir, const char *name, char **data, size_t *len,
                                 char *errbuf, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "model bundle %s: cannot read %s: %s", dir, name,
                       strerror(errno));
    fclose(f);
    char inner[VG_ERRLEN];
    if (vg_read_file(path, data, len, inner, sizeof(inner)) != VG_OK)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "model bundle %s: cannot read %s: %s", dir, name,
                       inner);
    return VG_OK;
}

/* Appends ", name" (or "name" first) to a list being built in buf. */
static void list_add(vg_buf_t *buf, const char *name)
{
    if (buf->len)
        vg_buf_puts(buf, ", ");
    vg_buf_puts(buf, name);
}

static long index_of(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (long)i;
    return -1;
}

/* The mismatch message of vg_model_load, or VG_OK when the lists are equal. Quadratic in the
 * feature count, which is a few dozen, once per load. */
static vg_err_t compare_features(const char *dir, const char *const *bundle, size_t nbundle,
                                 const char *const *catalog, size_t ncatalog, char *errbuf,
                                 size_t errlen)
{
    vg_buf_t missing, extra, reordered;
    vg_buf_init(&missing);
    vg_buf_init(&extra);
    vg_buf_init(&reordered);
    for (size_t i = 0; i < ncatalog; i++)
        if (index_of(bundle, nbundle, catalog[i]) < 0)
            list_add(&missing, catalog[i]);
    for (size_t i = 0; i < nbundle; i++)
        if (index_of(catalog, ncatalog, bundle[i]) < 0)
            list_add(&extra, bundle[i]);
    /* Among the common features, the k-th in catalogue order must be the k-th in bundle
     * order; those that are not are reordered. */
    size_t kc = 0;
    for (size_t i = 0; i < ncatalog; i++) {
        if (index_of(bundle, nbundle, catalog[i]) < 0)
            continue;
        size_t kb = 0, j = 0;
        for (; j < nbundle; j++) {
            if (index_of(catalog, ncatalog, bundle[j]) < 0)
                continue;
            if (kb == kc)
                break;
            kb++;
        }
        if (j == nbundle || strcmp(bundle[j], catalog[i]) != 0)
            list_add(&reordered, catalog[i]);
        kc++;
    }
    vg_err_t err = VG_OK;
    if (missing.len || extra.len || reordered.len) {
        vg_buf_t msg;
        vg_buf_init(&msg);
        vg_buf_printf(&msg, "model bundle %s does not match catalogue: ", dir);
        const char *sep = "";
        if (missing.len) {
            vg_buf_printf(&msg, "missing features %s", missing.data);
            sep = "; ";
        }
        if (extra.len) {
            vg_buf_printf(&msg, "%sextra features %s", sep, extra.data);
            sep = "; ";
        }
        if (reordered.len)
            vg_buf_printf(&msg, "%sreordered features %s", sep, reordered.data);
        err = vg_errf(errbuf, errlen, VG_ERR_MODEL, "%s", msg.data);
        vg_buf_free(&msg);
    }
    vg_buf_free(&missing);
    vg_buf_free(&extra);
    vg_buf_free(&reordered);
    return err;
}

/* Fills b from {"edges": [n], "shares": [n + 1], "missing": x}; -1 if d is not that. */
static int parse_bins(json_t *d, vg_feature_bins_t *b)
{
    json_t *edges = json_object_get(d, "edges"), *shares = json_object_get(d, "shares");
    json_t *missing = json_object_get(d, "missing");
    if (!json_is_array(edges) || !json_is_array(shares) ||
        json_array_size(shares) != json_array_size(edges) + 1 || !json_is_number(missing))
        return -1;
    free(b->edges);
    free(b->shares);
    b->nedges = json_array_size(edges);
    b->edges = vg_xcalloc(b->nedges ? b->nedges : 1, sizeof(double));
    b->shares = vg_xcalloc(b->nedges + 1, sizeof(double));
    for (size_t e = 0; e < b->nedges; e++)
        b->edges[e] = json_number_value(json_array_get(edges, e));
    for (size_t e = 0; e <= b->nedges; e++)
        b->shares[e] = json_number_value(json_array_get(shares, e));
    b->missing = json_number_value(missing);
    return 0;
}

/* Reads "distributions" into model->bins and "score_distribution" into model->score_bins;
 * absent means "unknown" (no edges, zero shares). */
static vg_err_t load_bins(vg_model_t *model, const char *dir, json_t *manifest, char *errbuf,
                          size_t errlen)
{
    json_t *score = json_object_get(manifest, "score_distribution");
    if (score && parse_bins(score, &model->score_bins) != 0)
        return vg_errf(errbuf, errlen, VG_ERR_MODEL,
                       "model bundle %s: manifest.json: \"score_distribution\" is not "
                       "{\"edges\": [n], \"shares\": [n + 1], \"missing\": x}",
                       dir);
    json_t *dists = json_object_get(manifest, "distributions");
    if (!dists)
        return VG_OK;
    if (!json_is_array(dists) || json_array_size(dists) != model->nfeatures)
        return vg_errf(errbuf, errlen, VG_ERR_MODEL,
                       "model bundle %s: manifest.json: \"distributions\" must have one entry "
                       "per feature",
                       dir);
    for (size_t i = 0; i < model->nfeatures; i++) {
        json_t *d = json_array_get(dists, i);
        const char *name = json_string_value(json_object_get(d, "feature"));
        if (!name || strcmp(name, model->features[i]) != 0 || parse_bins(d, &model->bins[i]) != 0)
            return vg_errf(errbuf, errlen, VG_ERR_MODEL,
                           "model bundle %s: manifest.json: distribution %zu is not "
                           "{\"feature\": \"%s\", \"edges\": [n], \"shares\": [n + 1], "
                           "\"missing\": x}",
                           dir, i, model->features[i]);
    }
    return VG_OK;
}

/* "BUNDLE@HASH" from the directory's last path component and the loaded bytes. */
static void set_version(char *out, size_t outlen, const char *dir, const char *mbytes, size_t mlen,
                        const char *manifest, size_t manlen)
{
    size_t end = strlen(dir);
    while (end > 1 && dir[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    uint64_t h = vg_hash64(mbytes, mlen, VG_HASH_SEED);
    h = vg_hash64(manifest, manlen, h);
    snprintf(out, outlen, "%.*s@%016llx", (int)(end - start > 200 ? 200 : end - start), dir + start,
             (unsigned long long)h);
}

/* A plain file name inside the bundle: no directories, nothing hidden. */
static int plain_name(const char *name)
{
    return name && *name && name[0] != '.' && !strchr(name, '/');
}

vg_err_t vg_bundle_version(const char *dir, char *out, size_t outlen, char *errbuf, size_t errlen)
{
    char *text = NULL, *mbytes = NULL;
    size_t textlen = 0, mlen = 0;
    vg_err_t err = read_bundle_file(dir, "manifest.json", &text, &textlen, errbuf, errlen);
    if (err)
        return err;
    json_t *manifest = json_loadb(text, textlen, 0, NULL);
    const char *model_file = json_string_value(json_object_get(manifest, "model_file"));
    if (!plain_name(model_file))
        err = vg_errf(errbuf, errlen, VG_ERR_MODEL,
                      "model bundle %s: manifest.json: \"model_file\" must be a file name in "
                      "the bundle",
                      dir);
    else
        err = read_bundle_file(dir, model_file, &mbytes, &mlen, errbuf, errlen);
    if (!err) {
        set_version(out, outlen, dir, mbytes, mlen, text, textlen);
    }
    json_decref(manifest);
    free(text);
    free(mbytes);
    return err;
}

vg_model_t *vg_model_load(const char *dir, const char *const *features, size_t nfeatures,
                          const char *catalog_version, char *errbuf, size_t errlen)
{
    char *text = NULL, *mbytes = NULL;
    size_t textlen = 0, mlen = 0;
    json_t *manifest = NULL;
    const char **names = NULL;
    vg_model_t *model = NULL;
    char inner[VG_ERRLEN];

    if (read_bundle_file(dir, "manifest.json", &text, &textlen, errbuf, errlen) != VG_OK)
        return NULL;
    json_error_t jerr;
    manifest = json_loadb(text, textlen, 0, &jerr);
    if (!manifest) {
        vg_errf(errbuf, errlen, VG_ERR_MODEL, "model bundle %s: manifest.json line %d: %s", dir,
                jerr.line, jerr.text);
        goto out;
    }
    const char *format = json_string_value(json_object_get(manifest, "format"));
    if (!format || strcmp(format, MANIFEST_FORMAT) != 0) {
        vg_errf(errbuf, errlen, VG_ERR_MODEL,
                "model bundle %s: manifest.json: \"format\" is not \"" MANIFEST_FORMAT "\"", dir);
        goto out;
    }
    json_t *jfeatures = json_object_get(manifest, "features");
    size_t nbundle = json_array_size(jfeatures);
    names = vg_xcalloc(nbundle ? nbundle : 1, sizeof(*names));
    for (size_t i = 0; i < nbundle; i++)
        names[i] = json_string_value(json_array_get(jfeatures, i));
    for (size_t i = 0; i < nbundle; i++) {
        if (!names[i] || index_of(names, i, names[i]) >= 0) {
            nbundle = 0;
            break;
        }
    }
    if (nbundle == 0) {
        vg_errf(errbuf, errlen, VG_ERR_MODEL,
                "model bundle %s: manifest.json: \"features\" must be a non-empty array of "
                "distinct strings",
                dir);
        goto out;
    }
    const char *catver = json_string_value(json_object_get(manifest, "catalog_version"));
    const char *model_file = json_string_value(json_object_get(manifest, "model_file"));
    if (!catver || !plain_name(model_file)) {
        vg_errf(errbuf, errlen, VG_ERR_MODEL, "model bundle %s: manifest.json: \"%s\" must be a %s",
                dir, catver ? "model_file" : "catalog_version",
                catver ? "file name in the bundle" : "string");
        goto out;
    }
    if (features &&
        compare_features(dir, names, nbundle, features, nfeatures, errbuf, errlen) != VG_OK)
        goto out;
    if (catalog_version && strcmp(catver, catalog_version) != 0) {
        vg_errf(errbuf, errlen, VG_ERR_MODEL,
                "model bundle %s was trained on catalogue %s, running catalogue is %s", dir, catver,
                catalog_version);
        goto out;
    }
    if (read_bundle_file(dir, model_file, &mbytes, &mlen, errbuf, errlen) != VG_OK)
        goto out;
    /* libxgboost trusts the trees it loads: check them first. When the bytes do not even
     * parse as JSON, XGBoost's own parser (which fails safely) words the error. */
    int unparsed = 0;
    char check[VG_ERRLEN];
    vg_xgb_t *xgb = NULL;
    if (vg_model_bytes_check(mbytes, mlen, &unparsed, check, sizeof(check)) != VG_OK) {
        if (unparsed && !(xgb = vg_xgb_load(mbytes, mlen, inner, sizeof(inner)))) {
            vg_errf(errbuf, errlen, VG_ERR_MODEL, "model bundle %s: %s: %s", dir, model_file,
                    inner);
        } else {
            vg_errf(errbuf, errlen, VG_ERR_MODEL, "model bundle %s: %s: cannot load model: %s", dir,
                    model_file, check);
        }
        vg_xgb_free(xgb);
        goto out;
    }
    xgb = vg_xgb_load(mbytes, mlen, inner, sizeof(inner));
    if (!xgb) {
        vg_errf(errbuf, errlen, VG_ERR_MODEL, "model bundle %s: %s: %s", dir, model_file, inner);
        goto out;
    }
    size_t nf = 0;
    int rounds = 0;
    if (vg_xgb_shape(xgb, &nf, &rounds, inner, sizeof(inner)) == VG_OK && nf != nbundle)
        snprintf(inner, sizeof(inner), "model has %zu features, manifest.json lists %zu", nf,
                 nbundle);
    if (nf != nbundle) {
        vg_errf(errbuf, errlen, VG_ERR_MODEL, "model bundle %s: %s: %s", dir, model_file, inner);
        vg_xgb_free(xgb);
        goto out;
    }
    model = vg_model_wrap(xgb, names, nbundle, inner, sizeof(inner));
    if (!model) {
        vg_errf(errbuf, errlen, VG_ERR_MODEL, "model bundle %s: %s: %s", dir, model_file, inner);
        goto out;
    }
    if (load_bins(model, dir, manifest, errbuf, errlen) != VG_OK) {
        vg_model_free(model);
        model = NULL;
        goto out;
    }
    free(model->catalog_version);
    model->catalog_version = vg_xstrdup(catver);
    set_version(model->version, sizeof(model->version), dir, mbytes, mlen, text, textlen);
    model->manifest_text = text;
    text = NULL;
out:
    free(names);
    json_decref(manifest);
    free(text);
    free(mbytes);
    return model;
}

const char *vg_model_version(const vg_model_t *model)
{
    return model->version;
}

size_t vg_model_nfeatures(const vg_model_t *model)
{
    return model->nfeatures;
}

const char *vg_model_feature(const vg_model_t *model, size_t i)
{
    return i < model->nfeatures ? model->features[i] : NULL;
}

const char *vg_model_catalog_version(const vg_model_t *model)
{
    return model->catalog_version;
}

const char *vg_model_manifest_text(const vg_model_t *model)
{
    return model->manifest_text;
}

const vg_feature_bins_t *vg_model_bins(const vg_model_t *model, size_t i)
{
    return i < model->nfeatures ? &model->bins[i] : NULL;
}

/* Writes DIR/name through DIR/.name.tmp and rename, so a reader never sees half a file. */
static vg_err_t write_bundle_file(const char *dir, const char *name, const char *data, size_t len,
                                  char *errbuf, size_t errlen)
{
    char path[4096], tmp[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    int ok = fwrite(data, 1, len, f) == len;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        vg_err_t err =
            vg_errf(errbuf, errlen, VG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        return err;
    }
    return VG_OK;
}

static json_t *bins_json(const vg_feature_bins_t *b)
{
    json_t *edges = json_array(), *shares = json_array();
    for (size_t e = 0; e < b->nedges; e++)
        json_array_append_new(edges, json_real(b->edges[e]));
    for (size_t e = 0; e <= b->nedges; e++)
        json_array_append_new(shares, json_real(b->shares[e]));
    return json_pack("{s:o, s:o, s:f}", "edges", edges, "shares", shares, "missing", b->missing);
}

static json_t *manifest_json(const vg_model_t *model, const vg_bundle_info_t *info,
                             const char *model_file)
{
    char xgbver[32], when[32];
    vg_xgb_version(xgbver);
    vg_time_format(info->trained_at_ms ? info->trained_at_ms : vg_now_ms(), when);
    json_t *features = json_array();
    for (size_t i = 0; i < model->nfeatures; i++)
        json_array_append_new(features, json_string(model->features[i]));
    json_t *metrics = json_object();
    for (size_t i = 0; i < info->nmetrics; i++)
        json_object_set_new(metrics, info->metrics[i].name,
                            isfinite(info->metrics[i].value) ? json_real(info->metrics[i].value)
                                                             : json_null());
    json_t *dists = json_array();
    for (size_t i = 0; i < model->nfeatures; i++) {
        json_t *d = json_pack("{s:s}", "feature", model->features[i]);
        json_t *b = bins_json(&model->bins[i]);
        json_object_update(d, b);
        json_decref(b);
        json_array_append_new(dists, d);
    }
    const vg_train_params_t *p = &model->params;
    json_t *params =
        json_pack("{s:i, s:i, s:f, s:f, s:I, s:s, s:i, s:i, s:I}", "trees", p->trees, "max_depth",
                  p->max_depth, "eta", p->eta, "scale_pos_weight", p->scale_pos_weight, "seed",
                  (json_int_t)p->seed, "tree_method", p->tree_method ? p->tree_method : "",
                  "early_stopping_rounds", p->early_stopping_rounds, "rounds_kept", model->rounds,
                  "valid_rows", (json_int_t)p->valid_nrows);
    return json_pack(
        "{s:s, s:s, s:o, s:s, s:s, s:s, s:{s:s, s:s}, s:I, s:I, s:o, s:o, s:o, s:o}", "format",
        MANIFEST_FORMAT, "model_file", model_file, "features", features, "catalog_version",
        info->catalog_version, "xgboost_version", xgbver, "trained_at", when, "train_window",
        "from", info->train_from ? info->train_from : "", "to",
        info->train_to ? info->train_to : "", "train_rows", (json_int_t)model->train_rows,
        "train_positives", (json_int_t)model->train_positives, "params", params, "metrics", metrics,
        "score_distribution", bins_json(&model->score_bins), "distributions", dists);
}

vg_err_t vg_model_save_bundle(vg_model_t *model, const char *dir, const vg_bundle_info_t *info,
                              char *errbuf, size_t errlen)
{
    const char *format = info->format ? info->format : "json";
    if (strcmp(format, "json") != 0 && strcmp(format, "ubj") != 0)
        return vg_errf(errbuf, errlen, VG_ERR_CONFIG, "model format %s: use json or ubj", format);
    if (!info->catalog_version)
        return vg_errf(errbuf, errlen, VG_ERR_CONFIG, "a bundle needs a catalogue version");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    char model_file[16];
    snprintf(model_file, sizeof(model_file), "model.%s", format);
    char *mbytes = NULL, *text = NULL;
    size_t mlen = 0;
    vg_err_t err = vg_xgb_save(model->xgb, format, &mbytes, &mlen, errbuf, errlen);
    if (err)
        return err;
    json_t *manifest = manifest_json(model, info, model_file);
    text = manifest ? json_dumps(manifest, JSON_INDENT(2)) : NULL;
    json_decref(manifest);
    if (!text) {
        err = vg_errf(errbuf, errlen, VG_ERR_MODEL, "cannot encode manifest.json");
        goto out;
    }
    size_t textlen = strlen(text);
    if ((err = write_bundle_file(dir, model_file, mbytes, mlen, errbuf, errlen)) ||
        (err = write_bundle_file(dir, "manifest.json", text, textlen, errbuf, errlen)))
        goto out;
    free(model->catalog_version);
    model->catalog_version = vg_xstrdup(info->catalog_version);
    free(model->manifest_text);
    model->manifest_text = vg_xstrdup(text);
    set_version(model->version, sizeof(model->version), dir, mbytes, mlen, text, textlen);
out:
    free(text);
    free(mbytes);
    return err;
}
