/*
 * test_feat_changelog.c - the state's changelog: what vg_state_changes() reports is exactly
 * what a commit writes, tagged with each entity's home partition; a fresh state that
 * restores one partition's records from the changelog then computes the same card features
 * as the state that wrote them; tombstones delete; bad records are refused with a reason.
 */
#include "features/features.h"
#include "vg_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char *CAT = "n10m = count by card_id over 10m\n"
                         "s1h = sum by card_id over 1h\n"
                         "sd1d = std by card_id over 1d\n"
                         "dt1d = distinct terminal_id by card_id over 1d\n"
                         "since = since_last by card_id over 1d\n"
                         "fraud = fraud_count by card_id over 1d\n"
                         "tn = count by terminal_id over 1h\n";
enum { NFEAT = 7, NCARD_FEATS = 6, NPART = 4, NCARDS = 40, NTERMS = 8 };

typedef struct rec {
    int32_t part;
    char entity[32];
    char *key;
    size_t klen;
    void *value; /* NULL: tombstone */
    size_t vlen;
} rec_t;

typedef struct log {
    rec_t *recs;
    size_t n, cap;
} log_t;

static void collect(void *opaque, int32_t part, const char *entity, const char *key, size_t klen,
                    const void *value, size_t vlen)
{
    log_t *l = opaque;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->recs = realloc(l->recs, l->cap * sizeof(*l->recs));
    }
    rec_t *r = &l->recs[l->n++];
    r->part = part;
    snprintf(r->entity, sizeof(r->entity), "%s", entity);
    r->key = malloc(klen + 1);
    memcpy(r->key, key, klen);
    r->key[klen] = '\0'; /* atoi() reads the card number from it */
    r->klen = klen;
    r->value = value ? malloc(vlen) : NULL;
    if (value)
        memcpy(r->value, value, vlen);
    r->vlen = vlen;
}

static int card_part(int card)
{
    return card % NPART;
}

static void make(vg_txn_t *txn, char *id, char *card, char *term, int i, int c, int t, int64_t ts)
{
    memset(txn, 0, sizeof(*txn));
    snprintf(id, 16, "t%d", i);
    snprintf(card, 16, "card%d", c);
    snprintf(term, 16, "term%d", t);
    txn->ts_ms = ts;
    txn->amount = (double)(1 + (i * 37) % 200) / 4.0;
    txn->lat = txn->lon = NAN;
    txn->str[VG_F_TXN_ID] = id;
    txn->len[VG_F_TXN_ID] = (uint32_t)strlen(id);
    txn->str[VG_F_CARD_ID] = card;
    txn->len[VG_F_CARD_ID] = (uint32_t)strlen(card);
    txn->str[VG_F_TERMINAL_ID] = term;
    txn->len[VG_F_TERMINAL_ID] = (uint32_t)strlen(term);
}

static int same(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static void test_changelog_restore(void)
{
    vg_schema_t schema;
    vg_schema_init(&schema);
    char eb[VG_ERRLEN] = "";
    vg_catalog_t *cat = vg_catalog_parse("cl", CAT, strlen(CAT), &schema, eb, sizeof(eb));
    VG_CHECK(cat != NULL);
    if (!cat)
        return;
    char *dira = vg_test_tmpdir(), *dirb = vg_test_tmpdir();
    vg_state_opts_t opts = {.nosync = 1};
    vg_state_t *a = vg_state_open(dira, cat, &opts, eb, sizeof(eb));
    VG_CHECK(a != NULL);
    log_t log = {0};
    uint64_t rs = 42;
    int64_t t0 = 1767571200000LL, ts = t0;
    char id[16], card[16], term[16];
    double out[NFEAT];
    vg_txn_t txn;
    int wrong_tag = 0;
    size_t reported = 0;
    /* 3,000 transactions over ~2 days, labels for every 7th; a commit every 100 events. */
    for (int i = 0; i < 3000; i++) {
        rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
        int c = (int)((rs >> 33) % NCARDS), t = (int)((rs >> 17) % NTERMS);
        ts += (int64_t)((rs >> 40) % 120000);
        make(&txn, id, card, term, i, c, t, ts);
        vg_state_set_partition(a, card_part(c));
        VG_CHECK_INT(vg_state_process(a, &txn, out), VG_OK);
        if (i % 7 == 3) {
            vg_label_t lab = {.txn_id = id, .fraud = 1, .ts_ms = ts};
            VG_CHECK_INT(vg_state_label(a, &lab), VG_OK);
        }
        if (i % 100 == 99) {
            size_t before = log.n;
            reported += vg_state_changes(a, collect, &log);
            for (size_t k = before; k < log.n; k++)
                if (strcmp(log.recs[k].entity, "card_id") == 0 &&
                    log.recs[k].part != card_part(atoi(log.recs[k].key + 4)))
                    wrong_tag++;
            VG_CHECK_INT(vg_state_commit(a, NULL, 0, eb, sizeof(eb)), VG_OK);
        }
    }
    VG_CHECK_INT(wrong_tag, 0);
    VG_CHECK_INT(reported, log.n);
    VG_CHECK(log.n > 300);
    vg_state_stats_t stats;
    vg_state_stats(a, &stats);
    VG_CHECK_INT(stats.dirty, 0); /* vg_state_changes() changed nothing, the commits did */

    /* A fresh state restores partitions 1 and 2 from the changelog, in log order. */
    vg_state_t *b = vg_state_open(dirb, cat, &opts, eb, sizeof(eb));
    VG_CHECK(b != NULL);
    if (!a || !b) {
        free(dira);
        free(dirb);
        return;
    }
    size_t applied = 0;
    for (size_t k = 0; k < log.n; k++) {
        rec_t *r = &log.recs[k];
        if (r->part != 1 && r->part != 2)
            continue;
        VG_CHECK_INT(
            vg_state_restore(b, r->entity, r->key, r->klen, r->value, r->vlen, eb, sizeof(eb)),
            VG_OK);
        applied++;
    }
    VG_CHECK(applied > 100);
    VG_CHECK_INT(vg_state_commit(b, NULL, 0, eb, sizeof(eb)), VG_OK);

    /* Both go on with the same traffic of those partitions' cards: the same card features. */
    int differ = 0, compared = 0;
    for (int i = 3000; i < 4000; i++) {
        rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
        int c = (int)((rs >> 33) % NCARDS), t = (int)((rs >> 17) % NTERMS);
        if (card_part(c) != 1 && card_part(c) != 2)
            continue;
        ts += (int64_t)((rs >> 40) % 120000);
        make(&txn, id, card, term, i, c, t, ts);
        double outb[NFEAT];
        vg_state_set_partition(a, card_part(c));
        vg_state_set_partition(b, card_part(c));
        VG_CHECK_INT(vg_state_process(a, &txn, out), VG_OK);
        VG_CHECK_INT(vg_state_process(b, &txn, outb), VG_OK);
        for (int f = 0; f < NCARD_FEATS; f++)
            differ += !same(out[f], outb[f]);
        compared++;
    }
    VG_CHECK(compared > 300);
    VG_CHECK_INT(differ, 0);

    /* A tombstone deletes: the card starts over. */
    VG_CHECK_INT(vg_state_commit(b, NULL, 0, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(vg_state_restore(b, "card_id", "card1", 5, NULL, 0, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(vg_state_commit(b, NULL, 0, eb, sizeof(eb)), VG_OK);
    make(&txn, id, card, term, 9999, 1, 0, ts + 1000);
    VG_CHECK_INT(vg_state_process(b, &txn, out), VG_OK);
    VG_CHECK(out[0] == 0 && out[1] == 0 && isnan(out[4]));

    /* Bad records are refused, with what is wrong. */
    VG_CHECK_INT(vg_state_restore(b, "merchant_id", "m1", 2, NULL, 0, eb, sizeof(eb)),
                 VG_ERR_STATE);
    VG_CHECK_STR(eb, "changelog record for entity type 'merchant_id', which the catalogue does "
                     "not have");
    VG_CHECK_INT(vg_state_restore(b, "card_id", "card2", 5, "garbage", 7, eb, sizeof(eb)),
                 VG_ERR_STATE);
    VG_CHECK_STR(eb, "changelog record for card_id card2 does not fit the catalogue's layout");

    for (size_t k = 0; k < log.n; k++) {
        free(log.recs[k].key);
        free(log.recs[k].value);
    }
    free(log.recs);
    vg_state_close(a);
    vg_state_close(b);
    free(dira);
    free(dirb);
    vg_catalog_free(cat);
    vg_schema_free(&schema);
}

int main(void)
{
    VG_RUN(test_changelog_restore);
    return vg_test_done();
}
