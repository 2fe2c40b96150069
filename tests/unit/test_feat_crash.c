/*
 * test_feat_crash.c - crash consistency of vg_state_commit: a child process processes a
 * deterministic stream with labels under the default catalogue, committing every 100
 * events with the number of events consumed as its offsets blob, and is killed with
 * SIGKILL at a random moment. Reopening must give the offsets of one committed batch and
 * exactly that batch's state: resuming from those offsets must produce, for every later
 * event, bit-for-bit the features of an uninterrupted run. The same with checkpoint_ms (a
 * checkpoint every few milliseconds): the offsets may then be those of an earlier batch
 * than the last committed, but state and offsets must still agree. And with checkpoints and
 * a cache too small for the stream, the features equal those of a run that keeps everything.
 */
#include "features/features.h"
#include "vg_test.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

enum { N = 30000, EVERY = 100, NCARDS = 700, NTERMS = 60 };

static char cards[NCARDS][16], terms[NTERMS][16], merchs[NTERMS][16], ids[N][16];

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

/* Event i of the stream, a pure function of i. */
static void event(int i, vg_txn_t *txn)
{
    uint64_t h = mix((uint64_t)i + 1);
    memset(txn, 0, sizeof(*txn));
    txn->ts_ms = 1767571200000LL + (int64_t)i * 20000 - (int64_t)(h % 7 == 0 ? h % 3600000 : 0);
    txn->amount = (double)(h % 50000) / 100.0;
    txn->lat = 45 + (double)(h % 1000) / 100.0;
    txn->lon = (double)((h >> 10) % 1000) / 100.0;
    int c = (int)((h >> 20) % NCARDS), t = (int)((h >> 32) % NTERMS);
    txn->str[VG_F_TXN_ID] = ids[i];
    txn->len[VG_F_TXN_ID] = (uint32_t)strlen(ids[i]);
    txn->str[VG_F_CARD_ID] = cards[c];
    txn->len[VG_F_CARD_ID] = (uint32_t)strlen(cards[c]);
    txn->str[VG_F_TERMINAL_ID] = terms[t];
    txn->len[VG_F_TERMINAL_ID] = (uint32_t)strlen(terms[t]);
    txn->str[VG_F_MERCHANT_ID] = merchs[t / 3];
    txn->len[VG_F_MERCHANT_ID] = (uint32_t)strlen(merchs[t / 3]);
    txn->str[VG_F_CHANNEL] = h % 3 ? "pos" : "ecom";
    txn->len[VG_F_CHANNEL] = h % 3 ? 3 : 4;
}

/* Processes event i and the label that follows it in the stream. */
static void step(vg_state_t *st, int i, double *out)
{
    vg_txn_t txn;
    event(i, &txn);
    VG_CHECK_INT(vg_state_process(st, &txn, out), VG_OK);
    if (i % 5 == 0 && i >= 40) {
        vg_label_t l = {.txn_id = ids[i - 40], .fraud = 1, .ts_ms = txn.ts_ms};
        VG_CHECK_INT(vg_state_label(st, &l), VG_OK);
    }
}

static vg_catalog_t *load(vg_schema_t *schema)
{
    const char *src = getenv("VG_SOURCE_DIR");
    char path[4096], eb[VG_ERRLEN];
    snprintf(path, sizeof(path), "%s/features/default.conf", src ? src : VG_SOURCE_DIR);
    vg_catalog_t *c = vg_catalog_load(path, schema, eb, sizeof(eb));
    if (!c)
        fprintf(stderr, "%s\n", eb);
    return c;
}

/* Closes both states and removes their directories. */
static void finish(vg_state_t *st, vg_state_t *ref, vg_catalog_t *cat, vg_schema_t *schema,
                   char *dir, char *dir2)
{
    vg_state_close(st);
    vg_state_close(ref);
    vg_catalog_free(cat);
    vg_schema_free(schema);
    vg_test_rmdir(dir);
    vg_test_rmdir(dir2);
}

static int64_t checkpoint_ms; /* the child's vg_state_opts_t.checkpoint_ms */

static void child(const char *dir, int fd)
{
    vg_schema_t schema;
    vg_schema_init(&schema);
    vg_catalog_t *cat = load(&schema);
    char eb[VG_ERRLEN];
    /* with checkpoints, a cache that holds every entity: a write is then due by time only */
    vg_state_opts_t opts = {.cache_bytes = checkpoint_ms ? 64 << 20 : 256 * 1024,
                            .nosync = checkpoint_ms > 0,
                            .checkpoint_ms = checkpoint_ms};
    vg_state_t *st = vg_state_open(dir, cat, &opts, eb, sizeof(eb));
    if (!st)
        _exit(3);
    double *out = malloc(vg_catalog_size(cat) * sizeof(double));
    for (int i = 0; i < N; i++) {
        step(st, i, out);
        if ((i + 1) % EVERY == 0) {
            char off[32];
            int len = snprintf(off, sizeof(off), "%d", i + 1);
            if (vg_state_commit(st, off, (size_t)len, eb, sizeof(eb)) != VG_OK)
                _exit(4);
            if (write(fd, "c", 1) != 1)
                _exit(5);
        }
    }
    _exit(0);
}

static void crash_once(unsigned delay_us, int wait_commits)
{
    char *dir = vg_test_tmpdir();
    int fds[2];
    VG_CHECK_INT(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child(dir, fds[1]);
    }
    close(fds[1]);
    char c;
    for (int k = 0; k < wait_commits; k++)
        if (read(fds[0], &c, 1) != 1)
            break;
    usleep(delay_us);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    close(fds[0]);
    VG_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    vg_schema_t schema;
    vg_schema_init(&schema);
    vg_catalog_t *cat = load(&schema);
    char eb[VG_ERRLEN];
    vg_state_t *st = vg_state_open(dir, cat, NULL, eb, sizeof(eb));
    VG_CHECK(st != NULL);
    if (!st)
        return;
    void *blob;
    size_t len;
    VG_CHECK_INT(vg_state_offsets(st, &blob, &len), VG_OK);
    VG_CHECK(blob != NULL || checkpoint_ms > 0); /* with checkpoints: maybe none written yet */
    char off[32] = "0";
    if (blob && len < sizeof(off)) {
        memcpy(off, blob, len);
        off[len] = '\0';
    }
    free(blob);
    int from = atoi(off);
    VG_CHECK(from % EVERY == 0 && from < N);
    if (!checkpoint_ms)
        VG_CHECK(from >= wait_commits * EVERY);

    /* the uninterrupted run */
    char *dir2 = vg_test_tmpdir();
    vg_state_opts_t opts = {.cache_bytes = 64 << 20, .nosync = 1};
    vg_state_t *ref = vg_state_open(dir2, cat, &opts, eb, sizeof(eb));
    size_t nf = vg_catalog_size(cat);
    double *a = malloc(nf * sizeof(double)), *b = malloc(nf * sizeof(double));
    int diff = 0;
    for (int i = 0; i < N; i++) {
        step(ref, i, b);
        if (i < from)
            continue;
        step(st, i, a);
        for (size_t f = 0; f < nf; f++)
            if (!(a[f] == b[f] || (isnan(a[f]) && isnan(b[f]))) && diff++ < 3)
                fprintf(stderr, "event %d %s: resumed %.17g, uninterrupted %.17g\n", i,
                        vg_catalog_feature_name(cat, f), a[f], b[f]);
    }
    fprintf(stderr, "killed after %d committed events (checkpoint_ms %lld); resumed %d events\n",
            from, (long long)checkpoint_ms, N - from);
    VG_CHECK_INT(diff, 0);
    free(a);
    free(b);
    finish(st, ref, cat, &schema, dir, dir2);
}

static void names(void)
{
    for (int i = 0; i < NCARDS; i++)
        snprintf(cards[i], 16, "card%d", i);
    for (int i = 0; i < NTERMS; i++) {
        snprintf(terms[i], 16, "term%d", i);
        snprintf(merchs[i], 16, "m%d", i);
    }
    for (int i = 0; i < N; i++)
        snprintf(ids[i], 16, "x%d", i);
}

static void test_crash(void)
{
    crash_once(0, 3);
    crash_once(7000, 10);
    crash_once(23000, 30);
    /* a checkpoint written by the first commit 5 ms after the last */
    checkpoint_ms = 5;
    crash_once(0, 3);
    crash_once(7000, 10);
    crash_once(23000, 30);
    checkpoint_ms = 0;
}

/* Checkpoints written by the writer thread while a small cache evicts and reloads entities:
 * every feature must equal a run that keeps everything in memory (a reload must never read a
 * value older than one still in flight). */
static void test_checkpoint_evictions(void)
{
    vg_schema_t schema;
    vg_schema_init(&schema);
    vg_catalog_t *cat = load(&schema);
    char eb[VG_ERRLEN];
    char *dir = vg_test_tmpdir(), *dir2 = vg_test_tmpdir();
    vg_state_opts_t small = {.cache_bytes = 256 * 1024, .nosync = 1, .checkpoint_ms = 1};
    vg_state_opts_t big = {.cache_bytes = 64 << 20, .nosync = 1};
    vg_state_t *st = vg_state_open(dir, cat, &small, eb, sizeof(eb));
    vg_state_t *ref = vg_state_open(dir2, cat, &big, eb, sizeof(eb));
    VG_CHECK(st != NULL && ref != NULL);
    if (!st || !ref)
        return;
    size_t nf = vg_catalog_size(cat);
    double *a = malloc(nf * sizeof(double)), *b = malloc(nf * sizeof(double));
    int diff = 0;
    for (int i = 0; i < N; i++) {
        step(st, i, a);
        step(ref, i, b);
        for (size_t f = 0; f < nf; f++)
            if (!(a[f] == b[f] || (isnan(a[f]) && isnan(b[f]))) && diff++ < 3)
                fprintf(stderr, "event %d %s: small cache %.17g, all in memory %.17g\n", i,
                        vg_catalog_feature_name(cat, f), a[f], b[f]);
        if ((i + 1) % EVERY == 0)
            VG_CHECK_INT(vg_state_commit(st, "x", 1, eb, sizeof(eb)), VG_OK);
    }
    VG_CHECK_INT(diff, 0);
    vg_state_stats_t stats;
    vg_state_stats(st, &stats);
    fprintf(stderr, "%llu checkpoints, %llu evictions, %llu loads\n",
            (unsigned long long)stats.checkpoints, (unsigned long long)stats.evictions,
            (unsigned long long)stats.loads);
    VG_CHECK(stats.checkpoints > 10 && stats.evictions > 1000 && stats.loads > 1000);
    free(a);
    free(b);
    finish(st, ref, cat, &schema, dir, dir2);
}

int main(void)
{
    names();
    VG_RUN(test_crash);
    VG_RUN(test_checkpoint_evictions);
    return vg_test_done();
}
