/*
 * test_feat_state.c - the state store's edges: a state directory refuses another
 * catalogue version; offsets are absent before the first commit and survive reopening;
 * uncommitted changes are dropped by close; labels for unknown transactions; missing
 * entity fields give NaN; stats count entities per type; the expiry filter deletes idle
 * entities from disk; a directory written with an older entity encoding is refused; with
 * checkpoint_ms, commits reach RocksDB only at a checkpoint (due by time, asked for, or at a
 * close after a commit), and reopening gives the last checkpoint's state and offsets; with
 * async_writes every commit is written, on the writer thread; a scratch state writes only
 * when its cache is full;
 * vg_state_prefetch hints change no value, whatever is hinted.
 */
#include "features/features.h"
#include "features/kv.h"
#include "vg_test.h"

#include <math.h>
#include <time.h>
#include <unistd.h>

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

/* Processes a transaction made by txn_at; its features in out. */
static vg_err_t process_at(vg_state_t *st, const char *id, const char *card, const char *term,
                           int64_t ts, double *out)
{
    vg_txn_t txn;
    txn_at(&txn, id, card, term, ts);
    return vg_state_process(st, &txn, out);
}

/* What most tests here share: the schema, catalogue CAT1 and a new state directory. */
typedef struct fixture {
    vg_schema_t schema;
    vg_catalog_t *c1;
    char *dir;
} fixture_t;

static void fixture_init(fixture_t *fx)
{
    char eb[VG_ERRLEN] = "";
    vg_schema_init(&fx->schema);
    fx->c1 = vg_catalog_parse("c1", CAT1, strlen(CAT1), &fx->schema, eb, sizeof(eb));
    VG_CHECK(fx->c1 != NULL);
    fx->dir = vg_test_tmpdir();
}

static void fixture_done(fixture_t *fx)
{
    vg_catalog_free(fx->c1);
    vg_schema_free(&fx->schema);
    vg_test_rmdir(fx->dir);
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
    int64_t t0 = 1767571200000LL;
    VG_CHECK_INT(process_at(st, "a", "card1", "term1", t0, out), VG_OK);
    VG_CHECK(out[0] == 0 && out[1] == 0 && isnan(out[2]));
    VG_CHECK_INT(process_at(st, "b", "card1", NULL, t0 + 1000, out), VG_OK);
    VG_CHECK(out[0] == 1 && isnan(out[2])); /* no terminal: its features are missing */
    vg_label_t lab = {.txn_id = "a", .fraud = 1, .ts_ms = t0 + 2000};
    VG_CHECK_INT(vg_state_label(st, &lab), VG_OK);
    VG_CHECK_INT(vg_state_label(st, &lab), VG_OK); /* twice: counted once */
    lab.txn_id = "zzz";
    VG_CHECK_INT(vg_state_label(st, &lab), VG_ERR_NOTFOUND);
    VG_CHECK_INT(process_at(st, "c", "card1", "term1", t0 + 61000, out), VG_OK);
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
    VG_CHECK_INT(process_at(st, "d", "card1", "term1", t0 + 62000, out), VG_OK);
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
    VG_CHECK_INT(process_at(st, "e", "card1", "term1", t0 + 63000, out), VG_OK);
    VG_CHECK(out[0] == 3 && out[1] == 1 && out[2] == 2); /* "d" was never committed */
    /* label for a committed transaction found through RocksDB */
    lab.txn_id = "c";
    VG_CHECK_INT(vg_state_label(st, &lab), VG_OK);
    lab.txn_id = "a";
    lab.fraud = 0; /* a legit verdict takes a's fraud back out */
    VG_CHECK_INT(vg_state_label(st, &lab), VG_OK);
    VG_CHECK_INT(process_at(st, "f", "card1", "term1", t0 + 64000, out), VG_OK);
    VG_CHECK(out[0] == 4 && out[1] == 1);

    /* two days later card1 and term1 are idle beyond retention: a new card's commit
     * deletes nothing yet, but card1 comes back empty */
    VG_CHECK_INT(process_at(st, "g", "card2", NULL, t0 + 2 * 86400000LL, out), VG_OK);
    VG_CHECK_INT(process_at(st, "h", "card1", "term1", t0 + 2 * 86400000LL + 1, out), VG_OK);
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
    vg_test_rmdir(dir);
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
    VG_CHECK_INT(process_at(st, "a", "card1", NULL, 1767571200000LL, out), VG_OK);
    VG_CHECK_INT(vg_state_commit(st, NULL, 0, eb, sizeof(eb)), VG_OK);
    vg_state_close(st);

    /* rewrite card1's value as an older build would have: version 1 in its first word */
    vg_kv_family_t fams[] = {
        {.name = "meta"}, {.name = "txn"}, {.name = "entity.card_id", .point_lookups = 1}};
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
    vg_test_rmdir(dir);
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
    fixture_t fx;
    fixture_init(&fx);
    vg_catalog_t *c1 = fx.c1;
    const char *dir = fx.dir;
    char eb[VG_ERRLEN] = "", off[32];
    vg_state_opts_t opts = {.nosync = 1, .checkpoint_ms = 3600000}; /* due only after an hour */
    vg_state_t *st = vg_state_open(dir, c1, &opts, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    double out[3];
    int64_t t0 = 1767571200000LL;
    VG_CHECK_INT(process_at(st, "a", "card1", "term1", t0, out), VG_OK);
    VG_CHECK_INT(vg_state_commit(st, "off-1", 5, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(process_at(st, "b", "card1", "term2", t0 + 1000, out), VG_OK);
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
    VG_CHECK_INT(process_at(st, "c", "card1", "term1", t0 + 3000, out), VG_OK);
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
    VG_CHECK_INT(process_at(st, "d", "card1", "term1", t0 + 4000, out), VG_OK);
    VG_CHECK(out[0] == 3 && out[1] == 2 && out[2] == 1);
    VG_CHECK_INT(vg_state_commit(st, "off-5", 5, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(process_at(st, "e", "card1", "term1", t0 + 5000, out), VG_OK);
    /* a change since the last commit: closing drops back to the last checkpoint (off-4),
     * committed "off-5" included, as a crash would */
    vg_state_close(st);

    st = vg_state_open(dir, c1, NULL, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    offsets_str(st, off, sizeof(off));
    VG_CHECK_STR(off, "off-4");
    VG_CHECK_INT(process_at(st, "d", "card1", "term1", t0 + 4000, out), VG_OK);
    VG_CHECK(out[0] == 3 && out[1] == 1 && out[2] == 1);
    vg_state_close(st);
    fixture_done(&fx);
}

/* With async_writes every commit is written, by the writer thread: a close with a change
 * since the last commit drops back to that commit (not to an older checkpoint), and a label
 * finds a transaction whose record is in flight or written. */
static void test_state_async_writes(void)
{
    fixture_t fx;
    fixture_init(&fx);
    vg_catalog_t *c1 = fx.c1;
    const char *dir = fx.dir;
    char eb[VG_ERRLEN] = "", off[32];
    vg_state_opts_t opts = {.nosync = 1, .async_writes = 1};
    vg_state_t *st = vg_state_open(dir, c1, &opts, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    double out[3];
    int64_t t0 = 1767571200000LL;
    VG_CHECK_INT(process_at(st, "a", "card1", "term1", t0, out), VG_OK);
    VG_CHECK_INT(vg_state_commit(st, "off-1", 5, eb, sizeof(eb)), VG_OK);
    vg_label_t lab = {.txn_id = "a", .fraud = 1, .ts_ms = t0 + 500};
    VG_CHECK_INT(vg_state_label(st, &lab), VG_OK); /* its record in flight, or written */
    VG_CHECK_INT(process_at(st, "b", "card1", "term2", t0 + 1000, out), VG_OK);
    VG_CHECK_INT(vg_state_commit(st, "off-2", 5, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(vg_state_wait_written(st, eb, sizeof(eb)), VG_OK);
    vg_state_stats_t stats;
    vg_state_stats(st, &stats);
    VG_CHECK_INT(stats.commits, 2);
    VG_CHECK_INT(stats.checkpoints, 2); /* one write a commit */
    VG_CHECK_INT(stats.dirty, 0);
    lab.txn_id = "b";
    VG_CHECK_INT(vg_state_label(st, &lab), VG_OK);
    VG_CHECK_INT(process_at(st, "c", "card1", "term1", t0 + 2000, out), VG_OK);
    vg_state_close(st); /* "c" and the label on "b" were never committed */

    st = vg_state_open(dir, c1, NULL, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    offsets_str(st, off, sizeof(off));
    VG_CHECK_STR(off, "off-2");
    VG_CHECK_INT(process_at(st, "d", "card1", "term1", t0 + 3000, out), VG_OK);
    VG_CHECK(out[0] == 2 && out[1] == 1 && out[2] == 3); /* a and b, a's label; term1 at t0 */
    vg_state_close(st);
    fixture_done(&fx);
}

/* A held commit (vg_state_commit_held) is written only once released: processing goes on
 * meanwhile; waiting for it, or committing again, before the release is refused; one never
 * released is dropped at close, and the state reopens at the commit before it. */
static void test_state_commit_held(void)
{
    fixture_t fx;
    fixture_init(&fx);
    vg_catalog_t *c1 = fx.c1;
    const char *dir = fx.dir;
    char eb[VG_ERRLEN] = "", off[32];
    vg_state_opts_t opts = {.nosync = 1, .async_writes = 1};
    vg_state_t *st = vg_state_open(dir, c1, &opts, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    double out[3];
    int64_t t0 = 1767571200000LL;
    VG_CHECK_INT(process_at(st, "a", "card1", "term1", t0, out), VG_OK);
    VG_CHECK_INT(vg_state_commit_held(st, "off-1", 5, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(process_at(st, "b", "card1", "term1", t0 + 1000, out),
                 VG_OK); /* the next batch, while held */
    VG_CHECK(out[0] == 1);
    VG_CHECK_INT(vg_state_wait_written(st, eb, sizeof(eb)), VG_ERR_STATE);
    VG_CHECK_STR(eb, "state: the previous commit's write is still held (vg_state_release)");
    VG_CHECK_INT(vg_state_commit(st, "off-2", 5, eb, sizeof(eb)), VG_ERR_STATE);
    vg_state_release(st);
    VG_CHECK_INT(vg_state_commit_held(st, "off-2", 5, eb, sizeof(eb)), VG_OK);
    vg_state_release(st);
    VG_CHECK_INT(vg_state_wait_written(st, eb, sizeof(eb)), VG_OK);
    VG_CHECK_INT(process_at(st, "c", "card1", "term1", t0 + 2000, out), VG_OK);
    VG_CHECK(out[0] == 2);
    VG_CHECK_INT(vg_state_commit_held(st, "off-3", 5, eb, sizeof(eb)), VG_OK);
    vg_state_close(st); /* "c" committed, its write never released */

    st = vg_state_open(dir, c1, NULL, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    offsets_str(st, off, sizeof(off));
    VG_CHECK_STR(off, "off-2");
    VG_CHECK_INT(process_at(st, "d", "card1", "term1", t0 + 3000, out), VG_OK);
    VG_CHECK(out[0] == 2); /* a and b */
    VG_CHECK_INT(vg_state_commit_held(st, "off-4", 5, eb, sizeof(eb)), VG_ERR_STATE);
    VG_CHECK_STR(eb, "state: a held commit needs async_writes or checkpoint_ms");
    vg_state_close(st);

    /* With checkpoints, a held commit holds the checkpoint it writes, if one is due. */
    vg_state_opts_t ck = {.nosync = 1, .checkpoint_ms = 1};
    for (int release = 0; release < 2; release++) {
        st = vg_state_open(dir, c1, &ck, eb, sizeof(eb));
        VG_CHECK(st != NULL);
        if (!st)
            return;
        VG_CHECK_INT(process_at(st, release ? "f" : "e", "card2", "term1", t0 + 4000, out), VG_OK);
        struct timespec two_ms = {0, 2000000};
        nanosleep(&two_ms, NULL); /* a checkpoint is due */
        VG_CHECK_INT(vg_state_commit_held(st, release ? "ck-2" : "ck-1", 4, eb, sizeof(eb)), VG_OK);
        VG_CHECK_INT(process_at(st, "g", "card2", "term1", t0 + 5000, out), VG_OK);
        if (release)
            vg_state_release(st);
        vg_state_close(st); /* "g" never committed */
        st = vg_state_open(dir, c1, NULL, eb, sizeof(eb));
        VG_CHECK(st != NULL);
        if (!st)
            return;
        offsets_str(st, off, sizeof(off));
        VG_CHECK_STR(off, release ? "ck-2" : "off-2"); /* the unreleased checkpoint dropped */
        VG_CHECK_INT(process_at(st, "h", "card2", "term1", t0 + 6000, out), VG_OK);
        VG_CHECK(out[0] == release); /* card2's "f" once released; "e" never */
        vg_state_close(st);
    }
    fixture_done(&fx);
}

/* A scratch state with checkpoint_ms writes nothing while its cache has room, however much
 * time passes, and nothing at close: reopened, it holds no offsets and no entity. */
static void test_state_scratch(void)
{
    fixture_t fx;
    fixture_init(&fx);
    vg_catalog_t *c1 = fx.c1;
    const char *dir = fx.dir;
    char eb[VG_ERRLEN] = "", off[32];
    vg_state_opts_t opts = {.nosync = 1, .checkpoint_ms = 1, .scratch = 1};
    vg_state_t *st = vg_state_open(dir, c1, &opts, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    double out[3];
    int64_t t0 = 1767571200000LL;
    VG_CHECK_INT(process_at(st, "a", "card1", "term1", t0, out), VG_OK);
    VG_CHECK_INT(vg_state_commit(st, "off-1", 5, eb, sizeof(eb)), VG_OK);
    usleep(5000); /* five checkpoint intervals */
    VG_CHECK_INT(process_at(st, "b", "card1", "term1", t0 + 1000, out), VG_OK);
    VG_CHECK_INT(vg_state_commit(st, "off-2", 5, eb, sizeof(eb)), VG_OK);
    vg_state_stats_t stats;
    vg_state_stats(st, &stats);
    VG_CHECK_INT(stats.commits, 2);
    VG_CHECK_INT(stats.checkpoints, 0);
    vg_state_close(st);

    st = vg_state_open(dir, c1, NULL, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    offsets_str(st, off, sizeof(off));
    VG_CHECK_STR(off, "");
    VG_CHECK_INT(process_at(st, "c", "card1", "term1", t0 + 2000, out), VG_OK);
    VG_CHECK(out[0] == 0); /* card1 was never written */
    vg_state_close(st);
    fixture_done(&fx);
}

/* The same stream (random cards, terminals and devices, out of order, labels, commits with a
 * cache small enough to evict) through two states, one given vg_state_prefetch hints three
 * transactions ahead plus hints for transactions never processed: every value is the same,
 * bit for bit, and so are the entities evicted and reloaded. */
static void test_state_prefetch(void)
{
    static const char *cat_text =
        "n = count by card_id over 1h\nm = mean by card_id over 1d\nsd = std by card_id over 1d\n"
        "z = zscore by card_id over 7d delay 1d\nf = fraud_share by terminal_id over 1d delay 1h\n"
        "d = distinct terminal_id by card_id over 1d\nw = new terminal_id by card_id over 7d\n"
        "dc = distinct card_id by device_id over 1h\ns = since_last by terminal_id over 1d\n";
    vg_schema_t schema;
    vg_schema_init(&schema);
    char eb[VG_ERRLEN] = "";
    vg_catalog_t *c = vg_catalog_parse("p", cat_text, strlen(cat_text), &schema, eb, sizeof(eb));
    VG_CHECK_STR(eb, "");
    if (!c)
        return;
    size_t nf = vg_catalog_size(c);
    vg_state_opts_t opts = {.cache_bytes = 64 * 1024, .nosync = 1};
    char *dirs[2];
    vg_state_t *st[2];
    for (int k = 0; k < 2; k++) {
        dirs[k] = vg_test_tmpdir();
        st[k] = vg_state_open(dirs[k], c, &opts, eb, sizeof(eb));
        VG_CHECK(st[k] != NULL);
        if (!st[k])
            return;
    }
    enum { N = 4000, D = 3 };
    static char ids[N][12], cards[N][12], terms[N][12], devs[N][12];
    static vg_txn_t txns[N];
    uint64_t rs = 88172645463325252ULL;
    int64_t t0 = 1767571200000LL;
    for (int i = 0; i < N; i++) {
        rs ^= rs << 13;
        rs ^= rs >> 7;
        rs ^= rs << 17;
        snprintf(ids[i], sizeof(ids[i]), "x%d", i);
        snprintf(cards[i], sizeof(cards[i]), "c%d", (int)(rs % 300));
        snprintf(terms[i], sizeof(terms[i]), "t%d", (int)((rs >> 20) % 40));
        snprintf(devs[i], sizeof(devs[i]), "d%d", (int)((rs >> 30) % 100));
        int64_t ts = t0 + (int64_t)i * 60000 - ((rs >> 40) % 10 == 0 ? (int64_t)(rs % 7200000) : 0);
        txn_at(&txns[i], ids[i], cards[i], terms[i], ts);
        txns[i].amount = (double)((rs >> 8) % 50000) / 100.0;
        if ((rs >> 50) % 3) {
            txns[i].str[VG_F_DEVICE_ID] = devs[i];
            txns[i].len[VG_F_DEVICE_ID] = (uint32_t)strlen(devs[i]);
        }
    }
    vg_txn_t bogus;
    txn_at(&bogus, "never", "c-unseen", "t1", t0);
    double *out[2] = {malloc(nf * sizeof(double)), malloc(nf * sizeof(double))};
    int same = 1;
    for (int i = 0; i < D; i++)
        vg_state_prefetch(st[1], &txns[i]);
    for (int i = 0; i < N; i++) {
        if (i + D < N)
            vg_state_prefetch(st[1], &txns[i + D]);
        if (i % 7 == 0)
            vg_state_prefetch(st[1], &bogus);
        for (int k = 0; k < 2; k++)
            VG_CHECK_INT(vg_state_process(st[k], &txns[i], out[k]), VG_OK);
        same &= memcmp(out[0], out[1], nf * sizeof(double)) == 0;
        if (i >= 50 && i % 13 == 0) {
            vg_label_t l = {.txn_id = ids[i - 50], .fraud = 1, .ts_ms = txns[i].ts_ms};
            for (int k = 0; k < 2; k++)
                VG_CHECK_INT(vg_state_label(st[k], &l), VG_OK);
        }
        if ((i + 1) % 500 == 0)
            for (int k = 0; k < 2; k++)
                VG_CHECK_INT(vg_state_commit(st[k], NULL, 0, eb, sizeof(eb)), VG_OK);
    }
    VG_CHECK(same);
    vg_state_stats_t s0, s1;
    vg_state_stats(st[0], &s0);
    vg_state_stats(st[1], &s1);
    VG_CHECK(s0.evictions > 100 && s0.loads > 100);
    VG_CHECK_INT(s1.evictions, s0.evictions);
    VG_CHECK_INT(s1.loads, s0.loads);
    for (int k = 0; k < 2; k++) {
        vg_state_close(st[k]);
        free(out[k]);
        vg_test_rmdir(dirs[k]);
    }
    vg_catalog_free(c);
    vg_schema_free(&schema);
}

int main(void)
{
    VG_RUN(test_state_edges);
    VG_RUN(test_state_old_encoding);
    VG_RUN(test_state_checkpoints);
    VG_RUN(test_state_async_writes);
    VG_RUN(test_state_commit_held);
    VG_RUN(test_state_scratch);
    VG_RUN(test_state_prefetch);
    return vg_test_done();
}
