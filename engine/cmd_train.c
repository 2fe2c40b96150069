/*
 * cmd_train.c - `vigil train`: joins served decisions with labels over a time window,
 * trains an XGBoost model through the C API and writes a model bundle.
 *
 * Labels count only if known at --as-of (default: the end of the window plus the maturity
 * period, i.e. training the day the whole window has matured); decisions still unlabelled
 * after the maturity period count as legit, as chargeback practice does. With --valid-days
 * the last days of the window are held out for early stopping (time-based, never shuffled).
 */
#include "engine/cli.h"
#include "engine/common.h"
#include "models/dataset.h"
#include "models/models.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(void)
{
    printf("usage: vigil train --decisions FILE --labels FILE --train FROM..TO --out DIR "
           "[OPTIONS]\n\n"
           "Builds a training set from decisions (their features exactly as served) and labels,\n"
           "trains an XGBoost model and writes a model bundle (model + manifest.json) to DIR.\n\n"
           "Options:\n"
           "  --decisions FILE        decisions, JSON lines (vigil run/replay output)\n"
           "  --labels FILE           labels, JSON lines\n"
           "  --train FROM..TO        training window, e.g. 2018-04-01..2018-04-08 (TO excluded)\n"
           "  --out DIR               bundle directory to write\n"
           "  --maturity DUR          unlabelled decisions older than this count as legit "
           "(default 7d)\n"
           "  --as-of TIME            labels known at TIME (default: end of window + maturity)\n"
           "  --valid-days N          hold out the window's last N days for early stopping "
           "(default 0)\n"
           "  --early-stopping N      stop after N rounds without better validation AP "
           "(default 10)\n"
           "  --trees N               boosting rounds (default 100)\n"
           "  --depth N               maximum tree depth (default 6)\n"
           "  --eta X                 learning rate (default 0.3)\n"
           "  --scale-pos-weight X    weight of the fraud class (default 1)\n"
           "  --seed N                random seed (default 0)\n"
           "  --threads N             training threads (default 1)\n"
           "  --tree-method M         hist, exact or approx (default hist)\n"
           "  --quiet                 no progress line\n"
           "  --format json|ubj       model file format (default json)\n"
           "  --catalog-version V     catalogue version for the manifest (default: the "
           "decisions')\n"
           "  -h, --help              this help\n");
}

/* ctx: non-NULL when stderr is a terminal (one line rewritten in place), NULL when it is a
 * log (a line per ten rounds). */
static void progress(int round, int trees, double valid_ap, void *ctx)
{
    if (round % 10 != 0 && round != trees)
        return;
    const char *start = ctx ? "\r" : "", *end = ctx ? "" : "\n";
    if (isnan(valid_ap))
        fprintf(stderr, "%sround %d/%d%s", start, round, trees, end);
    else
        fprintf(stderr, "%sround %d/%d  validation AP %.4f%s", start, round, trees, valid_ap, end);
    fflush(stderr);
}

int vg_cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"decisions", required_argument, NULL, 'd'},
        {"labels", required_argument, NULL, 'l'},
        {"train", required_argument, NULL, 'w'},
        {"out", required_argument, NULL, 'o'},
        {"maturity", required_argument, NULL, 'm'},
        {"as-of", required_argument, NULL, 'a'},
        {"valid-days", required_argument, NULL, 'v'},
        {"early-stopping", required_argument, NULL, 'e'},
        {"trees", required_argument, NULL, 'n'},
        {"depth", required_argument, NULL, 'D'},
        {"eta", required_argument, NULL, 'E'},
        {"scale-pos-weight", required_argument, NULL, 'W'},
        {"seed", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {"catalog-version", required_argument, NULL, 'c'},
        {"tree-method", required_argument, NULL, 'M'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *decisions = NULL, *labels = NULL, *window = NULL, *out = NULL, *as_of = NULL;
    const char *format = "json", *catver = NULL;
    int64_t maturity = 7 * 86400000LL;
    int valid_days = 0, quiet = 0, opt;
    vg_train_params_t params;
    vg_train_params_default(&params);
    params.early_stopping_rounds = 10;
    char err[VG_ERRLEN];
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (opt) {
        case 'd':
            decisions = optarg;
            break;
        case 'l':
            labels = optarg;
            break;
        case 'w':
            window = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'm':
            if (vg_duration_parse(optarg, &maturity) != VG_OK)
                return vg_cli_usage_error("train", "--maturity: bad duration '%s'", optarg);
            break;
        case 'a':
            as_of = optarg;
            break;
        case 'v':
            valid_days = (int)strtol(optarg, &end, 10);
            if (*end || valid_days < 0)
                return vg_cli_usage_error("train", "--valid-days must be >= 0");
            break;
        case 'e':
            params.early_stopping_rounds = (int)strtol(optarg, &end, 10);
            break;
        case 'n':
            params.trees = (int)strtol(optarg, &end, 10);
            break;
        case 'D':
            params.max_depth = (int)strtol(optarg, &end, 10);
            break;
        case 'E':
            params.eta = strtod(optarg, &end);
            break;
        case 'W':
            params.scale_pos_weight = strtod(optarg, &end);
            break;
        case 's':
            params.seed = strtoull(optarg, &end, 10);
            break;
        case 't':
            params.nthread = (int)strtol(optarg, &end, 10);
            break;
        case 'f':
            format = optarg;
            break;
        case 'c':
            catver = optarg;
            break;
        case 'M':
            params.tree_method = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            help();
            return 0;
        default:
            return vg_cli_usage_error("train", "unknown option");
        }
        if (end && *end)
            return vg_cli_usage_error("train", "bad number '%s'", optarg);
    }
    if (!decisions || !labels || !window || !out)
        return vg_cli_usage_error("train", "--decisions, --labels, --train and --out are needed");
    vg_dataset_opts_t dopts = {0};
    if (vg_parse_window(window, &dopts.from_ms, &dopts.to_ms, err, sizeof(err)) != VG_OK)
        return vg_cli_usage_error("train", "--train: %s", err);
    dopts.maturity_ms = maturity;
    dopts.as_of_ms = dopts.to_ms + maturity;
    if (as_of && vg_time_parse(as_of, strlen(as_of), &dopts.as_of_ms) != VG_OK)
        return vg_cli_usage_error("train", "--as-of: bad time '%s'", as_of);

    vg_dataset_t ds;
    if (vg_dataset_load(decisions, labels, &dopts, &ds, err, sizeof(err)) != VG_OK) {
        fprintf(stderr, "vigil train: %s\n", err);
        return 1;
    }
    fprintf(stderr,
            "training set: %zu rows (%zu fraud, %zu labelled legit, %zu matured legit), %zu "
            "immature left out, %zu duplicate decisions\n",
            ds.nrows, ds.labelled_fraud, ds.labelled_legit, ds.matured_legit, ds.immature,
            ds.duplicates);
    /* Rows are in file order, which for engine output is event-time order per partition but
     * not globally: split on time, not position. */
    int64_t split = dopts.to_ms - (int64_t)valid_days * 86400000LL;
    size_t ntrain = 0, nvalid = 0, nf = ds.nfeatures;
    float *train = vg_xmalloc((ds.nrows ? ds.nrows : 1) * (nf ? nf : 1) * sizeof(float));
    float *trainy = vg_xmalloc((ds.nrows ? ds.nrows : 1) * sizeof(float));
    float *valid = vg_xmalloc((ds.nrows ? ds.nrows : 1) * (nf ? nf : 1) * sizeof(float));
    float *validy = vg_xmalloc((ds.nrows ? ds.nrows : 1) * sizeof(float));
    for (size_t r = 0; r < ds.nrows; r++) {
        int is_valid = valid_days > 0 && ds.ts[r] >= split;
        float *dst = is_valid ? valid + nvalid * nf : train + ntrain * nf;
        memcpy(dst, ds.rows + r * nf, nf * sizeof(float));
        if (is_valid)
            validy[nvalid++] = ds.labels[r];
        else
            trainy[ntrain++] = ds.labels[r];
    }
    if (nvalid) {
        params.valid_rows = valid;
        params.valid_labels = validy;
        params.valid_nrows = nvalid;
    }
    static int tty = 1; /* any non-NULL pointer marks a terminal */
    params.progress = quiet ? NULL : progress;
    params.progress_ctx = isatty(2) ? &tty : NULL;
    int rc = 1;
    vg_model_t *model = vg_model_train(train, trainy, ntrain, nf, (const char *const *)ds.features,
                                       &params, err, sizeof(err));
    if (params.progress && params.progress_ctx)
        fprintf(stderr, "\n");
    if (!model) {
        fprintf(stderr, "vigil train: %s\n", err);
        goto out;
    }
    char from[32], to[32];
    vg_time_format(dopts.from_ms, from);
    vg_time_format(dopts.to_ms, to);
    vg_metric_kv_t metrics[1] = {{"valid_average_precision", vg_model_valid_ap(model)}};
    vg_bundle_info_t info = {.catalog_version = catver ? catver : ds.catalog,
                             .train_from = from,
                             .train_to = to,
                             .format = format,
                             .metrics = metrics,
                             .nmetrics = nvalid ? 1 : 0};
    if (vg_model_save_bundle(model, out, &info, err, sizeof(err)) != VG_OK) {
        fprintf(stderr, "vigil train: %s\n", err);
        goto out;
    }
    printf("wrote %s: %d trees over %zu features, %zu training rows", out, vg_model_rounds(model),
           nf, ntrain);
    if (nvalid)
        printf(", validation AP %.4f on %zu rows", vg_model_valid_ap(model), nvalid);
    printf("\nmodel version %s\n", vg_model_version(model));
    rc = 0;
out:
    vg_model_free(model);
    free(train);
    free(trainy);
    free(valid);
    free(validy);
    vg_dataset_free(&ds);
    return rc;
}
