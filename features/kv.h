/*
 * kv.h - a small, generic key-value store over RocksDB: one directory, named column
 * families, point reads, atomic write batches and ordered (prefix) iteration.
 *
 * This is the only interface in vigil that touches RocksDB; kv.c is the only file that
 * includes rocksdb/c.h. The feature state (features/state.c) and the analyst case store use
 * it, so it knows nothing about either: keys and values are opaque bytes.
 *
 * Guarantees:
 *  - a batch is applied atomically: after a crash the store holds all of a written batch or
 *    none of it; with sync = 1 a batch that vg_kv_write() acknowledged survives a power loss;
 *  - column families named at open are created if missing; families already on disk but
 *    not named are opened too (RocksDB requires it) and left alone;
 *  - an optional per-family expiry callback is consulted during compaction and may drop
 *    entries (it runs on RocksDB's background threads: it must be thread-safe and must not
 *    call back into the store).
 *
 * Handles are not thread-safe: one thread uses a vg_kv_t and its batches and iterators.
 */
#ifndef VG_KV_H
#define VG_KV_H

#include "engine/common.h"

typedef struct vg_kv vg_kv_t;
typedef struct vg_kv_batch vg_kv_batch_t;
typedef struct vg_kv_iter vg_kv_iter_t;

/* Returns 1 to drop the entry during compaction. Called from background threads. */
typedef int (*vg_kv_expire_fn)(void *ctx, const void *key, size_t klen, const void *val,
                               size_t vlen);

typedef struct vg_kv_family {
    const char *name;          /* column family name; "default" is always there */
    vg_kv_expire_fn expire;    /* NULL: never drop */
    void *expire_ctx;          /* passed to expire; must outlive the store */
    int point_lookups;         /* 1: tune for get/put by whole key (a hash memtable, far cheaper
                                  writes); ordered iteration still works but costs more, and so
                                  does each flush, which sorts the memtable */
    size_t write_buffer_bytes; /* this family's memtable size; 0 = the store's */
} vg_kv_family_t;

typedef struct vg_kv_opts {
    size_t block_cache_bytes;  /* RocksDB block cache; 0 = 64 MiB */
    size_t write_buffer_bytes; /* memtable size per family; 0 = 32 MiB */
} vg_kv_opts_t;

/*
 * Opens (creating) the store in dir with the given families, in that order: family i of
 * the array is handle i in every call below. opts NULL = defaults. NULL with a message in
 * errbuf on error (e.g. the directory is locked by another process).
 */
vg_kv_t *vg_kv_open(const char *dir, const vg_kv_family_t *families, size_t nfamilies,
                    const vg_kv_opts_t *opts, char *errbuf, size_t errlen);
/* Flushes nothing (writes are durable per their batch's sync flag) and closes. NULL: no-op. */
void vg_kv_close(vg_kv_t *kv);

/*
 * Reads key from family cf into out (replacing its content; out->data is NUL-terminated).
 * *found is 0 when the key is absent (out is then empty). VG_ERR_STATE with RocksDB's text.
 */
vg_err_t vg_kv_get(vg_kv_t *kv, int cf, const void *key, size_t klen, vg_buf_t *out, int *found,
                   char *errbuf, size_t errlen);

/* An integer RocksDB property of a family ("rocksdb.estimate-num-keys"); 0 if unknown. */
uint64_t vg_kv_property(vg_kv_t *kv, int cf, const char *name);

/* Forces a compaction of a family's whole key range (runs expiry callbacks). */
void vg_kv_compact(vg_kv_t *kv, int cf);

/* ---- write batches: puts and deletes applied together by vg_kv_write() ---- */

vg_kv_batch_t *vg_kv_batch_new(void);
void vg_kv_batch_free(vg_kv_batch_t *batch);
/* The batch copies key and value. */
void vg_kv_batch_put(vg_kv_batch_t *batch, vg_kv_t *kv, int cf, const void *key, size_t klen,
                     const void *val, size_t vlen);
void vg_kv_batch_delete(vg_kv_batch_t *batch, vg_kv_t *kv, int cf, const void *key, size_t klen);
/* Number of operations queued. */
size_t vg_kv_batch_count(const vg_kv_batch_t *batch);
/* Bytes the batch holds (its serialised size). */
size_t vg_kv_batch_bytes(const vg_kv_batch_t *batch);
void vg_kv_batch_clear(vg_kv_batch_t *batch);
/* Applies the batch atomically (fsync'd first when sync). The batch is left as it was: clear
 * it to reuse. VG_ERR_STATE with RocksDB's text on error (nothing was applied). */
vg_err_t vg_kv_write(vg_kv_t *kv, vg_kv_batch_t *batch, int sync, char *errbuf, size_t errlen);

/* ---- ordered iteration over a family ---- */

/* An iterator over a consistent snapshot of family cf, taken now. */
vg_kv_iter_t *vg_kv_iter_new(vg_kv_t *kv, int cf);
void vg_kv_iter_free(vg_kv_iter_t *iter);
/* Positions at the first key >= key (klen 0: the first key). */
void vg_kv_iter_seek(vg_kv_iter_t *iter, const void *key, size_t klen);
/* 1 while positioned on an entry; with a prefix set by vg_kv_iter_seek_prefix, only entries
 * whose key starts with it. */
int vg_kv_iter_valid(const vg_kv_iter_t *iter);
/* Positions at the first key starting with prefix; valid() turns 0 past the last. */
void vg_kv_iter_seek_prefix(vg_kv_iter_t *iter, const void *prefix, size_t plen);
void vg_kv_iter_next(vg_kv_iter_t *iter);
/* Key and value of the current entry, valid until the iterator moves. */
const void *vg_kv_iter_key(const vg_kv_iter_t *iter, size_t *klen);
const void *vg_kv_iter_value(const vg_kv_iter_t *iter, size_t *vlen);
/* VG_OK, or VG_ERR_STATE with RocksDB's text if iteration stopped on an error. */
vg_err_t vg_kv_iter_status(const vg_kv_iter_t *iter, char *errbuf, size_t errlen);

#endif
