/*
 * window.c - sliding windows as sparse rings of time buckets, operated on in an entity's
 * encoded state (layout in internal.h). The encoding is also what RocksDB stores, so loading
 * an entity is one copy and committing it is one put.
 *
 * Invariants of every ring: records are sorted by bucket index, strictly DESCENDING (the
 * newest first: a query merges newest to oldest, and a new transaction's bucket is the newest
 * or close to it, so both start at the front); only non-empty buckets are stored; no record
 * is older than (newest index - span + 1), so a ring never holds more than span records
 * whatever the entity's traffic. A transaction whose bucket is already older than that is
 * dropped (it is too late to count in any window the ring serves). A set-ring bucket holds
 * at most VG_SET_MAX distinct values. Each record stores its index as the gap to the previous
 * (newer) record's, the first as the gap to the ring header's newest (always 0); a stats
 * bucket holding one transaction stores its amount once (its sum, min and max; its squared
 * deviations are 0), which is exactly what adding that one transaction to an empty bucket
 * gives.
 *
 * Adding rewrites a ring into a destination (the caller's scratch): the records before the
 * change are copied, the changed ones re-encoded, the rest copied, evicted ones left out.
 */
#include "features/internal.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static inline int64_t rdi64(const uint8_t *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void wri64(uint8_t *p, int64_t v)
{
    memcpy(p, &v, 8);
}

static inline double rdf(const uint8_t *p)
{
    double v;
    memcpy(&v, p, 8);
    return v;
}

static inline void wrf(uint8_t *p, double v)
{
    memcpy(p, &v, 8);
}

/* LEB128, at most 5 bytes for a u32. */
static inline uint32_t get_vu(const uint8_t **pp)
{
    const uint8_t *p = *pp;
    uint32_t v = *p & 127;
    if (*p++ & 128) {
        int s = 7;
        uint8_t b;
        do {
            b = *p++;
            v |= (uint32_t)(b & 127) << s;
            s += 7;
        } while (b & 128);
    }
    *pp = p;
    return v;
}

/* The same, bounded: 0 if it runs past end or is longer than 5 bytes. */
static int get_vu_safe(const uint8_t **pp, const uint8_t *end, uint32_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (int i = 0; i < 5; i++) {
        if (p >= end)
            return 0;
        uint8_t b = *p++;
        v |= (uint64_t)(b & 127) << (7 * i);
        if (!(b & 128)) {
            if (v > UINT32_MAX)
                return 0;
            *out = (uint32_t)v;
            *pp = p;
            return 1;
        }
    }
    return 0;
}

static inline uint8_t *put_vu(uint8_t *p, uint32_t v)
{
    while (v >= 128) {
        *p++ = (uint8_t)(v | 128);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint32_t vu_len(uint32_t v)
{
    uint32_t n = 1;
    while (v >= 128) {
        v >>= 7;
        n++;
    }
    return n;
}

void vg_blob_reserve(vg_blob_t *blob, uint32_t n)
{
    if (n <= blob->cap)
        return;
    assert(!blob->fixed); /* the owner makes room before adding (state.c: entity_room) */
    uint32_t cap = blob->cap ? blob->cap : 128;
    while (cap < n)
        cap *= 2;
    blob->data = vg_xrealloc(blob->data, cap);
    blob->cap = cap;
}

/* Replaces oldlen bytes at off with newlen uninitialised bytes. */
static void splice(vg_blob_t *blob, uint32_t off, uint32_t oldlen, uint32_t newlen)
{
    if (newlen > oldlen)
        vg_blob_reserve(blob, blob->len + (newlen - oldlen));
    memmove(blob->data + off + newlen, blob->data + off + oldlen, blob->len - off - oldlen);
    blob->len = blob->len - oldlen + newlen;
}

void vg_blob_init_entity(vg_blob_t *blob, const vg_catalog_t *catalog, int type)
{
    const vg_etype_t *et = &catalog->types[type];
    uint32_t len = VG_ENTITY_HDR + VG_RING_HDR * (uint32_t)et->nrings; /* empty rings: 0s */
    vg_blob_reserve(blob, len);
    uint8_t *d = blob->data;
    memset(d, 0, len);
    wr32(d, VG_ENTITY_VERSION);
    wr32(d + 4, (uint32_t)et->nrings);
    wri64(d + 8, INT64_MIN);
    wri64(d + 16, INT64_MIN);
    wrf(d + 24, NAN);
    wrf(d + 32, NAN);
    blob->len = len;
}

/* Bytes of the statistics of a stats record of count transactions in a ring keeping statistics
 * m: one amount for a single transaction, else each kept statistic. */
static inline __attribute__((always_inline)) uint32_t stats_payload(const unsigned m,
                                                                    uint32_t count)
{
    return count == 1 ? (m ? 8 : 0) : 8 * vg_popcount4(m);
}

/* The end of a stats record whose count field is at p, for a ring keeping statistics m and
 * (labels) fraud counts (constants where the query walkers inline it). */
static inline __attribute__((always_inline)) const uint8_t *
skip_as(const uint8_t *p, const unsigned m, const int labels)
{
    uint32_t count = get_vu(&p);
    if (labels)
        (void)get_vu(&p);
    return p + stats_payload(m, count);
}

static inline const uint8_t *stats_skip(const vg_ring_def_t *rd, const uint8_t *p)
{
    return skip_as(p, rd->stats, rd->labels);
}

/* The end of the set record whose count field is at p (after its gap). */
static inline const uint8_t *set_skip(const uint8_t *p)
{
    uint32_t n = get_vu(&p);
    return p + 8 * (size_t)n;
}

static inline const uint8_t *rec_skip(const vg_ring_def_t *rd, const uint8_t *p)
{
    return rd->set_field < 0 ? stats_skip(rd, p) : set_skip(p);
}

int vg_blob_check(const uint8_t *d, size_t len, const vg_catalog_t *catalog, int type)
{
    const vg_etype_t *et = &catalog->types[type];
    if (len < 8 || rd32(d) != VG_ENTITY_VERSION)
        return len >= 4 && rd32(d) != VG_ENTITY_VERSION ? -2 : -1;
    if (len < VG_ENTITY_HDR || rd32(d + 4) != (uint32_t)et->nrings)
        return -1;
    size_t o = VG_ENTITY_HDR;
    for (int i = 0; i < et->nrings; i++) {
        const vg_ring_def_t *rd = &catalog->rings[et->first_ring + i];
        if (o + VG_RING_HDR > len)
            return -1;
        uint32_t nbytes = rd32(d + o), hback = rd32(d + o + 4);
        o += VG_RING_HDR;
        if (nbytes > len - o)
            return -1;
        /* gaps: the first 0, then >= 1; all records within the span of the newest */
        const uint8_t *r = d + o, *end = d + o + nbytes;
        uint64_t back = 0;
        for (int first = 1; r < end; first = 0) {
            uint32_t gap, n, fraud = 0;
            if (!get_vu_safe(&r, end, &gap) || (first ? gap != 0 : gap == 0))
                return -1;
            back += gap;
            if (back >= (uint64_t)rd->span || !get_vu_safe(&r, end, &n) || n == 0)
                return -1;
            size_t body;
            if (rd->set_field >= 0) {
                if (n > VG_SET_MAX)
                    return -1;
                body = 8 * (size_t)n;
            } else {
                if (rd->labels && (!get_vu_safe(&r, end, &fraud) || fraud > n))
                    return -1;
                body = stats_payload(rd->stats, n);
            }
            if ((size_t)(end - r) < body)
                return -1;
            r += body;
        }
        if (back != hback) /* the header's span of the records: newest - the oldest's index */
            return -1;
        o += nbytes;
    }
    return o == len ? 0 : -1;
}

int64_t vg_blob_last_ts(const vg_blob_t *blob)
{
    return rdi64(blob->data + 8);
}

void vg_blob_touch(vg_blob_t *blob, int64_t ts, double lat, double lon)
{
    uint8_t *d = blob->data;
    if (ts > rdi64(d + 8))
        wri64(d + 8, ts);
    if (!isnan(lat) && !isnan(lon) && ts >= rdi64(d + 16)) {
        wri64(d + 16, ts);
        wrf(d + 24, lat);
        wrf(d + 32, lon);
    }
}

void vg_blob_last_geo(const vg_blob_t *blob, int64_t *ts, double *lat, double *lon)
{
    *ts = rdi64(blob->data + 16);
    *lat = rdf(blob->data + 24);
    *lon = rdf(blob->data + 32);
}

void vg_blob_ring_offsets(const vg_blob_t *blob, const vg_catalog_t *catalog, int type,
                          uint32_t *off)
{
    uint32_t o = VG_ENTITY_HDR;
    for (int i = 0; i < catalog->types[type].nrings; i++) {
        off[i] = o;
        o += VG_RING_HDR + rd32(blob->data + o);
    }
}

/* Offset of a ring's header in the blob. */
static uint32_t ring_off(const vg_blob_t *blob, const vg_ring_def_t *rd)
{
    uint32_t o = VG_ENTITY_HDR;
    for (int i = 0; i < rd->local; i++)
        o += VG_RING_HDR + rd32(blob->data + o);
    return o;
}

/* ---- stats rings ---- */

/* A stats bucket decoded. */
typedef struct srec {
    uint32_t count, fraud;
    double sum, m2, min, max;
} srec_t;

/* Decodes the stats record whose count field is at p; returns its end. */
static inline const uint8_t *srec_get(const vg_ring_def_t *rd, const uint8_t *p, srec_t *r)
{
    unsigned m = rd->stats;
    r->count = get_vu(&p);
    r->fraud = rd->labels ? get_vu(&p) : 0;
    r->sum = r->m2 = 0;
    r->min = INFINITY;
    r->max = -INFINITY;
    if (r->count == 1) {
        if (m) {
            /* what adding one amount to an empty bucket leaves (a NaN amount leaves min and
             * max as they were: comparisons with NaN fail) */
            double x = rdf(p);
            p += 8;
            r->sum = (m & VG_STAT_SUM) ? x : 0;
            if (!isnan(x)) {
                r->min = x;
                r->max = x;
            }
        }
        return p;
    }
    if (m & VG_STAT_SUM) {
        r->sum = rdf(p);
        p += 8;
    }
    if (m & VG_STAT_M2) {
        r->m2 = rdf(p);
        p += 8;
    }
    if (m & VG_STAT_MIN) {
        r->min = rdf(p);
        p += 8;
    }
    if (m & VG_STAT_MAX) {
        r->max = rdf(p);
        p += 8;
    }
    return p;
}

/* Encodes a stats record after its gap; returns its end. A single-transaction bucket keeps
 * its amount x (the bucket's sum, min and max). */
static inline uint8_t *srec_put(const vg_ring_def_t *rd, uint8_t *p, const srec_t *r, double x)
{
    unsigned m = rd->stats;
    p = put_vu(p, r->count);
    if (rd->labels)
        p = put_vu(p, r->fraud);
    if (r->count == 1) {
        if (m) {
            wrf(p, x);
            p += 8;
        }
        return p;
    }
    if (m & VG_STAT_SUM) {
        wrf(p, r->sum);
        p += 8;
    }
    if (m & VG_STAT_M2) {
        wrf(p, r->m2);
        p += 8;
    }
    if (m & VG_STAT_MIN) {
        wrf(p, r->min);
        p += 8;
    }
    if (m & VG_STAT_MAX) {
        wrf(p, r->max);
        p += 8;
    }
    return p;
}

/* Adds amount to a decoded bucket: Welford's update, as for any bucket. */
static inline void srec_add(const vg_ring_def_t *rd, srec_t *r, double amount)
{
    uint32_t n = r->count;
    if (rd->stats & VG_STAT_SUM) {
        double sum = r->sum;
        r->sum = sum + amount;
        if (rd->stats & VG_STAT_M2) {
            double mean_old = n ? sum / n : 0, mean_new = (sum + amount) / (n + 1);
            r->m2 = r->m2 + (amount - mean_old) * (amount - mean_new);
        }
    }
    if (amount < r->min)
        r->min = amount;
    if (amount > r->max)
        r->max = amount;
    r->count = n + 1;
}

/* Writes a ring header at d. */
static inline void ring_put_header(uint8_t *d, uint32_t nbytes, uint32_t back, int64_t newest)
{
    wr32(d, nbytes);
    wr32(d + 4, back);
    wri64(d + 8, newest);
}

/* What one add puts in a ring: an amount (stats ring) or a value hash (set ring). */
typedef struct addv {
    double amount;
    uint64_t hash;
} addv_t;

/* Writes a new record for one transaction with gap gap at d; returns its end. */
static inline uint8_t *new_rec(const vg_ring_def_t *rd, uint8_t *d, uint32_t gap, const addv_t *v)
{
    d = put_vu(d, gap);
    if (rd->set_field >= 0) {
        *d++ = 1;
        wri64(d, (int64_t)v->hash);
        return d + 8;
    }
    *d++ = 1; /* count */
    if (rd->labels)
        *d++ = 0; /* fraud */
    if (rd->stats) {
        wrf(d, v->amount);
        d += 8;
    }
    return d;
}

/* Writes the record whose count field is at r (gap gap) with v added, at d; returns its end,
 * or NULL if the record stays as it is (a set bucket that has the value or is full). */
static inline uint8_t *upd_rec(const vg_ring_def_t *rd, uint8_t *d, uint32_t gap, const uint8_t *r,
                               const addv_t *v)
{
    if (rd->set_field >= 0) {
        const uint8_t *p = r;
        uint32_t n = get_vu(&p);
        for (uint32_t j = 0; j < n; j++)
            if ((uint64_t)rdi64(p + 8 * j) == v->hash)
                return NULL;
        if (n >= VG_SET_MAX)
            return NULL;
        d = put_vu(d, gap);
        d = put_vu(d, n + 1);
        memcpy(d, p, 8 * (size_t)n);
        d += 8 * (size_t)n;
        wri64(d, (int64_t)v->hash);
        return d + 8;
    }
    srec_t s;
    srec_get(rd, r, &s);
    double x = s.sum; /* a single-transaction bucket's amount, if the result has one */
    srec_add(rd, &s, v->amount);
    return srec_put(rd, put_vu(d, gap), &s, x);
}

static inline const uint8_t *skip_rec(const vg_ring_def_t *rd, const uint8_t *r)
{
    return rec_skip(rd, r);
}

/* Writes the ring at offset o of blob into dst with v added in bucket k: the records before
 * k's position copied, k's record new or updated, the rest copied up to the first evicted one.
 * Returns the end of what it wrote. */
static inline uint8_t *ring_add(const vg_blob_t *blob, const vg_ring_def_t *rd, uint32_t o,
                                int64_t k, const addv_t *v, uint8_t *dst)
{
    const uint8_t *src = blob->data + o;
    uint32_t nbytes = rd32(src), back = rd32(src + 4);
    int64_t newest = rdi64(src + 8);
    const uint8_t *rec = src + VG_RING_HDR, *end = rec + nbytes;
    uint8_t *d = dst + VG_RING_HDR;
    if (nbytes == 0) {
        d = new_rec(rd, d, 0, v);
        ring_put_header(dst, (uint32_t)(d - dst - VG_RING_HDR), 0, k);
        return d;
    }
    if (k > newest) {
        int64_t oldest = k - rd->span + 1;
        uint32_t nback = 0;
        d = new_rec(rd, d, 0, v);
        if (newest >= oldest) {
            /* the records that stay: the first one's gap is now from k, the rest are copied
             * (all of them unless the oldest is evicted: only then are they walked) */
            const uint8_t *body = rec;
            (void)get_vu(&body); /* its gap, 0 */
            const uint8_t *q = end;
            int64_t idx = newest - back; /* the oldest kept */
            if (idx < oldest) {
                q = skip_rec(rd, body);
                idx = newest;
                while (q < end) {
                    const uint8_t *r = q;
                    uint32_t gap = get_vu(&r);
                    if (idx - gap < oldest)
                        break;
                    idx -= gap;
                    q = skip_rec(rd, r);
                }
            }
            d = put_vu(d, (uint32_t)(k - newest));
            memcpy(d, body, (size_t)(q - body));
            d += q - body;
            nback = (uint32_t)(k - idx);
        }
        ring_put_header(dst, (uint32_t)(d - dst - VG_RING_HDR), nback, k);
        return d;
    }
    if (k >= newest - rd->span + 1) {
        const uint8_t *p = rec;
        int64_t idx = newest; /* the index of the record before p (newest: none yet) */
        while (p < end) {
            const uint8_t *r = p;
            uint32_t gap = get_vu(&r);
            int64_t at = idx - gap;
            if (at > k) {
                idx = at;
                p = skip_rec(rd, r);
                continue;
            }
            uint8_t *w = d + (p - rec);
            const uint8_t *next;
            if (at == k) {
                next = skip_rec(rd, r);
                w = upd_rec(rd, w, gap, r, v);
                if (!w)
                    break; /* unchanged */
            } else {       /* k lies between idx and at: split the gap */
                w = new_rec(rd, w, (uint32_t)(idx - k), v);
                w = put_vu(w, (uint32_t)(k - at));
                next = r;
            }
            memcpy(d, rec, (size_t)(p - rec));
            memcpy(w, next, (size_t)(end - next));
            w += end - next;
            ring_put_header(dst, (uint32_t)(w - dst - VG_RING_HDR), back, newest);
            return w;
        }
        if (p >= end) { /* older than every record */
            memcpy(d, rec, nbytes);
            d = new_rec(rd, d + nbytes, (uint32_t)(idx - k), v);
            ring_put_header(dst, (uint32_t)(d - dst - VG_RING_HDR), (uint32_t)(newest - k), newest);
            return d;
        }
    }
    /* dropped (too old for the ring) or unchanged */
    memcpy(dst, src, VG_RING_HDR + nbytes);
    return dst + VG_RING_HDR + nbytes;
}

uint8_t *vg_entity_add(const vg_blob_t *blob, const vg_catalog_t *catalog, int type,
                       const vg_ring_add_t *add, double amount, uint8_t *dst)
{
    const vg_etype_t *et = &catalog->types[type];
    uint32_t o = VG_ENTITY_HDR;
    for (int i = 0; i < et->nrings; i++) {
        uint32_t next = o + VG_RING_HDR + rd32(blob->data + o);
        if (add[i].skip) {
            memcpy(dst, blob->data + o, next - o);
            dst += next - o;
        } else {
            addv_t v = {amount, add[i].hash};
            dst = ring_add(blob, &catalog->rings[et->first_ring + i], o, add[i].k, &v, dst);
        }
        o = next;
    }
    return dst;
}

/* One group's walk (see vg_ring_query_stats) from the record at p, whose predecessor has
 * index idx (the ring's newest for the first record). */
static inline __attribute__((always_inline)) void
query_from(const uint8_t *p, const uint8_t *end, int64_t idx, int64_t hi, const int64_t *nwin,
           size_t nw, vg_acc_t *acc, const unsigned m, const int labels)
{
    /* where each statistic is in a record of several transactions; a single transaction's
     * record has only its amount, at 0 (selected without branching on the count, which
     * changes from record to record unpredictably) */
    const uint32_t om2 = 8 * (m & VG_STAT_SUM ? 1 : 0), omin = om2 + 8 * (m & VG_STAT_M2 ? 1 : 0);
    const uint32_t omax = omin + 8 * (m & VG_STAT_MIN ? 1 : 0), full = 8 * vg_popcount4(m);
    const uint32_t one = m ? 8 : 0;
    vg_acc_t a = {0, 0, 0, 0, INFINITY, -INFINITY};
    size_t j = 0;
    int64_t lo = hi - nwin[0] + 1;
    /* Newest to oldest, as one window at a time would: each shorter window's sums are the
     * longer walk's partial sums, bit for bit. */
    while (p < end) {
        idx -= get_vu(&p);
        if (idx > hi) {
            p = skip_as(p, m, labels);
            continue;
        }
        while (idx < lo) {
            acc[j++] = a;
            if (j == nw)
                return;
            lo = hi - nwin[j] + 1;
        }
        uint32_t count = get_vu(&p);
        if (labels)
            a.fraud += get_vu(&p);
        int single = count == 1;
        uint32_t k = single ? 0 : 1;
        double n = count;
        /* a NaN amount is ignored by min and max (the comparisons fail), as when added */
        if (m & VG_STAT_M2) {
            double m2 = rdf(p + om2 * k);
            vg_acc_merge(&a, n, rdf(p), single ? 0.0 : m2);
        } else {
            a.count += n;
            if (m & VG_STAT_SUM)
                a.sum += rdf(p);
        }
        if (m & VG_STAT_MIN) {
            double v = rdf(p + omin * k);
            a.min = v < a.min ? v : a.min;
        }
        if (m & VG_STAT_MAX) {
            double v = rdf(p + omax * k);
            a.max = v > a.max ? v : a.max;
        }
        p += single ? one : full;
    }
    while (j < nw)
        acc[j++] = a;
}

/* vg_ring_query_stats for a ring keeping statistics m and (labels) fraud counts. */
static inline __attribute__((always_inline)) void query_as(const uint8_t *p, const uint8_t *end,
                                                           int64_t idx, const vg_qwin_t *q,
                                                           size_t nq, const unsigned m,
                                                           const int labels)
{
    /* Groups by hi, latest first (q is sorted so: state.c), each walk starting where the
     * skipping over records after its hi got to: the records newer than every window are
     * stepped over once, not once per group. */
    for (size_t g = 0; g < nq; g++) {
        while (p < end) {
            const uint8_t *r = p;
            int64_t at = idx - get_vu(&r);
            if (at <= q[g].hi)
                break;
            idx = at;
            p = skip_as(r, m, labels);
        }
        query_from(p, end, idx, q[g].hi, q[g].nwin, q[g].nw, q[g].acc, m, labels);
    }
}

void vg_ring_query_stats(const vg_blob_t *blob, const vg_ring_def_t *rd, uint32_t o,
                         const vg_qwin_t *q, size_t nq)
{
    const uint8_t *p = blob->data + o + VG_RING_HDR, *end = p + rd32(blob->data + o);
    int64_t idx = rdi64(blob->data + o + 8);
    /* The common case of an entity quiet for longer than the ring's windows (a card's
     * minutes-long rings): no record reaches any window, every sum is empty. */
    int stale = 1;
    for (size_t g = 0; g < nq && stale; g++)
        stale = p == end || idx < q[g].hi - q[g].nwin[q[g].nw - 1] + 1;
    if (stale) {
        for (size_t g = 0; g < nq; g++)
            for (size_t j = 0; j < q[g].nw; j++)
                q[g].acc[j] = (vg_acc_t){0, 0, 0, 0, INFINITY, -INFINITY};
        return;
    }
    /* one walker per layout (statistics kept, fraud counts or not), each compiled for it:
     * record offsets and the merge become constants instead of tests per record */
    /* clang-format off */
    switch (rd->stats | (rd->labels ? 16u : 0u)) {
#define QUERY_AS(L) case L: query_as(p, end, idx, q, nq, (L) & 15u, (L) >> 4); return;
#define QUERY_AS4(L) QUERY_AS(L) QUERY_AS(L + 1) QUERY_AS(L + 2) QUERY_AS(L + 3)
    QUERY_AS4(0) QUERY_AS4(4) QUERY_AS4(8) QUERY_AS4(12)
    QUERY_AS4(16) QUERY_AS4(20) QUERY_AS4(24) QUERY_AS4(28)
#undef QUERY_AS4
#undef QUERY_AS
    default:
        return;
    }
    /* clang-format on */
}

int vg_ring_add_fraud(vg_blob_t *blob, const vg_catalog_t *catalog, int ring, int64_t ts, int delta)
{
    const vg_ring_def_t *rd = &catalog->rings[ring];
    if (!rd->labels || rd->set_field >= 0)
        return 0;
    uint32_t o = ring_off(blob, rd);
    uint32_t nbytes = rd32(blob->data + o);
    int64_t idx = rdi64(blob->data + o + 8);
    int64_t k = vg_bucket_of(ts, rd->bucket);
    const uint8_t *start = blob->data + o + VG_RING_HDR, *p = start, *end = start + nbytes;
    while (p < end) {
        idx -= get_vu(&p);
        if (idx < k)
            break;
        if (idx > k) {
            p = stats_skip(rd, p);
            continue;
        }
        const uint8_t *f = p;
        uint32_t count = get_vu(&f);
        const uint8_t *fend = f;
        uint32_t fraud = get_vu(&fend);
        int64_t nf = (int64_t)fraud + delta;
        if (nf < 0 || nf > (int64_t)count)
            return 0;
        uint32_t at = (uint32_t)(f - blob->data), oldlen = (uint32_t)(fend - f);
        uint32_t newlen = vu_len((uint32_t)nf);
        if (newlen != oldlen) { /* the owner made room (state.c) */
            splice(blob, at, oldlen, newlen);
            wr32(blob->data + o, nbytes - oldlen + newlen);
        }
        put_vu(blob->data + at, (uint32_t)nf);
        return 1;
    }
    return 0;
}

/* ---- set rings ---- */

int vg_ring_set_contains(const vg_blob_t *blob, uint32_t o, int64_t lo, int64_t hi, uint64_t h)
{
    const uint8_t *p = blob->data + o + VG_RING_HDR, *end = p + rd32(blob->data + o);
    int64_t idx = rdi64(blob->data + o + 8);
    while (p < end) {
        idx -= get_vu(&p);
        if (idx < lo)
            break;
        uint32_t nv = get_vu(&p);
        if (idx <= hi)
            for (uint32_t j = 0; j < nv; j++)
                if ((uint64_t)rdi64(p + 8 * j) == h)
                    return 1;
        p += 8 * (size_t)nv;
    }
    return 0;
}

size_t vg_ring_query_set(const vg_blob_t *blob, uint32_t o, int64_t lo, int64_t hi, uint64_t *out,
                         size_t cap)
{
    const uint8_t *p = blob->data + o + VG_RING_HDR, *end = p + rd32(blob->data + o);
    int64_t idx = rdi64(blob->data + o + 8);
    size_t n = 0;
    while (p < end) {
        idx -= get_vu(&p);
        if (idx < lo)
            break;
        uint32_t nv = get_vu(&p);
        if (idx <= hi) {
            for (uint32_t j = 0; j < nv; j++) {
                uint64_t h = (uint64_t)rdi64(p + 8 * j);
                size_t q = 0;
                while (q < n && out[q] != h)
                    q++;
                if (q == n && n < cap)
                    out[n++] = h;
            }
        }
        p += 8 * (size_t)nv;
    }
    return n;
}
