/*
 * test_metrics.c - evaluation figures on small examples computed by hand (the working is in
 * the comments), so a reader can check each expected value with pencil and paper.
 */
#include "models/metrics.h"
#include "vg_test.h"

/* Six transactions, one tie across classes at 0.8:
 *   score 0.9 0.8 0.8 0.6 0.4 0.3
 *   label  1   0   1   0   1   0     P = 3 positives, N = 3 negatives */
static const float scores[6] = {0.9f, 0.8f, 0.8f, 0.6f, 0.4f, 0.3f};
static const float labels[6] = {1, 0, 1, 0, 1, 0};

static void test_auc(void)
{
    /* Averaged ranks, ascending: 0.3 -> 1, 0.4 -> 2, 0.6 -> 3, 0.8 and 0.8 -> 4.5, 0.9 -> 6.
     * Positives' rank sum = 6 + 4.5 + 2 = 12.5; AUC = (12.5 - 3 * 4 / 2) / (3 * 3) = 6.5 / 9.
     * (Pairwise: 0.9 beats 3 negatives, 0.8 ties one and beats 2 = 2.5, 0.4 beats 1.) */
    VG_CHECK_NEAR(vg_metric_auc(scores, labels, 6), 6.5 / 9.0, 1e-12);
    /* Input order does not matter. */
    const float s2[6] = {0.3f, 0.8f, 0.4f, 0.9f, 0.6f, 0.8f};
    const float l2[6] = {0, 1, 1, 1, 0, 0};
    VG_CHECK_NEAR(vg_metric_auc(s2, l2, 6), 6.5 / 9.0, 1e-12);
    /* All scores equal: every pair is a tie, AUC 0.5. Perfect ranking: 1. One class: NAN. */
    const float flat[4] = {0.5f, 0.5f, 0.5f, 0.5f}, l4[4] = {1, 0, 0, 1};
    VG_CHECK_NEAR(vg_metric_auc(flat, l4, 4), 0.5, 1e-12);
    const float perfect[4] = {0.9f, 0.1f, 0.2f, 0.8f};
    VG_CHECK_NEAR(vg_metric_auc(perfect, l4, 4), 1.0, 1e-12);
    const float ones[4] = {1, 1, 1, 1};
    VG_CHECK(isnan(vg_metric_auc(scores, ones, 4)));
}

static void test_average_precision(void)
{
    /* Thresholds from the top (ties form one threshold):
     *   >= 0.9: TP 1 FP 0  P = 1    R = 1/3   adds (1/3 - 0)   * 1   = 1/3
     *   >= 0.8: TP 2 FP 1  P = 2/3  R = 2/3   adds (2/3 - 1/3) * 2/3 = 2/9
     *   >= 0.6: TP 2 FP 2  P = 1/2  R = 2/3   adds 0
     *   >= 0.4: TP 3 FP 2  P = 3/5  R = 1     adds (1 - 2/3)   * 3/5 = 1/5
     *   >= 0.3: TP 3 FP 3  R = 1              adds 0
     * AP = 1/3 + 2/9 + 1/5 = 34/45 (what sklearn's average_precision_score gives). */
    VG_CHECK_NEAR(vg_metric_ap(scores, labels, 6), 34.0 / 45.0, 1e-12);
    const float none[6] = {0};
    VG_CHECK(isnan(vg_metric_ap(scores, none, 6)));
}

static void test_precision_recall_at(void)
{
    /* Flag score >= 0.6: 0.9, 0.8, 0.8, 0.6 -> 4 flagged, 2 of them fraud; 3 frauds in all. */
    double p, r;
    vg_metric_pr_at(scores, labels, 6, 0.6, &p, &r);
    VG_CHECK_NEAR(p, 0.5, 1e-12);
    VG_CHECK_NEAR(r, 2.0 / 3.0, 1e-12);
    vg_metric_pr_at(scores, labels, 6, 0.95, &p, &r);
    VG_CHECK(isnan(p));
    VG_CHECK_NEAR(r, 0.0, 1e-12);
}

static void test_card_precision_at_k(void)
{
    /* k = 2. Cards A=1 B=2 C=3 D=4 E=5.
     * Day 0: A 0.9 legit + 0.2 fraud -> max 0.9, fraudulent card; B 0.8 legit; C 0.7 fraud;
     *        D 0.1 fraud. Ranked A B C D; top 2 = A, B: 1 fraud -> 1/2. Detected: A.
     * Day 1: A 0.95 fraud (already detected: removed); C 0.6 fraud; D 0.5 fraud; E 0.5 legit.
     *        Ranked C, then D and E tied at 0.5 -> smaller id first: D. Top 2 = C, D: 2/2.
     *        Detected: A, C, D.
     * Day 2: B 0.3 legit; C 0.9 fraud (removed). Only B: 0 frauds, still divided by k -> 0.
     * Mean over 3 days = (0.5 + 1 + 0) / 3 = 0.5. */
    vg_card_obs_t obs[] = {
        {0, 1, 0.9f, 0}, {0, 1, 0.2f, 1},  {0, 2, 0.8f, 0}, {0, 3, 0.7f, 1},
        {0, 4, 0.1f, 1}, {1, 1, 0.95f, 1}, {1, 3, 0.6f, 1}, {1, 4, 0.5f, 1},
        {1, 5, 0.5f, 0}, {2, 2, 0.3f, 0},  {2, 3, 0.9f, 1},
    };
    /* Shuffle the input: the metric sorts. */
    vg_card_obs_t shuffled[VG_ARRAY_LEN(obs)];
    for (size_t i = 0; i < VG_ARRAY_LEN(obs); i++)
        shuffled[i] = obs[(i * 7) % VG_ARRAY_LEN(obs)];
    size_t ndays = 0;
    VG_CHECK_NEAR(vg_metric_card_precision_at_k(shuffled, VG_ARRAY_LEN(obs), 2, &ndays), 0.5,
                  1e-12);
    VG_CHECK_INT(ndays, 3);
    /* Give E the smaller id (E=0): day 1's tie now puts E (legit) before D -> 1/2, and D
     * stays undetected; mean = (0.5 + 0.5 + 0) / 3 = 1/3. */
    obs[8].card = 0;
    VG_CHECK_NEAR(vg_metric_card_precision_at_k(obs, VG_ARRAY_LEN(obs), 2, NULL), 1.0 / 3.0, 1e-12);
    /* k = 1: day 0 top A (fraud) 1; day 1 top C 1; day 2 B 0 -> 2/3. */
    obs[8].card = 5;
    VG_CHECK_NEAR(vg_metric_card_precision_at_k(obs, VG_ARRAY_LEN(obs), 1, NULL), 2.0 / 3.0, 1e-12);
    VG_CHECK(isnan(vg_metric_card_precision_at_k(obs, 0, 2, NULL)));
}

static void test_bins_and_psi(void)
{
    /* Edges 2 and 5 make bins (-inf, 2], (2, 5], (5, inf):
     * 1 2 2 0 -> bin 0 (4 values); 3 5 -> bin 1 (2); 10 -> bin 2 (1); NAN -> missing (1); n = 8. */
    const float v[8] = {1, 2, 2, 3, 5, NAN, 10, 0};
    const double edges[2] = {2, 5};
    double shares[3], missing;
    vg_metric_bin_shares(v, 8, 1, edges, 2, shares, &missing);
    VG_CHECK_NEAR(shares[0], 0.5, 1e-12);
    VG_CHECK_NEAR(shares[1], 0.25, 1e-12);
    VG_CHECK_NEAR(shares[2], 0.125, 1e-12);
    VG_CHECK_NEAR(missing, 0.125, 1e-12);
    /* Stride: every other value of {1, 9, 2, 9, 6, 9} is 1, 2, 6 -> 2/3, 0, 1/3. */
    const float strided[6] = {1, 9, 2, 9, 6, 9};
    vg_metric_bin_shares(strided, 3, 2, edges, 2, shares, &missing);
    VG_CHECK_NEAR(shares[0], 2.0 / 3.0, 1e-12);
    VG_CHECK_NEAR(shares[1], 0.0, 1e-12);
    VG_CHECK_NEAR(shares[2], 1.0 / 3.0, 1e-12);

    /* PSI, expected 0.5 0.3 0.2, actual 0.4 0.4 0.2:
     *   (0.4 - 0.5) ln(0.4/0.5) + (0.4 - 0.3) ln(0.4/0.3) + 0
     *   = 0.1 * 0.22314355131 + 0.1 * 0.28768207245 = 0.05108256238 */
    const double e[3] = {0.5, 0.3, 0.2}, a[3] = {0.4, 0.4, 0.2};
    VG_CHECK_NEAR(vg_metric_psi(e, a, 3), 0.05108256238, 1e-9);
    VG_CHECK_NEAR(vg_metric_psi(e, e, 3), 0.0, 1e-12);
    /* An empty expected bin counts as 1e-4:
     *   expected 0.5 0.5 0, actual 0.5 0.4 0.1
     *   = 0 + 0.1 * ln(0.5/0.4) + (0.1 - 0.0001) * ln(0.1/0.0001)
     *   = 0.02231435513 + 0.0999 * 6.90775527898 = 0.71239910750 */
    const double e2[3] = {0.5, 0.5, 0.0}, a2[3] = {0.5, 0.4, 0.1};
    VG_CHECK_NEAR(vg_metric_psi(e2, a2, 3), 0.71239910750, 1e-9);
}

int main(void)
{
    VG_RUN(test_auc);
    VG_RUN(test_average_precision);
    VG_RUN(test_precision_recall_at);
    VG_RUN(test_card_precision_at_k);
    VG_RUN(test_bins_and_psi);
    return vg_test_done();
}
