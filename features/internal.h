/*
 * internal.h - what catalog.c, window.c and state.c share: the compiled catalogue (names
 * resolved to indices once, at load) and the ring operations on an entity's encoded state.
 *
 * A catalogue compiles into:
 *  - entity types: one per distinct `by` field, with a retention R (its longest
 *    window + delay): an entity whose newest transaction is older than the watermark - R
 *    is expired (reset to empty);
 *  - rings: one per (entity type, bucket width, filter, kind), kind = amount statistics or
 *    the set of values of one field; the features over that entity with that bucket width
 *    and filter share it; its span N (buckets kept) is the longest (window + delay) / bucket;
 *  - features, each pointing at its ring (or none for per-transaction features).
 */
#ifndef VG_FEATURES_INTERNAL_H
#define VG_FEATURES_INTERNAL_H

#include "features/features.h"

#include <stdint.h>
#include <string.h>

typedef enum vg_agg {
    /* per transaction */
    VG_AGG_AMOUNT,
    VG_AGG_LOG_AMOUNT,
    VG_AGG_HOUR,
    VG_AGG_DAY_OF_WEEK,
    VG_AGG_WEEKEND,
    VG_AGG_NIGHT,
    /* windowed, over an entity's amount-statistics ring */
    VG_AGG_COUNT,
    VG_AGG_SUM,
    VG_AGG_MEAN,
    VG_AGG_MIN,
    VG_AGG_MAX,
    VG_AGG_STD,
    VG_AGG_ZSCORE,
    VG_AGG_FRAUD_COUNT,
    VG_AGG_FRAUD_SHARE,
    /* windowed, over a set ring */
    VG_AGG_DISTINCT,
    VG_AGG_NEW,
    /* the entity's previous transaction */
    VG_AGG_SINCE_LAST,
    VG_AGG_GEO_VELOCITY,
} vg_agg_t;

/* Which statistics a stats ring keeps per bucket beyond count and fraud. */
enum {
    VG_STAT_SUM = 1,
    VG_STAT_M2 = 2, /* sum of squared deviations from the bucket mean (needs SUM) */
    VG_STAT_MIN = 4,
    VG_STAT_MAX = 8,
};

/* A `where FIELD = VALUE` (or !=) clause. */
typedef struct vg_filter {
    int field;
    int negate;
    char *value;
    uint32_t len;
} vg_filter_t;

typedef struct vg_ring_def {
    int type;        /* entity type index */
    int local;       /* position among its type's rings (order in the encoded entity) */
    int64_t bucket;  /* width, ms */
    int filter;      /* index into filters, -1 none */
    int set_field;   /* -1: a stats ring; else the schema field whose values it keeps */
    unsigned stats;  /* VG_STAT_* kept (stats rings) */
    int labels;      /* 1 if a label-driven feature reads it: fraud counts are kept */
    int64_t span;    /* buckets kept: max over its features of (window + delay) / bucket */
    uint32_t reclen; /* set by catalog.c, unused: records are variable-length (window.c) */
} vg_ring_def_t;

typedef struct vg_etype {
    int field;         /* schema index of the entity field */
    char *name;        /* its name */
    int64_t retention; /* ms: max (window + delay) of its features */
    int first_ring;    /* its rings are first_ring .. first_ring + nrings - 1 */
    int nrings;
    int label_slot; /* position in a transaction record's key list, -1 if no labels */
} vg_etype_t;

typedef struct vg_feature {
    char *name;
    vg_agg_t agg;
    int type;       /* entity type, -1 for per-transaction features */
    int ring;       /* ring index, -1 for none */
    int field;      /* distinct/new: the counted field */
    int64_t window; /* ms */
    int64_t delay;  /* ms */
    int64_t bucket; /* ms */
    int64_t nwin;   /* window / bucket */
    int64_t ndelay; /* delay / bucket */
    int current;    /* `including current` */
} vg_feature_t;

#define VG_MAX_RINGS 64

struct vg_catalog {
    char version[17];
    size_t nfeatures;
    vg_feature_t *features;
    size_t ntypes;
    vg_etype_t types[VG_STATE_MAX_TYPES];
    size_t nrings;
    vg_ring_def_t rings[VG_MAX_RINGS];
    size_t nfilters;
    vg_filter_t *filters;
    int uses_labels;
    int nlabel_types;
    int64_t label_retention; /* max (window + delay) of label-driven features */
};

/* ---- encoded entity state (window.c) ----
 *
 * Layout, little-endian (read and written with memcpy, so nothing needs alignment; the cache
 * operates on it in place); "vu" is an unsigned LEB128 varint (7 bits a byte, at most 5):
 *   u32 version (VG_ENTITY_VERSION), u32 nrings
 *   i64 last_ts   greatest ts added (INT64_MIN: none)
 *   i64 geo_ts    ts of the located transaction with the greatest ts (INT64_MIN: none)
 *   f64 lat, lon  its location
 *   per ring (the type's rings in order): u32 nbytes, u32 back (newest - the oldest record's
 *     index: whether an add evicts anything is known without walking), i64 newest (the
 *     bucket index of its newest record; 0 while empty), then nbytes of records, DESCENDING
 *     by bucket index
 *     (newest first), only non-empty buckets. Each record starts with vu gap: its index is
 *     the previous record's minus gap (the first's: newest minus 0). Every record lies
 *     within the ring's span (at most 10^8 buckets, catalog.c) of the newest.
 *     stats ring: vu gap, vu count (>= 1), vu fraud (only if the ring keeps fraud counts:
 *                 vg_ring_def_t.labels), then with count 1 the amount (f64, if the ring keeps
 *                 any statistic: it is the bucket's sum, min and max, and its squared
 *                 deviations are 0), else f64 sum, m2, min, max (only those in the ring's
 *                 mask, in that order; m2 = sum of squared deviations from the bucket's
 *                 mean, merged across buckets with Chan et al.'s formula so std stays
 *                 accurate when amounts are close)
 *     set ring:   vu gap, vu n (1 .. VG_SET_MAX), then n u64 value hashes (in insertion
 *                 order)
 * Version 2 (until this layout: ring headers with a bucket count, ascending records
 * with the low 32 bits of their index, u32 count and fraud in every stats record and every
 * statistic even for one transaction) and version 1 are refused at open, not converted.
 */
#define VG_ENTITY_VERSION 3u
#define VG_ENTITY_HDR     40u
#define VG_RING_HDR       16u
#define VG_SET_MAX        64u /* values kept per bucket of a set ring */
/* Most bytes one add can grow a ring by: a new record (5-byte gap, count, fraud, amount) and
 * the next record's gap growing to 5 bytes, or a bucket going from one amount to all four
 * statistics. */
#define VG_RING_MAX_GROWTH 48u

typedef struct vg_blob {
    uint8_t *data;
    uint32_t len;
    uint32_t cap;
    int fixed; /* data is part of a larger block: the owner grows it, never vg_blob_reserve */
} vg_blob_t;

/* Sums over a window of a stats ring. */
typedef struct vg_acc {
    double count, fraud, sum, m2, min, max;
} vg_acc_t;

/* Bits set in a 4-bit VG_STAT_* mask (__builtin_popcount is a libgcc call without -mpopcnt,
 * and record offsets are computed on every ring access). */
static inline uint32_t vg_popcount4(unsigned m)
{
    return (m & 1) + ((m >> 1) & 1) + ((m >> 2) & 1) + ((m >> 3) & 1);
}

/* The state's 64-bit hash of a string (an entity id, a set ring's value, a txn_id): eight
 * bytes a step, where vg_hash64 (FNV-1a) takes one, and every id is hashed on every
 * transaction (twice with vg_state_prefetch). Set rings store it, so it is part of the
 * encoding (version 3). */
static inline uint64_t vg_fhash(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)n * 0xc2b2ae3d27d4eb4fULL);
    for (; n > 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x9fb21c651e98df25ULL;
        h ^= h >> 29;
    }
    /* the last 1..8 bytes (none: 0) as one word, from loads that may overlap: the length is
     * in h already, so the bytes they repeat cannot make two strings alike */
    uint64_t w = 0;
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4);
        w = (uint64_t)lo | ((uint64_t)hi << 32);
    } else if (n > 0) {
        w = (uint64_t)p[0] | ((uint64_t)p[n / 2] << 8) | ((uint64_t)p[n - 1] << 16);
    }
    h = (h ^ w) * 0x9fb21c651e98df25ULL;
    /* murmur3's finaliser: every input bit reaches every output bit */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

/* floor(ts / width) for any sign of ts. */
static inline int64_t vg_bucket_of(int64_t ts, int64_t width)
{
    int64_t q = ts / width;
    if ((ts % width) != 0 && ts < 0)
        q--;
    return q;
}

void vg_blob_init_entity(vg_blob_t *blob, const vg_catalog_t *catalog, int type);
/* Checks an encoded entity from disk against the type's layout: 0 if it fits, -2 if it has
 * another VG_ENTITY_VERSION, -1 if it is corrupt. */
int vg_blob_check(const uint8_t *data, size_t len, const vg_catalog_t *catalog, int type);
int64_t vg_blob_last_ts(const vg_blob_t *blob);
/* The offset just past the ring whose header is at o (the next ring's header). */
static inline uint32_t vg_ring_end(const vg_blob_t *blob, uint32_t o)
{
    uint32_t nbytes;
    memcpy(&nbytes, blob->data + o, 4);
    return o + VG_RING_HDR + nbytes;
}

/* The offset of each of the type's rings (its header) in the blob, in the type's order:
 * off[0 .. nrings - 1]. Valid until the blob changes. */
void vg_blob_ring_offsets(const vg_blob_t *blob, const vg_catalog_t *catalog, int type,
                          uint32_t *off);
/* What one transaction does to one ring of an entity: nothing (skip: filtered out, or the
 * set ring's field is absent), or add it in bucket k (vg_bucket_of(ts, ring's bucket)): its
 * amount to a stats ring, its value hash to a set ring. */
typedef struct vg_ring_add {
    int skip;
    int64_t k;
    uint64_t hash;
} vg_ring_add_t;

/* Writes the entity's rings (from offset VG_ENTITY_HDR of blob) to dst with one transaction
 * added: add[i] for the type's i-th ring. Per ring: the records before the change copied,
 * the changed one re-encoded, the rest copied up to the first evicted one; a transaction
 * whose bucket was already evicted (older than the newest bucket - span + 1) is dropped. The
 * caller then puts dst in place of the old rings (one pass, no moving of the rings after a
 * changed one). dst needs room for the rings plus VG_RING_MAX_GROWTH per ring. Returns the
 * end of what it wrote. */
uint8_t *vg_entity_add(const vg_blob_t *blob, const vg_catalog_t *catalog, int type,
                       const vg_ring_add_t *add, double amount, uint8_t *dst);
/* Merges one more group of n values (sum, m2) into acc (Chan et al.'s parallel variance). */
static inline void vg_acc_merge(vg_acc_t *acc, double n, double sum, double m2)
{
    if (n <= 0)
        return;
    if (acc->count <= 0) {
        acc->sum = sum;
        acc->m2 = m2;
    } else {
        double delta = sum / n - acc->sum / acc->count;
        acc->m2 += m2 + delta * delta * acc->count * n / (acc->count + n);
        acc->sum += sum;
    }
    acc->count += n;
}

/* One group of windows of a stats ring that end at the same bucket hi: acc[j] receives the
 * sums over buckets (hi - nwin[j] + 1) .. hi; nwin ascending. */
typedef struct vg_qwin {
    int64_t hi;
    const int64_t *nwin;
    size_t nw;
    vg_acc_t *acc;
} vg_qwin_t;

/* Sums of the stats ring at offset o for nq groups of windows, q sorted by hi descending.
 * Each acc is exactly what a walk over that window alone gives (same merge order: newest
 * bucket first). */
void vg_ring_query_stats(const vg_blob_t *blob, const vg_ring_def_t *rd, uint32_t o,
                         const vg_qwin_t *q, size_t nq);
/* 1 if value hash h is in buckets lo..hi of the set ring at offset o (an early-exit scan:
 * what `new` needs, without collecting the distinct values). */
int vg_ring_set_contains(const vg_blob_t *blob, uint32_t o, int64_t lo, int64_t hi, uint64_t h);
/* Distinct hashes of buckets lo..hi of the set ring at offset o into out (capacity cap);
 * returns count. */
size_t vg_ring_query_set(const vg_blob_t *blob, uint32_t o, int64_t lo, int64_t hi, uint64_t *out,
                         size_t cap);
/* Adds delta to the fraud count of the bucket holding ts, if that bucket exists and the
 * result stays within 0 .. its count. Returns 1 if changed. The count may grow a byte: the
 * blob needs room for one more (a fixed blob: the owner makes it). */
int vg_ring_add_fraud(vg_blob_t *blob, const vg_catalog_t *catalog, int ring, int64_t ts,
                      int delta);
/* Records ts (and location) as the entity's latest if it is. */
void vg_blob_touch(vg_blob_t *blob, int64_t ts, double lat, double lon);
void vg_blob_last_geo(const vg_blob_t *blob, int64_t *ts, double *lat, double *lon);
/* Grows blob capacity to at least n. */
void vg_blob_reserve(vg_blob_t *blob, uint32_t n);

#endif
