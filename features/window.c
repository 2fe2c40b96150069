/*
 * window.c - sliding windows as sparse rings of time buckets, operated on in place in an
 * entity's encoded state (layout in internal.h). The encoding is also what RocksDB stores,
 * so loading an entity is one copy and committing it is one put.
 *
 * Invariants of every ring: records are sorted by bucket index, strictly ascending; only
 * non-empty buckets are stored; no record is older than (newest index - span + 1), so a
 * ring never holds more than span records whatever the entity's traffic. A transaction
 * whose bucket is already older than that is dropped (it is too late to count in any
 * window the ring serves). A set-ring bucket holds at most VG_SET_MAX distinct values. The
 * ring header holds the newest record's full index; records keep the low 32 bits of theirs,
 * which that span bound (<= 10^8 buckets) makes unambiguous.
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
    uint32_t len = VG_ENTITY_HDR + VG_RING_HDR * (uint32_t)et->nrings;
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

/* The full bucket index of a record stored as its low 32 bits, given the ring's newest index:
 * every record lies within the ring's span (<= 10^8 buckets, catalog.c) of the newest. */
static inline int64_t full_idx(int64_t newest, uint32_t low)
{
    return newest - (int64_t)(uint32_t)((uint32_t)newest - low);
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
        uint32_t nb = rd32(d + o), nbytes = rd32(d + o + 4);
        int64_t newest = rdi64(d + o + 8);
        o += VG_RING_HDR;
        if (nbytes > len - o)
            return -1;
        /* records strictly ascending, the last one the newest, all within the span */
        size_t r = o, end = o + nbytes;
        int64_t prev = INT64_MIN;
        for (uint32_t b = 0; b < nb; b++) {
            size_t rl = rd->set_field < 0 ? vg_stats_reclen(rd) : VG_SET_REC_HDR;
            if (r + rl > end)
                return -1;
            if (rd->set_field >= 0) {
                uint32_t n = rd32(d + r + 4);
                if (n == 0 || n > VG_SET_MAX || r + rl + 8 * (size_t)n > end)
                    return -1;
                rl += 8 * (size_t)n;
            }
            int64_t idx = full_idx(newest, rd32(d + r));
            if (idx <= prev || newest - idx >= rd->span)
                return -1;
            prev = idx;
            r += rl;
        }
        if (r != end || (nb > 0 && prev != newest))
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
        o += VG_RING_HDR + rd32(blob->data + o + 4);
    }
}

/* Offset of a ring's header in the blob. */
static uint32_t ring_off(const vg_blob_t *blob, const vg_ring_def_t *rd)
{
    uint32_t o = VG_ENTITY_HDR;
    for (int i = 0; i < rd->local; i++)
        o += VG_RING_HDR + rd32(blob->data + o + 4);
    return o;
}

static inline uint32_t stat_off(unsigned mask, unsigned bit)
{
    return VG_STATS_REC_HDR + 8 * vg_popcount4(mask & (bit - 1));
}

static inline void ring_header(vg_blob_t *blob, uint32_t o, uint32_t nb, uint32_t nbytes,
                               int64_t newest)
{
    wr32(blob->data + o, nb);
    wr32(blob->data + o + 4, nbytes);
    wri64(blob->data + o + 8, newest);
}

uint32_t vg_ring_add_stats(vg_blob_t *blob, const vg_ring_def_t *rd, uint32_t o, int64_t k,
                           double amount)
{
    uint32_t reclen = vg_stats_reclen(rd);
    uint32_t nb = rd32(blob->data + o);
    int64_t newest = rdi64(blob->data + o + 8);
#define REC(i) (blob->data + o + VG_RING_HDR + (uint32_t)(i)*reclen)
#define IDX(i) full_idx(newest, rd32(REC(i)))
    if (nb > 0) {
        int64_t oldest = (k > newest ? k : newest) - rd->span + 1;
        if (k < oldest)
            return o + VG_RING_HDR + nb * reclen;
        uint32_t ev = 0;
        while (ev < nb && IDX(ev) < oldest)
            ev++;
        if (ev) {
            splice(blob, o + VG_RING_HDR, ev * reclen, 0);
            nb -= ev;
        }
    }
    /* the common case, k at or after the newest bucket, ends the search at once */
    uint32_t i = nb;
    while (i > 0 && IDX(i - 1) > k)
        i--;
    uint8_t *rec;
    if (i > 0 && IDX(i - 1) == k) {
        rec = REC(i - 1);
    } else {
        splice(blob, o + VG_RING_HDR + i * reclen, 0, reclen);
        rec = REC(i);
        wr32(rec, (uint32_t)k);
        wr32(rec + 4, 0);
        wr32(rec + 8, 0);
        if (rd->stats & VG_STAT_SUM)
            wrf(rec + stat_off(rd->stats, VG_STAT_SUM), 0);
        if (rd->stats & VG_STAT_M2)
            wrf(rec + stat_off(rd->stats, VG_STAT_M2), 0);
        if (rd->stats & VG_STAT_MIN)
            wrf(rec + stat_off(rd->stats, VG_STAT_MIN), INFINITY);
        if (rd->stats & VG_STAT_MAX)
            wrf(rec + stat_off(rd->stats, VG_STAT_MAX), -INFINITY);
        nb++;
    }
#undef IDX
#undef REC
    uint32_t n = rd32(rec + 4);
    wr32(rec + 4, n + 1);
    if (rd->stats & VG_STAT_SUM) {
        uint8_t *p = rec + stat_off(rd->stats, VG_STAT_SUM);
        double sum = rdf(p);
        wrf(p, sum + amount);
        if (rd->stats & VG_STAT_M2) { /* Welford's update */
            uint8_t *q = rec + stat_off(rd->stats, VG_STAT_M2);
            double mean_old = n ? sum / n : 0, mean_new = (sum + amount) / (n + 1);
            wrf(q, rdf(q) + (amount - mean_old) * (amount - mean_new));
        }
    }
    if (rd->stats & VG_STAT_MIN) {
        uint8_t *p = rec + stat_off(rd->stats, VG_STAT_MIN);
        if (amount < rdf(p))
            wrf(p, amount);
    }
    if (rd->stats & VG_STAT_MAX) {
        uint8_t *p = rec + stat_off(rd->stats, VG_STAT_MAX);
        if (amount > rdf(p))
            wrf(p, amount);
    }
    if (nb == 1 || k > newest)
        newest = k;
    ring_header(blob, o, nb, nb * reclen, newest);
    return o + VG_RING_HDR + nb * reclen;
}

void vg_ring_query_stats(const vg_blob_t *blob, const vg_ring_def_t *rd, uint32_t o, int64_t hi,
                         const int64_t *nwin, size_t nw, vg_acc_t *acc)
{
    uint32_t nb = rd32(blob->data + o);
    int64_t newest = rdi64(blob->data + o + 8);
    uint32_t reclen = vg_stats_reclen(rd);
    const uint8_t *recs = blob->data + o + VG_RING_HDR;
    unsigned m = rd->stats;
    uint32_t osum = stat_off(m, VG_STAT_SUM), om2 = stat_off(m, VG_STAT_M2);
    uint32_t omin = stat_off(m, VG_STAT_MIN), omax = stat_off(m, VG_STAT_MAX);
    vg_acc_t a = {0, 0, 0, 0, INFINITY, -INFINITY};
    size_t j = 0;
    int64_t lo = hi - nwin[0] + 1;
    /* Records are fixed-length and ascending: skip those after hi (a delayed window's, up to
     * the whole delay) by bisection, not one by one. top = how many have idx <= hi. */
    uint32_t top = nb;
    if (nb > 0 && newest > hi) {
        uint32_t l = 0, r = nb; /* idx(l - 1) <= hi < idx(r) */
        while (l < r) {
            uint32_t mid = (l + r) / 2;
            if (full_idx(newest, rd32(recs + mid * reclen)) <= hi)
                l = mid + 1;
            else
                r = mid;
        }
        top = l;
    }
    /* Newest to oldest, as one window at a time would: each shorter window's sums are the
     * longer walk's partial sums, bit for bit. */
    for (uint32_t i = top; i-- > 0;) {
        const uint8_t *rec = recs + i * reclen;
        int64_t idx = full_idx(newest, rd32(rec));
        while (idx < lo) {
            acc[j++] = a;
            if (j == nw)
                return;
            lo = hi - nwin[j] + 1;
        }
        double n = rd32(rec + 4);
        a.fraud += rd32(rec + 8);
        if (m & VG_STAT_M2)
            vg_acc_merge(&a, n, rdf(rec + osum), rdf(rec + om2));
        else {
            a.count += n;
            if (m & VG_STAT_SUM)
                a.sum += rdf(rec + osum);
        }
        if (m & VG_STAT_MIN)
            a.min = fmin(a.min, rdf(rec + omin));
        if (m & VG_STAT_MAX)
            a.max = fmax(a.max, rdf(rec + omax));
    }
    while (j < nw)
        acc[j++] = a;
}

int vg_ring_add_fraud(vg_blob_t *blob, const vg_catalog_t *catalog, int ring, int64_t ts, int delta)
{
    const vg_ring_def_t *rd = &catalog->rings[ring];
    uint32_t o = ring_off(blob, rd);
    uint32_t nb = rd32(blob->data + o);
    int64_t newest = rdi64(blob->data + o + 8);
    uint32_t reclen = vg_stats_reclen(rd);
    int64_t k = vg_bucket_of(ts, rd->bucket);
    uint8_t *recs = blob->data + o + VG_RING_HDR;
    for (uint32_t i = nb; i-- > 0;) {
        uint8_t *rec = recs + i * reclen;
        int64_t idx = full_idx(newest, rd32(rec));
        if (idx < k)
            break;
        if (idx == k) {
            int64_t f = (int64_t)rd32(rec + 8) + delta;
            if (f < 0 || f > (int64_t)rd32(rec + 4))
                return 0;
            wr32(rec + 8, (uint32_t)f);
            return 1;
        }
    }
    return 0;
}

/* ---- set rings: variable-length records ---- */

static inline uint32_t set_reclen(const uint8_t *rec)
{
    return VG_SET_REC_HDR + 8 * rd32(rec + 4);
}

uint32_t vg_ring_add_value(vg_blob_t *blob, const vg_ring_def_t *rd, uint32_t o, int64_t k,
                           uint64_t hash)
{
    uint32_t nb = rd32(blob->data + o), nbytes = rd32(blob->data + o + 4);
    int64_t newest = rdi64(blob->data + o + 8);
    uint32_t start = o + VG_RING_HDR;
#define IDX(r) full_idx(newest, rd32(blob->data + (r)))
    if (nb > 0) {
        int64_t oldest = (k > newest ? k : newest) - rd->span + 1;
        if (k < oldest)
            return start + nbytes;
        uint32_t ev = 0, r = start;
        while (ev < nb && IDX(r) < oldest) {
            r += set_reclen(blob->data + r);
            ev++;
        }
        if (ev) {
            splice(blob, start, r - start, 0);
            nb -= ev;
            nbytes -= r - start;
        }
    }
    uint32_t r = start;
    uint32_t b = 0;
    while (b < nb && IDX(r) < k) {
        r += set_reclen(blob->data + r);
        b++;
    }
    if (b < nb && IDX(r) == k) {
        uint32_t n = rd32(blob->data + r + 4);
        uint8_t *vals = blob->data + r + VG_SET_REC_HDR;
        for (uint32_t j = 0; j < n; j++)
            if ((uint64_t)rdi64(vals + 8 * j) == hash)
                return start + nbytes; /* nothing evicted: k is not newer than the newest */
        if (n >= VG_SET_MAX)
            return start + nbytes;
        splice(blob, r + VG_SET_REC_HDR + 8 * n, 0, 8);
        wri64(blob->data + r + VG_SET_REC_HDR + 8 * n, (int64_t)hash);
        wr32(blob->data + r + 4, n + 1);
        nbytes += 8;
    } else {
        splice(blob, r, 0, VG_SET_REC_HDR + 8);
        uint8_t *rec = blob->data + r;
        wr32(rec, (uint32_t)k);
        wr32(rec + 4, 1);
        wri64(rec + VG_SET_REC_HDR, (int64_t)hash);
        nb++;
        nbytes += VG_SET_REC_HDR + 8;
    }
#undef IDX
    if (nb == 1 || k > newest)
        newest = k;
    ring_header(blob, o, nb, nbytes, newest);
    return start + nbytes;
}

int vg_ring_set_contains(const vg_blob_t *blob, uint32_t o, int64_t lo, int64_t hi, uint64_t h)
{
    uint32_t nb = rd32(blob->data + o);
    int64_t newest = rdi64(blob->data + o + 8);
    uint32_t r = o + VG_RING_HDR;
    for (uint32_t b = 0; b < nb; b++) {
        const uint8_t *rec = blob->data + r;
        int64_t idx = full_idx(newest, rd32(rec));
        uint32_t nv = rd32(rec + 4);
        if (idx > hi)
            break;
        if (idx >= lo)
            for (uint32_t j = 0; j < nv; j++)
                if ((uint64_t)rdi64(rec + VG_SET_REC_HDR + 8 * j) == h)
                    return 1;
        r += VG_SET_REC_HDR + 8 * nv;
    }
    return 0;
}

size_t vg_ring_query_set(const vg_blob_t *blob, uint32_t o, int64_t lo, int64_t hi, uint64_t *out,
                         size_t cap)
{
    uint32_t nb = rd32(blob->data + o);
    int64_t newest = rdi64(blob->data + o + 8);
    uint32_t r = o + VG_RING_HDR;
    size_t n = 0;
    for (uint32_t b = 0; b < nb; b++) {
        const uint8_t *rec = blob->data + r;
        int64_t idx = full_idx(newest, rd32(rec));
        uint32_t nv = rd32(rec + 4);
        if (idx > hi)
            break;
        if (idx >= lo) {
            for (uint32_t j = 0; j < nv; j++) {
                uint64_t h = (uint64_t)rdi64(rec + VG_SET_REC_HDR + 8 * j);
                size_t q = 0;
                while (q < n && out[q] != h)
                    q++;
                if (q == n && n < cap)
                    out[n++] = h;
            }
        }
        r += VG_SET_REC_HDR + 8 * nv;
    }
    return n;
}
