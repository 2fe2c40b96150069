/*
 * fuzz_rules.c - libFuzzer harness for the rule language: any bytes must either load or
 * give errors, never crash, leak, overflow or hang; a set that loads must evaluate (PRE and
 * POST, with present and missing values) and give a fired list that is sorted, in range
 * and consistent with the decision.
 *
 * Lists @allowlist and @blocklist exist (written once to a temporary directory); any other
 * list name exercises the missing-list error.
 */
#include "rules/rules.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const features[] = {
    "card_count_10m",
    "card_count_1h",
    "card_amount_mean_30d",
    "card_amount_zscore_30d",
    "card_geo_velocity_kmh",
    "terminal_fraud_share_7d_delay7d",
    "amount",
    "hour",
    "night",
};
#define NFEAT (sizeof(features) / sizeof(features[0]))

static char lists_dir[256];
static vg_schema_t schema;

static void write_list(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.txt", lists_dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
}

static void cleanup(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/allowlist.txt", lists_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/blocklist.txt", lists_dir);
    unlink(path);
    rmdir(lists_dir);
    vg_schema_free(&schema);
}

static void setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(lists_dir, sizeof(lists_dir), "%s/vigil-fuzz-rules-XXXXXX",
             base && *base ? base : "/tmp");
    if (!mkdtemp(lists_dir))
        abort();
    write_list("allowlist", "# vip cards\ncard-1\n  card-2  \n\ncard-3\r\n");
    write_list("blocklist", "1.2.3.4\ndev-9\n");
    vg_schema_init(&schema);
    vg_schema_add(&schema, "ip_country");
    atexit(cleanup);
}

static void check_result(const vg_rules_t *rs, const vg_rules_result_t *res)
{
    size_t n = vg_rules_count(rs);
    int any_allow = 0, strongest = 0;
    if (res->nfired > VG_RULES_MAX_FIRED)
        abort();
    for (size_t i = 0; i < res->nfired; i++) {
        if (res->fired[i] >= n || (i > 0 && res->fired[i] <= res->fired[i - 1]))
            abort();
        if (vg_rules_shadow(rs, res->fired[i]))
            continue;
        vg_action_t a = vg_rules_action(rs, res->fired[i]);
        if (a == VG_ACTION_ALLOW)
            any_allow = 1;
        else if ((int)a > strongest)
            strongest = (int)a;
    }
    if (!res->truncated && (int)res->action != (any_allow ? 0 : strongest))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    vg_rules_env_t env = {features, NFEAT, &schema, 1, lists_dir};
    /* A small buffer on odd sizes exercises dropping errors that do not fit. */
    char errbuf[2048];
    size_t errlen = size % 2 ? 64 : sizeof(errbuf);
    vg_rules_t *rs =
        vg_rules_load_buffer("fuzz.rules", (const char *)data, size, &env, errbuf, errlen);
    if (!rs) {
        if (strlen(errbuf) >= errlen)
            abort();
        return 0;
    }
    if (strlen(vg_rules_version(rs)) != 16)
        abort();
    for (size_t i = 0; i < vg_rules_count(rs); i++)
        if (!vg_rules_id(rs, i) || vg_rules_line(rs, i) < 1)
            abort();

    vg_txn_t txn;
    memset(&txn, 0, sizeof(txn));
    txn.str[1] = "card-2";
    txn.len[1] = 6;
    txn.str[8] = "ecom";
    txn.len[8] = 4;
    txn.str[10] = "1.2.3.4";
    txn.len[10] = 7;
    txn.amount = 250;
    txn.lat = NAN;
    txn.lon = 4.5;
    double f1[NFEAT] = {6, 9, 20, 3.5, 1200, 0.3, 250, 23, 1};
    double f2[NFEAT];
    for (size_t i = 0; i < NFEAT; i++)
        f2[i] = i % 2 ? NAN : 0.0;
    vg_rules_result_t res;
    vg_rules_eval(rs, VG_RULES_PRE, &txn, f1, 0.7, &res);
    vg_rules_eval(rs, VG_RULES_POST, &txn, f1, 0.7, &res);
    check_result(rs, &res);
    memset(&txn.str, 0, sizeof(txn.str));
    vg_rules_eval(rs, VG_RULES_PRE, &txn, f2, NAN, &res);
    vg_rules_eval(rs, VG_RULES_POST, &txn, f2, NAN, &res);
    check_result(rs, &res);
    vg_rules_free(rs);
    return 0;
}
