/*
 * bench_features.c - throughput of the feature state under the default catalogue.
 *
 * 1M synthetic events (100k cards, 10k terminals, 2k merchants, 50k devices and IPs,
 * 30 days of event time, 2% out of order, fraud labels for 0.5% of transactions) run
 * through vg_state_process/vg_state_label, each run in a fresh state directory:
 *   baseline   - the same loop under a catalogue of per-transaction features only (no
 *                entity state): the cost of the loop, building txns and the call itself;
 *   compute    - the default catalogue, no commits (cache large enough for everything);
 *   commits@N  - the default catalogue, vg_state_commit (with an offsets blob) every N events,
 *                N = 2,000 and 20,000 (VG_BENCH_BATCH=N: only N), default 256 MiB cache, no
 *                fsync, every commit written to RocksDB: vigil run's configuration
 *                (state.sync = false) at N = 20,000, its micro-batch;
 *   ckpt@N     - the same with vg_state_opts_t.checkpoint_ms = 1000 (VG_BENCH_CHECKPOINT_MS):
 *                commits written to RocksDB together, by a writer thread, at most every second
 *                (vigil replay's configuration, with 10 s).
 * VG_BENCH_MODE=every|checkpoint|durable runs one commit mode (durable: every commit fsync'd,
 * the library default). Prints events/s for each (by the wall clock, and by this thread's CPU
 * time, which other processes' load on a shared machine moves far less; for commit runs also
 * the CPU of all threads, RocksDB's and the writer's, and the time to close, which writes what
 * is left) and the bytes of state per card (encoded value, the same bytes RocksDB stores).
 *   types      - (only with VG_BENCH_ONLY=types) compute for each entity type alone: the
 *                per-transaction features and that type's lines of the default catalogue,
 *                where the time goes by entity; a type with label-driven features again
 *                without them (those make vg_state_process keep a record per transaction, for
 *                the labels to find).
 * VG_BENCH_INPUT=DIR runs the same phases over the first EVENTS transactions of
 * DIR/transactions.jsonl (`vigil simulate --out DIR`), decoded before the clock starts, with
 * the labels of DIR/labels.jsonl applied in event time, instead of the synthetic events.
 * Usage: bench_features [EVENTS] [SOURCE_DIR]; VG_BENCH_ONLY=baseline|compute|commits|types
 * runs one phase. Every run hints each transaction to vg_state_prefetch 3 events before processing
 * it, as a caller holding a decoded micro-batch can (VG_BENCH_PREFETCH=D: D ahead, 0: no hints).
 */
#include "engine/common.h"
#include "features/features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { NCARDS = 100000, NTERMS = 10000, NMERCH = 2000, NDEVS = 50000 };

/* How commits reach disk (VG_BENCH_MODE): */
typedef enum commit_mode {
    MODE_EVERY,      /* every commit written, no fsync: vigil run (state.sync = false) */
    MODE_CHECKPOINT, /* commits written together by a checkpoint at most every
                        VG_BENCH_CHECKPOINT_MS (vg_state_opts_t.checkpoint_ms), no fsync:
                        vigil replay (every 10 s) */
    MODE_DURABLE,    /* every commit written and fsync'd: the library default, and vigil run
                        with state.sync = true */
} commit_mode_t;

static const char *mode_name[] = {"every", "checkpoint", "durable"};
static int64_t checkpoint_ms = 1000; /* VG_BENCH_CHECKPOINT_MS */
static int prefetch = 3;             /* VG_BENCH_PREFETCH: hint this many events ahead, 0 = off */
enum { PF_MAX = 15 };

/* CPU time of this thread, or of the whole process (RocksDB's background threads too), in
 * ns: on a shared machine it moves far less than the wall clock with other processes' load. */
static int64_t cpu_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct bev {
    int64_t ts;
    int32_t card, term, dev, ip;
    float amount, lat, lon;
    uint8_t ecom;
} bev_t;

static char (*cards)[12], (*terms)[12], (*merchs)[12], (*devs)[12], (*ips)[16], (*ids)[12];

static uint64_t rs = 0x2545F4914F6CDD1DULL;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static void make_txn(const bev_t *e, int i, vg_txn_t *txn)
{
    txn->ts_ms = e->ts;
    txn->amount = e->amount;
    txn->lat = e->lat;
    txn->lon = e->lon;
/* Each name table entry keeps its length in its last byte (set once in main), as a decoder
 * hands over lengths it already knows: strlen on these randomly accessed names cost the
 * compute run ~6% in cache misses that the state itself never causes. */
#define SET(f, s)                                                                                  \
    do {                                                                                           \
        txn->str[f] = (s);                                                                         \
        txn->len[f] = (uint8_t)(s)[sizeof(s) - 1];                                                 \
    } while (0)
    SET(VG_F_TXN_ID, ids[i]);
    SET(VG_F_CARD_ID, cards[e->card]);
    SET(VG_F_TERMINAL_ID, terms[e->term]);
    SET(VG_F_MERCHANT_ID, merchs[e->term / 5]);
    txn->str[VG_F_CHANNEL] = e->ecom ? "ecom" : "pos";
    txn->len[VG_F_CHANNEL] = e->ecom ? 4 : 3;
    if (e->dev >= 0)
        SET(VG_F_DEVICE_ID, devs[e->dev]);
    else
        txn->str[VG_F_DEVICE_ID] = NULL;
    if (e->ip >= 0)
        SET(VG_F_IP, ips[e->ip]);
    else
        txn->str[VG_F_IP] = NULL;
#undef SET
}

/* VG_BENCH_INPUT: the decoded transactions, and the labels in event time. */
static vg_txn_t *input;
static vg_label_t *input_labels;
static size_t ninput_labels, input_labels_cap;
static vg_arena_t input_arena;

/* Decodes up to max lines of DIR/NAME with decode(line, i); returns how many, -1 on error. */
static int read_lines(const char *dir, const char *name, int max,
                      int (*decode)(const char *line, size_t len, int i))
{
    char path[4096], eb[VG_ERRLEN];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *text;
    size_t len;
    if (vg_read_file(path, &text, &len, eb, sizeof(eb)) != VG_OK) {
        fprintf(stderr, "%s\n", eb);
        return -1;
    }
    int n = 0;
    for (const char *l = text, *end = text + len; l < end && n < max;) {
        const char *nl = memchr(l, '\n', (size_t)(end - l));
        size_t ll = nl ? (size_t)(nl - l) : (size_t)(end - l);
        if (ll && decode(l, ll, n) != 0) {
            fprintf(stderr, "%s line %d: not a valid message\n", path, n + 1);
            free(text);
            return -1;
        }
        n += ll != 0;
        l += ll + 1;
    }
    free(text);
    return n;
}

static const vg_schema_t *input_schema;

static int decode_txn(const char *line, size_t len, int i)
{
    char reason[256];
    return vg_txn_decode(input_schema, line, len, &input_arena, &input[i], reason, sizeof(reason));
}

static int decode_label(const char *line, size_t len, int i)
{
    char reason[256];
    if ((size_t)i == input_labels_cap) {
        input_labels_cap = input_labels_cap ? 2 * input_labels_cap : 1024;
        input_labels = vg_xrealloc(input_labels, input_labels_cap * sizeof(*input_labels));
    }
    return vg_label_decode(line, len, &input_arena, &input_labels[i], reason, sizeof(reason));
}

/* Transaction i of the run: the decoded input's, or built from the synthetic event into the
 * ring of transactions in flight. */
static const vg_txn_t *txn_at(const bev_t *evs, int i, vg_txn_t *ring)
{
    if (input)
        return &input[i];
    vg_txn_t *t = &ring[i % (PF_MAX + 1)];
    make_txn(&evs[i], i, t);
    return t;
}

typedef struct result {
    double secs;
    vg_state_stats_t stats;
} result_t;

/* batch: events per commit, 0 = no commits. */
static int run(const char *name, vg_catalog_t *cat, const bev_t *evs, int n, int batch,
               commit_mode_t mode, result_t *res)
{
    char dir[] = "/tmp/vigil-bench-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    char eb[VG_ERRLEN];
    int commit = batch > 0;
    vg_state_opts_t opts = {.cache_bytes = commit ? 0 : (size_t)8 << 30,
                            .nosync = mode != MODE_DURABLE,
                            .checkpoint_ms = mode == MODE_CHECKPOINT ? checkpoint_ms : 0};
    vg_state_t *st = vg_state_open(dir, cat, &opts, eb, sizeof(eb));
    if (!st) {
        fprintf(stderr, "%s\n", eb);
        return -1;
    }
    double *out = malloc(vg_catalog_size(cat) * sizeof(double));
    /* a ring of PF_MAX + 1 transactions: each is built once, hinted `prefetch` events ahead
     * and processed from the same struct (as a caller holding a decoded batch would) */
    vg_txn_t ring[PF_MAX + 1];
    memset(ring, 0, sizeof(ring));
    int pf = prefetch < 0 ? 0 : prefetch > PF_MAX ? PF_MAX : prefetch;
    double sink = 0;
    int64_t commit_ns = 0, commit_cpu = 0;
    int64_t t0 = vg_mono_ns();
    int64_t cpu0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID), pcpu0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
    const vg_txn_t *flight[PF_MAX + 1]; /* the transactions hinted, not yet processed */
    size_t nextlab = 0;
    for (int i = 0; i < pf && i < n; i++)
        vg_state_prefetch(st, flight[i] = txn_at(evs, i, ring));
    for (int i = 0; i < n; i++) {
        const vg_txn_t *txn = pf ? flight[i % (PF_MAX + 1)] : txn_at(evs, i, ring);
        if (pf && i + pf < n)
            vg_state_prefetch(st, flight[(i + pf) % (PF_MAX + 1)] = txn_at(evs, i + pf, ring));
        /* the input's labels known by this transaction's time */
        while (nextlab < ninput_labels && input_labels[nextlab].ts_ms <= txn->ts_ms)
            vg_state_label(st, &input_labels[nextlab++]);
        if (vg_state_process(st, txn, out) != VG_OK)
            return -1;
        sink += out[0];
        /* synthetic: a fraud label for 0.5% of transactions, about 1,000 events later */
        if (!input && i >= 1000 && (i * 2654435761u) % 200 == 0) {
            vg_label_t l = {.txn_id = ids[i - 1000], .fraud = 1, .ts_ms = evs[i].ts};
            vg_state_label(st, &l);
        }
        if (commit && (i + 1) % batch == 0) {
            char off[16];
            int len = snprintf(off, sizeof(off), "%d", i + 1);
            int64_t c0 = vg_mono_ns(), cc0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
            if (vg_state_commit(st, off, (size_t)len, eb, sizeof(eb)) != VG_OK) {
                fprintf(stderr, "%s\n", eb);
                return -1;
            }
            commit_ns += vg_mono_ns() - c0;
            commit_cpu += cpu_ns(CLOCK_THREAD_CPUTIME_ID) - cc0;
        }
    }
    res->secs = (double)(vg_mono_ns() - t0) / 1e9;
    double cpu = (double)(cpu_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0) / 1e9;
    double pcpu = (double)(cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - pcpu0) / 1e9;
    vg_state_stats(st, &res->stats);
    printf("%-28s %9.0f events/s  (%d events in %.3f s, %.3f s of it in commits%s)\n", name,
           n / res->secs, n, res->secs, commit_ns / 1e9, sink == 12345.678 ? "!" : "");
    printf("%-28s %9.0f events/s of CPU (this thread %.3f s, %.3f s of it in commits; all "
           "threads %.3f s)\n",
           "", n / cpu, cpu, commit_cpu / 1e9, pcpu);
    free(out);
    /* Closing writes the last commits (checkpoint mode: work the run deferred, so it is shown,
     * and counted in the last figure). */
    int64_t z0 = vg_mono_ns();
    vg_state_close(st);
    if (commit) {
        double zs = (double)(vg_mono_ns() - z0) / 1e9;
        double all = (double)(cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - pcpu0) / 1e9;
        printf("%-28s %llu writes to RocksDB; close %.3f s; with the close: %.0f events/s, %.0f "
               "events/s of all threads' CPU (%.3f s)\n",
               "", (unsigned long long)res->stats.checkpoints, zs, n / (res->secs + zs), n / all,
               all);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return -1;
    return 0;
}

/* The per-transaction features of catalogue text and its features keyed by entity `by` (without
 * the label-driven ones unless labels). */
static vg_catalog_t *type_catalog(const char *text, const char *by, int labels, vg_schema_t *schema,
                                  size_t *nfeatures)
{
    char key[64], line[1024], eb[VG_ERRLEN];
    vg_buf_t sub;
    vg_buf_init(&sub);
    snprintf(key, sizeof(key), " by %s over ", by);
    *nfeatures = 0;
    for (const char *l = text; *l;) {
        size_t n = strcspn(l, "\n");
        snprintf(line, sizeof(line), "%.*s\n", (int)n, l);
        l += n + (l[n] == '\n');
        if (line[0] == '#' || !strchr(line, '=') ||
            (!labels && (strstr(line, "= fraud_count ") || strstr(line, "= fraud_share "))))
            continue;
        if (strstr(line, key))
            (*nfeatures)++;
        else if (strstr(line, " by ")) /* another entity's; the rest are per transaction */
            continue;
        vg_buf_puts(&sub, line);
    }
    vg_catalog_t *cat = vg_catalog_parse(by, sub.data, sub.len, schema, eb, sizeof(eb));
    if (!cat)
        fprintf(stderr, "%s\n", eb);
    vg_buf_free(&sub);
    return cat;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000000;
    int batches[2] = {2000, 20000};
    size_t nbatches = 2;
    if (getenv("VG_BENCH_BATCH") && atoi(getenv("VG_BENCH_BATCH")) > 0) {
        batches[0] = atoi(getenv("VG_BENCH_BATCH"));
        nbatches = 1;
    }
    commit_mode_t modes[3] = {MODE_EVERY, MODE_CHECKPOINT};
    size_t nmodes = 2;
    const char *m = getenv("VG_BENCH_MODE");
    for (int i = 0; m && i < 3; i++)
        if (!strcmp(m, mode_name[i])) {
            modes[0] = (commit_mode_t)i;
            nmodes = 1;
        }
    if (getenv("VG_BENCH_PREFETCH"))
        prefetch = atoi(getenv("VG_BENCH_PREFETCH"));
    if (getenv("VG_BENCH_CHECKPOINT_MS"))
        checkpoint_ms = atoll(getenv("VG_BENCH_CHECKPOINT_MS"));
    const char *src = argc > 2 ? argv[2] : getenv("VG_SOURCE_DIR");
    if (!src)
        src = VG_SOURCE_DIR;
    char path[4096], eb[VG_ERRLEN];
    snprintf(path, sizeof(path), "%s/features/default.conf", src);
    vg_schema_t schema;
    vg_schema_init(&schema);
    vg_catalog_t *cat = vg_catalog_load(path, &schema, eb, sizeof(eb));
    const char *base_text = "amount = amount\nlog_amount = log_amount\nhour = hour\n"
                            "weekend = weekend\nnight = night\n";
    vg_catalog_t *base =
        vg_catalog_parse("baseline", base_text, strlen(base_text), &schema, eb, sizeof(eb));
    if (!cat || !base) {
        fprintf(stderr, "%s\n", eb);
        return 1;
    }

    cards = malloc(sizeof(*cards) * NCARDS);
    terms = malloc(sizeof(*terms) * NTERMS);
    merchs = malloc(sizeof(*merchs) * NMERCH);
    devs = malloc(sizeof(*devs) * NDEVS);
    ips = malloc(sizeof(*ips) * NDEVS);
    ids = malloc(sizeof(*ids) * (size_t)n);
    for (int i = 0; i < NCARDS; i++)
        cards[i][11] = (char)snprintf(cards[i], 11, "c%07d", i);
    for (int i = 0; i < NTERMS; i++)
        terms[i][11] = (char)snprintf(terms[i], 11, "t%06d", i);
    for (int i = 0; i < NMERCH; i++)
        merchs[i][11] = (char)snprintf(merchs[i], 11, "m%05d", i);
    for (int i = 0; i < NDEVS; i++) {
        devs[i][11] = (char)snprintf(devs[i], 11, "d%06d", i);
        ips[i][15] = (char)snprintf(ips[i], 15, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
    }
    bev_t *evs = malloc(sizeof(*evs) * (size_t)n);
    int64_t start = 1767571200000LL, span = 30LL * 86400000;
    for (int i = 0; i < n; i++) {
        bev_t *e = &evs[i];
        ids[i][11] = (char)snprintf(ids[i], 11, "x%d", i);
        e->ts = start + span * i / n;
        if (rnd() % 50 == 0)
            e->ts -= (int64_t)(rnd() % 3600000);
        e->card = (int32_t)(rnd() % NCARDS);
        e->term = (int32_t)(rnd() % NTERMS);
        e->dev = rnd() % 10 < 6 ? (int32_t)(e->card % NDEVS) : -1;
        e->ip = rnd() % 10 < 5 ? (int32_t)(rnd() % NDEVS) : -1;
        e->amount = (float)(rnd() % 30000) / 100.0f;
        e->lat = 40.0f + (float)(rnd() % 1000) / 100.0f;
        e->lon = (float)(rnd() % 1000) / 100.0f;
        e->ecom = rnd() % 3 == 0;
    }

    const char *input_dir = getenv("VG_BENCH_INPUT");
    if (input_dir) {
        input = vg_xcalloc((size_t)n, sizeof(*input));
        vg_arena_init(&input_arena, (size_t)64 << 20);
        input_schema = &schema;
        if ((n = read_lines(input_dir, "transactions.jsonl", n, decode_txn)) < 0)
            return 1;
        int nl = read_lines(input_dir, "labels.jsonl", INT32_MAX, decode_label);
        if (nl < 0)
            return 1;
        ninput_labels = (size_t)nl;
        printf("default catalogue: %zu features, %zu entity types; %d transactions and %zu "
               "labels of %s\n",
               vg_catalog_size(cat), vg_catalog_entity_types(cat), n, ninput_labels, input_dir);
    } else {
        printf("default catalogue: %zu features, %zu entity types; %d events, %d cards, %d "
               "terminals\n",
               vg_catalog_size(cat), vg_catalog_entity_types(cat), n, NCARDS, NTERMS);
    }
    const char *only = getenv("VG_BENCH_ONLY"); /* baseline, compute or commits: one run */
    result_t rb, rc, rk;
    memset(&rc, 0, sizeof(rc));
    memset(&rk, 0, sizeof(rk));
    if ((!only || !strcmp(only, "baseline")) && run("baseline", base, evs, n, 0, 0, &rb))
        return 1;
    if ((!only || !strcmp(only, "compute")) && run("compute", cat, evs, n, 0, 0, &rc))
        return 1;
    if (only && !strcmp(only, "types")) {
        char *text;
        size_t len;
        if (vg_read_file(path, &text, &len, eb, sizeof(eb)) != VG_OK) {
            fprintf(stderr, "%s\n", eb);
            return 1;
        }
        for (size_t t = 0; t < vg_catalog_entity_types(cat); t++) {
            const char *by = vg_catalog_entity_name(cat, t);
            size_t all = 0, nf;
            for (int labels = 1; labels >= 0; labels--) {
                vg_catalog_t *sub = type_catalog(text, by, labels, &schema, &nf);
                if (!sub)
                    return 1;
                char name[64];
                snprintf(name, sizeof(name), "%s (%zu%s)", by, nf, labels ? "" : ", no labels");
                result_t rt;
                /* the second run only for a type with label-driven features */
                if ((labels || nf < all) && run(name, sub, evs, n, 0, 0, &rt))
                    return 1;
                vg_catalog_free(sub);
                all = nf;
            }
        }
        free(text);
    }
    for (size_t k = 0; (!only || !strcmp(only, "commits")) && k < nmodes; k++) {
        if (modes[k] == MODE_EVERY)
            printf("every commit written to RocksDB, no fsync: vigil run's configuration "
                   "(state.sync = false) at 20000\n");
        else if (modes[k] == MODE_CHECKPOINT)
            printf("commits written by a checkpoint at most every %lld ms, no fsync: vigil "
                   "replay's configuration (every 10 s)\n",
                   (long long)checkpoint_ms);
        else
            printf("every commit written to RocksDB and fsync'd: the library default\n");
        for (size_t b = 0; b < nbatches; b++) {
            char name[32];
            snprintf(name, sizeof(name), "%s@%d", modes[k] == MODE_CHECKPOINT ? "ckpt" : "commits",
                     batches[b]);
            if (run(name, cat, evs, n, batches[b], modes[k], &rk))
                return 1;
        }
    }
    for (size_t t = 0; t < rc.stats.ntypes; t++) {
        const vg_state_type_stats_t *ts = &rc.stats.types[t];
        printf("state %-12s %7llu entities, %7.1f bytes each (encoded)\n", ts->entity,
               (unsigned long long)ts->cached,
               ts->cached ? (double)ts->cached_bytes / ts->cached : 0);
    }
    if (rc.stats.cache_entries)
        printf("cache memory (compute run): %.1f MiB for %llu entities\n",
               rc.stats.cache_bytes / 1048576.0, (unsigned long long)rc.stats.cache_entries);
    if (rk.stats.commits)
        printf(
            "last commits run: %llu commits, %llu writes of %.2f MiB on average, %llu loads, %llu "
            "evictions, cache %.1f MiB\n",
            (unsigned long long)rk.stats.commits, (unsigned long long)rk.stats.checkpoints,
            rk.stats.checkpoints ? rk.stats.committed_bytes / 1048576.0 / rk.stats.checkpoints : 0,
            (unsigned long long)rk.stats.loads, (unsigned long long)rk.stats.evictions,
            rk.stats.cache_bytes / 1048576.0);
    vg_catalog_free(cat);
    vg_catalog_free(base);
    vg_schema_free(&schema);
    free(evs);
    free(cards);
    free(terms);
    free(merchs);
    free(devs);
    free(ips);
    free(ids);
    free(input);
    free(input_labels);
    vg_arena_free(&input_arena);
    return 0;
}
