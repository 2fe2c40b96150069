/*
 * cmd_eval.c - `vigil eval`: scores a model bundle on a window of served decisions and
 * reports AUC ROC, average precision, card precision@k (Fraud Detection Handbook), and
 * precision/recall at a threshold, as a table or JSON; with --drift, each feature's
 * population stability index against the training distribution in the manifest.
 *
 * Evaluation uses every label in the labels file (ground truth, whenever it became known);
 * decisions never labelled count as legit. --known-frauds-from gives the Fraud Detection
 * Handbook's test set: each day without the cards already known compromised by its start.
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
           "  --known-frauds-from DATE\n"
           "                       drop each day's transactions of cards with a fraud at or\n"
           "                       after DATE whose label was known by that day's start (the\n"
           "                       handbook's test set; DATE = the training window's start)\n"
           "  --json               print one JSON object instead of a table\n"
           "  --report FILE.html   also write a self-contained HTML report (ROC and\n"
           "                       precision-recall curves, score distribution)\n"
           "  -h, --help           this help\n");
}

/* ---- the HTML report: self-contained, inline SVG, no scripts ---- */

typedef struct pair {
    float score;
    int fraud;
} pair_t;

static int pair_desc(const void *a, const void *b)
{
    float x = ((const pair_t *)a)->score, y = ((const pair_t *)b)->score;
    return (x < y) - (x > y);
}

/* An SVG line chart of n points (x, y in [0, 1]) with axis labels. */
static void svg_curve(FILE *f, const char *title, const char *xlabel, const char *ylabel,
                      const double *xs, const double *ys, size_t n, int diagonal)
{
    fprintf(f, "<figure><svg viewBox=\"-40 -10 360 350\" width=\"360\" height=\"350\">"
               "<rect x=\"0\" y=\"0\" width=\"300\" height=\"300\" fill=\"none\" "
               "stroke=\"#999\"/>");
    if (diagonal)
        fprintf(f, "<line x1=\"0\" y1=\"300\" x2=\"300\" y2=\"0\" stroke=\"#ccc\" "
                   "stroke-dasharray=\"4\"/>");
    fprintf(f, "<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\" points=\"");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%.1f,%.1f ", xs[i] * 300.0, 300.0 - ys[i] * 300.0);
    fprintf(f,
            "\"/><text x=\"150\" y=\"330\" text-anchor=\"middle\">%s</text>"
            "<text x=\"-25\" y=\"150\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 -25 150)\">%s</text>"
            "<text x=\"0\" y=\"315\">0</text><text x=\"295\" y=\"315\">1</text>"
            "<text x=\"-12\" y=\"5\">1</text></svg><figcaption>%s</figcaption></figure>\n",
            xlabel, ylabel, title);
}

static vg_err_t write_report(const char *path, const char *model_version, const char *window,
                             const vg_eval_t *ev, const float *scores, const float *labels,
                             size_t n, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "cannot write %s", path);
    pair_t *p = vg_xmalloc((n ? n : 1) * sizeof(*p));
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        p[i].score = scores[i];
        p[i].fraud = labels[i] != 0.0f;
        pos += (size_t)p[i].fraud;
    }
    qsort(p, n, sizeof(*p), pair_desc);
    /* One curve point per distinct threshold, thinned to at most ~600. */
    size_t cap = 2 + (n < 600 ? n : 600) + 600;
    double *rx = vg_xmalloc(cap * sizeof(double)), *ry = vg_xmalloc(cap * sizeof(double));
    double *px = vg_xmalloc(cap * sizeof(double)), *py = vg_xmalloc(cap * sizeof(double));
    size_t nr = 0, np = 0, tp = 0, fp = 0, step = n / 600 + 1, since = 0;
    rx[nr] = 0, ry[nr++] = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && p[j].score == p[i].score) {
            tp += (size_t)p[j].fraud;
            fp += (size_t)!p[j].fraud;
            j++;
        }
        since += j - i;
        i = j;
        if ((since >= step || i == n) && nr + 1 < cap && np + 1 < cap) {
            since = 0;
            rx[nr] = n > pos ? (double)fp / (double)(n - pos) : 0;
            ry[nr++] = pos ? (double)tp / (double)pos : 0;
            px[np] = pos ? (double)tp / (double)pos : 0;
            py[np++] = (double)tp / (double)(tp + fp);
        }
    }
    /* Score histogram: 20 bins over [0, 1], as shares of each class. */
    double hist[2][20] = {{0}};
    for (size_t i = 0; i < n; i++) {
        int b = (int)(p[i].score * 20.0f);
        b = b < 0 ? 0 : b > 19 ? 19 : b;
        hist[p[i].fraud][b] += 1.0;
    }
    fprintf(f, "<!doctype html><html><head><meta charset=\"utf-8\"><title>vigil eval</title>"
               "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse}"
               "td{padding:2px 12px;border-bottom:1px solid #eee}figure{display:inline-block;"
               "margin:1em}text{font:11px sans-serif}</style></head><body>\n"
               "<h1>Model evaluation</h1><table>\n");
    fprintf(f, "<tr><td>model</td><td>%s</td></tr><tr><td>window</td><td>%s (%zu days)</td></tr>\n",
            model_version, window, ev->days);
    fprintf(f, "<tr><td>transactions</td><td>%zu (%zu fraud)</td></tr>\n", ev->rows, ev->frauds);
    fprintf(f,
            "<tr><td>AUC ROC</td><td>%.4f</td></tr><tr><td>average precision</td>"
            "<td>%.4f</td></tr>\n",
            ev->auc_roc, ev->average_precision);
    fprintf(f, "<tr><td>card precision@%zu</td><td>%.4f</td></tr>\n", ev->k,
            ev->card_precision_at_k);
    fprintf(f, "<tr><td>precision / recall at %.3g</td><td>%.4f / %.4f</td></tr></table>\n",
            ev->threshold, ev->precision, ev->recall);
    svg_curve(f, "ROC curve", "false positive rate", "true positive rate", rx, ry, nr, 1);
    svg_curve(f, "Precision-recall curve", "recall", "precision", px, py, np, 0);
    fprintf(f, "<figure><svg viewBox=\"-10 -10 340 330\" width=\"340\" height=\"330\">");
    double top = 0;
    for (int c = 0; c < 2; c++)
        for (int b = 0; b < 20; b++) {
            size_t total = c ? pos : n - pos;
            hist[c][b] = total ? hist[c][b] / (double)total : 0;
            top = hist[c][b] > top ? hist[c][b] : top;
        }
    for (int c = 0; c < 2; c++)
        for (int b = 0; b < 20; b++) {
            /* Square-root scale: most legit scores sit in the first bin. */
            double h = top > 0 ? sqrt(hist[c][b] / top) * 280.0 : 0;
            fprintf(f,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"%.1f\" "
                    "fill=\"%s\"/>",
                    b * 15.0 + c * 7.5, 290.0 - h, h, c ? "#c0392b" : "#2980b9");
        }
    fprintf(f, "<text x=\"0\" y=\"310\">0</text><text x=\"290\" y=\"310\">1</text></svg>"
               "<figcaption>Score distribution: legit (blue) and fraud (red), share of each "
               "class per 0.05 bin (square-root scale)</figcaption></figure>\n</body></html>\n");
    int ok = fclose(f) == 0;
    free(p);
    free(rx);
    free(ry);
    free(px);
    free(py);
    return ok ? VG_OK : vg_errf(errbuf, errlen, VG_ERR_IO, "cannot write %s", path);
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
        {"model", required_argument, NULL, 'm'},
        {"decisions", required_argument, NULL, 'd'},
        {"labels", required_argument, NULL, 'l'},
        {"test", required_argument, NULL, 'w'},
        {"k", required_argument, NULL, 'k'},
        {"threshold", required_argument, NULL, 't'},
        {"drift", no_argument, NULL, 'D'},
        {"json", no_argument, NULL, 'j'},
        {"known-frauds-from", required_argument, NULL, 'K'},
        {"report", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *decisions = NULL, *labels = NULL, *window = NULL, *report = NULL,
               *known_from = NULL;
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
        case 'R':
            report = optarg;
            break;
        case 'K':
            known_from = optarg;
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
    if (known_from) {
        char day[64];
        snprintf(day, sizeof(day), "%s%s", known_from,
                 strlen(known_from) == 10 ? "T00:00:00Z" : "");
        if (vg_time_parse(day, strlen(day), &dopts.known_from_ms) != VG_OK)
            return vg_cli_usage_error("eval", "--known-frauds-from: bad date '%s'", known_from);
        dopts.drop_known_frauds = 1;
    }

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
        if (dopts.drop_known_frauds)
            vg_buf_printf(&b, "\"known_dropped\":%zu,", ds.known_dropped);
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
        if (dopts.drop_known_frauds)
            printf("known compromised     %zu transactions left out\n", ds.known_dropped);
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
    rc = 0;
    if (report && write_report(report, vg_model_version(model), window, &ev, scores, ds.labels,
                               ds.nrows, err, sizeof(err)) != VG_OK) {
        fprintf(stderr, "vigil eval: %s\n", err);
        rc = 1;
    }
    free(scores);
out:
    vg_dataset_free(&ds);
out_model:
    free(names);
    vg_model_free(model);
    return rc;
}
