/*
 * test_feat_handbook.c - features/handbook.conf against the Fraud Detection Handbook's own
 * definitions, computed directly (as its pandas code does: rolling windows over
 * (t - w, t] per customer including the current transaction; terminal counts and risk
 * over (t - 7d - w, t - 7d]) on a handbook-like stream generated here: customers and
 * terminals on a 100x100 grid, terminals within radius 5, Poisson daily counts, times
 * centred on noon, whole-second timestamps, the three fraud scenarios, and fraud labels
 * released 7 days after each fraudulent transaction.
 */
#include "features/features.h"
#include "vg_test.h"

#include <math.h>
#include <time.h>

#define DAY 86400LL

enum { NCUST = 150, NTERM = 300, NDAYS = 75 };

typedef struct htx {
    int64_t ts; /* seconds */
    int cust, term;
    double amount;
    int fraud;
    char id[16];
} htx_t;

static uint64_t rs = 88172645463325252ULL;
static double unif(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) / 9007199254740992.0;
}
static double normal(void)
{
    return sqrt(-2 * log(1 - unif())) * cos(2 * M_PI * unif());
}
static int poisson(double lambda)
{
    double l = exp(-lambda), p = 1;
    int k = 0;
    do {
        k++;
        p *= unif();
    } while (p > l);
    return k - 1;
}

static int cmp_tx(const void *a, const void *b)
{
    const htx_t *x = a, *y = b;
    return x->ts < y->ts ? -1 : x->ts > y->ts ? 1 : 0;
}

static htx_t *generate(int *n_out)
{
    double cx[NCUST], cy[NCUST], mean_amt[NCUST], sd_amt[NCUST], per_day[NCUST];
    double tx[NTERM], ty[NTERM];
    int near[NCUST][64], nnear[NCUST];
    for (int t = 0; t < NTERM; t++) {
        tx[t] = unif() * 100;
        ty[t] = unif() * 100;
    }
    for (int c = 0; c < NCUST; c++) {
        cx[c] = unif() * 100;
        cy[c] = unif() * 100;
        mean_amt[c] = 5 + unif() * 95;
        sd_amt[c] = mean_amt[c] / 2;
        per_day[c] = unif() * 4;
        nnear[c] = 0;
        int best = 0;
        for (int t = 0; t < NTERM; t++) {
            double d = hypot(cx[c] - tx[t], cy[c] - ty[t]);
            if (d < 5 && nnear[c] < 64)
                near[c][nnear[c]++] = t;
            if (d < hypot(cx[c] - tx[best], cy[c] - ty[best]))
                best = t;
        }
        if (!nnear[c])
            near[c][nnear[c]++] = best;
    }
    size_t cap = 1024, n = 0;
    htx_t *txs = malloc(cap * sizeof(*txs));
    int64_t start = vg_days_from_civil(2018, 4, 1) * DAY;
    for (int day = 0; day < NDAYS; day++)
        for (int c = 0; c < NCUST; c++) {
            int k = poisson(per_day[c]);
            for (int i = 0; i < k; i++) {
                double secs = 86400 / 2 + normal() * 20000;
                if (secs <= 0 || secs >= 86400)
                    continue;
                double amt = mean_amt[c] + normal() * sd_amt[c];
                if (amt < 0)
                    amt = unif() * mean_amt[c] * 2;
                if (n == cap)
                    txs = realloc(txs, (cap *= 2) * sizeof(*txs));
                htx_t *x = &txs[n++];
                x->ts = start + day * DAY + (int64_t)secs;
                x->cust = c;
                x->term = near[c][(int)(unif() * nnear[c])];
                x->amount = round(amt * 100) / 100;
                x->fraud = 0;
            }
        }
    qsort(txs, n, sizeof(*txs), cmp_tx);
    /* scenario 1: amount above 220 */
    for (size_t i = 0; i < n; i++)
        if (txs[i].amount > 220)
            txs[i].fraud = 1;
    /* scenario 2: a terminal compromised for 28 days, every third day */
    for (int day = 0; day < NDAYS; day += 3)
        for (int k = 0; k < 1; k++) {
            int t = (int)(unif() * NTERM);
            for (size_t i = 0; i < n; i++)
                if (txs[i].term == t && txs[i].ts >= start + day * DAY &&
                    txs[i].ts < start + (day + 28) * DAY)
                    txs[i].fraud = 1;
        }
    /* scenario 3: a customer a day compromised for 14 days, a third of spending x5 */
    for (int day = 0; day < NDAYS; day++)
        for (int k = 0; k < 1; k++) {
            int c = (int)(unif() * NCUST);
            for (size_t i = 0; i < n; i++)
                if (txs[i].cust == c && txs[i].ts >= start + day * DAY &&
                    txs[i].ts < start + (day + 14) * DAY && unif() < 1.0 / 3) {
                    txs[i].amount *= 5;
                    txs[i].fraud = 1;
                }
        }
    for (size_t i = 0; i < n; i++)
        snprintf(txs[i].id, sizeof(txs[i].id), "h%d", (int)i);
    *n_out = (int)n;
    return txs;
}

/* The handbook's definitions, directly. */
static void handbook(const htx_t *txs, int i, double *out)
{
    const htx_t *x = &txs[i];
    time_t secs = (time_t)x->ts;
    struct tm tm;
    gmtime_r(&secs, &tm);
    out[0] = x->amount;
    out[1] = (tm.tm_wday + 6) % 7 >= 5;
    out[2] = tm.tm_hour <= 6;
    static const int wins[3] = {1, 7, 30};
    for (int w = 0; w < 3; w++) {
        double cnt = 0, sum = 0;
        for (int j = i; j >= 0 && txs[j].ts > x->ts - wins[w] * DAY; j--)
            if (txs[j].cust == x->cust) {
                cnt++;
                sum += txs[j].amount;
            }
        out[3 + 2 * w] = cnt;
        out[4 + 2 * w] = sum / cnt;
        double tcnt = 0, tfraud = 0;
        for (int j = i; j >= 0 && txs[j].ts > x->ts - (7 + wins[w]) * DAY; j--)
            if (txs[j].term == x->term && txs[j].ts <= x->ts - 7 * DAY) {
                tcnt++;
                tfraud += txs[j].fraud;
            }
        out[9 + 2 * w] = tcnt;
        out[10 + 2 * w] = tcnt ? tfraud / tcnt : 0;
    }
}

static void test_handbook_definitions(void)
{
    const char *src = getenv("VG_SOURCE_DIR");
    char path[4096], eb[VG_ERRLEN] = "";
    snprintf(path, sizeof(path), "%s/features/handbook.conf", src ? src : VG_SOURCE_DIR);
    vg_schema_t schema;
    vg_schema_init(&schema);
    vg_catalog_t *cat = vg_catalog_load(path, &schema, eb, sizeof(eb));
    VG_CHECK_STR(eb, "");
    if (!cat)
        return;
    VG_CHECK_INT(vg_catalog_size(cat), 15);
    char *dir = vg_test_tmpdir();
    vg_state_opts_t opts = {.cache_bytes = 1 << 20, .nosync = 1};
    vg_state_t *st = vg_state_open(dir, cat, &opts, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;

    int n;
    htx_t *txs = generate(&n);
    /* fraud labels, released 7 days after the transaction, in release order */
    int *lab = malloc((size_t)n * sizeof(int)), nlab = 0, next = 0, frauds = 0;
    for (int i = 0; i < n; i++)
        if (txs[i].fraud)
            lab[nlab++] = i;
    frauds = nlab;
    char custs[NCUST][16], terms[NTERM][16];
    for (int c = 0; c < NCUST; c++)
        snprintf(custs[c], 16, "C%d", c);
    for (int t = 0; t < NTERM; t++)
        snprintf(terms[t], 16, "T%d", t);
    double got[15], want[15];
    int bad = 0, nonzero_risk = 0;
    for (int i = 0; i < n; i++) {
        while (next < nlab && txs[lab[next]].ts + 7 * DAY <= txs[i].ts) {
            vg_label_t l = {.txn_id = txs[lab[next]].id,
                            .fraud = 1,
                            .ts_ms = (txs[lab[next]].ts + 7 * DAY) * 1000};
            VG_CHECK_INT(vg_state_label(st, &l), VG_OK);
            next++;
        }
        vg_txn_t txn;
        memset(&txn, 0, sizeof(txn));
        txn.ts_ms = txs[i].ts * 1000;
        txn.amount = txs[i].amount;
        txn.lat = txn.lon = NAN;
        txn.str[VG_F_TXN_ID] = txs[i].id;
        txn.len[VG_F_TXN_ID] = (uint32_t)strlen(txs[i].id);
        txn.str[VG_F_CARD_ID] = custs[txs[i].cust];
        txn.len[VG_F_CARD_ID] = (uint32_t)strlen(custs[txs[i].cust]);
        txn.str[VG_F_CUSTOMER_ID] = custs[txs[i].cust];
        txn.len[VG_F_CUSTOMER_ID] = txn.len[VG_F_CARD_ID];
        txn.str[VG_F_TERMINAL_ID] = terms[txs[i].term];
        txn.len[VG_F_TERMINAL_ID] = (uint32_t)strlen(terms[txs[i].term]);
        VG_CHECK_INT(vg_state_process(st, &txn, got), VG_OK);
        handbook(txs, i, want);
        for (int f = 0; f < 15; f++) {
            double a = got[f], b = want[f];
            if (!((isnan(a) && isnan(b)) || a == b ||
                  fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)))) {
                if (bad++ < 5)
                    fprintf(stderr, "txn %d %s: got %.17g want %.17g\n", i,
                            vg_catalog_feature_name(cat, (size_t)f), a, b);
            }
        }
        nonzero_risk += want[14] > 0;
        if (i % 2000 == 1999)
            VG_CHECK_INT(vg_state_commit(st, NULL, 0, eb, sizeof(eb)), VG_OK);
    }
    VG_CHECK_INT(bad, 0);
    fprintf(stderr, "%d transactions, %d frauds, %d with terminal risk > 0\n", n, frauds,
            nonzero_risk);
    VG_CHECK(n > 10000);
    VG_CHECK(nonzero_risk > n / 50);
    vg_state_close(st);
    vg_catalog_free(cat);
    vg_schema_free(&schema);
    free(txs);
    free(lab);
    vg_test_rmdir(dir);
}

int main(void)
{
    VG_RUN(test_handbook_definitions);
    return vg_test_done();
}
