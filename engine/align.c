/*
 * align.c - event-time alignment of one repartition partition (align.h).
 *
 * The held transactions form a binary min-heap ordered by (ts, txn_id, src, seq): a total
 * order, so releases do not depend on arrival order. Invariants: every held ts is >= rel, the
 * release limit so far (everything below it was released); rel <= front, the smallest
 * watermark of all sources once each has sent one; seen[s] is the greatest sequence number
 * accepted from source s (a record at or below it is a re-send).
 *
 * After vg_align_resume(), records below `replay_until` are ones the committed bookkeeping
 * already accounts for: a transaction among them was released if its ts is below rel (all of
 * those were: late ones at once, the others by releases up to rel), and held otherwise;
 * watermarks among them are already in wm[]. Re-sends among them are dropped by a sequence
 * check of their own (rseen), which starts afresh at the restart point. Nothing is released
 * until they are all read again (a release would move rel past records not yet re-held).
 */
#include "engine/align.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vg_align {
    int nsrc;
    int64_t *wm;    /* per source, INT64_MIN: none yet */
    int64_t *seen;  /* per source, -1: none */
    int64_t *rseen; /* per source, while replaying */
    int64_t front;  /* min(wm): INT64_MIN until every source has sent a watermark */
    int64_t rel;    /* everything below it was released (INT64_MIN: nothing yet) */
    uint64_t seq;   /* releases so far */
    uint64_t late;  /* transactions that arrived below rel */
    int64_t replay_until;
    int64_t read; /* 1 + the greatest offset fed */
    vg_held_t **heap;
    size_t n, cap;
};

static int before(const vg_held_t *a, const vg_held_t *b)
{
    if (a->ts != b->ts)
        return a->ts < b->ts;
    size_t n = a->idlen < b->idlen ? a->idlen : b->idlen;
    int c = memcmp(a->id, b->id, n);
    if (c || a->idlen != b->idlen)
        return c ? c < 0 : a->idlen < b->idlen;
    if (a->src != b->src)
        return a->src < b->src;
    return a->seq < b->seq;
}

static void heap_push(vg_align_t *a, vg_held_t *h)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 256;
        a->heap = vg_xrealloc(a->heap, a->cap * sizeof(*a->heap));
    }
    size_t i = a->n++;
    while (i > 0 && before(h, a->heap[(i - 1) / 2])) {
        a->heap[i] = a->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    a->heap[i] = h;
}

static vg_held_t *heap_pop(vg_align_t *a)
{
    vg_held_t *top = a->heap[0], *last = a->heap[--a->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= a->n)
            break;
        if (c + 1 < a->n && before(a->heap[c + 1], a->heap[c]))
            c++;
        if (!before(a->heap[c], last))
            break;
        a->heap[i] = a->heap[c];
        i = c;
    }
    if (a->n)
        a->heap[i] = last;
    return top;
}

vg_align_t *vg_align_new(int nsrc)
{
    vg_align_t *a = vg_xcalloc(1, sizeof(*a));
    a->nsrc = nsrc;
    a->wm = vg_xmalloc((size_t)nsrc * sizeof(int64_t));
    a->seen = vg_xmalloc((size_t)nsrc * sizeof(int64_t));
    a->rseen = vg_xmalloc((size_t)nsrc * sizeof(int64_t));
    for (int s = 0; s < nsrc; s++) {
        a->wm[s] = INT64_MIN;
        a->seen[s] = a->rseen[s] = -1;
    }
    a->front = a->rel = INT64_MIN;
    a->replay_until = -1;
    return a;
}

void vg_held_free(vg_held_t *h)
{
    if (h) {
        free(h->data);
        free(h);
    }
}

void vg_align_free(vg_align_t *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        vg_held_free(a->heap[i]);
    free(a->heap);
    free(a->wm);
    free(a->seen);
    free(a->rseen);
    free(a);
}

static vg_held_t *held_new(int64_t offset, int32_t src, uint64_t seq, int64_t ts, const char *id,
                           size_t idlen, const void *data, size_t len)
{
    vg_held_t *h = vg_xmalloc(sizeof(*h));
    h->ts = ts;
    h->src = src;
    h->seq = seq;
    h->offset = offset;
    h->data = vg_xmalloc(len + 1);
    memcpy(h->data, data, len);
    h->len = len;
    /* id points into the record when it is there (it is, for vigil's records); else a copy
     * after it would be needed: keep one allocation by copying it to the end. */
    if (id >= (const char *)data && id + idlen <= (const char *)data + len) {
        h->id = h->data + (id - (const char *)data);
    } else {
        h->data = vg_xrealloc(h->data, len + idlen + 1);
        memcpy(h->data + len, id, idlen);
        h->id = h->data + len;
    }
    h->idlen = idlen;
    return h;
}

void vg_align_data(vg_align_t *a, int64_t offset, int32_t src, uint64_t seq, int64_t ts,
                   const char *id, size_t idlen, const void *data, size_t len, vg_release_cb *cb,
                   void *opaque)
{
    if (offset + 1 > a->read)
        a->read = offset + 1;
    if (src < 0 || src >= a->nsrc)
        return;
    if (offset < a->replay_until) {
        if ((int64_t)seq <= a->rseen[src])
            return; /* a re-send, already read in this replay */
        a->rseen[src] = (int64_t)seq;
        if (ts >= a->rel) /* held at the commit: hold it again */
            heap_push(a, held_new(offset, src, seq, ts, id, idlen, data, len));
        return;
    }
    if ((int64_t)seq <= a->seen[src])
        return; /* a re-send: its first copy was taken */
    a->seen[src] = (int64_t)seq;
    vg_held_t *h = held_new(offset, src, seq, ts, id, idlen, data, len);
    if (a->rel != INT64_MIN && ts < a->rel) {
        a->late++;
        cb(opaque, h, a->seq++);
        return;
    }
    heap_push(a, h);
}

void vg_align_watermark(vg_align_t *a, int64_t offset, int32_t src, int64_t wm)
{
    if (offset + 1 > a->read)
        a->read = offset + 1;
    if (src < 0 || src >= a->nsrc || offset < a->replay_until || wm <= a->wm[src])
        return;
    a->wm[src] = wm;
    int64_t front = INT64_MAX;
    for (int s = 0; s < a->nsrc; s++)
        if (a->wm[s] < front)
            front = a->wm[s];
    a->front = front;
}

int64_t vg_align_limit(const vg_align_t *a)
{
    return a->read < a->replay_until ? a->rel : a->front;
}

void vg_align_release(vg_align_t *a, int64_t limit, vg_release_cb *cb, void *opaque)
{
    if (limit > vg_align_limit(a))
        limit = vg_align_limit(a);
    if (limit == INT64_MIN || limit <= a->rel)
        return;
    a->rel = limit;
    while (a->n && a->heap[0]->ts < limit)
        cb(opaque, heap_pop(a), a->seq++);
}

int64_t vg_align_low(const vg_align_t *a)
{
    int64_t low = -1;
    for (size_t i = 0; i < a->n; i++)
        if (low < 0 || a->heap[i]->offset < low)
            low = a->heap[i]->offset;
    return low;
}

int vg_align_replaying(const vg_align_t *a, int64_t offset)
{
    return offset < a->replay_until;
}

int64_t vg_align_front(const vg_align_t *a)
{
    return a->front;
}

int64_t vg_align_released(const vg_align_t *a)
{
    return a->rel;
}

size_t vg_align_held(const vg_align_t *a)
{
    return a->n;
}

uint64_t vg_align_late(const vg_align_t *a)
{
    return a->late;
}

void vg_align_encode(const vg_align_t *a, vg_buf_t *out)
{
    vg_buf_printf(out, "%lld %llu %lld %d", (long long)a->rel, (unsigned long long)a->seq,
                  (long long)a->replay_until, a->nsrc);
    for (int s = 0; s < a->nsrc; s++)
        vg_buf_printf(out, " %lld:%lld", (long long)a->wm[s], (long long)a->seen[s]);
}

int vg_align_resume(vg_align_t *a, const char *text, int64_t next, char *errbuf, size_t errlen)
{
    long long rel, until, wm, seen;
    unsigned long long seq;
    int nsrc, used;
    if (sscanf(text, "%lld %llu %lld %d%n", &rel, &seq, &until, &nsrc, &used) != 4 ||
        nsrc != a->nsrc) {
        vg_errf(errbuf, errlen, VG_ERR_STATE,
                "alignment bookkeeping '%.60s': expected LIMIT RELEASED UNTIL %d WM:SEQ...", text,
                a->nsrc);
        return -1;
    }
    const char *s = text + used;
    for (int i = 0; i < nsrc; i++) {
        if (sscanf(s, " %lld:%lld%n", &wm, &seen, &used) != 2) {
            vg_errf(errbuf, errlen, VG_ERR_STATE,
                    "alignment bookkeeping: source %d of %d is missing or not WM:SEQ", i, nsrc);
            return -1;
        }
        a->wm[i] = wm;
        a->seen[i] = seen;
        a->rseen[i] = -1;
        s += used;
    }
    a->front = INT64_MAX;
    for (int i = 0; i < nsrc; i++)
        if (a->wm[i] < a->front)
            a->front = a->wm[i];
    a->rel = rel;
    a->seq = seq;
    /* a commit made while still re-reading: what it had not re-read yet was read before */
    a->replay_until = until > next ? until : next;
    return 0;
}
