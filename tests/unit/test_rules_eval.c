/*
 * test_rules_eval.c - what compiled rules decide: one table of single-rule conditions
 * covering every operator, operator precedence, missing values (NaN features, absent
 * fields), strings and lists; then multi-rule files pinning the action precedence, shadow
 * rules, the two stages and the fired list.
 */
#include "rules/rules.h"
#include "vg_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The test's own catalogue. No `amount` feature: `amount` is the transaction field here. */
static const char *const features[] = {
    "card_count_10m",        "card_count_1h", "card_amount_mean_30d",
    "card_geo_velocity_kmh", "hour",          "night",
};
enum { F_COUNT_10M, F_COUNT_1H, F_MEAN_30D, F_GEO, F_HOUR, F_NIGHT, NFEAT };

static char *dir;
static vg_schema_t schema;
static int ip_country;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/* The base case every row is evaluated against. */
static void base(vg_txn_t *txn, double *f)
{
    memset(txn, 0, sizeof(*txn));
    txn->str[VG_F_CARD_ID] = "card-2";
    txn->str[VG_F_CHANNEL] = "ecom";
    txn->str[VG_F_COUNTRY] = "FR";
    txn->str[ip_country] = "DE";
    txn->str[VG_F_IP] = "1.2.3.4";
    for (int i = 0; i < VG_TXN_MAX_FIELDS; i++)
        txn->len[i] = txn->str[i] ? (uint32_t)strlen(txn->str[i]) : 0;
    txn->amount = 250;
    txn->lat = NAN;
    txn->lon = 4.5;
    f[F_COUNT_10M] = 6;
    f[F_COUNT_1H] = 9;
    f[F_MEAN_30D] = 20;
    f[F_GEO] = NAN; /* missing: no previous location */
    f[F_HOUR] = 23;
    f[F_NIGHT] = 1;
}

static vg_rules_t *load(const char *src, int have_model)
{
    vg_rules_env_t env = {features, NFEAT, &schema, have_model, dir};
    char errbuf[2048] = "";
    vg_rules_t *rs =
        vg_rules_load_buffer("t.rules", src, strlen(src), &env, errbuf, sizeof(errbuf));
    if (!rs)
        fprintf(stderr, "load failed:\n%s%s", src, errbuf);
    return rs;
}

static const struct {
    const char *cond;
    int fires;
} conds[] = {
    /* numeric comparisons, every operator, both outcomes */
    {"card_count_10m > 5", 1},
    {"card_count_10m > 6", 0},
    {"card_count_10m >= 6", 1},
    {"card_count_10m >= 7", 0},
    {"card_count_10m < 7", 1},
    {"card_count_10m < 6", 0},
    {"card_count_10m <= 6", 1},
    {"card_count_10m <= 5", 0},
    {"card_count_10m == 6", 1},
    {"card_count_10m = 6", 1},
    {"card_count_10m == 5", 0},
    {"card_count_10m != 5", 1},
    {"card_count_10m != 6", 0},
    {"5 < card_count_10m", 1},
    {"card_count_1h > card_count_10m", 1},
    /* arithmetic and its precedence */
    {"amount > 5 * card_amount_mean_30d", 1},
    {"amount > 13 * card_amount_mean_30d", 0},
    {"amount - 200 == 50", 1},
    {"amount + 1 == 251", 1},
    {"amount / card_amount_mean_30d == 12.5", 1},
    {"-amount < -249", 1},
    {"- -amount == 250", 1},
    {"2 + 3 * 4 == 14", 1},
    {"(2 + 3) * 4 == 20", 1},
    {"10 - 4 - 3 == 3", 1},
    {"8 / 4 / 2 == 1", 1},
    {"1.5e2 == 150", 1},
    {".5 * 4 == 2", 1},
    /* numeric transaction fields */
    {"lon > 4", 1},
    {"lat > 0", 0}, /* absent */
    {"lat <= 0", 0},
    /* missing values: every comparison is unknown, and unknown never fires */
    {"card_geo_velocity_kmh > 0", 0},
    {"card_geo_velocity_kmh <= 0", 0},
    {"card_geo_velocity_kmh == 0", 0},
    {"card_geo_velocity_kmh != 1", 0},
    {"card_geo_velocity_kmh * 0 == 0", 0},
    {"not (card_geo_velocity_kmh > 0)", 0},
    {"amount / 0 > 0", 0}, /* division by zero is missing */
    {"amount / 0 <= 0", 0},
    {"amount / (card_count_10m - 6) != 1", 0},
    /* Kleene logic over unknown */
    {"card_geo_velocity_kmh > 0 or night == 1", 1},
    {"night == 1 or card_geo_velocity_kmh > 0", 1},
    {"card_geo_velocity_kmh > 0 or night == 0", 0},
    {"card_geo_velocity_kmh > 0 and night == 1", 0},
    {"not (card_geo_velocity_kmh > 0 and night == 0)", 1}, /* unknown and false = false */
    {"not (card_geo_velocity_kmh > 0 or night == 0)", 0},
    /* logic and its precedence: not > and > or, comparisons bind tighter than all */
    {"night == 1 and hour >= 22", 1},
    {"night == 1 and hour < 22", 0},
    {"night == 0 or hour < 5", 0},
    {"night == 0 or hour > 5", 1},
    {"not night == 1", 0},
    {"not not night == 1", 1},
    {"night == 1 or card_count_10m > 100 and hour < 0", 1},
    {"(night == 1 or card_count_10m > 100) and hour < 0", 0},
    {"not night == 0 and hour > 5", 1},
    /* strings */
    {"channel == \"ecom\"", 1},
    {"channel = \"ecom\"", 1},
    {"channel != \"ecom\"", 0},
    {"channel != \"pos\"", 1},
    {"\"ecom\" == channel", 1},
    {"channel == \"ECOM\"", 0},
    {"channel == \"eco\"", 0},
    {"channel == \"\"", 0},
    {"\"a\\\"b\" == \"a\\\"b\"", 1},
    {"device_id == \"x\"", 0}, /* absent */
    {"device_id != \"x\"", 0},
    {"not (device_id == \"x\")", 0},
    {"country != ip_country", 1},
    {"country == ip_country", 0},
    {"mcc == country", 0},
    {"mcc != country", 0},
    /* lists */
    {"card_id in @allowlist", 1},
    {"card_id not in @allowlist", 0},
    {"not card_id in @allowlist", 0}, /* not (card_id in @allowlist) */
    {"ip in @blocklist", 1},
    {"country in @blocklist", 0},
    {"country not in @blocklist", 1},
    {"device_id in @blocklist", 0}, /* absent */
    {"device_id not in @blocklist", 0},
    {"customer_id in @allowlist or ip in @blocklist", 1},
};

static void test_conditions(void)
{
    vg_txn_t txn;
    double f[NFEAT];
    base(&txn, f);
    for (size_t i = 0; i < VG_ARRAY_LEN(conds); i++) {
        char src[256];
        snprintf(src, sizeof(src), "block r if %s\n", conds[i].cond);
        vg_rules_t *rs = load(src, 1);
        VG_CHECK(rs != NULL);
        if (!rs)
            continue;
        vg_rules_result_t res;
        vg_rules_eval(rs, VG_RULES_PRE, &txn, f, 0.5, &res);
        vg_rules_eval(rs, VG_RULES_POST, &txn, f, 0.5, &res);
        if ((int)res.nfired != conds[i].fires)
            fprintf(stderr, "condition: %s\n", conds[i].cond);
        VG_CHECK_INT(res.nfired, conds[i].fires);
        VG_CHECK_INT(res.action, conds[i].fires ? VG_ACTION_BLOCK : VG_ACTION_ALLOW);
        vg_rules_free(rs);
    }
}

/* "id,id" of the fired rules. */
static const char *fired(const vg_rules_t *rs, const vg_rules_result_t *res)
{
    static char out[1024];
    out[0] = '\0';
    for (size_t i = 0; i < res->nfired; i++)
        snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", i ? "," : "",
                 vg_rules_id(rs, res->fired[i]));
    return out;
}

static const struct {
    const char *src;
    int have_model;
    double score;
    vg_action_t action;
    const char *fired;
} sets[] = {
    /* strongest wins: block > review > allow */
    {"review r if night == 1\nblock b if hour > 20\n", 1, NAN, VG_ACTION_BLOCK, "r,b"},
    {"review r if night == 1\nblock b if hour < 20\n", 1, NAN, VG_ACTION_REVIEW, "r"},
    {"review r1 if night == 1\nreview r2 if hour > 1\n", 1, NAN, VG_ACTION_REVIEW, "r1,r2"},
    {"block b if hour < 20\n", 1, NAN, VG_ACTION_ALLOW, ""},
    /* an explicit allow that fires overrides block and review */
    {"block b if hour > 20\nallow vip if card_id in @allowlist\nreview r if night == 1\n", 1, NAN,
     VG_ACTION_ALLOW, "b,vip,r"},
    {"block b if hour > 20\nallow vip if card_id not in @allowlist\n", 1, NAN, VG_ACTION_BLOCK,
     "b"},
    /* shadow rules are listed but never act: not even a shadow allow */
    {"block b shadow if hour > 20\n", 1, NAN, VG_ACTION_ALLOW, "b"},
    {"block b shadow if hour > 20\nreview r if night == 1\n", 1, NAN, VG_ACTION_REVIEW, "b,r"},
    {"block b if hour > 20\nallow a shadow if night == 1\n", 1, NAN, VG_ACTION_BLOCK, "b,a"},
    /* score rules run in POST, merge in file order */
    {"review m if score > 0.6\nblock b if night == 1\n", 1, 0.7, VG_ACTION_BLOCK, "m,b"},
    {"review m if score > 0.6\nreview r if night == 1\n", 1, 0.5, VG_ACTION_REVIEW, "r"},
    {"block m if score > 0.6 and amount > 100\nreview r if night == 1\n", 1, 0.7, VG_ACTION_BLOCK,
     "m,r"},
    /* a low score can allow what the heuristics would block */
    {"block b if night == 1\nallow low if score < 0.05\n", 1, 0.01, VG_ACTION_ALLOW, "b,low"},
    /* no score (NaN) or no model: score rules are skipped */
    {"block b if night == 0\nreview m if score > 0.6\n", 1, NAN, VG_ACTION_ALLOW, ""},
    {"block b if night == 0\nreview m if score > 0.6\n", 0, 0.9, VG_ACTION_ALLOW, ""},
    {"review m if score > 0.6 or night == 1\n", 0, 0.9, VG_ACTION_ALLOW, ""},
};

static void test_precedence(void)
{
    vg_txn_t txn;
    double f[NFEAT];
    base(&txn, f);
    for (size_t i = 0; i < VG_ARRAY_LEN(sets); i++) {
        vg_rules_t *rs = load(sets[i].src, sets[i].have_model);
        VG_CHECK(rs != NULL);
        if (!rs)
            continue;
        vg_rules_result_t res;
        vg_rules_eval(rs, VG_RULES_PRE, &txn, f, sets[i].score, &res);
        vg_rules_eval(rs, VG_RULES_POST, &txn, f, sets[i].score, &res);
        if (res.action != sets[i].action || strcmp(fired(rs, &res), sets[i].fired) != 0)
            fprintf(stderr, "set %zu:\n%s", i, sets[i].src);
        VG_CHECK_STR(vg_action_name(res.action), vg_action_name(sets[i].action));
        VG_CHECK_STR(fired(rs, &res), sets[i].fired);
        vg_rules_free(rs);
    }
}

static void test_stages(void)
{
    vg_txn_t txn;
    double f[NFEAT];
    base(&txn, f);
    vg_rules_t *rs = load("review m if score > 0.6\nblock b if night == 1\n", 1);
    vg_rules_result_t res;
    /* PRE alone: only the non-score rule */
    vg_rules_eval(rs, VG_RULES_PRE, &txn, f, 0.9, &res);
    VG_CHECK_STR(fired(rs, &res), "b");
    VG_CHECK_INT(res.action, VG_ACTION_BLOCK);
    /* PRE resets what an earlier transaction left */
    f[F_NIGHT] = 0;
    vg_rules_eval(rs, VG_RULES_PRE, &txn, f, 0.9, &res);
    VG_CHECK_INT(res.nfired, 0);
    vg_rules_eval(rs, VG_RULES_POST, &txn, f, 0.9, &res);
    VG_CHECK_STR(fired(rs, &res), "m");
    VG_CHECK_INT(res.action, VG_ACTION_REVIEW);
    vg_rules_free(rs);
}

static void test_many_fired(void)
{
    /* 70 rules fire: the first 64 by file order are listed, the decision counts them all. */
    char *src = malloc(70 * 48);
    src[0] = '\0';
    for (int i = 0; i < 70; i++)
        sprintf(src + strlen(src), "%s r%d if night == 1\n", i == 69 ? "block" : "review", i);
    vg_rules_t *rs = load(src, 1);
    free(src);
    vg_txn_t txn;
    double f[NFEAT];
    base(&txn, f);
    vg_rules_result_t res;
    vg_rules_eval(rs, VG_RULES_PRE, &txn, f, NAN, &res);
    vg_rules_eval(rs, VG_RULES_POST, &txn, f, NAN, &res);
    VG_CHECK_INT(res.nfired, VG_RULES_MAX_FIRED);
    VG_CHECK_INT(res.truncated, 1);
    VG_CHECK_INT(res.fired[0], 0);
    VG_CHECK_INT(res.fired[63], 63);
    VG_CHECK_INT(res.action, VG_ACTION_BLOCK);
    vg_rules_free(rs);

    /* A score rule early in the file displaces the highest PRE index when the list is full. */
    src = malloc(70 * 48);
    strcpy(src, "review m if score > 0.5\n");
    for (int i = 1; i < 70; i++)
        sprintf(src + strlen(src), "review r%d if night == 1\n", i);
    rs = load(src, 1);
    free(src);
    vg_rules_eval(rs, VG_RULES_PRE, &txn, f, 0.9, &res);
    VG_CHECK_INT(res.fired[63], 64);
    vg_rules_eval(rs, VG_RULES_POST, &txn, f, 0.9, &res);
    VG_CHECK_INT(res.nfired, VG_RULES_MAX_FIRED);
    VG_CHECK_INT(res.fired[0], 0);
    VG_CHECK_INT(res.fired[1], 1);
    VG_CHECK_INT(res.fired[63], 63);
    vg_rules_free(rs);
}

static void test_list_file_format(void)
{
    /* blanks around values, CRLF, comments and blank lines; values are exact otherwise */
    vg_txn_t txn;
    double f[NFEAT];
    base(&txn, f);
    vg_rules_t *rs = load("block b if card_id in @allowlist\n", 1);
    static const struct {
        const char *card;
        int in;
    } cards[] = {{"card-1", 1}, {"card-2", 1}, {"card-3", 1},  {"card-4", 0},
                 {"card", 0},   {"# vip", 0},  {"card-10", 0}, {"", 0}};
    for (size_t i = 0; i < VG_ARRAY_LEN(cards); i++) {
        txn.str[VG_F_CARD_ID] = cards[i].card;
        txn.len[VG_F_CARD_ID] = (uint32_t)strlen(cards[i].card);
        vg_rules_result_t res;
        vg_rules_eval(rs, VG_RULES_PRE, &txn, f, NAN, &res);
        VG_CHECK_INT(res.nfired, cards[i].in);
    }
    vg_rules_free(rs);

    /* A big list: every member found, nothing else. */
    char path[4096];
    snprintf(path, sizeof(path), "%s/big.txt", dir);
    FILE *fp = fopen(path, "w");
    for (int i = 0; i < 20000; i++)
        fprintf(fp, "dev-%d\n", i * 2);
    fclose(fp);
    rs = load("block b if device_id in @big\n", 1);
    int wrong = 0;
    for (int i = 0; i < 40000; i++) {
        char dev[32];
        snprintf(dev, sizeof(dev), "dev-%d", i);
        txn.str[VG_F_DEVICE_ID] = dev;
        txn.len[VG_F_DEVICE_ID] = (uint32_t)strlen(dev);
        vg_rules_result_t res;
        vg_rules_eval(rs, VG_RULES_PRE, &txn, f, NAN, &res);
        wrong += (int)res.nfired != (i % 2 == 0);
    }
    VG_CHECK_INT(wrong, 0);
    vg_rules_free(rs);
}

int main(void)
{
    dir = vg_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof(path), "%s/allowlist.txt", dir);
    write_file(path, "# vip cards\ncard-1\n  card-2  \n\ncard-3\r\ncard-2\n");
    snprintf(path, sizeof(path), "%s/blocklist.txt", dir);
    write_file(path, "1.2.3.4\ndev-9\n");
    vg_schema_init(&schema);
    ip_country = vg_schema_add(&schema, "ip_country");
    VG_RUN(test_conditions);
    VG_RUN(test_precedence);
    VG_RUN(test_stages);
    VG_RUN(test_many_fired);
    VG_RUN(test_list_file_format);
    vg_schema_free(&schema);
    snprintf(path, sizeof(path), "rm -rf '%s'", dir);
    if (system(path) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
    return vg_test_done();
}
