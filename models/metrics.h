/*
 * metrics.h - evaluation figures for fraud models: AUC ROC, average precision, card
 * precision@k (Fraud Detection Handbook), precision/recall at a threshold, and the
 * population stability index for drift. Pure functions over caller arrays; none allocate
 * anything the caller must free. Labels are 0 (legit) or non-zero (fraud).
 */
#ifndef VG_MODELS_METRICS_H
#define VG_MODELS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"

/* Area under the ROC curve, tied scores counted as half (the averaged-rank / Mann-Whitney
 * form). NAN when only one class is present. */
double vg_metric_auc(const float *scores, const float *labels, size_t n);

/* Average precision as scikit-learn defines it: sum over distinct score thresholds t_n
 * (descending) of (R_n - R_{n-1}) * P_n, tied scores forming one threshold. NAN when there
 * is no positive. */
double vg_metric_ap(const float *scores, const float *labels, size_t n);

/* Precision and recall when every score >= threshold is flagged. Precision is NAN when
 * nothing is flagged, recall NAN when there is no positive. */
void vg_metric_pr_at(const float *scores, const float *labels, size_t n, double threshold,
                     double *precision, double *recall);

/* One scored transaction for card precision@k. */
typedef struct vg_card_obs {
    int64_t day;   /* day index (e.g. days since epoch of the transaction time) */
    uint64_t card; /* card (customer) id, hashed or numbered */
    float score;
    int fraud; /* non-zero if the transaction is fraudulent */
} vg_card_obs_t;

/*
 * Card precision@k as the Fraud Detection Handbook defines it: for each day (ascending),
 * drop the transactions of cards detected on earlier days, take each remaining card's
 * highest score (and whether any of its transactions that day is fraud), rank cards by that
 * score (ties: smaller card id first), and count the fraudulent cards in the top k, divided
 * by k; fraudulent cards in a day's top k count as detected from then on. Returns the mean
 * over days; *ndays (if not NULL) gets the number of days. Sorts obs in place. NAN if n == 0.
 */
double vg_metric_card_precision_at_k(vg_card_obs_t *obs, size_t n, size_t k, size_t *ndays);

/*
 * Distributes values[i * stride] (i < n; NAN = missing) over the bins given by nedges
 * increasing cut points (bin i: edges[i-1] < v <= edges[i]): shares[0..nedges] get each
 * bin's share of n and *missing the share of NANs. All zero when n == 0.
 */
void vg_metric_bin_shares(const float *values, size_t n, size_t stride, const double *edges,
                          size_t nedges, double *shares, double *missing);

/*
 * Population stability index between an expected (training) and an actual distribution
 * over the same nbins bins: sum of (a - e) * ln(a / e), each share floored at 1e-4 so an
 * empty bin counts as rare rather than infinite. Common reading: < 0.1 stable, 0.1-0.25
 * shifting, > 0.25 shifted.
 */
double vg_metric_psi(const double *expected, const double *actual, size_t nbins);

#endif
