/*
 * cmd_rules.c - `vigil rules check FILE`: parses and type-checks a rule file (and loads
 * every list it names) against a feature vector, and says either
 * "ok: N rules (M shadow)" or every error, "FILE:LINE:COL: message", one per line.
 *
 * The feature names come from --features (one name per line) or --catalog (the feature
 * catalogue; see catalog_feature_names() below).
 */
#include "engine/cli.h"
#include "engine/common.h"
#include "features/features.h"
#include "rules/rules.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void)
{
    printf("usage: vigil rules check FILE (--features FILE | --catalog FILE) [OPTIONS]\n\n"
           "Parses and type-checks a rule file: every name must be a feature, a transaction\n"
           "field, `score` or a list that exists. Prints 'ok: N rules (M shadow)' and exits 0,\n"
           "or prints every error as FILE:LINE:COL: message and exits 1.\n\n"
           "Options:\n"
           "  --features FILE  feature names, one per line, in vector order ('#' comments)\n"
           "  --catalog FILE   the feature catalogue the engine runs with\n"
           "  --lists DIR      where @name lists are (DIR/name.txt; default: the rule file's\n"
           "                   directory)\n"
           "  --field NAME     a transaction string field beyond the standard ones (repeatable)\n"
           "  --model          check as if a model were loaded (score rules would run)\n"
           "  -h, --help       this help\n\n"
           "The rule language is described in docs/rules.md.\n");
}

typedef struct names {
    char **v;
    size_t n;
} names_t;

static void names_free(names_t *names)
{
    for (size_t i = 0; i < names->n; i++)
        free(names->v[i]);
    free(names->v);
    names->v = NULL;
    names->n = 0;
}

/* One name per line; blanks around it, blank lines and '#' lines are ignored. */
static vg_err_t read_feature_names(const char *path, names_t *names, char *errbuf, size_t errlen)
{
    char *data;
    size_t len;
    vg_err_t err = vg_read_file(path, &data, &len, errbuf, errlen);
    if (err != VG_OK)
        return err;
    char *p = data, *end = data + len;
    while (p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        char *s = p, *e = eol;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (e > s && *s != '#') {
            names->v = vg_xrealloc(names->v, (names->n + 1) * sizeof(*names->v));
            names->v[names->n] = vg_xmalloc((size_t)(e - s) + 1);
            memcpy(names->v[names->n], s, (size_t)(e - s));
            names->v[names->n++][e - s] = '\0';
        }
        p = eol + 1;
    }
    free(data);
    return VG_OK;
}

/* Fills names with the catalogue's feature names in vector order; the catalogue registers
 * the extra transaction fields it names in schema. */
static vg_err_t catalog_feature_names(const char *path, names_t *names, vg_schema_t *schema,
                                      char *errbuf, size_t errlen)
{
    vg_catalog_t *catalog = vg_catalog_load(path, schema, errbuf, errlen);
    if (!catalog)
        return VG_ERR_CONFIG;
    for (size_t i = 0; i < vg_catalog_size(catalog); i++) {
        names->v = vg_xrealloc(names->v, (names->n + 1) * sizeof(*names->v));
        names->v[names->n++] = vg_xstrdup(vg_catalog_feature_name(catalog, i));
    }
    vg_catalog_free(catalog);
    return VG_OK;
}

static int check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"features", required_argument, NULL, 'f'},
        {"catalog", required_argument, NULL, 'c'},
        {"lists", required_argument, NULL, 'l'},
        {"field", required_argument, NULL, 'F'},
        {"model", no_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *features_path = NULL, *catalog_path = NULL, *lists_dir = NULL;
    int have_model = 0, opt;
    vg_schema_t schema;
    vg_schema_init(&schema);
    names_t names = {NULL, 0};
    int status = 1;
    char errbuf[VG_ERRLEN];

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'f':
            features_path = optarg;
            break;
        case 'c':
            catalog_path = optarg;
            break;
        case 'l':
            lists_dir = optarg;
            break;
        case 'F':
            if (vg_schema_add(&schema, optarg) < 0) {
                vg_schema_free(&schema);
                return vg_cli_usage_error("rules check", "cannot add field '%s'", optarg);
            }
            break;
        case 'm':
            have_model = 1;
            break;
        case 'h':
            help();
            vg_schema_free(&schema);
            return 0;
        default:
            vg_schema_free(&schema);
            return vg_cli_usage_error("rules check", "unknown option");
        }
    }
    if (optind + 1 != argc || (!features_path == !catalog_path)) {
        vg_schema_free(&schema);
        if (optind + 1 != argc)
            return vg_cli_usage_error("rules check", "expected one rule FILE");
        return vg_cli_usage_error("rules check", "give exactly one of --features or --catalog");
    }
    const char *path = argv[optind];
    vg_err_t err = features_path ? read_feature_names(features_path, &names, errbuf, sizeof(errbuf))
                                 : catalog_feature_names(catalog_path, &names, &schema, errbuf,
                                                         sizeof(errbuf));
    if (err != VG_OK) {
        fprintf(stderr, "vigil rules check: %s\n", errbuf);
        goto out;
    }

    vg_rules_env_t env = {(const char *const *)names.v, names.n, &schema, have_model, lists_dir};
    size_t cap = 65536;
    char *errors = vg_xmalloc(cap);
    errors[0] = '\0';
    vg_rules_t *rules = vg_rules_load(path, &env, errors, cap);
    if (!rules) {
        fputs(errors, stderr);
        free(errors);
        goto out;
    }
    free(errors);
    size_t n = vg_rules_count(rules), nshadow = 0, nscore = 0;
    for (size_t i = 0; i < n; i++) {
        nshadow += vg_rules_shadow(rules, i) != 0;
        nscore += vg_rules_uses_score(rules, i) != 0;
    }
    printf("ok: %zu rules (%zu shadow)\n", n, nshadow);
    printf("version: %s\n", vg_rules_version(rules));
    if (nscore && !have_model) {
        printf("note: %zu rule%s use%s score and %s skipped without a model:", nscore,
               nscore == 1 ? "" : "s", nscore == 1 ? "s" : "", nscore == 1 ? "is" : "are");
        for (size_t i = 0; i < n; i++)
            if (vg_rules_uses_score(rules, i))
                printf(" %s (line %d)", vg_rules_id(rules, i), vg_rules_line(rules, i));
        printf("\n");
    }
    vg_rules_free(rules);
    status = 0;
out:
    names_free(&names);
    vg_schema_free(&schema);
    return status;
}

int vg_cmd_rules(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc < 2) {
            fprintf(stderr, "usage: vigil rules check FILE (--features FILE | --catalog FILE)\n");
            return 2;
        }
        help();
        return 0;
    }
    if (strcmp(argv[1], "check") == 0)
        return check(argc - 1, argv + 1);
    return vg_cli_usage_error("rules", "unknown subcommand '%s' (expected check)", argv[1]);
}
