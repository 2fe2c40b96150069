/*
 * metrics.c - evaluation figures (AUC ROC, average precision, card precision@k,
 * precision/recall at a threshold, PSI). See metrics.h for the exact definitions.
 *
 * Every metric that ranks scores sorts an index array, never the caller's scores, and treats
 * tied scores as one threshold, so results do not depend on input order. Sums are in double.
 */
#include "models/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct scored {
    float score;
    int positive;
} scored_t;

static int scored_desc(const void *a, const void *b)
{
    float x = ((const scored_t *)a)->score, y = ((const scored_t *)b)->score;
    return (x < y) - (x > y);
}

/* Copies (score, label) pairs sorted by score descending; caller frees. */
static scored_t *sort_desc(const float *scores, const float *labels, size_t n, size_t *npos)
{
    scored_t *s = vg_xmalloc((n ? n : 1) * sizeof(*s));
    size_t p = 0;
    for (size_t i = 0; i < n; i++) {
        s[i].score = scores[i];
        s[i].positive = labels[i] != 0.0f;
        p += (size_t)s[i].positive;
    }
    qsort(s, n, sizeof(*s), scored_desc);
    *npos = p;
    return s;
}

double vg_metric_auc(const float *scores, const float *labels, size_t n)
{
    size_t npos;
    scored_t *s = sort_desc(scores, labels, n, &npos);
    size_t nneg = n - npos;
    if (npos == 0 || nneg == 0) {
        free(s);
        return NAN;
    }
    /* Walking down from the highest score, each positive in a tie group beats every negative
     * below the group and ties (half) with the group's negatives: the Mann-Whitney count,
     * equal to the averaged-rank formula. */
    double wins = 0.0;
    size_t negs_below = nneg;
    for (size_t i = 0; i < n;) {
        size_t j = i, p = 0, q = 0;
        while (j < n && s[j].score == s[i].score) {
            if (s[j].positive)
                p++;
            else
                q++;
            j++;
        }
        negs_below -= q;
        wins += (double)p * ((double)negs_below + 0.5 * (double)q);
        i = j;
    }
    free(s);
    return wins / ((double)npos * (double)nneg);
}

double vg_metric_ap(const float *scores, const float *labels, size_t n)
{
    size_t npos;
    scored_t *s = sort_desc(scores, labels, n, &npos);
    if (npos == 0) {
        free(s);
        return NAN;
    }
    double ap = 0.0, prev_recall = 0.0;
    size_t tp = 0, fp = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j].score == s[i].score) {
            if (s[j].positive)
                tp++;
            else
                fp++;
            j++;
        }
        double recall = (double)tp / (double)npos;
        double precision = (double)tp / (double)(tp + fp);
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j;
    }
    free(s);
    return ap;
}

void vg_metric_pr_at(const float *scores, const float *labels, size_t n, double threshold,
                     double *precision, double *recall)
{
    size_t tp = 0, flagged = 0, pos = 0;
    for (size_t i = 0; i < n; i++) {
        int positive = labels[i] != 0.0f;
        int flag = (double)scores[i] >= threshold;
        pos += (size_t)positive;
        flagged += (size_t)flag;
        tp += (size_t)(positive && flag);
    }
    *precision = flagged ? (double)tp / (double)flagged : NAN;
    *recall = pos ? (double)tp / (double)pos : NAN;
}

static int obs_by_day_card(const void *a, const void *b)
{
    const vg_card_obs_t *x = a, *y = b;
    if (x->day != y->day)
        return (x->day > y->day) - (x->day < y->day);
    return (x->card > y->card) - (x->card < y->card);
}

typedef struct card_day {
    uint64_t card;
    float score;
    int fraud;
} card_day_t;

static int card_rank(const void *a, const void *b)
{
    const card_day_t *x = a, *y = b;
    if (x->score != y->score)
        return (x->score < y->score) - (x->score > y->score);
    return (x->card > y->card) - (x->card < y->card);
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

double vg_metric_card_precision_at_k(vg_card_obs_t *obs, size_t n, size_t k, size_t *ndays)
{
    if (ndays)
        *ndays = 0;
    if (n == 0 || k == 0)
        return NAN;
    qsort(obs, n, sizeof(*obs), obs_by_day_card);
    card_day_t *cards = vg_xmalloc(n * sizeof(*cards));
    uint64_t *detected = vg_xmalloc(n * sizeof(*detected)); /* sorted */
    size_t ndetected = 0, days = 0;
    double sum = 0.0;
    for (size_t i = 0; i < n;) {
        int64_t day = obs[i].day;
        size_t ncards = 0;
        for (; i < n && obs[i].day == day; i++) {
            if (ndetected && bsearch(&obs[i].card, detected, ndetected, sizeof(*detected), u64_cmp))
                continue;
            if (ncards && cards[ncards - 1].card == obs[i].card) {
                card_day_t *c = &cards[ncards - 1];
                if (obs[i].score > c->score)
                    c->score = obs[i].score;
                c->fraud |= obs[i].fraud != 0;
            } else {
                cards[ncards].card = obs[i].card;
                cards[ncards].score = obs[i].score;
                cards[ncards].fraud = obs[i].fraud != 0;
                ncards++;
            }
        }
        qsort(cards, ncards, sizeof(*cards), card_rank);
        size_t top = ncards < k ? ncards : k, hits = 0;
        for (size_t c = 0; c < top; c++) {
            if (cards[c].fraud) {
                hits++;
                detected[ndetected++] = cards[c].card;
            }
        }
        qsort(detected, ndetected, sizeof(*detected), u64_cmp);
        /* The handbook divides by k even on a day with fewer than k cards. */
        sum += (double)hits / (double)k;
        days++;
    }
    free(cards);
    free(detected);
    if (ndays)
        *ndays = days;
    return sum / (double)days;
}

void vg_metric_bin_shares(const float *values, size_t n, size_t stride, const double *edges,
                          size_t nedges, double *shares, double *missing)
{
    memset(shares, 0, (nedges + 1) * sizeof(*shares));
    *missing = 0.0;
    if (n == 0)
        return;
    size_t nmissing = 0;
    for (size_t i = 0; i < n; i++) {
        double v = values[i * stride];
        if (isnan(v)) {
            nmissing++;
            continue;
        }
        /* First edge >= v: binary search over the cut points. */
        size_t lo = 0, hi = nedges;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (edges[mid] < v)
                lo = mid + 1;
            else
                hi = mid;
        }
        shares[lo] += 1.0;
    }
    for (size_t b = 0; b <= nedges; b++)
        shares[b] /= (double)n;
    *missing = (double)nmissing / (double)n;
}

double vg_metric_psi(const double *expected, const double *actual, size_t nbins)
{
    const double floor_share = 1e-4;
    double psi = 0.0;
    for (size_t b = 0; b < nbins; b++) {
        double e = expected[b] > floor_share ? expected[b] : floor_share;
        double a = actual[b] > floor_share ? actual[b] : floor_share;
        psi += (a - e) * log(a / e);
    }
    return psi;
}
