/*
 * test_align.c - the repartition aligner (engine/align.c) against a brute-force reference:
 * whatever the interleaving of the sources, their re-sends, where the releases happen, and
 * crashes with a restart from the committed bookkeeping, the transactions come out exactly
 * once each, in (ts, txn_id) order, numbered 0, 1, 2, ... Several partitions given the same
 * limit (as a process gives every partition of a stage) release, merged, in that order too.
 */
#include "engine/align.h"
#include "vg_test.h"

#include <stdlib.h>
#include <string.h>

typedef struct rec {
    int wm; /* 1: watermark record */
    int32_t src;
    uint64_t seq;
    int64_t ts;
    char id[16];
} rec_t;

typedef struct out {
    char ids[4096][16];
    uint64_t seqs[4096];
    int64_t ts[4096];
    size_t n;
} out_t;

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void on_release(void *opaque, vg_held_t *h, uint64_t seq)
{
    out_t *o = opaque;
    if (o->n < 4096) {
        snprintf(o->ids[o->n], 16, "%.*s", (int)h->idlen, h->id);
        o->ts[o->n] = h->ts;
        o->seqs[o->n++] = seq;
    }
    vg_held_free(h);
}

/* One record; then, one time in four (a batch's end), a release up to the front. */
static void feed(vg_align_t *a, const rec_t *r, int64_t offset, out_t *o)
{
    if (r->wm)
        vg_align_watermark(a, offset, r->src, r->ts);
    else
        vg_align_data(a, offset, r->src, r->seq, r->ts, r->id, strlen(r->id), r->id, strlen(r->id),
                      on_release, o);
    if (next_rand() % 4 == 0)
        vg_align_release(a, INT64_MAX, on_release, o);
}

static int cmp_rec(const void *x, const void *y)
{
    const rec_t *a = x, *b = y;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return strcmp(a->id, b->id);
}

/* One random partition log: nsrc sources, each in ts order with watermarks (its last ts)
 * now and then and a final one at "infinity"; some sources re-send a tail (a crashed
 * upstream batch); interleaved at random. Returns the count; fills want with the sorted
 * transactions. */
static size_t make_log(int nsrc, rec_t *log, rec_t *want, size_t *nwant)
{
    rec_t src_recs[8][600];
    size_t ns[8] = {0};
    int id = 0;
    *nwant = 0;
    for (int s = 0; s < nsrc; s++) {
        int64_t ts = (int64_t)(next_rand() % 50);
        int n = 20 + (int)(next_rand() % 200);
        for (int i = 0; i < n; i++) {
            ts += (int64_t)(next_rand() % 4); /* ties across and within sources */
            rec_t r = {0, s, (uint64_t)i * 3 + 7, ts, ""};
            snprintf(r.id, sizeof(r.id), "t%06d", id++);
            src_recs[s][ns[s]++] = r;
            want[(*nwant)++] = r;
            if (next_rand() % 8 == 0)
                src_recs[s][ns[s]++] = (rec_t){1, s, 0, ts, ""};
            if (next_rand() % 40 == 0 && i > 5) { /* re-send the last few, as after a crash */
                size_t k = 1 + next_rand() % 5, from = ns[s] > k ? ns[s] - k : 0;
                for (size_t j = from, end = ns[s]; j < end; j++)
                    src_recs[s][ns[s]++] = src_recs[s][j];
            }
        }
        src_recs[s][ns[s]++] = (rec_t){1, s, 0, INT64_MAX, ""};
    }
    size_t pos[8] = {0}, n = 0;
    for (;;) {
        int live = 0;
        for (int s = 0; s < nsrc; s++)
            live += pos[s] < ns[s];
        if (!live)
            break;
        int s = (int)(next_rand() % (uint64_t)nsrc);
        size_t burst = 1 + next_rand() % 6;
        for (size_t b = 0; b < burst && pos[s] < ns[s]; b++)
            log[n++] = src_recs[s][pos[s]++];
    }
    qsort(want, *nwant, sizeof(*want), cmp_rec);
    return n;
}

static void check_out(const out_t *o, const rec_t *want, size_t nwant)
{
    VG_CHECK_INT(o->n, nwant);
    size_t bad = 0, badseq = 0;
    for (size_t i = 0; i < o->n && i < nwant; i++) {
        bad += strcmp(o->ids[i], want[i].id) != 0;
        badseq += o->seqs[i] != i;
    }
    VG_CHECK_INT(bad, 0);
    VG_CHECK_INT(badseq, 0);
}

static void test_order_and_resends(void)
{
    static rec_t log[40000], want[4096];
    for (int round = 0; round < 200; round++) {
        int nsrc = 1 + (int)(next_rand() % 6);
        size_t nwant, n = make_log(nsrc, log, want, &nwant);
        vg_align_t *a = vg_align_new(nsrc);
        out_t *o = calloc(1, sizeof(*o));
        for (size_t i = 0; i < n; i++)
            feed(a, &log[i], (int64_t)i, o);
        vg_align_release(a, INT64_MAX, on_release, o);
        check_out(o, want, nwant);
        VG_CHECK_INT(vg_align_held(a), 0);
        VG_CHECK_INT(vg_align_late(a), 0);
        VG_CHECK_INT(vg_align_low(a), -1);
        free(o);
        vg_align_free(a);
    }
}
static void test_resume(void)
{
    static rec_t log[40000], want[4096];
    for (int round = 0; round < 200; round++) {
        int nsrc = 1 + (int)(next_rand() % 6);
        size_t nwant, n = make_log(nsrc, log, want, &nwant);
        out_t *o = calloc(1, sizeof(*o));
        vg_align_t *a = vg_align_new(nsrc);
        size_t i = 0;
        for (int crash = 0; crash < 2; crash++) {
            size_t commit = i + next_rand() % (n - i + 1);
            for (; i < commit; i++)
                feed(a, &log[i], (int64_t)i, o);
            vg_buf_t bk;
            vg_buf_init(&bk);
            vg_align_encode(a, &bk);
            vg_buf_putc(&bk, '\0');
            int64_t low = vg_align_low(a);
            /* the crashed process went on a little: its releases are lost with it */
            out_t *lost = calloc(1, sizeof(*lost));
            for (size_t j = commit; j < n && j < commit + 50; j++)
                feed(a, &log[j], (int64_t)j, lost);
            free(lost);
            vg_align_free(a);
            a = vg_align_new(nsrc);
            char err[256];
            VG_CHECK_INT(vg_align_resume(a, bk.data, (int64_t)commit, err, sizeof(err)), 0);
            vg_buf_free(&bk);
            i = low >= 0 ? (size_t)low : commit;
        }
        for (; i < n; i++)
            feed(a, &log[i], (int64_t)i, o);
        vg_align_release(a, INT64_MAX, on_release, o);
        check_out(o, want, nwant);
        VG_CHECK_INT(vg_align_held(a), 0);
        free(o);
        vg_align_free(a);
    }
}

/* Two partitions of a stage read the same sources (watermarks to both, each transaction to
 * one) at their own pace; at random points both release up to the smaller of their fronts,
 * as a process does. Each step's releases, merged and sorted, follow on from the previous
 * step's: all in global (ts, txn_id) order. */
typedef struct merged {
    int64_t ts;
    char id[16];
} merged_t;

static int cmp_merged(const void *x, const void *y)
{
    const merged_t *a = x, *b = y;
    return a->ts != b->ts ? (a->ts < b->ts ? -1 : 1) : strcmp(a->id, b->id);
}

static void test_partitions_share_a_limit(void)
{
    static rec_t log[40000], want[4096];
    static merged_t merged[4096];
    for (int round = 0; round < 100; round++) {
        int nsrc = 1 + (int)(next_rand() % 6);
        size_t nwant, n = make_log(nsrc, log, want, &nwant), nm = 0;
        vg_align_t *p[2] = {vg_align_new(nsrc), vg_align_new(nsrc)};
        out_t *step = calloc(1, sizeof(*step));
        size_t pos[2] = {0, 0};
        while (pos[0] < n || pos[1] < n) {
            int q = pos[1] >= n || (pos[0] < n && next_rand() % 2) ? 0 : 1;
            for (size_t b = 1 + next_rand() % 30; b && pos[q] < n; b--, pos[q]++) {
                const rec_t *r = &log[pos[q]];
                if (r->wm)
                    vg_align_watermark(p[q], (int64_t)pos[q], r->src, r->ts);
                else if ((r->id[6] - '0') % 2 == q) /* each transaction to one partition */
                    vg_align_data(p[q], (int64_t)pos[q], r->src, r->seq, r->ts, r->id,
                                  strlen(r->id), r->id, strlen(r->id), on_release, step);
            }
            int64_t f0 = vg_align_limit(p[0]), f1 = vg_align_limit(p[1]);
            step->n = 0;
            vg_align_release(p[0], f0 < f1 ? f0 : f1, on_release, step);
            vg_align_release(p[1], f0 < f1 ? f0 : f1, on_release, step);
            for (size_t i = 0; i < step->n && nm < 4096; i++) {
                merged[nm].ts = step->ts[i];
                memcpy(merged[nm++].id, step->ids[i], 16);
            }
            qsort(merged + nm - step->n, step->n, sizeof(*merged), cmp_merged);
        }
        size_t bad = 0;
        for (size_t i = 0; i < nm && i < nwant; i++)
            bad += strcmp(merged[i].id, want[i].id) != 0;
        VG_CHECK_INT(nm, nwant);
        VG_CHECK_INT(bad, 0);
        VG_CHECK_INT(vg_align_late(p[0]) + vg_align_late(p[1]), 0);
        free(step);
        vg_align_free(p[0]);
        vg_align_free(p[1]);
    }
}

/* A source out of time order: what arrives below the release limit is released at once. */
static void test_late_and_errors(void)
{
    vg_align_t *a = vg_align_new(2);
    out_t *o = calloc(1, sizeof(*o));
    vg_align_data(a, 0, 0, 1, 100, "a", 1, "a", 1, on_release, o);
    vg_align_watermark(a, 1, 0, 150);
    vg_align_release(a, INT64_MAX, on_release, o);
    VG_CHECK_INT(o->n, 0); /* source 1 has said nothing yet */
    VG_CHECK(vg_align_front(a) == INT64_MIN);
    vg_align_watermark(a, 2, 1, 120);
    VG_CHECK_INT(vg_align_front(a), 120);
    vg_align_release(a, 110, on_release, o); /* another partition's front is at 110 */
    VG_CHECK_INT(o->n, 1);
    VG_CHECK_INT(vg_align_released(a), 110);
    vg_align_data(a, 3, 1, 1, 105, "b", 1, "b", 1, on_release, o);
    VG_CHECK_INT(o->n, 2);
    VG_CHECK_STR(o->ids[1], "b");
    VG_CHECK_INT(vg_align_late(a), 1);
    vg_align_data(a, 4, 1, 2, 115, "c", 1, "c", 1, on_release, o);
    VG_CHECK_INT(o->n, 2); /* 115: not below the limit */
    vg_align_release(a, INT64_MAX, on_release, o);
    VG_CHECK_INT(o->n, 3);
    VG_CHECK_INT(vg_align_released(a), 120);
    char err[256];
    vg_align_t *b = vg_align_new(3);
    VG_CHECK_INT(vg_align_resume(b, "120 2 -1 2 150:1 120:1", 4, err, sizeof(err)), -1);
    VG_CHECK_STR(err, "alignment bookkeeping '120 2 -1 2 150:1 120:1': expected LIMIT RELEASED "
                      "UNTIL 3 WM:SEQ...");
    VG_CHECK_INT(vg_align_resume(b, "120 2 -1 3 150:1 120:1", 4, err, sizeof(err)), -1);
    VG_CHECK_STR(err, "alignment bookkeeping: source 2 of 3 is missing or not WM:SEQ");
    vg_align_free(b);
    free(o);
    vg_align_free(a);
}

int main(void)
{
    VG_RUN(test_order_and_resends);
    VG_RUN(test_resume);
    VG_RUN(test_partitions_share_a_limit);
    VG_RUN(test_late_and_errors);
    return vg_test_done();
}
