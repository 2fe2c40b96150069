/*
 * test_feat_state.c - the state store's edges: a state directory refuses another
 * catalogue version; offsets are absent before the first commit and survive reopening;
 * uncommitted changes are dropped by close; labels for unknown transactions; missing
 * entity fields give NaN; stats count entities per type; the expiry filter deletes idle
 * entities from disk; a directory written with an older entity encoding is refused; with
 * checkpoint_ms, commits reach RocksDB only at a checkpoint (due by time, asked for, or at a
 * close after a commit), and reopening gives the last checkpoint's state and offsets.
 */
#include "features/features.h"
#include "features/kv.h"
#include "vg_test.h"

#include <math.h>

static const char *CAT1 = "n = count by card_id over 1h\nf = fraud_count by card_id over 1h\n"
                          "s = since_last by terminal_id over 1d\n";
static const char *CAT2 = "n = count by card_id over 2h\n";

static void txn_at(vg_txn_t *txn, const char *id, const char *card, const char *term, int64_t ts)
{
    memset(txn, 0, sizeof(*txn));
    txn->ts_ms = ts;
    txn->amount = 10;
    txn->lat = txn->lon = NAN;
    txn->str[VG_F_TXN_ID] = id;
    txn->len[VG_F_TXN_ID] = (uint32_t)strlen(id);
    if (card) {
        txn->str[VG_F_CARD_ID] = card;
        txn->len[VG_F_CARD_ID] = (uint32_t)strlen(card);
    }
    if (term) {
        txn->str[VG_F_TERMINAL_ID] = term;
        txn->len[VG_F_TERMINAL_ID] = (uint32_t)strlen(term);
    }
}

static void test_state_edges(void)
{
    vg_schema_t schema;
    vg_schema_init(&schema);
    char eb[VG_ERRLEN] = "";
    vg_catalog_t *c1 = vg_catalog_parse("c1", CAT1, strlen(CAT1), &schema, eb, sizeof(eb));
    vg_catalog_t *c2 = vg_catalog_parse("c2", CAT2, strlen(CAT2), &schema, eb, sizeof(eb));
    char *dir = vg_test_tmpdir();
    vg_state_t *st = vg_state_open(dir, c1, NULL, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    void *blob = (void *)1;
    size_t len = 1;
    VG_CHECK_INT(vg_state_offsets(st, &blob, &len), VG_OK);
    VG_CHECK(blob == NULL && len == 0);

    double out[3];
    vg_txn_t txn;
    int64_t t0 = 1767571200000LL;
    txn_at(&txn, "a", "card1", "term1", t0);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    VG_CHECK(out[0] == 0 && out[1] == 0 && isnan(out[2]));
    txn_at(&txn, "b", "card1", NULL, t0 + 1000);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    VG_CHECK(out[0] == 1 && isnan(out[2])); /* no terminal: its features are missing */
    vg_label_t lab = {.txn_id = "a", .fraud = 1, .ts_ms = t0 + 2000};
    VG_CHECK_INT(vg_state_label(st, &lab), VG_OK);
    VG_CHECK_INT(vg_state_label(st, &lab), VG_OK); /* twice: counted once */
    lab.txn_id = "zzz";
    VG_CHECK_INT(vg_state_label(st, &lab), VG_ERR_NOTFOUND);
    txn_at(&txn, "c", "card1", "term1", t0 + 61000);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    VG_CHECK(out[0] == 2 && out[1] == 1 && out[2] == 61);
    VG_CHECK_INT(vg_state_commit(st, "off-1", 5, eb, sizeof(eb)), VG_OK);

    vg_state_stats_t stats;
    vg_state_stats(st, &stats);
    VG_CHECK_INT(stats.ntypes, 2);
    VG_CHECK_STR(stats.types[0].entity, "card_id");
    VG_CHECK_INT(stats.types[0].cached, 1);
    VG_CHECK_INT(stats.types[1].cached, 1);
    VG_CHECK_INT(stats.dirty, 0);
    VG_CHECK_INT(stats.commits, 1);
    VG_CHECK_INT(stats.watermark_ms, t0 + 61000);

    /* not committed: lost on close */
    txn_at(&txn, "d", "card1", "term1", t0 + 62000);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    vg_state_close(st);

    /* another catalogue on the same directory is refused */
    VG_CHECK(vg_state_open(dir, c2, NULL, eb, sizeof(eb)) == NULL);
    char want[VG_ERRLEN];
    snprintf(want, sizeof(want),
             "state in %s was built by catalogue version %s, this catalogue is %s: use a new "
             "state directory",
             dir, vg_catalog_version(c1), vg_catalog_version(c2));
    VG_CHECK_STR(eb, want);

    st = vg_state_open(dir, c1, NULL, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    VG_CHECK_INT(vg_state_offsets(st, &blob, &len), VG_OK);
    VG_CHECK(len == 5 && memcmp(blob, "off-1", 5) == 0);
    free(blob);
    txn_at(&txn, "e", "card1", "term1", t0 + 63000);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    VG_CHECK(out[0] == 3 && out[1] == 1 && out[2] == 2); /* "d" was never committed */
    /* label for a committed transaction found through RocksDB */
    lab.txn_id = "c";
    VG_CHECK_INT(vg_state_label(st, &lab), VG_OK);
    lab.txn_id = "a";
    lab.fraud = 0; /* a legit verdict takes a's fraud back out */
    VG_CHECK_INT(vg_state_label(st, &lab), VG_OK);
    txn_at(&txn, "f", "card1", "term1", t0 + 64000);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    VG_CHECK(out[0] == 4 && out[1] == 1);

    /* two days later card1 and term1 are idle beyond retention: a new card's commit
     * deletes nothing yet, but card1 comes back empty */
    txn_at(&txn, "g", "card2", NULL, t0 + 2 * 86400000LL);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    txn_at(&txn, "h", "card1", "term1", t0 + 2 * 86400000LL + 1);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    VG_CHECK(out[0] == 0 && out[1] == 0 && isnan(out[2]));
    lab.txn_id = "c"; /* older than the label retention (1h) */
    VG_CHECK_INT(vg_state_label(st, &lab), VG_ERR_NOTFOUND);
    VG_CHECK_INT(vg_state_commit(st, NULL, 0, eb, sizeof(eb)), VG_OK);
    vg_state_stats(st, &stats);
    VG_CHECK(stats.expired >= 2);
    vg_state_close(st);
    vg_state_close(NULL);
    vg_catalog_free(c1);
    vg_catalog_free(c2);
    vg_schema_free(&schema);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    VG_CHECK_INT(system(cmd), 0);
    free(dir);
}

/* A directory written with another entity encoding version is refused at open, by name. */
static void test_state_old_encoding(void)
{
    vg_schema_t schema;
    vg_schema_init(&schema);
    char eb[VG_ERRLEN] = "";
    vg_catalog_t *c = vg_catalog_parse("c2", CAT2, strlen(CAT2), &schema, eb, sizeof(eb));
    char *dir = vg_test_tmpdir();
    vg_state_t *st = vg_state_open(dir, c, NULL, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    double out[1];
    vg_txn_t txn;
    txn_at(&txn, "a", "card1", NULL, 1767571200000LL);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    VG_CHECK_INT(vg_state_commit(st, NULL, 0, eb, sizeof(eb)), VG_OK);
    vg_state_close(st);

    /* rewrite card1's value as an older build would have: version 1 in its first word */
    vg_kv_family_t fams[] = {
        {"meta", NULL, NULL, 0}, {"txn", NULL, NULL, 1}, {"entity.card_id", NULL, NULL, 1}};
    vg_kv_t *kv = vg_kv_open(dir, fams, 3, NULL, eb, sizeof(eb));
    VG_CHECK(kv != NULL);
    if (kv) {
        vg_buf_t val;
        vg_buf_init(&val);
        int found = 0;
        VG_CHECK_INT(vg_kv_get(kv, 2, "card1", 5, &val, &found, eb, sizeof(eb)), VG_OK);
        VG_CHECK(found && val.len >= 4);
        uint32_t v1 = 1;
        memcpy(val.data, &v1, 4);
        vg_kv_batch_t *b = vg_kv_batch_new();
        vg_kv_batch_put(b, kv, 2, "card1", 5, val.data, val.len);
        VG_CHECK_INT(vg_kv_write(kv, b, 1, eb, sizeof(eb)), VG_OK);
        vg_kv_batch_free(b);
        vg_buf_free(&val);
        vg_kv_close(kv);
    }
    VG_CHECK(vg_state_open(dir, c, NULL, eb, sizeof(eb)) == NULL);
    char want[4400];
    snprintf(want, sizeof(want),
             "state in %s holds entity encoding version 1, this build reads version 3: rebuild "
             "the state in a new directory",
             dir);
    VG_CHECK_STR(eb, want);
    vg_catalog_free(c);
    vg_schema_free(&schema);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    VG_CHECK_INT(system(cmd), 0);
    free(dir);
}

/* Reads the offsets blob as a string ("" if none). */
static void offsets_str(vg_state_t *st, char *out, size_t cap)
{
    void *blob = NULL;
    size_t len = 0;
    VG_CHECK_INT(vg_state_offsets(st, &blob, &len), VG_OK);
    snprintf(out, cap, "%.*s", (int)len, blob ? (const char *)blob : "");
    free(blob);
}

static void count_change(void *opaque, int32_t partition, const char *entity, const char *key,
                         size_t klen, const void *value, size_t vlen)
{
    (*(int *)opaque)++;
}

static void test_state_checkpoints(void)
{
    vg_schema_t schema;
    vg_schema_init(&schema);
    char eb[VG_ERRLEN] = "", off[32];
    vg_catalog_t *c1 = vg_catalog_parse("c1", CAT1, strlen(CAT1), &schema, eb, sizeof(eb));
    char *dir = vg_test_tmpdir();
    vg_state_opts_t opts = {.nosync = 1, .checkpoint_ms = 3600000}; /* due only after an hour */
    vg_state_t *st = vg_state_open(dir, c1, &opts, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    double out[3];
    vg_txn_t txn;
    int64_t t0 = 1767571200000LL;
    txn_at(&txn, "a", "card1", "term1", t0);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    VG_CHECK_INT(vg_state_commit(st, "off-1", 5, eb, sizeof(eb)), VG_OK);
    txn_at(&txn, "b", "card1", "term2", t0 + 1000);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    /* the changes of this commit only, though card1 still waits for a write from the first */
    int calls = 0;
    VG_CHECK_INT(vg_state_changes(st, count_change, &calls), 2);
    VG_CHECK_INT(calls, 2);
    VG_CHECK_INT(vg_state_commit(st, "off-2", 5, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(vg_state_changes(st, count_change, &calls), 0);
    vg_state_stats_t stats;
    vg_state_stats(st, &stats);
    VG_CHECK_INT(stats.commits, 2);
    VG_CHECK_INT(stats.checkpoints, 0);
    VG_CHECK_INT(stats.dirty, 3);
    VG_CHECK_INT(stats.pending_txns, 2);
    offsets_str(st, off, sizeof(off)); /* the last commit's, not the store's */
    VG_CHECK_STR(off, "off-2");
    /* a label for a transaction only in memory finds it */
    vg_label_t lab = {.txn_id = "a", .fraud = 1, .ts_ms = t0 + 2000};
    VG_CHECK_INT(vg_state_label(st, &lab), VG_OK);
    VG_CHECK_INT(vg_state_commit(st, "off-3", 5, eb, sizeof(eb)), VG_OK);
    /* closing right after a commit writes it */
    vg_state_close(st);

    st = vg_state_open(dir, c1, &opts, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    offsets_str(st, off, sizeof(off));
    VG_CHECK_STR(off, "off-3");
    txn_at(&txn, "c", "card1", "term1", t0 + 3000);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    VG_CHECK(out[0] == 2 && out[1] == 1 && out[2] == 3);
    VG_CHECK_INT(vg_state_commit(st, "off-4", 5, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(vg_state_checkpoint(st, eb, sizeof(eb)), VG_OK); /* written now */
    vg_state_stats(st, &stats);
    VG_CHECK_INT(stats.checkpoints, 1);
    VG_CHECK_INT(stats.dirty, 0);
    VG_CHECK_INT(vg_state_checkpoint(st, eb, sizeof(eb)), VG_OK); /* nothing left to write */
    vg_state_stats(st, &stats);
    VG_CHECK_INT(stats.checkpoints, 1);
    /* "c" went out with that checkpoint: a label finds it there (the table of the last
     * write's records, kept until the next) as well as in RocksDB */
    lab.txn_id = "c";
    VG_CHECK_INT(vg_state_label(st, &lab), VG_OK);
    txn_at(&txn, "d", "card1", "term1", t0 + 4000);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    VG_CHECK(out[0] == 3 && out[1] == 2 && out[2] == 1);
    VG_CHECK_INT(vg_state_commit(st, "off-5", 5, eb, sizeof(eb)), VG_OK);
    txn_at(&txn, "e", "card1", "term1", t0 + 5000);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    /* a change since the last commit: closing drops back to the last checkpoint (off-4),
     * committed "off-5" included, as a crash would */
    vg_state_close(st);

    st = vg_state_open(dir, c1, NULL, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    offsets_str(st, off, sizeof(off));
    VG_CHECK_STR(off, "off-4");
    txn_at(&txn, "d", "card1", "term1", t0 + 4000);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    VG_CHECK(out[0] == 3 && out[1] == 1 && out[2] == 1);
    vg_state_close(st);
    vg_catalog_free(c1);
    vg_schema_free(&schema);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    VG_CHECK_INT(system(cmd), 0);
    free(dir);
}

int main(void)
{
    VG_RUN(test_state_edges);
    VG_RUN(test_state_old_encoding);
    VG_RUN(test_state_checkpoints);
    return vg_test_done();
}
