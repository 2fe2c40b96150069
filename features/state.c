/*
 * state.c - the feature state: per-entity encoded rings (window.c) behind a write-back
 * cache, persisted through kv.h in one column family per entity type, plus transaction
 * records for labels and the caller's offsets, committed together.
 *
 * Column families: "meta" (catalog = the catalogue version the layout belongs to,
 * offsets = the caller's blob, watermark = greatest event time of the last commit),
 * "txn" (txn_id -> record, see below) and "entity.<field>" per entity type
 * (entity id -> encoded rings).
 *
 * Invariants:
 *  - the cache is an open-addressing (linear probing) table keyed by (type, id); an entity
 *    in it is authoritative over RocksDB; a dirty entity (changed since the last write to
 *    RocksDB) is on the dirty list (at dirty_idx) and is never evicted, so the cache only
 *    drops written state; an entity changed since the last commit is also on the changed
 *    list (at changed_idx); an entity is one block (header, key, encoded rings) that only
 *    entity_room() moves, fixing its table slot and its entries in both lists;
 *  - transaction records made or changed since the last write live in an arena indexed
 *    by txn_id and reach RocksDB only in a write's batch, with the entities and offsets;
 *  - a write (write_state) holds everything committed and nothing else: without
 *    checkpoint_ms every commit writes; with it, commits only record their offsets (the
 *    dirty list and pending records then span several commits) and a checkpoint writes them
 *    all with the last commit's offsets, so what RocksDB holds is always one commit's state;
 *  - checkpoint_ms: a checkpoint's batch is built on the caller's thread (values copied) and
 *    written by the writer thread while processing goes on; one at a time. Until it is
 *    applied, what it holds may be newer than RocksDB: its transaction records stay
 *    findable in the in-flight table (wtslots), and no entity is evicted (evict() runs only
 *    once every write handed over has finished), so a cache miss never reads a value older
 *    than one in flight; the compaction filter's watermark moves when the write is applied;
 *  - an entity whose newest transaction is older than (watermark - its type's retention)
 *    is logically empty: it is reset on access, deleted at commit if dirty, and dropped by
 *    the compaction filter on disk (which compares against the committed watermark, never
 *    ahead of what a reader would reset anyway).
 *
 * Transaction record (little-endian): u32 version 1, u32 flags (bit 0: a fraud label is
 * counted), i64 ts, u64 ring mask (label rings the transaction was added to), then per
 * label entity type: u16 length (0xffff: absent) and the id bytes.
 */
#include "features/internal.h"
#include "features/kv.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define TXN_REC_HDR 24

/* One allocation per cached entity: this header, the key, then the encoded state (blob.data
 * points into the same block, 8-byte aligned), so a lookup touches adjacent memory. The
 * block grows by realloc (entity_room), after which every pointer to it is fixed. */
typedef struct vg_entity {
    uint64_t hash;
    vg_blob_t blob;
    uint32_t acct;        /* bytes accounted in cache_bytes */
    uint32_t dirty_idx;   /* position in the dirty list while dirty */
    uint32_t changed_idx; /* position in the changed list while changed */
    uint16_t type;
    uint8_t dirty;
    uint8_t changed;
    uint8_t ref;
    int32_t part; /* input partition of the last transaction that touched it (-1: unknown) */
    uint32_t keylen;
    char key[];
} vg_entity_t;

static inline size_t ent_blob_off(size_t keylen)
{
    return (sizeof(vg_entity_t) + keylen + 7) & ~(size_t)7;
}

typedef struct slot {
    uint64_t hash;
    vg_entity_t *ent;
} slot_t;

typedef struct txnrec {
    uint64_t hash;
    uint32_t klen;
    uint32_t vlen;
    char *key;
    uint8_t *val;
} txnrec_t;

/* A pending record's table slot keeps its hash: probing past other records reads no record. */
typedef struct tslot {
    uint64_t hash;
    txnrec_t *rec;
} tslot_t;

typedef struct expire_ctx {
    vg_state_t *state;
    int64_t retention;
} expire_ctx_t;

/* The stats features of one ring with the same delay read windows that all end at the same
 * bucket: one walk over the ring serves them all (vg_ring_query_stats). Built at open. */
typedef struct qgroup {
    int ring;
    int64_t ndelay;
    size_t nw;
    int64_t *nwin; /* distinct window lengths (buckets), ascending */
    vg_acc_t *acc; /* the current transaction's sums, one per window */
} qgroup_t;

/* The aggregations (vg_agg_t) run from 0 to the last, VG_AGG_GEO_VELOCITY. */
#define VG_NAGG (VG_AGG_GEO_VELOCITY + 1)

/* One feature as evaluate() reads it. */
typedef struct plan {
    uint32_t out;        /* the feature's index */
    int type;            /* its entity type (-1: per transaction) */
    int current;         /* `including current` (without a delay: with one it changes nothing) */
    const vg_acc_t *acc; /* windowed statistics: its window's sums in groups */
} plan_t;

struct vg_state {
    const vg_catalog_t *catalog;
    vg_kv_t *kv;
    int cf_meta, cf_txn, cf_type[VG_STATE_MAX_TYPES];
    expire_ctx_t expire[VG_STATE_MAX_TYPES + 1];

    slot_t *slots;
    size_t nslots; /* power of two */
    size_t nents;
    size_t cache_bytes, cache_limit;
    size_t clock;
    vg_entity_t **dirty; /* changed since the last write to RocksDB */
    size_t ndirty, dirtycap;
    vg_entity_t **changed; /* changed since the last commit (vg_state_changes) */
    size_t nchanged, changedcap;

    vg_arena_t txn_arena;
    tslot_t *tslots; /* open addressing, linear probing, keyed by txn_id */
    size_t ntslots, ntxns;
    size_t txn_bytes; /* arena bytes the pending records use */

    vg_kv_batch_t *batch;
    vg_buf_t getbuf;

    /* checkpoint_ms: the writer thread and the batch it writes (guarded by wmu) */
    pthread_t writer;
    int writer_started;
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    vg_kv_batch_t *wbatch;
    int wbusy, wstop;
    int wheld;     /* the batch handed over waits for vg_state_release (vg_state_commit_held) */
    vg_err_t werr; /* sticky: the first failed write's */
    char werrbuf[VG_ERRLEN];
    int64_t wwatermark; /* the watermark of the batch in flight */
    /* the transaction records of the last batch handed over (main thread only) */
    vg_arena_t wtxn_arena;
    tslot_t *wtslots;
    size_t nwtslots, nwtxns;
    int64_t watermark;           /* greatest ts processed (INT64_MIN: none) */
    int64_t committed_watermark; /* read by compaction threads (atomics) */
    int64_t txn_retention;
    int sync;
    int32_t part; /* vg_state_set_partition() */
    /* checkpoint_ms: commits since the last write, and the last commit's offsets */
    int64_t checkpoint_ns, last_write_ns;
    int discard;     /* opts.scratch: written only when the cache is full, not at close */
    int async;       /* writes go to the writer thread: checkpoint_ms or opts.async_writes */
    int unwritten;   /* a commit since the last write */
    int uncommitted; /* a change since the last commit */
    int have_offsets;
    vg_buf_t offsets;

    uint64_t *setbuf;
    size_t setcap;
    qgroup_t *groups; /* by entity type: type t's are group_first[t] .. group_first[t + 1] - 1 */
    size_t ngroups;
    size_t group_first[VG_STATE_MAX_TYPES + 1];
    vg_qwin_t *qwin; /* per group, its query (only hi changes from transaction to transaction) */
    /* The features in the order they are evaluated (build_groups): kind by kind, kind a's
     * are plan[kind_first[a]] .. plan[kind_first[a + 1] - 1]. */
    plan_t *plan;
    size_t kind_first[VG_NAGG + 1];
    uint32_t roff[VG_MAX_RINGS]; /* ring offsets in the current transaction's entities */
    /* The catalogue's distinct bucket widths: the current transaction's bucket index in each
     * is computed once (a 64-bit division), not once per ring and feature. */
    int64_t width[VG_MAX_RINGS];
    size_t nwidths;
    int ring_width[VG_MAX_RINGS]; /* ring -> its width's position */
    int64_t kw[VG_MAX_RINGS];     /* the current transaction's bucket in each width */
    vg_entity_t *ents[VG_STATE_MAX_TYPES];
    /* 0 while RocksDB cannot hold an entity of the type that the cache lacks: its family was
     * empty at open and no entity of it has been evicted since (every one written is still
     * cached), so a cache miss is a new entity and needs no read. */
    uint8_t may_store[VG_STATE_MAX_TYPES];
    /* The current transaction's vg_fhash of each field, computed once (fh_valid bit f):
     * an id is hashed for its entity and for every set ring and feature that reads it. */
    uint64_t fh[VG_TXN_MAX_FIELDS];
    uint32_t fh_valid;
    /* vg_state_prefetch's pipeline: the entity hashes of the last three transactions hinted
     * (pf_n[i] of them), pf_hash[pf_cur] the newest. */
    uint64_t pf_hash[3][VG_STATE_MAX_TYPES];
    uint32_t pf_n[3];
    int pf_cur;
    uint32_t max_growth[VG_STATE_MAX_TYPES]; /* most bytes one transaction adds to a type */
    struct txn_sortkey
        *sortkeys; /* put_records() scratch: the writer thread's with checkpoint_ms */
    size_t sortcap;
    uint8_t *scratch; /* an entity's rings being rewritten (vg_state_process) */
    uint32_t scratchcap;

    uint64_t loads, evictions, expired, commits, writes, committed_bytes;
};

static const char META_CATALOG[] = "catalog";
static const char META_OFFSETS[] = "offsets";
static const char META_WATERMARK[] = "watermark";

static int64_t rdi64(const void *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ---- expiry (compaction filter, background threads) ---- */

static int expire_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    expire_ctx_t *ec = ctx;
    int64_t wm = __atomic_load_n(&ec->state->committed_watermark, __ATOMIC_ACQUIRE);
    if (vlen < 16 || wm == INT64_MIN)
        return 0;
    int64_t ts = rdi64((const char *)val + 8); /* entity: last_ts; txn record: ts */
    return ts != INT64_MIN && ts < wm - ec->retention;
}

/* ---- the entity cache ---- */

/* The cache key of an entity from the hash of its id (vg_fhash, the same as a set ring keeps
 * for that value: one hash of each field serves both) mixed with its type (splitmix64's
 * finaliser). In memory only: never stored. */
static inline uint64_t entity_mix(int type, uint64_t vh)
{
    uint64_t h = vh ^ ((uint64_t)(type + 1) * 0x9e3779b97f4a7c15ULL);
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

static uint64_t entity_hash(int type, const char *key, size_t len)
{
    return entity_mix(type, vg_fhash(key, len));
}

/* A zeroed table of n bytes. From 2 MiB up it is 2 MiB-aligned and asks for transparent huge
 * pages: every lookup lands on a random slot, and with 4 KiB pages nearly every one also
 * missed the TLB (a page walk, costlier still in a VM). Freed with free(). */
static void *table_alloc(size_t n)
{
    const size_t huge = (size_t)2 << 20;
    if (n < huge)
        return vg_xcalloc(1, n);
    void *p = NULL;
    size_t rounded = (n + huge - 1) & ~(huge - 1);
    if (posix_memalign(&p, huge, rounded) != 0)
        return vg_xcalloc(1, n);
#ifdef MADV_HUGEPAGE
    madvise(p, rounded, MADV_HUGEPAGE); /* advice only: 4 KiB pages if refused */
#endif
    memset(p, 0, n);
    return p;
}

static void table_insert(slot_t *slots, size_t nslots, vg_entity_t *ent)
{
    size_t mask = nslots - 1;
    size_t i = ent->hash & mask;
    while (slots[i].ent)
        i = (i + 1) & mask;
    slots[i].hash = ent->hash;
    slots[i].ent = ent;
}

static void table_grow(vg_state_t *st)
{
    size_t n = st->nslots * 2;
    slot_t *slots = table_alloc(n * sizeof(*slots));
    for (size_t i = 0; i < st->nslots; i++)
        if (st->slots[i].ent)
            table_insert(slots, n, st->slots[i].ent);
    st->cache_bytes += (n - st->nslots) * sizeof(slot_t);
    free(st->slots);
    st->slots = slots;
    st->nslots = n;
    st->clock = 0;
}

/* Removes slot i by backward-shift deletion (keeps every probe chain unbroken). */
static void table_remove(vg_state_t *st, size_t i)
{
    size_t mask = st->nslots - 1;
    st->slots[i].ent = NULL;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!st->slots[j].ent)
            break;
        size_t home = st->slots[j].hash & mask;
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            st->slots[i] = st->slots[j];
            st->slots[j].ent = NULL;
            i = j;
        }
    }
    st->nents--;
}

static void account(vg_state_t *st, vg_entity_t *ent)
{
    uint32_t bytes = (uint32_t)ent_blob_off(ent->keylen) + ent->blob.cap;
    st->cache_bytes += bytes;
    st->cache_bytes -= ent->acct;
    ent->acct = bytes;
}

static vg_entity_t *entity_alloc(int type, const char *key, size_t len, uint64_t h, uint32_t need)
{
    uint32_t cap = (need + 63) & ~63u;
    vg_entity_t *e = vg_xmalloc(ent_blob_off(len) + cap);
    memset(e, 0, sizeof(*e));
    e->hash = h;
    e->part = -1;
    e->type = (uint16_t)type;
    e->keylen = (uint32_t)len;
    memcpy(e->key, key, len);
    e->blob.data = (uint8_t *)e + ent_blob_off(len);
    e->blob.cap = cap;
    e->blob.fixed = 1;
    return e;
}

/* Makes room for extra more bytes of state; may move the entity: returns where it is now,
 * with the table slot and the dirty list pointing there. */
static vg_entity_t *entity_room(vg_state_t *st, vg_entity_t *e, uint32_t extra)
{
    if (e->blob.len + extra <= e->blob.cap)
        return e;
    uint32_t cap = ((e->blob.cap + e->blob.cap / 2) + 63) & ~63u;
    if (cap < e->blob.len + extra)
        cap = (e->blob.len + extra + 63) & ~63u;
    vg_entity_t *old = e;
    e = vg_xrealloc(e, ent_blob_off(e->keylen) + cap);
    e->blob.data = (uint8_t *)e + ent_blob_off(e->keylen);
    e->blob.cap = cap;
    if (e != old) {
        size_t mask = st->nslots - 1;
        for (size_t i = e->hash & mask;; i = (i + 1) & mask)
            if (st->slots[i].ent == old) {
                st->slots[i].ent = e;
                break;
            }
        if (e->dirty)
            st->dirty[e->dirty_idx] = e;
        if (e->changed)
            st->changed[e->changed_idx] = e;
    }
    account(st, e);
    return e;
}

/* Appends e to a growable list of entities; returns its position. */
static uint32_t list_push(vg_entity_t ***list, size_t *n, size_t *cap, vg_entity_t *e)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *list = vg_xrealloc(*list, *cap * sizeof(**list));
    }
    (*list)[*n] = e;
    return (uint32_t)(*n)++;
}

static void mark_dirty(vg_state_t *st, vg_entity_t *ent)
{
    ent->ref = 1;
    if (!ent->changed) {
        ent->changed = 1;
        ent->changed_idx = list_push(&st->changed, &st->nchanged, &st->changedcap, ent);
    }
    if (!ent->dirty) {
        ent->dirty = 1;
        ent->dirty_idx = list_push(&st->dirty, &st->ndirty, &st->dirtycap, ent);
    }
}

/* The cached entity (type, key), loading it from RocksDB or creating it empty. NULL with
 * *err set on a RocksDB error or a corrupt value. */
static vg_entity_t *entity_get_h(vg_state_t *st, int type, const char *key, size_t len, uint64_t h,
                                 vg_err_t *err)
{
    size_t mask = st->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        vg_entity_t *e = st->slots[i].ent;
        if (!e)
            break;
        if (st->slots[i].hash == h && e->type == type && e->keylen == len &&
            memcmp(e->key, key, len) == 0) {
            e->ref = 1;
            return e;
        }
    }
    int found = 0;
    char eb[VG_ERRLEN];
    if (st->may_store[type] && (*err = vg_kv_get(st->kv, st->cf_type[type], key, len, &st->getbuf,
                                                 &found, eb, sizeof(eb))) != VG_OK) {
        vg_error("features", "%s", eb);
        return NULL;
    }
    int bad =
        found ? vg_blob_check((const uint8_t *)st->getbuf.data, st->getbuf.len, st->catalog, type)
              : 0;
    if (bad == -2) {
        uint32_t v;
        memcpy(&v, st->getbuf.data, 4);
        vg_error("features",
                 "state for %s %.*s has entity encoding version %u, this build reads version %u: "
                 "rebuild the state in a new directory",
                 st->catalog->types[type].name, (int)len, key, v, VG_ENTITY_VERSION);
        *err = VG_ERR_STATE;
        return NULL;
    }
    if (bad) {
        vg_error("features", "corrupt state for %s %.*s", st->catalog->types[type].name, (int)len,
                 key);
        *err = VG_ERR_STATE;
        return NULL;
    }
    uint32_t empty = VG_ENTITY_HDR + VG_RING_HDR * (uint32_t)st->catalog->types[type].nrings;
    /* room for the state and one transaction's growth: an entity grows by realloc as it
     * needs (by half each time), so no memory sits unused in entities that stay small */
    uint32_t start = found ? (uint32_t)st->getbuf.len : empty;
    vg_entity_t *e = entity_alloc(type, key, len, h, start + st->max_growth[type]);
    if (found) {
        memcpy(e->blob.data, st->getbuf.data, st->getbuf.len);
        e->blob.len = (uint32_t)st->getbuf.len;
        st->loads++;
    } else {
        vg_blob_init_entity(&e->blob, st->catalog, type);
    }
    e->ref = 1;
    account(st, e);
    if ((st->nents + 1) * 2 > st->nslots)
        table_grow(st);
    table_insert(st->slots, st->nslots, e);
    st->nents++;
    *err = VG_OK;
    return e;
}

static vg_entity_t *entity_get(vg_state_t *st, int type, const char *key, size_t len, vg_err_t *err)
{
    return entity_get_h(st, type, key, len, entity_hash(type, key, len), err);
}

/* Resets an entity idle beyond its type's retention as of watermark wm. */
static void entity_expire(vg_state_t *st, vg_entity_t *e, int64_t wm)
{
    int64_t last = vg_blob_last_ts(&e->blob);
    if (last == INT64_MIN || wm == INT64_MIN)
        return;
    if (last < wm - st->catalog->types[e->type].retention) {
        vg_blob_init_entity(&e->blob, st->catalog, e->type);
        mark_dirty(st, e);
        st->expired++;
    }
}

static void entity_free(vg_state_t *st, vg_entity_t *e)
{
    st->cache_bytes -= e->acct;
    free(e);
}

/* Drops committed entities, least recently used first (CLOCK), until under the bound. */
static void evict(vg_state_t *st)
{
    size_t budget = 2 * st->nslots;
    while (st->cache_bytes > st->cache_limit && budget-- > 0 && st->nents > 0) {
        size_t i = st->clock & (st->nslots - 1);
        vg_entity_t *e = st->slots[i].ent;
        if (!e || e->dirty) {
            st->clock++;
            continue;
        }
        if (e->ref) {
            e->ref = 0;
            st->clock++;
            continue;
        }
        st->may_store[e->type] = 1;
        table_remove(st, i); /* another entry may shift into i: look at it next */
        entity_free(st, e);
        st->evictions++;
    }
}

/* ---- pending transaction records ---- */

static tslot_t *tab_slot(tslot_t *tab, size_t n, const char *key, size_t len, uint64_t h)
{
    size_t mask = n - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        tslot_t *s = &tab[i];
        if (!s->rec || (s->hash == h && s->rec->klen == len && memcmp(s->rec->key, key, len) == 0))
            return s;
    }
}

static tslot_t *txn_slot(vg_state_t *st, const char *key, size_t len, uint64_t h)
{
    return tab_slot(st->tslots, st->ntslots, key, len, h);
}

/* Stores (or replaces) the pending record for key; val NULL: the caller fills r->val. */
static txnrec_t *txn_put_h(vg_state_t *st, const char *key, size_t len, uint64_t h, const void *val,
                           size_t vlen)
{
    if ((st->ntxns + 1) * 2 > st->ntslots) {
        size_t n = st->ntslots * 2;
        tslot_t *slots = table_alloc(n * sizeof(*slots));
        for (size_t i = 0; i < st->ntslots; i++) {
            if (!st->tslots[i].rec)
                continue;
            size_t j = st->tslots[i].hash & (n - 1);
            while (slots[j].rec)
                j = (j + 1) & (n - 1);
            slots[j] = st->tslots[i];
        }
        free(st->tslots);
        st->tslots = slots;
        st->ntslots = n;
    }
    tslot_t *slot = txn_slot(st, key, len, h);
    txnrec_t *r = slot->rec;
    if (!r || r->vlen < vlen) {
        if (!r)
            st->ntxns++;
        /* one block: the record, its key, its value */
        r = vg_arena_alloc(&st->txn_arena, sizeof(*r) + len + vlen);
        st->txn_bytes += sizeof(*r) + len + vlen;
        r->hash = h;
        r->klen = (uint32_t)len;
        r->key = (char *)(r + 1);
        memcpy(r->key, key, len);
        r->val = (uint8_t *)r->key + len;
        slot->hash = h;
        slot->rec = r;
    }
    r->vlen = (uint32_t)vlen;
    if (val)
        memcpy(r->val, val, vlen);
    return r;
}

static txnrec_t *txn_put(vg_state_t *st, const char *key, size_t len, const void *val, size_t vlen)
{
    return txn_put_h(st, key, len, vg_fhash(key, len), val, vlen);
}

/* ---- open / close ---- */

static int is_stats_agg(vg_agg_t agg)
{
    return agg >= VG_AGG_COUNT && agg <= VG_AGG_FRAUD_SHARE;
}

/* The order of a type's groups: by ring, then by delay (the latest end bucket first). */
static int group_after(const qgroup_t *a, const qgroup_t *b)
{
    return a->ring != b->ring ? a->ring > b->ring : a->ndelay > b->ndelay;
}

/* Groups the windowed stats features by (ring, delay), type by type, each group's window
 * lengths distinct and ascending. */
static void build_groups(vg_state_t *st)
{
    const vg_catalog_t *c = st->catalog;
    size_t nf = c->nfeatures;
    st->groups = vg_xcalloc(nf + 1, sizeof(*st->groups));
    for (size_t ty = 0; ty < c->ntypes; ty++) {
        st->group_first[ty] = st->ngroups;
        for (size_t i = 0; i < nf; i++) {
            const vg_feature_t *f = &c->features[i];
            if (f->type != (int)ty || !is_stats_agg(f->agg))
                continue;
            size_t g = st->group_first[ty];
            while (g < st->ngroups &&
                   (st->groups[g].ring != f->ring || st->groups[g].ndelay != f->ndelay))
                g++;
            qgroup_t *q = &st->groups[g];
            if (g == st->ngroups) {
                st->ngroups++;
                q->ring = f->ring;
                q->ndelay = f->ndelay;
                q->nwin = vg_xmalloc(nf * sizeof(*q->nwin));
                q->acc = vg_xmalloc(nf * sizeof(*q->acc));
            }
            size_t j = 0;
            while (j < q->nw && q->nwin[j] < f->nwin)
                j++;
            if (j == q->nw || q->nwin[j] != f->nwin) {
                memmove(q->nwin + j + 1, q->nwin + j, (q->nw - j) * sizeof(*q->nwin));
                q->nwin[j] = f->nwin;
                q->nw++;
            }
        }
    }
    st->group_first[c->ntypes] = st->ngroups;
    /* each type's groups by ring and delay, so that one pass over a ring serves all of its */
    for (size_t ty = 0; ty < c->ntypes; ty++)
        for (size_t g = st->group_first[ty] + 1; g < st->group_first[ty + 1]; g++)
            for (size_t h = g;
                 h > st->group_first[ty] && group_after(&st->groups[h - 1], &st->groups[h]); h--) {
                qgroup_t tmp = st->groups[h];
                st->groups[h] = st->groups[h - 1];
                st->groups[h - 1] = tmp;
            }
    st->qwin = vg_xcalloc(st->ngroups + 1, sizeof(*st->qwin));
    for (size_t g = 0; g < st->ngroups; g++)
        st->qwin[g] = (vg_qwin_t){
            .nwin = st->groups[g].nwin, .nw = st->groups[g].nw, .acc = st->groups[g].acc};
    st->plan = vg_xcalloc(nf + 1, sizeof(*st->plan));
    size_t n = 0;
    for (int a = 0; a < VG_NAGG; a++) {
        st->kind_first[a] = n;
        for (size_t i = 0; i < nf; i++) {
            const vg_feature_t *f = &c->features[i];
            if ((int)f->agg != a)
                continue;
            plan_t *p = &st->plan[n++];
            *p = (plan_t){(uint32_t)i, f->type, f->current && f->ndelay == 0, NULL};
            if (f->type < 0 || !is_stats_agg(f->agg))
                continue;
            /* its window in its group (the slots are final only once every window is in) */
            for (size_t g = st->group_first[f->type]; g < st->group_first[f->type + 1]; g++) {
                qgroup_t *q = &st->groups[g];
                for (size_t j = 0; j < q->nw; j++)
                    if (q->ring == f->ring && q->ndelay == f->ndelay && q->nwin[j] == f->nwin)
                        p->acc = &q->acc[j];
            }
        }
    }
    st->kind_first[VG_NAGG] = n;
}

vg_state_t *vg_state_open(const char *dir, const vg_catalog_t *catalog, const vg_state_opts_t *opts,
                          char *errbuf, size_t errlen)
{
    vg_state_t *st = vg_xcalloc(1, sizeof(*st));
    st->catalog = catalog;
    st->cache_limit = opts && opts->cache_bytes ? opts->cache_bytes : (size_t)256 << 20;
    st->txn_retention =
        opts && opts->txn_retention_ms ? opts->txn_retention_ms : catalog->label_retention;
    st->sync = opts ? !opts->nosync : 1;
    st->checkpoint_ns = opts && opts->checkpoint_ms > 0 ? opts->checkpoint_ms * 1000000 : 0;
    st->discard = opts && opts->scratch;
    st->async = st->checkpoint_ns || (opts && opts->async_writes);
    st->last_write_ns = vg_mono_ns();
    vg_buf_init(&st->offsets);
    st->watermark = INT64_MIN;
    st->committed_watermark = INT64_MIN;
    st->part = -1;
    vg_buf_init(&st->getbuf);
    vg_arena_init(&st->txn_arena, 1 << 20);
    vg_arena_init(&st->wtxn_arena, 1 << 20);
    pthread_mutex_init(&st->wmu, NULL);
    pthread_cond_init(&st->wcv, NULL);

    vg_kv_family_t fams[VG_STATE_MAX_TYPES + 2];
    char names[VG_STATE_MAX_TYPES][96];
    size_t n = 0;
    fams[n++] = (vg_kv_family_t){.name = "meta"};
    st->expire[0] = (expire_ctx_t){st, st->txn_retention};
    /* Records in key order (build_batch) into a skiplist memtable small enough to stay in
     * the CPU's cache: 32 MiB instead of 128 made commits of 20,000 ~7% cheaper. */
    fams[n++] = (vg_kv_family_t){.name = "txn",
                                 .expire = expire_cb,
                                 .expire_ctx = &st->expire[0],
                                 .write_buffer_bytes = 32u << 20};
    for (size_t t = 0; t < catalog->ntypes; t++) {
        snprintf(names[t], sizeof(names[t]), "entity.%s", catalog->types[t].name);
        st->expire[t + 1] = (expire_ctx_t){st, catalog->types[t].retention};
        fams[n++] = (vg_kv_family_t){.name = names[t],
                                     .expire = expire_cb,
                                     .expire_ctx = &st->expire[t + 1],
                                     .point_lookups = 1};
        st->cf_type[t] = (int)t + 2;
    }
    st->cf_meta = 0;
    st->cf_txn = 1;
    st->kv = vg_kv_open(dir, fams, n, NULL, errbuf, errlen);
    if (!st->kv)
        goto out_free;

    int found = 0;
    if (vg_kv_get(st->kv, st->cf_meta, META_CATALOG, strlen(META_CATALOG), &st->getbuf, &found,
                  errbuf, errlen) != VG_OK)
        goto out_free;
    if (found && strcmp(st->getbuf.data, catalog->version) != 0) {
        vg_errf(errbuf, errlen, VG_ERR_STATE,
                "state in %s was built by catalogue version %s, this catalogue is %s: use a new "
                "state directory",
                dir, st->getbuf.data, catalog->version);
        goto out_free;
    }
    st->batch = vg_kv_batch_new();
    if (!found) {
        vg_kv_batch_put(st->batch, st->kv, st->cf_meta, META_CATALOG, strlen(META_CATALOG),
                        catalog->version, strlen(catalog->version));
        if (vg_kv_write(st->kv, st->batch, 1, errbuf, errlen) != VG_OK)
            goto out_free;
        vg_kv_batch_clear(st->batch);
    }
    if (vg_kv_get(st->kv, st->cf_meta, META_WATERMARK, strlen(META_WATERMARK), &st->getbuf, &found,
                  errbuf, errlen) != VG_OK)
        goto out_free;
    if (found && st->getbuf.len == 8) {
        st->watermark = rdi64(st->getbuf.data);
        __atomic_store_n(&st->committed_watermark, st->watermark, __ATOMIC_RELEASE);
    }
    /* Values all carry the same encoding version (a directory is written by one build at a
     * time): one value per family tells whether an older build wrote them. */
    for (size_t t = 0; t < catalog->ntypes; t++) {
        vg_kv_iter_t *it = vg_kv_iter_new(st->kv, st->cf_type[t]);
        vg_kv_iter_seek(it, NULL, 0);
        uint32_t v = VG_ENTITY_VERSION;
        size_t vlen = 0;
        if (vg_kv_iter_valid(it)) {
            st->may_store[t] = 1;
            const void *val = vg_kv_iter_value(it, &vlen);
            if (vlen >= 4)
                memcpy(&v, val, 4);
        }
        vg_kv_iter_free(it);
        if (v != VG_ENTITY_VERSION) {
            vg_errf(errbuf, errlen, VG_ERR_STATE,
                    "state in %s holds entity encoding version %u, this build reads version %u: "
                    "rebuild the state in a new directory",
                    dir, v, VG_ENTITY_VERSION);
            goto out_free;
        }
    }

    st->nslots = 1024;
    st->slots = vg_xcalloc(st->nslots, sizeof(*st->slots));
    st->cache_bytes = st->nslots * sizeof(*st->slots);
    st->ntslots = 1024;
    st->tslots = vg_xcalloc(st->ntslots, sizeof(*st->tslots));
    st->setcap = 1;
    for (size_t r = 0; r < catalog->nrings; r++)
        if (catalog->rings[r].set_field >= 0 &&
            (size_t)catalog->rings[r].span * VG_SET_MAX + 1 > st->setcap)
            st->setcap = (size_t)catalog->rings[r].span * VG_SET_MAX + 1;
    if (st->setcap > 65536)
        st->setcap = 65536; /* distinct counts saturate there (documented) */
    st->setbuf = vg_xmalloc(st->setcap * sizeof(*st->setbuf));
    build_groups(st);
    for (size_t r = 0; r < catalog->nrings; r++) {
        size_t w = 0;
        while (w < st->nwidths && st->width[w] != catalog->rings[r].bucket)
            w++;
        if (w == st->nwidths)
            st->width[st->nwidths++] = catalog->rings[r].bucket;
        st->ring_width[r] = (int)w;
    }
    for (size_t r = 0; r < catalog->nrings; r++)
        st->max_growth[catalog->rings[r].type] += VG_RING_MAX_GROWTH;
    return st;

out_free:
    vg_state_close(st);
    return NULL;
}

static vg_err_t write_state(vg_state_t *st, int hold, char *errbuf, size_t errlen);

void vg_state_close(vg_state_t *st)
{
    if (!st)
        return;
    char eb[VG_ERRLEN];
    if (st->kv && st->batch && st->unwritten && !st->uncommitted && !st->discard &&
        vg_state_checkpoint(st, eb, sizeof(eb)) != VG_OK)
        vg_error("features", "writing the last commits at close failed: %s", eb);
    if (st->writer_started) {
        pthread_mutex_lock(&st->wmu);
        st->wstop = 1; /* it finishes a write in flight first */
        pthread_cond_broadcast(&st->wcv);
        pthread_mutex_unlock(&st->wmu);
        pthread_join(st->writer, NULL);
    }
    pthread_mutex_destroy(&st->wmu);
    pthread_cond_destroy(&st->wcv);
    vg_kv_close(st->kv); /* first: compaction threads read st */
    vg_kv_batch_free(st->batch);
    vg_kv_batch_free(st->wbatch);
    free(st->wtslots);
    vg_arena_free(&st->wtxn_arena);
    for (size_t i = 0; i < st->nslots; i++)
        if (st->slots[i].ent) {
            free(st->slots[i].ent);
        }
    free(st->slots);
    free(st->dirty);
    free(st->changed);
    vg_buf_free(&st->offsets);
    free(st->tslots);
    vg_arena_free(&st->txn_arena);
    vg_buf_free(&st->getbuf);
    free(st->setbuf);
    free(st->scratch);
    free(st->sortkeys);
    for (size_t g = 0; g < st->ngroups; g++) {
        free(st->groups[g].nwin);
        free(st->groups[g].acc);
    }
    free(st->groups);
    free(st->qwin);
    free(st->plan);
    free(st);
}

/* ---- processing ---- */

static int filter_pass(const vg_catalog_t *c, int fi, const vg_txn_t *txn)
{
    if (fi < 0)
        return 1;
    const vg_filter_t *f = &c->filters[fi];
    const char *s = txn->str[f->field];
    int eq = s && txn->len[f->field] == f->len && memcmp(s, f->value, f->len) == 0;
    return f->negate ? !eq : eq;
}

/* The hash of a present field of the current transaction (see fh). */
static inline uint64_t field_hash(vg_state_t *st, const vg_txn_t *txn, int field)
{
    uint32_t bit = 1u << field;
    if (!(st->fh_valid & bit)) {
        st->fh[field] = vg_fhash(txn->str[field], txn->len[field]);
        st->fh_valid |= bit;
    }
    return st->fh[field];
}

static double haversine_km(double lat1, double lon1, double lat2, double lon2)
{
    const double rad = M_PI / 180.0;
    double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    double a = sin(dlat / 2) * sin(dlat / 2) +
               cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
    return 2 * 6371.0088 * asin(fmin(1.0, sqrt(a)));
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    int64_t m = a % b;
    return m < 0 ? m + b : m;
}

/* A windowed statistic of the sums a (x: the current transaction's amount). Inlined with agg a
 * constant where the features are evaluated kind by kind. */
static inline __attribute__((always_inline)) double stat_value(vg_agg_t agg, const vg_acc_t *a,
                                                               double x)
{
    double count = a->count;
    switch (agg) {
    case VG_AGG_COUNT:
        return count;
    case VG_AGG_SUM:
        return a->sum;
    case VG_AGG_MEAN:
        return count > 0 ? a->sum / count : NAN;
    case VG_AGG_MIN:
        return count > 0 ? a->min : NAN;
    case VG_AGG_MAX:
        return count > 0 ? a->max : NAN;
    case VG_AGG_STD:
    case VG_AGG_ZSCORE: {
        if (count <= 0)
            return NAN;
        double var = a->m2 / count;
        double sd = var > 0 ? sqrt(var) : 0;
        if (agg == VG_AGG_STD)
            return sd;
        if (count < 2 || sd <= 0)
            return NAN;
        return (x - a->sum / count) / sd;
    }
    case VG_AGG_FRAUD_COUNT:
        return a->fraud;
    case VG_AGG_FRAUD_SHARE:
        return count > 0 ? a->fraud / count : 0.0;
    default:
        return NAN;
    }
}

/* The value of feature p (of kind agg: a constant where eval_kind inlines it). */
static inline __attribute__((always_inline)) double value(vg_state_t *st, vg_agg_t agg,
                                                          const plan_t *p, const vg_txn_t *txn)
{
    int64_t t = txn->ts_ms;
    switch (agg) {
    case VG_AGG_AMOUNT:
        return txn->amount;
    case VG_AGG_LOG_AMOUNT:
        return log1p(txn->amount);
    case VG_AGG_HOUR:
        return (double)(floor_mod(t, 86400000) / 3600000);
    case VG_AGG_DAY_OF_WEEK:
        return (double)floor_mod(vg_bucket_of(t, 86400000) + 3, 7);
    case VG_AGG_WEEKEND:
        return floor_mod(vg_bucket_of(t, 86400000) + 3, 7) >= 5 ? 1.0 : 0.0;
    case VG_AGG_NIGHT:
        return floor_mod(t, 86400000) / 3600000 <= 6 ? 1.0 : 0.0;
    default:
        break;
    }
    vg_entity_t *e = st->ents[p->type];
    if (!e)
        return NAN;
    /* Read in place: the query has just stored these sums field by field, and copying the
     * whole struct out again would load across those stores (a stall per feature). */
    if (is_stats_agg(agg) && !p->current)
        return stat_value(agg, p->acc, txn->amount);
    const vg_catalog_t *c = st->catalog;
    const vg_feature_t *f = &c->features[p->out];
    if (agg == VG_AGG_SINCE_LAST) {
        int64_t last = vg_blob_last_ts(&e->blob);
        if (last == INT64_MIN || t - last > f->window)
            return NAN;
        return t > last ? (double)(t - last) / 1000.0 : 0.0;
    }
    if (agg == VG_AGG_GEO_VELOCITY) {
        int64_t gts;
        double lat, lon;
        vg_blob_last_geo(&e->blob, &gts, &lat, &lon);
        if (gts == INT64_MIN || isnan(txn->lat) || isnan(txn->lon))
            return NAN;
        int64_t dt = t > gts ? t - gts : gts - t;
        if (dt > f->window)
            return NAN;
        double hours = (double)(dt > 60000 ? dt : 60000) / 3600000.0;
        return haversine_km(lat, lon, txn->lat, txn->lon) / hours;
    }
    int cur = p->current && filter_pass(c, c->rings[f->ring].filter, txn);
    if (agg == VG_AGG_DISTINCT || agg == VG_AGG_NEW) {
        int64_t hi = st->kw[st->ring_width[f->ring]] - f->ndelay;
        int64_t lo = hi - f->nwin + 1;
        int has = txn->str[f->field] != NULL;
        if (agg == VG_AGG_NEW)
            return has ? !vg_ring_set_contains(&e->blob, st->roff[f->ring], lo, hi,
                                               field_hash(st, txn, f->field))
                       : NAN;
        size_t n =
            vg_ring_query_set(&e->blob, st->roff[f->ring], lo, hi, st->setbuf, st->setcap - 1);
        uint64_t h = has ? field_hash(st, txn, f->field) : 0;
        int seen = 0;
        for (size_t i = 0; has && i < n && !seen; i++)
            seen = st->setbuf[i] == h;
        return (double)n + (cur && has && !seen ? 1 : 0);
    }
    vg_acc_t with = *p->acc;
    if (cur) {
        double x = txn->amount;
        vg_acc_merge(&with, 1, x, 0);
        with.min = fmin(with.min, x);
        with.max = fmax(with.max, x);
    }
    return stat_value(agg, &with, txn->amount);
}

/* The features of kind agg: one loop with no branch on the kind. */
static inline __attribute__((always_inline)) void eval_kind(vg_state_t *st, vg_agg_t agg,
                                                            const vg_txn_t *txn, double *out)
{
    const plan_t *p = st->plan + st->kind_first[agg];
    const plan_t *end = st->plan + st->kind_first[agg + 1];
    for (; p < end; p++)
        out[p->out] = value(st, agg, p, txn);
}

/* Every feature of the transaction, kind by kind (a switch on each feature's kind cost 5% of
 * compute in mispredicted jumps). */
static void evaluate(vg_state_t *st, const vg_txn_t *txn, double *out)
{
    eval_kind(st, VG_AGG_AMOUNT, txn, out);
    eval_kind(st, VG_AGG_LOG_AMOUNT, txn, out);
    eval_kind(st, VG_AGG_HOUR, txn, out);
    eval_kind(st, VG_AGG_DAY_OF_WEEK, txn, out);
    eval_kind(st, VG_AGG_WEEKEND, txn, out);
    eval_kind(st, VG_AGG_NIGHT, txn, out);
    eval_kind(st, VG_AGG_COUNT, txn, out);
    eval_kind(st, VG_AGG_SUM, txn, out);
    eval_kind(st, VG_AGG_MEAN, txn, out);
    eval_kind(st, VG_AGG_MIN, txn, out);
    eval_kind(st, VG_AGG_MAX, txn, out);
    eval_kind(st, VG_AGG_STD, txn, out);
    eval_kind(st, VG_AGG_ZSCORE, txn, out);
    eval_kind(st, VG_AGG_FRAUD_COUNT, txn, out);
    eval_kind(st, VG_AGG_FRAUD_SHARE, txn, out);
    eval_kind(st, VG_AGG_DISTINCT, txn, out);
    eval_kind(st, VG_AGG_NEW, txn, out);
    eval_kind(st, VG_AGG_SINCE_LAST, txn, out);
    eval_kind(st, VG_AGG_GEO_VELOCITY, txn, out);
}

/* The cached entity whose slot holds hash h, if any (another entity with the same hash is
 * as good for a prefetch). */
static inline const vg_entity_t *slot_peek(const vg_state_t *st, uint64_t h)
{
    size_t mask = st->nslots - 1;
    for (size_t i = h & mask; st->slots[i].ent; i = (i + 1) & mask)
        if (st->slots[i].hash == h)
            return st->slots[i].ent;
    return NULL;
}

void vg_state_prefetch(vg_state_t *st, const vg_txn_t *txn)
{
    const vg_catalog_t *c = st->catalog;
    /* Three stages, one per call, each on memory the previous stage asked for a call ago:
     * the oldest hinted transaction's state past its entity header (the length is known
     * now), the next one's entity header and first rings, and this one's table slots. */
    int cur = st->pf_cur, prev = cur ? cur - 1 : 2, old = prev ? prev - 1 : 2;
    for (uint32_t j = 0; j < st->pf_n[old]; j++) {
        const vg_entity_t *e = slot_peek(st, st->pf_hash[old][j]);
        if (!e)
            continue;
        const char *p = (const char *)e;
        uint32_t end = (uint32_t)ent_blob_off(e->keylen) + e->blob.len;
        for (uint32_t off = 256; off < end && off < 2048; off += 64)
            __builtin_prefetch(p + off);
    }
    for (uint32_t j = 0; j < st->pf_n[prev]; j++) {
        const char *p = (const char *)slot_peek(st, st->pf_hash[prev][j]);
        if (p)
            for (int l = 0; l < 4; l++)
                __builtin_prefetch(p + 64 * l);
    }
    st->pf_cur = old; /* the oldest slot is reused for the newest transaction */
    uint32_t n = 0;
    size_t mask = st->nslots - 1;
    st->fh_valid = 0;
    for (size_t ty = 0; ty < c->ntypes; ty++) {
        int field = c->types[ty].field;
        if (!txn->str[field])
            continue;
        uint64_t h = entity_mix((int)ty, field_hash(st, txn, field));
        st->pf_hash[old][n++] = h;
        __builtin_prefetch(&st->slots[h & mask]);
    }
    st->pf_n[old] = n;
    if (c->uses_labels && txn->str[VG_F_TXN_ID]) {
        uint64_t h = vg_fhash(txn->str[VG_F_TXN_ID], txn->len[VG_F_TXN_ID]);
        __builtin_prefetch(&st->tslots[h & (st->ntslots - 1)]);
    }
}

vg_err_t vg_state_process(vg_state_t *st, const vg_txn_t *txn, double *out)
{
    const vg_catalog_t *c = st->catalog;
    st->uncommitted = 1;
    int64_t t = txn->ts_ms;
    int64_t wm = st->watermark > t ? st->watermark : t;
    vg_err_t err;
    st->fh_valid = 0;
    /* The entities of one transaction are unrelated cache lines in a large table: issue
     * their loads together (slot, then entity, then its rings) instead of one miss after
     * another. */
    uint64_t hs[VG_STATE_MAX_TYPES];
    size_t mask = st->nslots - 1;
    for (size_t w = 0; w < st->nwidths; w++)
        st->kw[w] = vg_bucket_of(t, st->width[w]);
    int record = c->uses_labels && txn->str[VG_F_TXN_ID];
    uint64_t txn_h = 0;
    if (record) {
        txn_h = vg_fhash(txn->str[VG_F_TXN_ID], txn->len[VG_F_TXN_ID]);
        __builtin_prefetch(&st->tslots[txn_h & (st->ntslots - 1)]);
    }
    for (size_t ty = 0; ty < c->ntypes; ty++) {
        int field = c->types[ty].field;
        if (!txn->str[field])
            continue;
        hs[ty] = entity_mix((int)ty, field_hash(st, txn, field));
        __builtin_prefetch(&st->slots[hs[ty] & mask]);
    }
    for (size_t ty = 0; ty < c->ntypes; ty++) {
        if (!txn->str[c->types[ty].field])
            continue;
        for (size_t i = hs[ty] & mask; st->slots[i].ent; i = (i + 1) & mask)
            if (st->slots[i].hash == hs[ty]) {
                /* the header, key and first rings: the length is not known yet */
                const char *p = (const char *)st->slots[i].ent;
                for (int l = 0; l < 4; l++)
                    __builtin_prefetch(p + 64 * l);
                break;
            }
    }
    for (size_t ty = 0; ty < c->ntypes; ty++) {
        int field = c->types[ty].field;
        st->ents[ty] = NULL;
        if (!txn->str[field])
            continue;
        vg_entity_t *e = entity_get_h(st, (int)ty, txn->str[field], txn->len[field], hs[ty], &err);
        if (!e)
            return err;
        for (uint32_t off = 0; off < e->blob.len && off < 2048; off += 64)
            __builtin_prefetch(e->blob.data + off);
        st->ents[ty] = e;
    }
    for (size_t ty = 0; ty < c->ntypes; ty++) {
        vg_entity_t *e = st->ents[ty];
        if (!e)
            continue;
        entity_expire(st, e, wm);
        vg_blob_ring_offsets(&e->blob, c, (int)ty, st->roff + c->types[ty].first_ring);
        /* a type's groups are sorted by ring: one walk per ring serves all its delays */
        for (size_t g = st->group_first[ty]; g < st->group_first[ty + 1];) {
            int ring = st->groups[g].ring;
            size_t first = g;
            int64_t k = st->kw[st->ring_width[ring]];
            for (; g < st->group_first[ty + 1] && st->groups[g].ring == ring; g++)
                st->qwin[g].hi = k - st->groups[g].ndelay;
            vg_ring_query_stats(&e->blob, &c->rings[ring], st->roff[ring], st->qwin + first,
                                g - first);
        }
    }
    evaluate(st, txn, out);

    uint64_t ringmask = 0;
    for (size_t ty = 0; ty < c->ntypes; ty++) {
        vg_entity_t *e = st->ents[ty];
        if (!e)
            continue;
        const vg_etype_t *et = &c->types[ty];
        /* The rings rewritten into scratch in one pass, then copied back over the old ones. */
        uint32_t need = e->blob.len + st->max_growth[ty];
        if (need > st->scratchcap) {
            st->scratchcap = need * 2;
            free(st->scratch);
            st->scratch = vg_xmalloc(st->scratchcap);
        }
        vg_ring_add_t add[VG_MAX_RINGS];
        for (int i = 0; i < et->nrings; i++) {
            int r = et->first_ring + i;
            const vg_ring_def_t *rd = &c->rings[r];
            add[i].k = st->kw[st->ring_width[r]];
            add[i].skip = !filter_pass(c, rd->filter, txn) ||
                          (rd->set_field >= 0 && !txn->str[rd->set_field]);
            add[i].hash =
                rd->set_field >= 0 && !add[i].skip ? field_hash(st, txn, rd->set_field) : 0;
            if (!add[i].skip && rd->set_field < 0 && rd->labels)
                ringmask |= 1ULL << r;
        }
        uint8_t *d = vg_entity_add(&e->blob, c, (int)ty, add, txn->amount, st->scratch);
        uint32_t len = VG_ENTITY_HDR + (uint32_t)(d - st->scratch);
        if (len > e->blob.len)
            e = st->ents[ty] = entity_room(st, e, len - e->blob.len);
        memcpy(e->blob.data + VG_ENTITY_HDR, st->scratch, len - VG_ENTITY_HDR);
        e->blob.len = len;
        vg_blob_touch(&e->blob, t, txn->lat, txn->lon);
        e->part = st->part;
        mark_dirty(st, e);
    }
    st->watermark = wm;

    if (record) { /* written in place: its size first, then the fields */
        uint16_t lens[VG_STATE_MAX_TYPES];
        size_t vlen = TXN_REC_HDR;
        for (size_t ty = 0; ty < c->ntypes; ty++) {
            if (c->types[ty].label_slot < 0)
                continue;
            int field = c->types[ty].field;
            lens[ty] = txn->str[field] && txn->len[field] < 0xffff ? (uint16_t)txn->len[field]
                                                                   : (uint16_t)0xffff;
            vlen += 2 + (lens[ty] != 0xffff ? lens[ty] : 0);
        }
        txnrec_t *r =
            txn_put_h(st, txn->str[VG_F_TXN_ID], txn->len[VG_F_TXN_ID], txn_h, NULL, vlen);
        uint8_t *w = r->val;
        uint32_t hdr[2] = {(uint32_t)(st->part + 1), 0}; /* partition + 1, flags */
        memcpy(w, hdr, 8);
        memcpy(w + 8, &t, 8);
        memcpy(w + 16, &ringmask, 8);
        w += TXN_REC_HDR;
        for (size_t ty = 0; ty < c->ntypes; ty++) {
            if (c->types[ty].label_slot < 0)
                continue;
            memcpy(w, &lens[ty], 2);
            w += 2;
            if (lens[ty] != 0xffff) {
                memcpy(w, txn->str[c->types[ty].field], lens[ty]);
                w += lens[ty];
            }
        }
    }
    return VG_OK;
}

/* ---- labels ---- */

vg_err_t vg_state_label(vg_state_t *st, const vg_label_t *label)
{
    const vg_catalog_t *c = st->catalog;
    if (!c->uses_labels)
        return VG_OK;
    st->uncommitted = 1;
    const char *id = label->txn_id;
    if (!id)
        return VG_ERR_NOTFOUND;
    size_t idlen = strlen(id);
    uint64_t h = vg_fhash(id, idlen);
    txnrec_t *r = txn_slot(st, id, idlen, h)->rec;
    vg_err_t err;
    if (!r && st->nwtxns) { /* in a checkpoint being written: RocksDB may not have it yet */
        const txnrec_t *w = tab_slot(st->wtslots, st->nwtslots, id, idlen, h)->rec;
        if (w)
            r = txn_put(st, id, idlen, w->val, w->vlen);
    }
    if (!r) {
        int found = 0;
        char eb[VG_ERRLEN];
        if ((err = vg_kv_get(st->kv, st->cf_txn, id, idlen, &st->getbuf, &found, eb, sizeof(eb))) !=
            VG_OK) {
            vg_error("features", "%s", eb);
            return err;
        }
        if (!found)
            return VG_ERR_NOTFOUND;
        if (st->getbuf.len < TXN_REC_HDR)
            return VG_ERR_STATE;
        r = txn_put(st, id, idlen, st->getbuf.data, st->getbuf.len);
    }
    int64_t ts = rdi64(r->val + 8);
    if (st->watermark != INT64_MIN && ts < st->watermark - st->txn_retention)
        return VG_ERR_NOTFOUND;
    uint32_t flags;
    memcpy(&flags, r->val + 4, 4);
    int counted = flags & 1;
    int want = label->fraud ? 1 : 0;
    if (counted == want)
        return VG_OK;
    uint64_t mask = (uint64_t)rdi64(r->val + 16);
    uint32_t part1;
    memcpy(&part1, r->val, 4);
    size_t off = TXN_REC_HDR;
    for (size_t ty = 0; ty < c->ntypes; ty++) {
        if (c->types[ty].label_slot < 0)
            continue;
        if (off + 2 > r->vlen)
            return VG_ERR_STATE;
        uint16_t len;
        memcpy(&len, r->val + off, 2);
        off += 2;
        if (len == 0xffff)
            continue;
        if (off + len > r->vlen)
            return VG_ERR_STATE;
        const char *key = (const char *)r->val + off;
        off += len;
        vg_entity_t *e = entity_get(st, (int)ty, key, len, &err);
        if (!e)
            return err;
        entity_expire(st, e, st->watermark);
        const vg_etype_t *et = &c->types[ty];
        e = entity_room(st, e, (uint32_t)et->nrings); /* a fraud count may grow a byte a ring */
        int changed = 0;
        for (int ri = et->first_ring; ri < et->first_ring + et->nrings; ri++)
            if (mask & (1ULL << ri))
                changed |= vg_ring_add_fraud(&e->blob, c, ri, ts, want ? 1 : -1);
        if (changed) {
            if (e->part < 0)
                e->part = (int32_t)part1 - 1;
            mark_dirty(st, e);
        }
    }
    flags = (flags & ~1u) | (uint32_t)want;
    memcpy(r->val + 4, &flags, 4);
    return VG_OK;
}

/* ---- commit ---- */

/* 1 if the entity holds nothing worth keeping: never used, or idle beyond its retention. */
static int entity_gone(const vg_state_t *st, const vg_entity_t *e)
{
    int64_t last = vg_blob_last_ts(&e->blob);
    int64_t ret = st->catalog->types[e->type].retention;
    return last == INT64_MIN || (st->watermark != INT64_MIN && last < st->watermark - ret);
}

/* A pending record's key, for sorting: the first 16 bytes, big-endian, decide most
 * comparisons without touching the record. */
typedef struct txn_sortkey {
    uint64_t k0, k1;
    const txnrec_t *rec;
} txn_sortkey_t;

static uint64_t key_word(const char *key, size_t len, size_t off)
{
    uint64_t w = 0;
    if (off + 8 <= len) { /* one load; in big-endian order it compares as the bytes do */
        memcpy(&w, key + off, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        return w;
    }
    for (size_t i = 0; i < 8; i++)
        w = w << 8 | (off + i < len ? (uint8_t)key[off + i] : 0);
    return w;
}

/* Key order of two pending records. */
static inline int sortkey_less(const txn_sortkey_t *a, const txn_sortkey_t *b)
{
    if (a->k0 != b->k0)
        return a->k0 < b->k0;
    if (a->k1 != b->k1)
        return a->k1 < b->k1;
    uint32_t la = a->rec->klen, lb = b->rec->klen, n = la < lb ? la : lb;
    int c = n > 16 ? memcmp(a->rec->key + 16, b->rec->key + 16, n - 16) : 0;
    return c ? c < 0 : la < lb;
}

/* Sorts keys[0..n) in key order: a quicksort (median of three, the smaller side first, the
 * comparison inlined) ending in insertion sorts, where glibc's qsort merges through a call
 * to the comparison for each step. */
static void sort_keys(txn_sortkey_t *keys, size_t n)
{
    while (n > 16) {
        size_t m = n / 2;
        txn_sortkey_t t;
#define SWAP(i, j) (t = keys[i], keys[i] = keys[j], keys[j] = t)
        if (sortkey_less(&keys[m], &keys[0]))
            SWAP(m, 0);
        if (sortkey_less(&keys[n - 1], &keys[m])) {
            SWAP(n - 1, m);
            if (sortkey_less(&keys[m], &keys[0]))
                SWAP(m, 0);
        }
        txn_sortkey_t pivot = keys[m];
        size_t i = 0, j = n - 1;
        for (;;) { /* Hoare's partition: keys[0 .. j] <= pivot <= keys[j + 1 .. n) */
            while (sortkey_less(&keys[i], &pivot))
                i++;
            while (sortkey_less(&pivot, &keys[j]))
                j--;
            if (i >= j)
                break;
            SWAP(i, j);
            i++;
            j--;
        }
#undef SWAP
        size_t left = j + 1;
        if (left < n - left) {
            sort_keys(keys, left);
            keys += left;
            n -= left;
        } else {
            sort_keys(keys + left, n - left);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        txn_sortkey_t k = keys[i];
        size_t j = i;
        for (; j > 0 && sortkey_less(&k, &keys[j - 1]); j--)
            keys[j] = keys[j - 1];
        keys[j] = k;
    }
}

/* Puts the n records of table t into batch b in key order. Records are written once each,
 * a million or more a memtable: their family keeps a skiplist memtable (not a hash one, as
 * entities do), where an insert in key order starts where the previous one ended, and a
 * flush finds the memtable sorted. (A hash memtable of records made each flush sort it by
 * random skiplist inserts: 8 s of a core for 1.5M records.) A checkpoint's records are in
 * flight, no longer changed, so its writer thread does this, not the caller's. */
static void put_records(vg_state_t *st, vg_kv_batch_t *b, const tslot_t *t, size_t nslots, size_t n)
{
    if (n > st->sortcap) {
        st->sortcap = n * 2;
        st->sortkeys = vg_xrealloc(st->sortkeys, st->sortcap * sizeof(*st->sortkeys));
    }
    size_t k = 0;
    for (size_t i = 0; n && i < nslots; i++) {
        const txnrec_t *r = t[i].rec;
        if (r)
            st->sortkeys[k++] =
                (txn_sortkey_t){key_word(r->key, r->klen, 0), key_word(r->key, r->klen, 8), r};
    }
    sort_keys(st->sortkeys, k);
    for (size_t i = 0; i < k; i++) {
        const txnrec_t *r = st->sortkeys[i].rec;
        vg_kv_batch_put(b, st->kv, st->cf_txn, r->key, r->klen, r->val, r->vlen);
    }
}

/* Fills st->batch with the dirty entities, pending records and the offsets of the last
 * commit: the state as of that commit (no change since it: see vg_state_close). The
 * entities go in no particular order: their families' memtables hash whole keys (kv.h
 * point_lookups), which suits keys rewritten at every commit. */
static void build_batch(vg_state_t *st)
{
    vg_kv_batch_clear(st->batch);
    for (size_t i = 0; i < st->ndirty; i++) {
        /* The dirty entities are scattered over the heap: ask for each one's header 16 ahead
         * and, its length known by then, for all of it 8 ahead (the put copies it whole). */
        if (i + 16 < st->ndirty)
            __builtin_prefetch(st->dirty[i + 16]);
        if (i + 8 < st->ndirty) {
            const vg_entity_t *f = st->dirty[i + 8];
            const char *p = (const char *)f;
            uint32_t end = (uint32_t)ent_blob_off(f->keylen) + f->blob.len;
            for (uint32_t off = 64; off < end; off += 64)
                __builtin_prefetch(p + off);
        }
        vg_entity_t *e = st->dirty[i];
        if (entity_gone(st, e))
            vg_kv_batch_delete(st->batch, st->kv, st->cf_type[e->type], e->key, e->keylen);
        else
            vg_kv_batch_put(st->batch, st->kv, st->cf_type[e->type], e->key, e->keylen,
                            e->blob.data, e->blob.len);
    }
    if (!st->async) /* otherwise the writer thread puts them (writer_main) */
        put_records(st, st->batch, st->tslots, st->ntslots, st->ntxns);
    vg_kv_batch_put(st->batch, st->kv, st->cf_meta, META_OFFSETS, strlen(META_OFFSETS),
                    st->offsets.len ? st->offsets.data : "", st->offsets.len);
    vg_kv_batch_put(st->batch, st->kv, st->cf_meta, META_WATERMARK, strlen(META_WATERMARK),
                    &st->watermark, 8);
}

/* After a batch is built and its write under way or done: nothing is dirty or pending. */
static void batch_taken(vg_state_t *st)
{
    for (size_t i = 0; i < st->ndirty; i++)
        st->dirty[i]->dirty = 0;
    st->ndirty = 0;
    st->txn_bytes = 0;
    st->writes++;
    __atomic_add_fetch(&st->committed_bytes, vg_kv_batch_bytes(st->batch), __ATOMIC_RELAXED);
    st->unwritten = 0;
    st->last_write_ns = vg_mono_ns();
}

static void *writer_main(void *arg)
{
    vg_state_t *st = arg;
    pthread_mutex_lock(&st->wmu);
    for (;;) {
        while ((!st->wbusy || st->wheld) && !st->wstop)
            pthread_cond_wait(&st->wcv, &st->wmu);
        if (!st->wbusy || st->wheld) /* stopping; a held write never released is dropped */
            break;
        pthread_mutex_unlock(&st->wmu);
        size_t before = vg_kv_batch_bytes(st->wbatch);
        put_records(st, st->wbatch, st->wtslots, st->nwtslots, st->nwtxns);
        __atomic_add_fetch(&st->committed_bytes, vg_kv_batch_bytes(st->wbatch) - before,
                           __ATOMIC_RELAXED);
        char eb[VG_ERRLEN];
        vg_err_t err = vg_kv_write(st->kv, st->wbatch, st->sync, eb, sizeof(eb));
        if (!err)
            __atomic_store_n(&st->committed_watermark, st->wwatermark, __ATOMIC_RELEASE);
        pthread_mutex_lock(&st->wmu);
        if (err && !st->werr) {
            st->werr = err;
            memcpy(st->werrbuf, eb, sizeof(eb));
        }
        st->wbusy = 0;
        pthread_cond_broadcast(&st->wcv);
    }
    pthread_mutex_unlock(&st->wmu);
    return NULL;
}

/* Waits until no write is in flight; the first failed write's error, if any (sticky). A
 * held write is the caller's mistake, not a wait (it would never end). */
static vg_err_t writer_wait(vg_state_t *st, char *errbuf, size_t errlen)
{
    if (!st->writer_started)
        return VG_OK;
    pthread_mutex_lock(&st->wmu);
    if (st->wbusy && st->wheld) {
        pthread_mutex_unlock(&st->wmu);
        return vg_errf(errbuf, errlen, VG_ERR_STATE,
                       "state: the previous commit's write is still held (vg_state_release)");
    }
    while (st->wbusy)
        pthread_cond_wait(&st->wcv, &st->wmu);
    vg_err_t err = st->werr;
    if (err)
        vg_errf(errbuf, errlen, err, "%s", st->werrbuf);
    pthread_mutex_unlock(&st->wmu);
    return err;
}

/* Writes what the commits changed. Without checkpoint_ms or async_writes, here and now.
 * With either, on the writer thread: this waits for the previous write, builds the batch
 * and returns. */
static vg_err_t write_state(vg_state_t *st, int hold, char *errbuf, size_t errlen)
{
    vg_err_t err;
    if (!st->async) {
        build_batch(st);
        if ((err = vg_kv_write(st->kv, st->batch, st->sync, errbuf, errlen)) != VG_OK)
            return err;
        batch_taken(st);
        if (st->ntxns) {
            memset(st->tslots, 0, st->ntslots * sizeof(*st->tslots));
            st->ntxns = 0;
            vg_arena_reset(&st->txn_arena);
        }
        __atomic_store_n(&st->committed_watermark, st->watermark, __ATOMIC_RELEASE);
        evict(st);
        return VG_OK;
    }
    if ((err = writer_wait(st, errbuf, errlen)) != VG_OK)
        return err;
    evict(st); /* every write handed over is applied: any clean entity may go */
    if (!st->writer_started) {
        st->wbatch = vg_kv_batch_new();
        if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
            vg_kv_batch_free(st->wbatch);
            st->wbatch = NULL;
            return vg_errf(errbuf, errlen, VG_ERR_STATE, "cannot start the state writer thread");
        }
        st->writer_started = 1;
    }
    build_batch(st);
    batch_taken(st);
    /* the records go in flight: swap the pending table with the (finished) in-flight one */
    if (st->wtslots)
        memset(st->wtslots, 0, st->nwtslots * sizeof(*st->wtslots));
    vg_arena_reset(&st->wtxn_arena);
    tslot_t *tslots = st->wtslots;
    size_t ntslots = st->nwtslots;
    vg_arena_t arena = st->wtxn_arena;
    st->wtslots = st->tslots;
    st->nwtslots = st->ntslots;
    st->nwtxns = st->ntxns;
    st->wtxn_arena = st->txn_arena;
    if (!tslots) { /* the first time: a new empty table */
        ntslots = 1024;
        tslots = vg_xcalloc(ntslots, sizeof(*tslots));
    }
    st->tslots = tslots;
    st->ntslots = ntslots;
    st->ntxns = 0;
    st->txn_arena = arena;
    pthread_mutex_lock(&st->wmu);
    vg_kv_batch_t *b = st->wbatch;
    st->wbatch = st->batch;
    st->batch = b;
    st->wwatermark = st->watermark;
    st->wbusy = 1;
    st->wheld = hold;
    pthread_cond_broadcast(&st->wcv);
    pthread_mutex_unlock(&st->wmu);
    return VG_OK;
}

static vg_err_t commit(vg_state_t *st, const void *offsets, size_t len, int hold, char *errbuf,
                       size_t errlen)
{
    vg_buf_reset(&st->offsets);
    if (offsets)
        vg_buf_append(&st->offsets, offsets, len);
    st->have_offsets = 1;
    for (size_t i = 0; i < st->nchanged; i++)
        st->changed[i]->changed = 0;
    st->nchanged = 0;
    st->uncommitted = 0;
    st->unwritten = 1;
    st->commits++;
    /* Due by time (not for a scratch state), or because only a write lets the cache shrink
     * (dirty entities stay) and frees the pending records. */
    if (!st->checkpoint_ns ||
        (!st->discard && vg_mono_ns() - st->last_write_ns >= st->checkpoint_ns) ||
        st->cache_bytes + st->txn_bytes + st->ntslots * sizeof(tslot_t) > st->cache_limit) {
        vg_err_t err = write_state(st, hold, errbuf, errlen);
        if (err)
            st->uncommitted = 1; /* so that closing does not write it after all */
        return err;
    }
    return VG_OK;
}

vg_err_t vg_state_commit(vg_state_t *st, const void *offsets, size_t len, char *errbuf,
                         size_t errlen)
{
    return commit(st, offsets, len, 0, errbuf, errlen);
}

vg_err_t vg_state_commit_held(vg_state_t *st, const void *offsets, size_t len, char *errbuf,
                              size_t errlen)
{
    if (!st->async)
        return vg_errf(errbuf, errlen, VG_ERR_STATE,
                       "state: a held commit needs async_writes or checkpoint_ms");
    return commit(st, offsets, len, 1, errbuf, errlen);
}

void vg_state_release(vg_state_t *st)
{
    if (!st->writer_started)
        return;
    pthread_mutex_lock(&st->wmu);
    st->wheld = 0;
    pthread_cond_broadcast(&st->wcv);
    pthread_mutex_unlock(&st->wmu);
}

vg_err_t vg_state_wait_written(vg_state_t *st, char *errbuf, size_t errlen)
{
    return writer_wait(st, errbuf, errlen);
}

vg_err_t vg_state_checkpoint(vg_state_t *st, char *errbuf, size_t errlen)
{
    vg_err_t err = st->unwritten ? write_state(st, 0, errbuf, errlen) : VG_OK;
    return err ? err : writer_wait(st, errbuf, errlen);
}

vg_err_t vg_state_offsets(vg_state_t *st, void **blob, size_t *len)
{
    int found = 0;
    char eb[VG_ERRLEN];
    *blob = NULL;
    *len = 0;
    if (st->have_offsets) { /* RocksDB may hold an older commit's (checkpoint_ms) */
        if (st->offsets.len > 0) {
            *blob = vg_xmalloc(st->offsets.len);
            memcpy(*blob, st->offsets.data, st->offsets.len);
            *len = st->offsets.len;
        }
        return VG_OK;
    }
    vg_err_t err = vg_kv_get(st->kv, st->cf_meta, META_OFFSETS, strlen(META_OFFSETS), &st->getbuf,
                             &found, eb, sizeof(eb));
    if (err) {
        vg_error("features", "%s", eb);
        return err;
    }
    if (found && st->getbuf.len > 0) {
        *blob = vg_xmalloc(st->getbuf.len);
        memcpy(*blob, st->getbuf.data, st->getbuf.len);
        *len = st->getbuf.len;
    }
    return VG_OK;
}

void vg_state_stats(vg_state_t *st, vg_state_stats_t *stats)
{
    const vg_catalog_t *c = st->catalog;
    memset(stats, 0, sizeof(*stats));
    stats->ntypes = c->ntypes;
    for (size_t t = 0; t < c->ntypes; t++) {
        stats->types[t].entity = c->types[t].name;
        stats->types[t].stored_estimate =
            vg_kv_property(st->kv, st->cf_type[t], "rocksdb.estimate-num-keys");
    }
    for (size_t i = 0; i < st->nslots; i++) {
        vg_entity_t *e = st->slots[i].ent;
        if (!e)
            continue;
        stats->types[e->type].cached++;
        stats->types[e->type].cached_bytes += e->blob.len;
    }
    stats->cache_bytes = st->cache_bytes;
    stats->cache_entries = st->nents;
    stats->dirty = st->ndirty;
    stats->pending_txns = st->ntxns;
    stats->loads = st->loads;
    stats->evictions = st->evictions;
    stats->expired = st->expired;
    stats->commits = st->commits;
    stats->checkpoints = st->writes;
    stats->committed_bytes = __atomic_load_n(&st->committed_bytes, __ATOMIC_RELAXED);
    stats->watermark_ms = st->watermark;
}

/* ---- changelog ---- */

void vg_state_set_partition(vg_state_t *st, int32_t partition)
{
    st->part = partition;
}

size_t vg_state_changes(vg_state_t *st, vg_state_change_cb *cb, void *opaque)
{
    for (size_t i = 0; i < st->nchanged; i++) {
        const vg_entity_t *e = st->changed[i];
        int gone = entity_gone(st, e);
        cb(opaque, e->part, st->catalog->types[e->type].name, e->key, e->keylen,
           gone ? NULL : e->blob.data, gone ? 0 : e->blob.len);
    }
    return st->nchanged;
}

vg_err_t vg_state_restore(vg_state_t *st, const char *entity, const char *key, size_t klen,
                          const void *value, size_t vlen, char *errbuf, size_t errlen)
{
    const vg_catalog_t *c = st->catalog;
    int type = -1;
    for (size_t ty = 0; ty < c->ntypes; ty++)
        if (strcmp(c->types[ty].name, entity) == 0)
            type = (int)ty;
    if (type < 0)
        return vg_errf(errbuf, errlen, VG_ERR_STATE,
                       "changelog record for entity type '%s', which the catalogue does not have",
                       entity);
    if (value && vg_blob_check(value, vlen, c, type) != 0)
        return vg_errf(errbuf, errlen, VG_ERR_STATE,
                       "changelog record for %s %.*s does not fit the catalogue's layout", entity,
                       (int)klen, key);
    vg_err_t err;
    st->uncommitted = 1;
    vg_entity_t *e = entity_get(st, type, key, klen, &err);
    if (!e)
        return vg_errf(errbuf, errlen, err, "reading %s %.*s failed", entity, (int)klen, key);
    if (value) {
        e = entity_room(st, e, vlen > e->blob.len ? (uint32_t)(vlen - e->blob.len) : 0);
        memcpy(e->blob.data, value, vlen);
        e->blob.len = (uint32_t)vlen;
    } else {
        vg_blob_init_entity(&e->blob, c, type);
    }
    int64_t last = vg_blob_last_ts(&e->blob);
    if (last != INT64_MIN && last > st->watermark)
        st->watermark = last;
    e->part = st->part;
    mark_dirty(st, e);
    return VG_OK;
}

size_t vg_state_partition_sizes(vg_state_t *st, uint64_t *bytes, uint64_t *entities, size_t max)
{
    size_t n = 0;
    memset(bytes, 0, max * sizeof(*bytes));
    memset(entities, 0, max * sizeof(*entities));
    for (size_t i = 0; i < st->nslots; i++) {
        const vg_entity_t *e = st->slots[i].ent;
        if (!e || e->part < 0 || (size_t)e->part >= max)
            continue;
        bytes[e->part] += e->blob.len;
        entities[e->part]++;
        if ((size_t)e->part >= n)
            n = (size_t)e->part + 1;
    }
    return n;
}
