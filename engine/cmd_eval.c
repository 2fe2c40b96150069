/*
 * cmd_eval.c - `vigil eval`: scores a model bundle on a window of served decisions and
 * reports AUC ROC, average precision, card precision@k (Fraud Detection Handbook), and
 * precision/recall at a threshold, as a table or JSON; with --drift, each feature's
 * population stability index against the training distribution in the manifest.
 *
 * Evaluation uses every label in the labels file (ground truth, whenever it became known);
 * decisions never labelled count as legit.
 */
#include "engine/cli.h"
#include "engine/common.h"
#include "models/dataset.h"
#include "models/metrics.h"
#include "models/models.h"

#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void)
{
    printf("usage: vigil eval --model DIR --decisions FILE --labels FILE --test FROM..TO "
           "[OPTIONS]\n\n"
           "Scores a model bundle on the decisions of a time window and reports its figures.\n\n"
           "Options:\n"
           "  --model DIR          model bundle\n"
           "  --decisions FILE     decisions, JSON lines (features as served)\n"
           "  --labels FILE        labels, JSON lines\n"
           "  --test FROM..TO      evaluation window, e.g. 2018-04-15..2018-04-22\n"
           "  --k N                cards per day for card precision@k (default 100)\n"
           "  --threshold X        score flagged at or above X for precision/recall "
           "(default 0.5)\n"
           "  --drift              add each feature's PSI against the training distribution\n"
           "  --json               print one JSON object instead of a table\n"
           "  -h, --help           this help\n");
}

static void json_num(vg_buf_t *b, const char *name, double v, int last)
{
    vg_buf_printf(b, "\"%s\":", name);
    vg_buf_json_num(b, v);
    if (!last)
        vg_buf_putc(b, ',');
}

int vg_cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},  {"decisions", required_argument, NULL, 'd'},
        {"labels", required_argument, NULL, 'l'}, {"test", required_argument, NULL, 'w'},
        {"k", required_argument, NULL, 'k'},      {"threshold", required_argument, NULL, 't'},
        {"drift", no_argument, NULL, 'D'},        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *decisions = NULL, *labels = NULL, *window = NULL;
    long k = 100;
    double threshold = 0.5;
    int drift = 0, as_json = 0, opt;
    char err[VG_ERRLEN];
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (opt) {
        case 'm':
            dir = optarg;
            break;
        case 'd':
            decisions = optarg;
            break;
        case 'l':
            labels = optarg;
            break;
        case 'w':
            window = optarg;
            break;
        case 'k':
            k = strtol(optarg, &end, 10);
            if (*end || k < 1)
                return vg_cli_usage_error("eval", "--k must be a positive integer");
            break;
        case 't':
            threshold = strtod(optarg, &end);
            if (*end)
                return vg_cli_usage_error("eval", "--threshold: bad number '%s'", optarg);
            break;
        case 'D':
            drift = 1;
            break;
        case 'j':
            as_json = 1;
            break;
        case 'h':
            help();
            return 0;
        default:
            return vg_cli_usage_error("eval", "unknown option");
        }
    }
    if (!dir || !decisions || !labels || !window)
        return vg_cli_usage_error("eval", "--model, --decisions, --labels and --test are needed");
    vg_dataset_opts_t dopts = {.as_of_ms = INT64_MAX, .maturity_ms = 0};
    if (vg_parse_window(window, &dopts.from_ms, &dopts.to_ms, err, sizeof(err)) != VG_OK)
        return vg_cli_usage_error("eval", "--test: %s", err);

    vg_model_t *model = vg_model_load(dir, NULL, 0, NULL, err, sizeof(err));
    if (!model) {
        fprintf(stderr, "vigil eval: %s\n", err);
        return 1;
    }
    size_t nf = vg_model_nfeatures(model);
    const char **names = vg_xcalloc(nf, sizeof(*names));
    for (size_t i = 0; i < nf; i++)
        names[i] = vg_model_feature(model, i);
    dopts.features = names;
    dopts.nfeatures = nf;
    vg_dataset_t ds;
    vg_eval_t ev;
    int rc = 1;
    if (vg_dataset_load(decisions, labels, &dopts, &ds, err, sizeof(err)) != VG_OK) {
        fprintf(stderr, "vigil eval: %s\n", err);
        goto out_model;
    }
    float *scores = vg_xmalloc((ds.nrows ? ds.nrows : 1) * sizeof(float));
    if (vg_model_evaluate(model, &ds, (size_t)k, threshold, &ev, scores, err, sizeof(err)) !=
        VG_OK) {
        fprintf(stderr, "vigil eval: %s\n", err);
        free(scores);
        goto out;
    }
    /* psi[0..nf) per feature, psi[nf] for the score. */
    double *psi = vg_xcalloc(nf + 1, sizeof(double));
    for (size_t f = 0; drift && f <= nf; f++) {
        const vg_feature_bins_t *b = f < nf ? vg_model_bins(model, f) : vg_model_score_bins(model);
        const float *values = f < nf ? ds.rows + f : scores;
        size_t stride = f < nf ? nf : 1;
        double *actual = vg_xcalloc(b->nedges + 2, sizeof(double));
        double *expected = vg_xcalloc(b->nedges + 2, sizeof(double));
        vg_metric_bin_shares(values, ds.nrows, stride, b->edges, b->nedges, actual,
                             &actual[b->nedges + 1]);
        memcpy(expected, b->shares, (b->nedges + 1) * sizeof(double));
        expected[b->nedges + 1] = b->missing;
        psi[f] = vg_metric_psi(expected, actual, b->nedges + 2);
        free(actual);
        free(expected);
    }
    if (as_json) {
        vg_buf_t b;
        vg_buf_init(&b);
        vg_buf_puts(&b, "{\"model\":");
        vg_buf_json_str(&b, vg_model_version(model), strlen(vg_model_version(model)));
        vg_buf_puts(&b, ",\"window\":");
        vg_buf_json_str(&b, window, strlen(window));
        vg_buf_printf(&b, ",\"rows\":%zu,\"frauds\":%zu,\"days\":%zu,\"k\":%zu,", ev.rows,
                      ev.frauds, ev.days, ev.k);
        json_num(&b, "auc_roc", ev.auc_roc, 0);
        json_num(&b, "average_precision", ev.average_precision, 0);
        json_num(&b, "card_precision_at_k", ev.card_precision_at_k, 0);
        json_num(&b, "threshold", ev.threshold, 0);
        json_num(&b, "precision", ev.precision, 0);
        json_num(&b, "recall", ev.recall, 1);
        if (drift) {
            vg_buf_puts(&b, ",\"score_psi\":");
            vg_buf_json_num(&b, psi[nf]);
            vg_buf_puts(&b, ",\"psi\":{");
            for (size_t f = 0; f < nf; f++) {
                vg_buf_json_str(&b, names[f], strlen(names[f]));
                vg_buf_putc(&b, ':');
                vg_buf_json_num(&b, psi[f]);
                if (f + 1 < nf)
                    vg_buf_putc(&b, ',');
            }
            vg_buf_putc(&b, '}');
        }
        vg_buf_puts(&b, "}\n");
        fputs(b.data, stdout);
        vg_buf_free(&b);
    } else {
        printf("model                 %s\n", vg_model_version(model));
        printf("window                %s (%zu days)\n", window, ev.days);
        printf("transactions          %zu (%zu fraud)\n", ev.rows, ev.frauds);
        printf("AUC ROC               %.4f\n", ev.auc_roc);
        printf("average precision     %.4f\n", ev.average_precision);
        printf("card precision@%-6zu %.4f\n", ev.k, ev.card_precision_at_k);
        printf("precision @ %-9.3g %.4f\n", ev.threshold, ev.precision);
        printf("recall @ %-12.3g %.4f\n", ev.threshold, ev.recall);
        if (drift) {
            printf("\ndrift (PSI vs training; > 0.25 shifted, 0.1-0.25 shifting)\n");
            printf("  %-30s %.4f\n", "score", psi[nf]);
            for (size_t f = 0; f < nf; f++)
                printf("  %-30s %.4f%s\n", names[f], psi[f],
                       psi[f] > 0.25  ? "  shifted"
                       : psi[f] > 0.1 ? "  shifting"
                                      : "");
        }
    }
    free(psi);
    free(scores);
    rc = 0;
out:
    vg_dataset_free(&ds);
out_model:
    free(names);
    vg_model_free(model);
    return rc;
}
