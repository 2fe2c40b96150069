/*
 * kv.c - the RocksDB implementation of kv.h. The only file in vigil that includes
 * rocksdb/c.h.
 *
 * Invariants: handles[i] is the column family the caller named i-th at open; extra[] holds
 * families found on disk but not named (kept open, unused, closed at vg_kv_close). Every
 * RocksDB errptr is copied into the caller's errbuf and freed here.
 */
#include "features/kv.h"

#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

struct vg_kv {
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_block_based_table_options_t *table;
    rocksdb_cache_t *cache;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts_sync;
    rocksdb_writeoptions_t *wopts_nosync;
    size_t nfamilies;
    rocksdb_column_family_handle_t **handles; /* named families, caller's order */
    rocksdb_options_t **cf_options;
    rocksdb_compactionfilter_t **filters;
    size_t nextra;
    rocksdb_column_family_handle_t **extra;
};

struct vg_kv_batch {
    rocksdb_writebatch_t *wb;
};

struct vg_kv_iter {
    rocksdb_iterator_t *it;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ropts;
    vg_kv_t *kv;
    char *prefix;
    size_t plen;
};

typedef struct filter_ctx {
    vg_kv_expire_fn fn;
    void *ctx;
} filter_ctx_t;

static unsigned char filter_cb(void *state, int level, const char *key, size_t klen,
                               const char *val, size_t vlen, char **new_value,
                               size_t *new_value_length, unsigned char *value_changed)
{
    filter_ctx_t *fc = state;
    *value_changed = 0;
    return fc->fn(fc->ctx, key, klen, val, vlen) ? 1 : 0;
}

static void filter_destroy(void *state)
{
    free(state);
}

static const char *filter_name(void *state)
{
    return "vigil-expiry";
}

static vg_err_t take_err(char *err, char *errbuf, size_t errlen, const char *what)
{
    vg_errf(errbuf, errlen, VG_ERR_STATE, "rocksdb %s: %s", what, err);
    free(err);
    return VG_ERR_STATE;
}

vg_kv_t *vg_kv_open(const char *dir, const vg_kv_family_t *families, size_t nfamilies,
                    const vg_kv_opts_t *opts, char *errbuf, size_t errlen)
{
    vg_kv_t *kv = vg_xcalloc(1, sizeof(*kv));
    size_t cache_bytes = opts && opts->block_cache_bytes ? opts->block_cache_bytes : 64u << 20;
    size_t wbuf = opts && opts->write_buffer_bytes ? opts->write_buffer_bytes : 128u << 20;
    char *err = NULL;

    kv->options = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(kv->options, 1);
    rocksdb_options_set_create_missing_column_families(kv->options, 1);
    rocksdb_options_set_max_background_jobs(kv->options, 2);
    rocksdb_options_set_keep_log_file_num(kv->options, 2);
    /* one writer thread; and hash memtables (point_lookups) need it off */
    rocksdb_options_set_allow_concurrent_memtable_write(kv->options, 0);
    kv->cache = rocksdb_cache_create_lru(cache_bytes);
    kv->table = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(kv->table, kv->cache);
    /* Bloom filters: most reads are for keys that do not exist yet (a new card). */
    rocksdb_block_based_options_set_filter_policy(kv->table,
                                                  rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_options_set_block_based_table_factory(kv->options, kv->table);
    rocksdb_options_set_write_buffer_size(kv->options, wbuf);
    rocksdb_options_set_max_write_buffer_number(kv->options, 3);
    /* Write-heavy: state is rewritten every commit. Let L0 grow before throttling writers,
     * and compact in bigger steps. */
    rocksdb_options_set_level0_file_num_compaction_trigger(kv->options, 8);
    rocksdb_options_set_level0_slowdown_writes_trigger(kv->options, 40);
    rocksdb_options_set_level0_stop_writes_trigger(kv->options, 64);
    rocksdb_options_set_max_bytes_for_level_base(kv->options, 512u << 20);
    rocksdb_options_set_target_file_size_base(kv->options, 64u << 20);
    rocksdb_options_set_compression(kv->options, rocksdb_lz4_compression);

    /* Families on disk that the caller did not name must be opened as well. */
    size_t nexisting = 0;
    char **existing = rocksdb_list_column_families(kv->options, dir, &nexisting, &err);
    if (err) { /* a new directory: nothing on disk yet */
        free(err);
        err = NULL;
        if (existing) /* RocksDB returns an empty allocation even then */
            rocksdb_list_column_families_destroy(existing, 0);
        existing = NULL;
        nexisting = 0;
    }
    size_t cap = nfamilies + nexisting + 1;
    const char **names = vg_xcalloc(cap, sizeof(*names));
    const rocksdb_options_t **cfopts = vg_xcalloc(cap, sizeof(*cfopts));
    rocksdb_column_family_handle_t **handles = vg_xcalloc(cap, sizeof(*handles));
    kv->nfamilies = nfamilies;
    kv->cf_options = vg_xcalloc(nfamilies + 1, sizeof(*kv->cf_options));
    kv->filters = vg_xcalloc(nfamilies + 1, sizeof(*kv->filters));
    size_t n = 0;
    int has_default = 0;
    for (size_t i = 0; i < nfamilies; i++) {
        rocksdb_options_t *o = rocksdb_options_create_copy(kv->options);
        if (families[i].expire) {
            filter_ctx_t *fc = vg_xmalloc(sizeof(*fc));
            fc->fn = families[i].expire;
            fc->ctx = families[i].expire_ctx;
            kv->filters[i] =
                rocksdb_compactionfilter_create(fc, filter_destroy, filter_cb, filter_name);
            rocksdb_options_set_compaction_filter(o, kv->filters[i]);
        }
        if (families[i].write_buffer_bytes)
            rocksdb_options_set_write_buffer_size(o, families[i].write_buffer_bytes);
        if (families[i].point_lookups) {
            /* The whole key is the "prefix": the memtable hashes keys to short lists instead
             * of walking a skiplist, which is most of the cost of a large write batch. A
             * bucket's list is sorted and an insert walks the other keys sharing it (one cache
             * miss each): 2^20 buckets (8 MiB of each memtable) keep a memtable of a million
             * transaction records at about one key a bucket (bench_features: 2^18 buckets
             * cost ~8% more commit CPU than 2^21). No memtable bloom filter: a get probes one short
             * list anyway, and every put paid a cache miss to set its bits. */
            rocksdb_options_set_prefix_extractor(o, rocksdb_slicetransform_create_noop());
            rocksdb_options_set_hash_link_list_rep(o, (size_t)1 << 20);
        }
        kv->cf_options[i] = o;
        names[n] = families[i].name;
        cfopts[n] = o;
        n++;
        if (strcmp(families[i].name, "default") == 0)
            has_default = 1;
    }
    if (!has_default) {
        names[n] = "default";
        cfopts[n] = kv->options;
        n++;
    }
    for (size_t i = 0; i < nexisting; i++) {
        int named = 0;
        for (size_t j = 0; j < n; j++)
            if (strcmp(names[j], existing[i]) == 0)
                named = 1;
        if (!named) {
            names[n] = existing[i];
            cfopts[n] = kv->options;
            n++;
        }
    }

    kv->db = rocksdb_open_column_families(kv->options, dir, (int)n, names, cfopts, handles, &err);
    if (err) {
        take_err(err, errbuf, errlen, "open");
        if (existing)
            rocksdb_list_column_families_destroy(existing, nexisting);
        free(names);
        free(cfopts);
        free(handles);
        kv->nfamilies = nfamilies;
        vg_kv_close(kv);
        return NULL;
    }
    kv->handles = vg_xcalloc(nfamilies + 1, sizeof(*kv->handles));
    memcpy(kv->handles, handles, nfamilies * sizeof(*handles));
    kv->nextra = n - nfamilies;
    kv->extra = vg_xcalloc(kv->nextra + 1, sizeof(*kv->extra));
    memcpy(kv->extra, handles + nfamilies, kv->nextra * sizeof(*handles));
    if (existing)
        rocksdb_list_column_families_destroy(existing, nexisting);
    free(names);
    free(cfopts);
    free(handles);

    kv->ropts = rocksdb_readoptions_create();
    kv->wopts_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(kv->wopts_sync, 1);
    kv->wopts_nosync = rocksdb_writeoptions_create();
    return kv;
}

void vg_kv_close(vg_kv_t *kv)
{
    if (!kv)
        return;
    if (kv->db) {
        for (size_t i = 0; i < kv->nfamilies; i++)
            rocksdb_column_family_handle_destroy(kv->handles[i]);
        for (size_t i = 0; i < kv->nextra; i++)
            rocksdb_column_family_handle_destroy(kv->extra[i]);
        rocksdb_close(kv->db);
    }
    for (size_t i = 0; i < kv->nfamilies; i++) {
        if (kv->cf_options && kv->cf_options[i])
            rocksdb_options_destroy(kv->cf_options[i]);
        if (kv->filters && kv->filters[i])
            rocksdb_compactionfilter_destroy(kv->filters[i]);
    }
    if (kv->ropts)
        rocksdb_readoptions_destroy(kv->ropts);
    if (kv->wopts_sync)
        rocksdb_writeoptions_destroy(kv->wopts_sync);
    if (kv->wopts_nosync)
        rocksdb_writeoptions_destroy(kv->wopts_nosync);
    rocksdb_options_destroy(kv->options);
    rocksdb_block_based_options_destroy(kv->table);
    rocksdb_cache_destroy(kv->cache);
    free(kv->handles);
    free(kv->extra);
    free(kv->cf_options);
    free(kv->filters);
    free(kv);
}

vg_err_t vg_kv_get(vg_kv_t *kv, int cf, const void *key, size_t klen, vg_buf_t *out, int *found,
                   char *errbuf, size_t errlen)
{
    char *err = NULL;
    vg_buf_reset(out);
    *found = 0;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(kv->db, kv->ropts, kv->handles[cf], key, klen, &err);
    if (err)
        return take_err(err, errbuf, errlen, "get");
    if (!ps)
        return VG_OK;
    size_t vlen = 0;
    const char *v = rocksdb_pinnableslice_value(ps, &vlen);
    if (v) {
        vg_buf_append(out, v, vlen);
        vg_buf_reserve(out, 1);
        out->data[out->len] = '\0';
        *found = 1;
    }
    rocksdb_pinnableslice_destroy(ps);
    return VG_OK;
}

uint64_t vg_kv_property(vg_kv_t *kv, int cf, const char *name)
{
    uint64_t v = 0;
    if (rocksdb_property_int_cf(kv->db, kv->handles[cf], name, &v) != 0)
        return 0;
    return v;
}

void vg_kv_compact(vg_kv_t *kv, int cf)
{
    rocksdb_compact_range_cf(kv->db, kv->handles[cf], NULL, 0, NULL, 0);
}

vg_kv_batch_t *vg_kv_batch_new(void)
{
    vg_kv_batch_t *batch = vg_xmalloc(sizeof(*batch));
    batch->wb = rocksdb_writebatch_create();
    return batch;
}

void vg_kv_batch_free(vg_kv_batch_t *batch)
{
    if (!batch)
        return;
    rocksdb_writebatch_destroy(batch->wb);
    free(batch);
}

void vg_kv_batch_put(vg_kv_batch_t *batch, vg_kv_t *kv, int cf, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    rocksdb_writebatch_put_cf(batch->wb, kv->handles[cf], key, klen, val, vlen);
}

void vg_kv_batch_delete(vg_kv_batch_t *batch, vg_kv_t *kv, int cf, const void *key, size_t klen)
{
    rocksdb_writebatch_delete_cf(batch->wb, kv->handles[cf], key, klen);
}

size_t vg_kv_batch_count(const vg_kv_batch_t *batch)
{
    return (size_t)rocksdb_writebatch_count(batch->wb);
}

size_t vg_kv_batch_bytes(const vg_kv_batch_t *batch)
{
    size_t n = 0;
    rocksdb_writebatch_data(batch->wb, &n);
    return n;
}

void vg_kv_batch_clear(vg_kv_batch_t *batch)
{
    rocksdb_writebatch_clear(batch->wb);
}

vg_err_t vg_kv_write(vg_kv_t *kv, vg_kv_batch_t *batch, int sync, char *errbuf, size_t errlen)
{
    char *err = NULL;
    rocksdb_write(kv->db, sync ? kv->wopts_sync : kv->wopts_nosync, batch->wb, &err);
    if (err)
        return take_err(err, errbuf, errlen, "write");
    return VG_OK;
}

vg_kv_iter_t *vg_kv_iter_new(vg_kv_t *kv, int cf)
{
    vg_kv_iter_t *iter = vg_xcalloc(1, sizeof(*iter));
    iter->kv = kv;
    iter->snap = rocksdb_create_snapshot(kv->db);
    iter->ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(iter->ropts, iter->snap);
    rocksdb_readoptions_set_total_order_seek(iter->ropts, 1); /* see point_lookups */
    iter->it = rocksdb_create_iterator_cf(kv->db, iter->ropts, kv->handles[cf]);
    return iter;
}

void vg_kv_iter_free(vg_kv_iter_t *iter)
{
    if (!iter)
        return;
    rocksdb_iter_destroy(iter->it);
    rocksdb_readoptions_destroy(iter->ropts);
    rocksdb_release_snapshot(iter->kv->db, iter->snap);
    free(iter->prefix);
    free(iter);
}

void vg_kv_iter_seek(vg_kv_iter_t *iter, const void *key, size_t klen)
{
    free(iter->prefix);
    iter->prefix = NULL;
    iter->plen = 0;
    if (klen)
        rocksdb_iter_seek(iter->it, key, klen);
    else
        rocksdb_iter_seek_to_first(iter->it);
}

void vg_kv_iter_seek_prefix(vg_kv_iter_t *iter, const void *prefix, size_t plen)
{
    vg_kv_iter_seek(iter, prefix, plen);
    if (plen) {
        iter->prefix = vg_xmalloc(plen);
        memcpy(iter->prefix, prefix, plen);
        iter->plen = plen;
    }
}

int vg_kv_iter_valid(const vg_kv_iter_t *iter)
{
    if (!rocksdb_iter_valid(iter->it))
        return 0;
    if (iter->plen) {
        size_t klen;
        const char *k = rocksdb_iter_key(iter->it, &klen);
        if (klen < iter->plen || memcmp(k, iter->prefix, iter->plen) != 0)
            return 0;
    }
    return 1;
}

void vg_kv_iter_next(vg_kv_iter_t *iter)
{
    rocksdb_iter_next(iter->it);
}

const void *vg_kv_iter_key(const vg_kv_iter_t *iter, size_t *klen)
{
    return rocksdb_iter_key(iter->it, klen);
}

const void *vg_kv_iter_value(const vg_kv_iter_t *iter, size_t *vlen)
{
    return rocksdb_iter_value(iter->it, vlen);
}

vg_err_t vg_kv_iter_status(const vg_kv_iter_t *iter, char *errbuf, size_t errlen)
{
    char *err = NULL;
    rocksdb_iter_get_error(iter->it, &err);
    if (err)
        return take_err(err, errbuf, errlen, "iterator");
    return VG_OK;
}
