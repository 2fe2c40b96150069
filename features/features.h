/*
 * features.h - the feature catalogue and the windowed feature state.
 *
 * A catalogue (docs/features.md) names every feature: per-transaction ones (amount, hour,
 * ...) and windowed aggregations keyed by an entity (card_id, terminal_id, ...) over event
 * time. vg_state_t keeps each entity's aggregates as sparse rings of time buckets in
 * RocksDB (one column family per entity type) behind a write-back cache, and commits each
 * micro-batch together with the caller's offsets in one atomic write.
 *
 * Threading: a catalogue is immutable after load and may be shared; a state is used by one
 * thread.
 */
#ifndef VG_FEATURES_H
#define VG_FEATURES_H

#include "engine/common.h"
#include "engine/contract.h"

typedef struct vg_catalog vg_catalog_t;

/*
 * Parses a catalogue file; registers every transaction field it names in schema
 * (vg_schema_add). Returns NULL with errbuf "FILE:LINE: message" on error, e.g.
 * "default.conf:12: expected 'by', got 'for'" or "x.conf:3: unknown aggregation 'cnt'".
 * The caller frees with vg_catalog_free(); the schema must outlive nothing here (indices
 * are copied).
 */
vg_catalog_t *vg_catalog_load(const char *path, vg_schema_t *schema, char *errbuf, size_t errlen);
/* Same, from text in memory; name is used in messages in place of the file name. */
vg_catalog_t *vg_catalog_parse(const char *name, const char *text, size_t len, vg_schema_t *schema,
                               char *errbuf, size_t errlen);
/*
 * Loads only part of a catalogue: the windowed features over the entity types named in
 * types[] (e.g. {"terminal_id"}) and every per-transaction feature, for the state of one
 * stage of the repartition topology. types NULL: the whole catalogue (vg_catalog_load).
 * Its version is the whole file's hashed with the type list, so a state directory written
 * for another stage is refused.
 */
vg_catalog_t *vg_catalog_load_types(const char *path, vg_schema_t *schema, const char *const *types,
                                    size_t ntypes, char *errbuf, size_t errlen);
/* Number of features. */
size_t vg_catalog_size(const vg_catalog_t *catalog);
/* Name of feature i (< size), valid while the catalogue lives. */
const char *vg_catalog_feature_name(const vg_catalog_t *catalog, size_t i);
/* Index of a feature by name, or -1. */
int vg_catalog_feature_index(const vg_catalog_t *catalog, const char *name);
/* The content hash of the catalogue text (vg_version_of), 16 hex digits. */
const char *vg_catalog_version(const vg_catalog_t *catalog);
/* Number of entity types (distinct `by` fields) and the name of type i. */
size_t vg_catalog_entity_types(const vg_catalog_t *catalog);
const char *vg_catalog_entity_name(const vg_catalog_t *catalog, size_t i);
/* 1 if some feature is label-driven (fraud_count, fraud_share). */
int vg_catalog_uses_labels(const vg_catalog_t *catalog);
void vg_catalog_free(vg_catalog_t *catalog);

typedef struct vg_state vg_state_t;

typedef struct vg_state_opts {
    size_t cache_bytes;       /* write-back cache bound; 0 = 256 MiB (soft: see vg_state_commit) */
    int64_t txn_retention_ms; /* how long labels can find a transaction; 0 = the longest
                                 label-driven window + delay of the catalogue */
    int nosync;               /* 1: commits are not fsync'd (tests, benchmarks); 0 = durable */
    int64_t checkpoint_ms;    /* 0 (default): every commit is written to RocksDB and survives
                                 a crash. > 0: commits are kept in memory and written together
                                 (a checkpoint: one write batch, each changed entity once) by
                                 the first commit this long after the last checkpoint, or
                                 sooner when the cache and pending records outgrow cache_bytes,
                                 and at close; after a crash the state and offsets are those of
                                 the last checkpoint, an EARLIER committed batch, never a mix.
                                 For callers that can replay their input from the offsets
                                 (vigil run, vigil replay): far less written per event. */
    int scratch;              /* 1: the directory is deleted after close (vigil replay's own
                                 temporary state): with checkpoint_ms, a checkpoint is written
                                 only when the cache is full, never by the clock, and close
                                 writes none */
    int async_writes;         /* without checkpoint_ms: every commit is still written, but by
                                 the writer thread (the values copied first), while the caller
                                 goes on; vg_state_wait_written() waits for it. A crash then
                                 finds the last commit written, or the one before it */
} vg_state_opts_t;

/*
 * Opens (creating) the RocksDB state at dir for this catalogue; opts NULL = defaults. The
 * catalogue must outlive the state. A directory written under another catalogue version is
 * refused (VG_ERR_STATE: its binary layout differs); use a new directory. NULL + errbuf.
 */
vg_state_t *vg_state_open(const char *dir, const vg_catalog_t *catalog, const vg_state_opts_t *opts,
                          char *errbuf, size_t errlen);
/* With checkpoint_ms or async_writes: waits until the write in flight, if any, is in RocksDB,
 * and returns its error if it failed (sticky). Otherwise VG_OK at once. */
vg_err_t vg_state_wait_written(vg_state_t *state, char *errbuf, size_t errlen);

/* Closes without committing: changes since the last commit are dropped. With
 * opts.checkpoint_ms, writes a checkpoint first if nothing changed since the last commit
 * (otherwise the state goes back to the last checkpoint), unless opts.scratch. NULL: no-op. */
void vg_state_close(vg_state_t *state);

/*
 * Computes txn's features into out[vg_catalog_size()] (NAN = missing, e.g. no previous
 * txn or the entity field absent), in catalogue order, over the state BEFORE txn (except
 * features marked `including current`), then adds txn to every entity's state and records
 * txn_id -> (ts, entity keys) for labels when the catalogue has label-driven features.
 * VG_ERR_STATE if RocksDB fails reading an entity (out is then undefined).
 */
vg_err_t vg_state_process(vg_state_t *state, const vg_txn_t *txn, double *out);

/*
 * Optional hint, for a caller that holds its input ahead of processing it (a micro-batch):
 * txn will be passed to vg_state_process soon. Starts loading the memory its entities' state
 * lives in, one step per call (table slots, then each entity's header, then its rings), so
 * that with a call for the transaction D = 3 ahead of each vg_state_process (the first D
 * transactions hinted first) their cache misses overlap the work on the transactions
 * before. Changes nothing that any call can observe; txn is not kept. Any D works; a
 * transaction hinted and never processed costs only the hint.
 */
void vg_state_prefetch(vg_state_t *state, const vg_txn_t *txn);

/*
 * Applies a label: a fraud label for T counts in T's entities, in the bucket of T's time,
 * and is visible to transactions processed after this call; a second fraud label for T is
 * a no-op; a legit label after a fraud one takes the fraud back out. VG_ERR_NOTFOUND if
 * txn_id is unknown or older than the retention; VG_OK (nothing to do) when the catalogue
 * has no label-driven feature.
 */
vg_err_t vg_state_label(vg_state_t *state, const vg_label_t *label);

/*
 * Writes every change since the last commit plus the caller's opaque offsets blob in ONE
 * RocksDB write batch (fsync'd unless opts.nosync). After a crash, reopening gives the
 * state and offsets of the last committed batch, never a mix. Then shrinks the cache to
 * its bound (only written entities can leave it, so it can exceed the bound between
 * commits by what one batch touches).
 * With opts.checkpoint_ms, marks the state as of this batch committed (the caller's offsets
 * with it) and writes a checkpoint only when one is due (see vg_state_opts_t): a crash then
 * loses the commits since the last checkpoint, together with their offsets.
 */
vg_err_t vg_state_commit(vg_state_t *state, const void *offsets, size_t len, char *errbuf,
                         size_t errlen);
/*
 * With opts.async_writes or checkpoint_ms: commits as vg_state_commit does (a write it makes
 * copies the values now, so that processing goes on at once), but that write waits for
 * vg_state_release(): for a caller whose commit elsewhere (a Kafka transaction) must succeed
 * first, and that processes the next batch meanwhile. A held write never released is dropped
 * at close: the state goes back to the write before it. The next commit must come after the
 * release (VG_ERR_STATE otherwise), and so must vg_state_wait_written() and
 * vg_state_checkpoint().
 */
vg_err_t vg_state_commit_held(vg_state_t *state, const void *offsets, size_t len, char *errbuf,
                              size_t errlen);
/* Lets the held write go to RocksDB (no-op if none is held). */
void vg_state_release(vg_state_t *state);
/*
 * opts.checkpoint_ms: writes what the commits since the last checkpoint changed now (e.g.
 * when input pauses); nothing to do otherwise. Changes not yet committed are not written.
 */
vg_err_t vg_state_checkpoint(vg_state_t *state, char *errbuf, size_t errlen);
/* The offsets blob of the last commit, or after opening of the last written one (malloc'd,
 * caller frees), or *blob NULL, *len 0. */
vg_err_t vg_state_offsets(vg_state_t *state, void **blob, size_t *len);

/* ---- changelog: the state's changes as records, for a Kafka changelog topic ---- */

/*
 * The input partition the following vg_state_process() calls come from. Every entity they
 * change is tagged with it (its home partition, for a changelog partitioned like the input);
 * an entity a label changes keeps its tag, or takes the labelled transaction's partition.
 */
void vg_state_set_partition(vg_state_t *state, int32_t partition);

/* One changed entity: value NULL means deleted (expired or empty). All borrowed. */
typedef void vg_state_change_cb(void *opaque, int32_t partition, const char *entity,
                                const char *key, size_t klen, const void *value, size_t vlen);
/*
 * Calls cb for every entity changed since the last commit (what the next vg_state_commit()
 * commits), with its value now; changes nothing. Returns how many. Transaction records are
 * not included.
 */
size_t vg_state_changes(vg_state_t *state, vg_state_change_cb *cb, void *opaque);

/*
 * Replaces the state of one entity with a changelog record's value (NULL: deleted), as an
 * uncommitted change: the next vg_state_commit() writes it. entity is the type's name
 * (e.g. "card_id"). VG_ERR_STATE with errbuf if the type is not in the catalogue or the
 * value does not fit its layout.
 */
vg_err_t vg_state_restore(vg_state_t *state, const char *entity, const char *key, size_t klen,
                          const void *value, size_t vlen, char *errbuf, size_t errlen);

#define VG_STATE_MAX_TYPES 16

typedef struct vg_state_type_stats {
    const char *entity;       /* the entity field, e.g. "card_id" */
    uint64_t cached;          /* entities in the cache */
    uint64_t cached_bytes;    /* bytes of their encoded state */
    uint64_t stored_estimate; /* RocksDB's estimate of keys in the column family */
} vg_state_type_stats_t;

typedef struct vg_state_stats {
    size_t ntypes;
    vg_state_type_stats_t types[VG_STATE_MAX_TYPES];
    uint64_t cache_bytes; /* memory the cache accounts for */
    uint64_t cache_entries;
    uint64_t dirty;        /* entities changed since the last write to RocksDB */
    uint64_t pending_txns; /* transaction records waiting for the next write */
    uint64_t loads;        /* cache misses that read RocksDB (cumulative) */
    uint64_t evictions;    /* entities dropped from the cache (cumulative) */
    uint64_t expired;      /* entities found idle beyond their retention and reset */
    uint64_t commits;
    uint64_t checkpoints;     /* writes to RocksDB: one per commit without checkpoint_ms */
    uint64_t committed_bytes; /* write-batch bytes of all writes (cumulative) */
    int64_t watermark_ms;     /* greatest event time processed */
} vg_state_stats_t;

/*
 * The state by home partition (vg_state_set_partition; a restored entity takes the partition
 * set when it was restored): bytes[p] of encoded state and entities[p] for p < max (zeroed
 * first); returns 1 + the greatest partition seen. Counts the entities in the cache, so all
 * of them while the state fits cache_bytes. A walk of the cache: for metrics, not per event.
 */
size_t vg_state_partition_sizes(vg_state_t *state, uint64_t *bytes, uint64_t *entities, size_t max);
/* Fills stats (cheap: no RocksDB scan; stored_estimate is RocksDB's own estimate). */
void vg_state_stats(vg_state_t *state, vg_state_stats_t *stats);

#endif
