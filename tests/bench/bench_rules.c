/*
 * bench_rules.c - how long rules/default.rules takes per transaction (both stages), beside
 * two baselines measured in the same run: an empty rule set (the call overhead) and the
 * same rules hand-written in C (what an ideal compiler would reach). It also checks that
 * the compiled rules and the C version agree on every decision.
 *
 *   ./build/bench_rules [NTXN]     (default 200000 transactions, 5 passes each)
 */
#include "rules/rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const features[] = {
    "card_count_10m",
    "card_count_1h",
    "card_count_24h",
    "card_amount_sum_1h",
    "card_amount_mean_30d",
    "card_amount_std_30d",
    "card_amount_zscore_30d",
    "card_amount_max_30d",
    "card_distinct_merchants_24h",
    "card_distinct_terminals_24h",
    "card_seconds_since_last",
    "card_geo_velocity_kmh",
    "card_new_terminal_30d",
    "card_labelled_fraud_30d",
    "device_count_1h",
    "ip_count_1h",
    "terminal_fraud_share_7d_delay7d",
    "merchant_fraud_share_30d",
    "amount",
    "log_amount",
    "hour",
    "night",
    "weekend",
    "card_amount_mean_10m",
    "card_ecom_count_24h",
    "card_count_30d",
    "device_distinct_cards_24h",
    "ip_distinct_cards_24h",
};
enum {
    C10M,
    C1H,
    C24H,
    SUM1H,
    MEAN30,
    STD30,
    Z30,
    MAX30,
    MERCH24,
    TERM24,
    SINCE,
    GEO,
    FIRST,
    LFRAUD,
    DEV1H,
    IP1H,
    TSHARE,
    MSHARE,
    AMOUNT,
    LOGAMT,
    HOUR,
    NIGHT,
    WEEKEND,
    MEAN10M,
    ECOM24,
    C30D,
    DEVCARDS,
    IPCARDS,
    NFEAT
};

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* Plausible feature vectors: mostly ordinary, some missing history, a few extremes. */
static void make(double *f)
{
    int new_card = uniform() < 0.05;
    f[C10M] = floor(uniform() * uniform() * 8);
    f[C1H] = f[C10M] + floor(uniform() * uniform() * 8);
    f[C24H] = f[C1H] + floor(uniform() * 30);
    f[AMOUNT] = exp(1 + 3 * uniform() * uniform() + 4 * pow(uniform(), 8));
    f[SUM1H] = f[AMOUNT] * (1 + f[C1H]);
    f[MEAN30] = new_card ? NAN : 20 + uniform() * 80;
    f[STD30] = new_card ? NAN : 5 + uniform() * 30;
    f[Z30] = new_card ? NAN : (f[AMOUNT] - f[MEAN30]) / f[STD30];
    f[MAX30] = new_card ? NAN : f[MEAN30] * (1 + uniform() * 4);
    f[MERCH24] = floor(uniform() * uniform() * 10);
    f[TERM24] = floor(uniform() * uniform() * 8);
    f[SINCE] = new_card ? NAN : uniform() * 86400;
    f[GEO] = uniform() < 0.3 ? NAN : pow(uniform(), 12) * 1500;
    f[FIRST] = uniform() < 0.3;
    f[LFRAUD] = uniform() < 0.002;
    f[DEV1H] = floor(pow(uniform(), 4) * 7);
    f[IP1H] = floor(pow(uniform(), 4) * 25);
    f[TSHARE] = uniform() < 0.5 ? NAN : pow(uniform(), 10) * 0.6;
    f[MSHARE] = pow(uniform(), 10) * 0.4;
    f[LOGAMT] = log(f[AMOUNT]);
    f[HOUR] = floor(uniform() * 24);
    f[NIGHT] = f[HOUR] < 6;
    f[WEEKEND] = uniform() < 2.0 / 7;
    f[MEAN10M] = f[C10M] ? exp(3 * uniform()) : NAN;
    f[ECOM24] = floor(f[C24H] * uniform() * 0.4);
    f[C30D] = new_card ? 0 : floor(uniform() * 120);
    f[DEVCARDS] = uniform() < 0.7 ? NAN : 1 + floor(pow(uniform(), 8) * 3);
    f[IPCARDS] = uniform() < 0.7 ? NAN : 1 + floor(pow(uniform(), 8) * 3);
}

/* rules/default.rules by hand; NaN comparisons are false in C, which for rules made only of
 * and-ed comparisons is exactly the language's "unknown never fires". */
static vg_action_t by_hand(const double *f, int ecom, double score, int *nfired)
{
    int block = 0, review = 0, n = 0;
#define RULE(action, cond)                                                                         \
    if (cond) {                                                                                    \
        n++;                                                                                       \
        action = 1;                                                                                \
    }
    double amount = f[AMOUNT];
    int shadow = 0;
    RULE(block, f[C10M] >= 3 && f[MEAN10M] < 3 && amount < 3);
    RULE(block, f[C1H] >= 3 && f[SUM1H] < 3 * f[C1H] && amount > 200);
    RULE(review, f[MERCH24] >= 5 && amount < 3 && f[ECOM24] >= 5);
    RULE(review, f[C1H] >= 5);
    RULE(review, f[ECOM24] >= 6);
    RULE(review, f[SUM1H] > 1000 && f[SUM1H] > 5 * f[MEAN30]);
    RULE(review, f[SINCE] < 60 && amount > 200);
    RULE(review, f[TERM24] >= 8 && f[ECOM24] >= 8);
    RULE(review, f[Z30] > 4 && amount > 100 && f[C30D] >= 10);
    RULE(review, amount > 3 * f[MEAN30] && amount > 200);
    RULE(block, amount > 1.5 * f[MAX30] && amount > 300);
    RULE(block, f[GEO] > 10000);
    RULE(review, f[GEO] > 2000 && ecom);
    RULE(block, f[LFRAUD] > 0 && amount > 3 * f[MEAN30] && amount > 100);
    RULE(review, f[TSHARE] > 0.5);
    RULE(shadow, f[TSHARE] > 0.9);
    RULE(shadow, f[MSHARE] > 0.2);
    RULE(review, f[FIRST] == 1 && amount > 150 && amount > 3 * f[MEAN30]);
    RULE(review, f[DEV1H] >= 3 || f[DEVCARDS] >= 2);
    RULE(review, f[IP1H] >= 5 || f[IPCARDS] >= 2);
    RULE(shadow, f[NIGHT] == 1 && amount > 500);
    RULE(review, score > 0.6);
#undef RULE
    (void)shadow;
    *nfired = n;
    return block ? VG_ACTION_BLOCK : review ? VG_ACTION_REVIEW : VG_ACTION_ALLOW;
}

int main(int argc, char **argv)
{
    size_t ntxn = argc > 1 ? (size_t)atol(argv[1]) : 200000;
    const int passes = 5;
    vg_rules_env_t env = {features, NFEAT, NULL, 1, NULL};
    char errbuf[4096];
    vg_rules_t *rules =
        vg_rules_load(VG_SOURCE_DIR "/rules/default.rules", &env, errbuf, sizeof(errbuf));
    vg_rules_t *empty = vg_rules_load_buffer("empty.rules", "", 0, &env, errbuf, sizeof(errbuf));
    if (!rules || !empty) {
        fprintf(stderr, "%s", errbuf);
        return 1;
    }
    double *fv = malloc(ntxn * NFEAT * sizeof(double));
    double *scores = malloc(ntxn * sizeof(double));
    vg_txn_t *txns = calloc(ntxn, sizeof(vg_txn_t));
    int *ecoms = calloc(ntxn, sizeof(int));
    for (size_t i = 0; i < ntxn; i++) {
        make(fv + i * NFEAT);
        scores[i] = pow(uniform(), 6);
        txns[i].amount = fv[i * NFEAT + AMOUNT];
        txns[i].lat = txns[i].lon = NAN;
        txns[i].str[VG_F_CARD_ID] = "card-123456";
        txns[i].len[VG_F_CARD_ID] = 11;
        ecoms[i] = uniform() < 0.2;
        txns[i].str[VG_F_CHANNEL] = ecoms[i] ? "ecom" : "pos";
        txns[i].len[VG_F_CHANNEL] = ecoms[i] ? 4 : 3;
    }

    /* Agreement first: the compiled rules must decide exactly as the C version does. */
    size_t disagree = 0, flagged = 0, fires[64] = {0};
    for (size_t i = 0; i < ntxn; i++) {
        vg_rules_result_t res;
        vg_rules_eval(rules, VG_RULES_PRE, &txns[i], fv + i * NFEAT, scores[i], &res);
        vg_rules_eval(rules, VG_RULES_POST, &txns[i], fv + i * NFEAT, scores[i], &res);
        int nfired;
        vg_action_t a = by_hand(fv + i * NFEAT, ecoms[i], scores[i], &nfired);
        disagree += a != res.action || (size_t)nfired != res.nfired;
        flagged += res.action != VG_ACTION_ALLOW;
        for (size_t k = 0; k < res.nfired; k++)
            fires[res.fired[k] % 64]++;
    }

    double ns[3] = {0, 0, 0};
    size_t sink = 0;
    for (int pass = 0; pass < passes; pass++) {
        for (int which = 0; which < 3; which++) {
            int64_t t0 = vg_mono_ns();
            for (size_t i = 0; i < ntxn; i++) {
                const double *f = fv + i * NFEAT;
                if (which == 2) {
                    int nfired;
                    sink += by_hand(f, ecoms[i], scores[i], &nfired) + (size_t)nfired;
                    continue;
                }
                const vg_rules_t *rs = which == 0 ? rules : empty;
                vg_rules_result_t res;
                vg_rules_eval(rs, VG_RULES_PRE, &txns[i], f, scores[i], &res);
                vg_rules_eval(rs, VG_RULES_POST, &txns[i], f, scores[i], &res);
                sink += res.action + res.nfired;
            }
            ns[which] += (double)(vg_mono_ns() - t0);
        }
    }
    double per = (double)ntxn * passes;
    printf("rules/default.rules: %zu rules, %zu transactions x %d passes, %.1f%% flagged\n",
           vg_rules_count(rules), ntxn, passes, 100.0 * (double)flagged / (double)ntxn);
    printf("  rules firing on more than 2%% of transactions:");
    for (size_t k = 0; k < vg_rules_count(rules) && k < 64; k++)
        if (fires[k] * 50 > ntxn)
            printf(" %s %.1f%%", vg_rules_id(rules, k), 100.0 * (double)fires[k] / (double)ntxn);
    printf("\n");
    printf("  default rules (compiled)   %7.1f ns/txn\n", ns[0] / per);
    printf("  empty rule set (baseline)  %7.1f ns/txn\n", ns[1] / per);
    printf("  same rules in C (baseline) %7.1f ns/txn\n", ns[2] / per);
    printf("  decisions differing from C: %zu (checksum %zu)\n", disagree, sink % 1000);
    vg_rules_free(rules);
    vg_rules_free(empty);
    free(fv);
    free(scores);
    free(txns);
    free(ecoms);
    return disagree ? 1 : 0;
}
