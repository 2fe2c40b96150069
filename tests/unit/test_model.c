/*
 * test_model.c - model bundles end to end: train through the C API on synthetic data, save a
 * bundle, load it against a catalogue, and check that vigil's scores are libxgboost's own
 * (through a different C API path), that reason codes add up to the margin and come out in
 * the right order, and that every kind of bad bundle is refused with its exact message.
 */
#include "models/metrics.h"
#include "models/models.h"
#include "vg_test.h"

#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define NF    8
#define NROWS 3000

static const char *const names[NF] = {"amount", "hour",   "card_count_1h", "card_mean_30d",
                                      "night",  "geo_km", "terminal_risk", "device_new"};

static float rows[NROWS * NF];
static float labels[NROWS];

static uint64_t rng_state = 42;
static double rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* Fraud is likelier with a large amount, a burst of transactions, a risky terminal and a new
 * device; about 5% of values are missing, so default directions are exercised too. */
static void make_data(void)
{
    for (size_t r = 0; r < NROWS; r++) {
        float *x = rows + r * NF;
        for (size_t f = 0; f < NF; f++)
            x[f] = (float)(rnd() * (f + 1) * 10.0);
        x[4] = rnd() < 0.3 ? 1.0f : 0.0f;
        x[7] = rnd() < 0.1 ? 1.0f : 0.0f;
        double z = -7.0 + 0.05 * x[0] + 0.1 * x[2] + 0.04 * x[6] + 2.0 * x[7] + rnd() * 2.0;
        labels[r] = rnd() < 1.0 / (1.0 + exp(-z)) ? 1.0f : 0.0f;
        for (size_t f = 0; f < NF; f++)
            if (rnd() < 0.05)
                x[f] = NAN;
    }
}

static vg_model_t *train_small(uint64_t seed, int trees)
{
    vg_train_params_t params;
    vg_train_params_default(&params);
    params.trees = trees;
    params.max_depth = 4;
    params.seed = seed;
    char err[VG_ERRLEN] = "";
    vg_model_t *model = vg_model_train(rows, labels, NROWS, NF, names, &params, err, sizeof(err));
    if (!model)
        fprintf(stderr, "train: %s\n", err);
    return model;
}

static vg_model_t *trained;
static char *tmp;

static char *bundle_dir(const char *name)
{
    char *dir = malloc(4096);
    snprintf(dir, 4096, "%s/%s", tmp, name);
    return dir;
}

static void save(vg_model_t *model, const char *dir, const char *format)
{
    vg_metric_kv_t metrics[] = {{"auc_roc", 0.5}, {"average_precision", 0.25}};
    vg_bundle_info_t info = {.catalog_version = "cat-1",
                             .train_from = "2018-04-01",
                             .train_to = "2018-04-08",
                             .trained_at_ms = 1522540800000,
                             .format = format,
                             .metrics = metrics,
                             .nmetrics = 2};
    char err[VG_ERRLEN] = "";
    vg_err_t rc = vg_model_save_bundle(model, dir, &info, err, sizeof(err));
    VG_CHECK_INT(rc, VG_OK);
    if (rc)
        fprintf(stderr, "save: %s\n", err);
}

static void test_scores_equal_libxgboost(void)
{
    const char *formats[] = {"json", "ubj"};
    static float mine[NROWS], ref[NROWS], own[NROWS];
    char err[VG_ERRLEN] = "";
    /* The reference: the trained booster, through XGDMatrixCreateFromMat +
     * XGBoosterPredictFromDMatrix, a different C API path from vg_model_score's. */
    VG_CHECK_INT(vg_model_score_path(trained, VG_MODEL_PATH_DMATRIX, 1, 0, rows, NROWS, ref, err,
                                     sizeof(err)),
                 VG_OK);
    for (size_t i = 0; i < 2; i++) {
        char *dir = bundle_dir(formats[i]);
        save(trained, dir, formats[i]);
        vg_model_t *model = vg_model_load(dir, names, NF, "cat-1", err, sizeof(err));
        VG_CHECK(model != NULL);
        if (!model) {
            fprintf(stderr, "load: %s\n", err);
            free(dir);
            continue;
        }
        VG_CHECK_INT(vg_model_score(model, rows, NROWS, mine, err, sizeof(err)), VG_OK);
        VG_CHECK_INT(vg_model_score_path(model, VG_MODEL_PATH_TREES, 1, 0, rows, NROWS, own, err,
                                         sizeof(err)),
                     VG_OK);
        double maxdiff = 0.0, maxown = 0.0;
        size_t flagged = 0;
        for (size_t r = 0; r < NROWS; r++) {
            maxdiff = fmax(maxdiff, fabs((double)mine[r] - (double)ref[r]));
            maxown = fmax(maxown, fabs((double)own[r] - (double)ref[r]));
            flagged += ref[r] > 0.5f;
        }
        VG_CHECK(maxdiff <= 1e-6);
        VG_CHECK(maxown <= 1e-6);
        /* A model that learned something: neither all legit nor all fraud. */
        VG_CHECK(flagged > 10 && flagged < NROWS / 2);
        if (!(flagged > 10 && flagged < NROWS / 2))
            fprintf(stderr, "%zu of %d rows above 0.5\n", flagged, NROWS);
        /* Two threads give the same figures; zero threads is refused. */
        static float two[NROWS];
        VG_CHECK_INT(vg_model_set_threads(model, 2, err, sizeof(err)), VG_OK);
        VG_CHECK_INT(vg_model_score(model, rows, NROWS, two, err, sizeof(err)), VG_OK);
        VG_CHECK(memcmp(two, mine, sizeof(two)) == 0);
        VG_CHECK_INT(vg_model_set_threads(model, 0, err, sizeof(err)), VG_ERR_CONFIG);
        VG_CHECK_STR(err, "model threads must be at least 1, got 0");
        VG_CHECK_INT(vg_model_set_threads(model, 1, err, sizeof(err)), VG_OK);
        /* Single-row scoring gives the batch's figures. */
        float one;
        VG_CHECK_INT(vg_model_score(model, rows + 17 * NF, 1, &one, err, sizeof(err)), VG_OK);
        VG_CHECK(fabsf(one - ref[17]) <= 1e-6f);
        /* The version names the bundle and is what save computed for the same bytes, and
         * what vg_bundle_version reads without loading. */
        char polled[256];
        VG_CHECK_INT(vg_bundle_version(dir, polled, sizeof(polled), err, sizeof(err)), VG_OK);
        VG_CHECK_STR(polled, vg_model_version(model));
        VG_CHECK_STR(vg_model_version(model), vg_model_version(trained));
        VG_CHECK(strncmp(vg_model_version(model), formats[i], strlen(formats[i])) == 0);
        VG_CHECK_STR(vg_model_catalog_version(model), "cat-1");
        VG_CHECK_INT(vg_model_nfeatures(model), NF);
        VG_CHECK_STR(vg_model_feature(model, 2), "card_count_1h");
        /* Bins round-trip through the manifest and cover every row. */
        for (size_t f = 0; f < NF; f++) {
            const vg_feature_bins_t *a = vg_model_bins(trained, f), *b = vg_model_bins(model, f);
            VG_CHECK_INT(a->nedges, b->nedges);
            double total = b->missing;
            for (size_t e = 0; e <= b->nedges && e <= a->nedges; e++) {
                VG_CHECK(a->shares[e] == b->shares[e]);
                total += b->shares[e];
            }
            VG_CHECK(fabs(total - 1.0) < 1e-9);
        }
        VG_CHECK_INT(vg_model_bins(model, 4)->nedges, 2); /* "night" is 0/1: edges 0 and 1 */
        /* The training scores' deciles: nine distinct cut points, 10% of rows in each bin
         * give or take ties, round-tripped through the manifest. */
        const vg_feature_bins_t *sb = vg_model_score_bins(model);
        VG_CHECK_INT(sb->nedges, vg_model_score_bins(trained)->nedges);
        VG_CHECK(sb->nedges >= 5);
        double stotal = sb->missing;
        for (size_t e = 0; e <= sb->nedges; e++)
            stotal += sb->shares[e];
        VG_CHECK(fabs(stotal - 1.0) < 1e-9);
        VG_CHECK(sb->missing == 0.0);
        vg_model_free(model);
        free(dir);
    }
}

static void test_training_is_deterministic(void)
{
    vg_model_t *again = train_small(7, 20);
    vg_model_t *other = train_small(7, 21);
    char *a = bundle_dir("again"), *b = bundle_dir("other"), *c = bundle_dir("first");
    save(again, a, "json");
    save(other, b, "json");
    save(trained, c, "json");
    /* Versions hash the bytes: same seed and data, same model; one more tree, another. */
    VG_CHECK_STR(strchr(vg_model_version(again), '@'), strchr(vg_model_version(trained), '@'));
    VG_CHECK(strcmp(strchr(vg_model_version(other), '@'), strchr(vg_model_version(trained), '@')));
    vg_model_free(again);
    vg_model_free(other);
    free(a);
    free(b);
    free(c);
}

static int progress_calls;
static void count_progress(int round, int trees, double valid_ap, void *ctx)
{
    (void)round;
    (void)trees;
    (void)valid_ap;
    (void)ctx;
    progress_calls++;
}

/* Early stopping on a validation slice (the last 1,000 rows): training stops once average
 * precision has not improved for 5 rounds, keeps the best round, and the kept model's AP on
 * the slice is the figure training reported. */
static void test_early_stopping(void)
{
    vg_train_params_t params;
    vg_train_params_default(&params);
    params.trees = 200;
    params.max_depth = 4;
    params.eta = 0.5;
    params.valid_rows = rows + 2000 * NF;
    params.valid_labels = labels + 2000;
    params.valid_nrows = 1000;
    params.early_stopping_rounds = 5;
    params.progress = count_progress;
    char err[VG_ERRLEN] = "";
    vg_model_t *model = vg_model_train(rows, labels, 2000, NF, names, &params, err, sizeof(err));
    VG_CHECK(model != NULL);
    if (!model) {
        fprintf(stderr, "train: %s\n", err);
        return;
    }
    int rounds = vg_model_rounds(model);
    VG_CHECK(rounds >= 1 && rounds < 200);
    VG_CHECK_INT(progress_calls, rounds + 5);
    static float p[1000];
    VG_CHECK_INT(vg_model_score(model, rows + 2000 * NF, 1000, p, err, sizeof(err)), VG_OK);
    VG_CHECK_NEAR(vg_metric_ap(p, labels + 2000, 1000), vg_model_valid_ap(model), 1e-12);
    /* The bundle holds exactly the kept rounds. */
    char *dir = bundle_dir("early");
    save(model, dir, "ubj");
    vg_model_t *loaded = vg_model_load(dir, names, NF, "cat-1", err, sizeof(err));
    VG_CHECK(loaded != NULL);
    if (loaded)
        VG_CHECK_INT(vg_model_rounds(loaded), rounds);
    vg_model_free(loaded);
    vg_model_free(model);
    free(dir);
}

static void test_explain_adds_up(void)
{
    static float margin[NROWS], approx[NROWS * (NF + 1)];
    char err[VG_ERRLEN] = "";
    VG_CHECK_INT(vg_model_score_path(trained, VG_MODEL_PATH_DENSE, 1, 1, rows, NROWS, margin, err,
                                     sizeof(err)),
                 VG_OK);
    VG_CHECK_INT(vg_model_contribs_xgb(trained, 1, rows, NROWS, approx, err, sizeof(err)), VG_OK);
    double worst_sum = 0.0, worst_xgb = 0.0;
    size_t bad_order = 0;
    for (size_t r = 0; r < NROWS; r++) {
        double c[NF], bias;
        vg_model_contribs(trained, rows + r * NF, c, &bias);
        double sum = bias;
        for (size_t f = 0; f < NF; f++) {
            sum += c[f];
            worst_xgb = fmax(worst_xgb, fabs(c[f] - approx[r * (NF + 1) + f]));
        }
        worst_sum = fmax(worst_sum, fabs(sum - margin[r]));
        worst_xgb = fmax(worst_xgb, fabs(bias - approx[r * (NF + 1) + NF]));

        /* Top 3 against a brute-force ranking of all contributions. */
        vg_reason_t top[3];
        size_t n = 99;
        VG_CHECK_INT(vg_model_explain(trained, rows + r * NF, 3, top, &n, err, sizeof(err)), VG_OK);
        VG_CHECK_INT(n, 3);
        int used[NF] = {0};
        for (size_t k = 0; k < 3; k++) {
            size_t best = NF;
            for (size_t f = 0; f < NF; f++)
                if (!used[f] && (best == NF || fabsf((float)c[f]) > fabsf((float)c[best])))
                    best = f;
            used[best] = 1;
            float v = rows[r * NF + best];
            if (top[k].feature != best || top[k].contribution != (float)c[best] ||
                !(top[k].value == v || (isnan(v) && isnan(top[k].value))))
                bad_order++;
        }
    }
    VG_CHECK(worst_sum <= 1e-4);
    VG_CHECK(worst_xgb <= 1e-5); /* XGBoost's own Saabas contributions */
    VG_CHECK_INT(bad_order, 0);
    if (worst_sum > 1e-4 || worst_xgb > 1e-5)
        fprintf(stderr, "worst sum diff %g, worst diff from XGBoost %g\n", worst_sum, worst_xgb);

    /* k larger than the feature count returns every feature; k = 0 none. */
    vg_reason_t all[NF + 4];
    size_t n = 0;
    VG_CHECK_INT(vg_model_explain(trained, rows, NF + 4, all, &n, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(n, NF);
    for (size_t k = 1; k < n; k++)
        VG_CHECK(fabsf(all[k - 1].contribution) >= fabsf(all[k].contribution));
    VG_CHECK_INT(vg_model_explain(trained, rows, 0, all, &n, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(n, 0);
}

static void write_text(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
}

static char *read_text(const char *path, size_t *len)
{
    char *data = NULL;
    VG_CHECK_INT(vg_read_file(path, &data, len, NULL, 0), VG_OK);
    return data;
}

/* Loads dir against catalogue (features, version) and expects NULL and exactly msg. */
static void expect_refused(const char *dir, const char *const *features, size_t n,
                           const char *catver, const char *msg)
{
    char err[VG_ERRLEN] = "";
    vg_model_t *model = vg_model_load(dir, features, n, catver, err, sizeof(err));
    VG_CHECK(model == NULL);
    vg_model_free(model);
    VG_CHECK_STR(err, msg);
}

static void test_bad_bundles(void)
{
    char msg[1024], path[4096];
    char *dir = bundle_dir("bad");
    mkdir(dir, 0755);
    snprintf(msg, sizeof(msg),
             "model bundle %s: cannot read manifest.json: No such file or directory", dir);
    expect_refused(dir, names, NF, "cat-1", msg);
    save(trained, dir, "json");

    /* Catalogue lacks device_new and has country; hour and card_count_1h swapped. */
    const char *cat[NF] = {"amount", "card_count_1h", "hour",    "card_mean_30d",
                           "night",  "geo_km",        "country", "terminal_risk"};
    snprintf(msg, sizeof(msg),
             "model bundle %s does not match catalogue: missing features country; extra features "
             "device_new; reordered features card_count_1h, hour",
             dir);
    expect_refused(dir, cat, NF, "cat-1", msg);
    /* Only reordered. */
    const char *swapped[NF] = {"amount", "hour",   "card_count_1h", "card_mean_30d",
                               "night",  "geo_km", "device_new",    "terminal_risk"};
    snprintf(msg, sizeof(msg),
             "model bundle %s does not match catalogue: reordered features device_new, "
             "terminal_risk",
             dir);
    expect_refused(dir, swapped, NF, "cat-1", msg);
    /* Only missing: the catalogue has one more feature at the end. */
    const char *more[NF + 1] = {"amount",        "hour",       "card_count_1h",
                                "card_mean_30d", "night",      "geo_km",
                                "terminal_risk", "device_new", "ip_risk"};
    snprintf(msg, sizeof(msg), "model bundle %s does not match catalogue: missing features ip_risk",
             dir);
    expect_refused(dir, more, NF + 1, "cat-1", msg);
    /* Only extra: the catalogue dropped two. */
    snprintf(msg, sizeof(msg),
             "model bundle %s does not match catalogue: extra features terminal_risk, device_new",
             dir);
    expect_refused(dir, names, NF - 2, "cat-1", msg);

    snprintf(msg, sizeof(msg),
             "model bundle %s was trained on catalogue cat-1, running catalogue "
             "is cat-2",
             dir);
    expect_refused(dir, names, NF, "cat-2", msg);

    /* The same bundle loads with features = NULL (inspection tools) and with the right ones. */
    char err[VG_ERRLEN] = "";
    vg_model_t *model = vg_model_load(dir, NULL, 0, NULL, err, sizeof(err));
    VG_CHECK(model != NULL);
    vg_model_free(model);

    /* Corrupt model files: truncated, and garbage bytes. */
    snprintf(path, sizeof(path), "%s/model.json", dir);
    size_t len = 0;
    char *good = read_text(path, &len);
    /* Cut inside the tree list, just after its opening bracket. */
    size_t cut = (size_t)(strstr(good, "\"trees\":[") - good) + 9;
    write_text(path, good, cut);
    snprintf(msg, sizeof(msg),
             "model bundle %s: model.json: cannot load model: Expecting: \",\", got: \"EOF\", "
             "around character position: %zu",
             dir, cut);
    expect_refused(dir, names, NF, "cat-1", msg);
    write_text(path, "\x93\x01garbage\xff\xfe not a model at all", 28);
    snprintf(msg, sizeof(msg),
             "model bundle %s: model.json: cannot load model: not an XGBoost JSON or UBJ model "
             "(first byte 0x93)",
             dir);
    expect_refused(dir, names, NF, "cat-1", msg);
    /* Valid JSON that is not a model. */
    write_text(path, "{\"learner\": 3}", 14);
    snprintf(msg, sizeof(msg),
             "model bundle %s: model.json: cannot load model: model has no valid num_feature", dir);
    expect_refused(dir, names, NF, "cat-1", msg);
    /* Well-formed JSON whose first tree lost its first parent entry: libxgboost 1.7 would
     * load it unchecked; vigil refuses it before XGBoost sees it. */
    char *cut_parent = malloc(len + 1);
    const char *parents = strstr(good, "\"parents\":[");
    const char *comma = parents ? strchr(parents, ',') : NULL;
    VG_CHECK(comma != NULL);
    if (comma) {
        size_t head = (size_t)(parents - good) + 11;
        memcpy(cut_parent, good, head);
        memcpy(cut_parent + head, comma + 1, len - (size_t)(comma + 1 - good));
        write_text(path, cut_parent, len - (size_t)(comma + 1 - good) + head);
        snprintf(msg, sizeof(msg),
                 "model bundle %s: model.json: cannot load model: tree 0: \"parents\" has 28 "
                 "entries for 29 nodes",
                 dir);
        expect_refused(dir, names, NF, "cat-1", msg);
    }
    free(cut_parent);
    remove(path);
    snprintf(msg, sizeof(msg), "model bundle %s: cannot read model.json: No such file or directory",
             dir);
    expect_refused(dir, names, NF, "cat-1", msg);
    write_text(path, good, len);
    free(good);

    /* A broken manifest. */
    snprintf(path, sizeof(path), "%s/manifest.json", dir);
    char *manifest = read_text(path, &len);
    const char *broken = "{\n  \"format\": \"vigil-model-bundle/1\",\n  \"features\": [\"a\"\n";
    write_text(path, broken, strlen(broken));
    snprintf(msg, sizeof(msg),
             "model bundle %s: manifest.json line 4: ']' expected near end of file", dir);
    expect_refused(dir, names, NF, "cat-1", msg);
    write_text(path, "{\"format\": \"vigil-model-bundle/1\", \"features\": [\"a\", \"a\"]}", 58);
    snprintf(msg, sizeof(msg),
             "model bundle %s: manifest.json: \"features\" must be a non-empty array of distinct "
             "strings",
             dir);
    expect_refused(dir, names, NF, "cat-1", msg);
    free(manifest);
    free(dir);
}

/* Damaged model files, JSON and UBJ: truncated anywhere, or with bytes overwritten. Each load
 * either succeeds (the damage hit a value, not the structure) and then scores, or fails with
 * a bundle message; none crashes. */
static void test_damaged_models_fail_cleanly(void)
{
    const char *formats[] = {"json", "ubj"};
    for (size_t i = 0; i < 2; i++) {
        char *dir = bundle_dir(formats[i]), path[4096];
        snprintf(path, sizeof(path), "%s/model.%s", dir, formats[i]);
        size_t len = 0;
        char *good = read_text(path, &len);
        char *bad = malloc(len);
        size_t loaded = 0, refused = 0, bad_msg = 0;
        for (int trial = 0; trial < 150; trial++) {
            memcpy(bad, good, len);
            size_t n = len;
            if (trial % 3 == 0) {
                n = 1 + (size_t)(rnd() * (double)(len - 1));
            } else {
                for (int k = 0; k < 1 + trial % 4; k++)
                    bad[1 + (size_t)(rnd() * (double)(len - 1))] = (char)(rnd() * 256.0);
            }
            write_text(path, bad, n);
            char err[VG_ERRLEN] = "";
            vg_model_t *model = vg_model_load(dir, names, NF, "cat-1", err, sizeof(err));
            if (model) {
                float score[4];
                vg_model_score(model, rows, 4, score, err, sizeof(err));
                loaded++;
            } else {
                refused++;
                bad_msg += strncmp(err, "model bundle ", 13) != 0;
            }
            vg_model_free(model);
        }
        VG_CHECK_INT(loaded + refused, 150);
        VG_CHECK(refused >= 50); /* every truncation at least */
        VG_CHECK_INT(bad_msg, 0);
        write_text(path, good, len);
        free(good);
        free(bad);
        free(dir);
    }
}

int main(void)
{
    make_data();
    tmp = vg_test_tmpdir();
    trained = train_small(7, 20);
    if (!trained)
        return 1;
    VG_RUN(test_scores_equal_libxgboost);
    VG_RUN(test_training_is_deterministic);
    VG_RUN(test_explain_adds_up);
    VG_RUN(test_early_stopping);
    VG_RUN(test_bad_bundles);
    VG_RUN(test_damaged_models_fail_cleanly);
    vg_model_free(trained);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    free(tmp);
    return vg_test_done();
}
