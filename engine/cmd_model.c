/*
 * cmd_model.c - `vigil model`: the model registry from a terminal.
 *
 *   vigil model list --registry DIR
 *   vigil model show BUNDLE
 *   vigil model add --registry DIR BUNDLE
 *   vigil model promote --registry DIR VERSION (--force | --decisions F --labels F --test W)
 *
 * Promotion without --force evaluates the candidate and the current champion on the same
 * window and promotes only if the candidate's average precision is higher; a running engine
 * watching the registry picks up the new champion.
 */
#include "engine/cli.h"
#include "engine/common.h"
#include "models/dataset.h"
#include "models/models.h"
#include "models/registry.h"

#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void)
{
    printf("usage: vigil model list --registry DIR\n"
           "       vigil model show BUNDLE\n"
           "       vigil model add --registry DIR BUNDLE\n"
           "       vigil model promote --registry DIR VERSION\n"
           "                           (--force | --decisions FILE --labels FILE --test "
           "FROM..TO [--k N]\n"
           "                            [--known-frauds-from DATE])\n\n"
           "Lists the registry's versions (* marks the champion), prints a bundle's manifest,\n"
           "adds a bundle as the next version, or makes a version champion: only if it beats\n"
           "the current champion's average precision on the same window, or with --force.\n"
           "--known-frauds-from evaluates on the handbook's test set, as vigil eval does.\n");
}

/* Average precision of a bundle on the window; NAN and a message on error. */
static double bundle_ap(const char *dir, const char *decisions, const char *labels,
                        const vg_dataset_opts_t *base, size_t k, vg_eval_t *ev)
{
    char err[VG_ERRLEN];
    vg_model_t *model = vg_model_load(dir, NULL, 0, NULL, err, sizeof(err));
    if (!model) {
        fprintf(stderr, "vigil model: %s\n", err);
        return NAN;
    }
    size_t nf = vg_model_nfeatures(model);
    const char **names = vg_xcalloc(nf, sizeof(*names));
    for (size_t i = 0; i < nf; i++)
        names[i] = vg_model_feature(model, i);
    vg_dataset_opts_t opts = *base;
    opts.features = names;
    opts.nfeatures = nf;
    vg_dataset_t ds;
    double ap = NAN;
    if (vg_dataset_load(decisions, labels, &opts, &ds, err, sizeof(err)) != VG_OK) {
        fprintf(stderr, "vigil model: %s\n", err);
    } else {
        if (vg_model_evaluate(model, &ds, k, 0.5, ev, NULL, err, sizeof(err)) == VG_OK)
            ap = ev->average_precision;
        else
            fprintf(stderr, "vigil model: %s\n", err);
        vg_dataset_free(&ds);
    }
    free(names);
    vg_model_free(model);
    return ap;
}

int vg_cmd_model(int argc, char **argv)
{
    static const struct option opts[] = {
        {"registry", required_argument, NULL, 'r'},
        {"force", no_argument, NULL, 'f'},
        {"decisions", required_argument, NULL, 'd'},
        {"labels", required_argument, NULL, 'l'},
        {"test", required_argument, NULL, 'w'},
        {"k", required_argument, NULL, 'k'},
        {"known-frauds-from", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *reg = NULL, *decisions = NULL, *labels = NULL, *window = NULL, *known_from = NULL;
    int force = 0, opt;
    long k = 100;
    char err[VG_ERRLEN], path[4200];
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            reg = optarg;
            break;
        case 'f':
            force = 1;
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
        case 'k': {
            char *end;
            k = strtol(optarg, &end, 10);
            if (*end || k < 1)
                return vg_cli_usage_error("model promote", "--k must be a positive integer");
            break;
        }
        case 'K':
            known_from = optarg;
            break;
        case 'h':
            help();
            return 0;
        default:
            return vg_cli_usage_error("model", "unknown option");
        }
    }
    const char *sub = optind < argc ? argv[optind] : NULL;
    const char *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
    if (!sub)
        return vg_cli_usage_error("model", "expected list, show, add or promote");
    if (strcmp(sub, "show") == 0) {
        if (!arg)
            return vg_cli_usage_error("model", "show needs a bundle directory");
        vg_model_t *model = vg_model_load(arg, NULL, 0, NULL, err, sizeof(err));
        if (!model) {
            fprintf(stderr, "vigil model: %s\n", err);
            return 1;
        }
        printf("version %s\n%s\n", vg_model_version(model), vg_model_manifest_text(model));
        vg_model_free(model);
        return 0;
    }
    if (!reg)
        return vg_cli_usage_error("model", "%s needs --registry DIR", sub);
    if (strcmp(sub, "list") == 0) {
        int *versions = NULL, champion = 0;
        size_t n = 0;
        if (vg_registry_list(reg, &versions, &n, err, sizeof(err)) != VG_OK) {
            fprintf(stderr, "vigil model: %s\n", err);
            return 1;
        }
        if (vg_registry_champion(reg, &champion, path, sizeof(path), err, sizeof(err)) != VG_OK)
            champion = 0;
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/versions/%04d", reg, versions[i]);
            vg_model_t *model = vg_model_load(path, NULL, 0, NULL, err, sizeof(err));
            printf("%c %04d  %s\n", versions[i] == champion ? '*' : ' ', versions[i],
                   model ? vg_model_version(model) : err);
            vg_model_free(model);
        }
        if (n == 0)
            printf("(no versions in %s)\n", reg);
        free(versions);
        return 0;
    }
    if (strcmp(sub, "add") == 0) {
        int version = 0;
        if (!arg)
            return vg_cli_usage_error("model", "add needs a bundle directory");
        if (vg_registry_add(reg, arg, &version, err, sizeof(err)) != VG_OK) {
            fprintf(stderr, "vigil model: %s\n", err);
            return 1;
        }
        printf("added %s as version %04d\n", arg, version);
        return 0;
    }
    if (strcmp(sub, "promote") != 0)
        return vg_cli_usage_error("model", "unknown subcommand '%s'", sub);
    int version = arg ? atoi(arg) : 0, champion = 0;
    if (version < 1)
        return vg_cli_usage_error("model", "promote needs a version number");
    vg_err_t cerr = vg_registry_champion(reg, &champion, path, sizeof(path), err, sizeof(err));
    if (cerr != VG_OK && cerr != VG_ERR_NOTFOUND) {
        fprintf(stderr, "vigil model: %s\n", err);
        return 1;
    }
    if (cerr == VG_OK && !force) {
        if (!decisions || !labels || !window)
            return vg_cli_usage_error("model", "promote needs --force or --decisions, --labels "
                                               "and --test to compare with the champion");
        vg_dataset_opts_t dopts = {.as_of_ms = INT64_MAX};
        if (vg_parse_window(window, &dopts.from_ms, &dopts.to_ms, err, sizeof(err)) != VG_OK)
            return vg_cli_usage_error("model", "--test: %s", err);
        if (known_from) {
            char day[64];
            snprintf(day, sizeof(day), "%s%s", known_from,
                     strlen(known_from) == 10 ? "T00:00:00Z" : "");
            if (vg_time_parse(day, strlen(day), &dopts.known_from_ms) != VG_OK)
                return vg_cli_usage_error("model", "--known-frauds-from: bad date '%s'",
                                          known_from);
            dopts.drop_known_frauds = 1;
        }
        char cand[4200];
        snprintf(cand, sizeof(cand), "%s/versions/%04d", reg, version);
        vg_eval_t ec, eh;
        double ap_cand = bundle_ap(cand, decisions, labels, &dopts, (size_t)k, &ec);
        double ap_champ = bundle_ap(path, decisions, labels, &dopts, (size_t)k, &eh);
        if (isnan(ap_cand) || isnan(ap_champ))
            return 1;
        printf("on %s: candidate %04d AP %.4f AUC %.4f CP@%ld %.4f; champion %04d AP %.4f AUC "
               "%.4f CP@%ld %.4f\n",
               window, version, ap_cand, ec.auc_roc, k, ec.card_precision_at_k, champion, ap_champ,
               eh.auc_roc, k, eh.card_precision_at_k);
        if (!(ap_cand > ap_champ)) {
            printf("not promoted: the candidate does not beat the champion\n");
            return 1;
        }
    }
    if (vg_registry_promote(reg, version, err, sizeof(err)) != VG_OK) {
        fprintf(stderr, "vigil model: %s\n", err);
        return 1;
    }
    printf("version %04d is champion\n", version);
    return 0;
}
