/*
 * pipeline.h - decode -> features -> rules -> model -> decide -> encode, over micro-batches.
 *
 * The one pipeline behind both `vigil run` (Kafka) and `vigil replay` (files): the callers
 * only move bytes in and out, so a replay of a log gives the decisions the live run gave.
 *
 * A batch is processed in input order: each transaction's features are computed over the
 * state left by everything before it in the batch (labels included), then rules, model and
 * decisions are evaluated for the whole batch at once (one model call per batch).
 * Outputs go to a sink in input order, so their order is deterministic too.
 */
#ifndef VG_PIPELINE_H
#define VG_PIPELINE_H

#include "engine/common.h"
#include "engine/contract.h"
#include "features/features.h"

typedef struct vg_pipeline_opts {
    const char *catalog_path;     /* required */
    const char *rules_path;       /* NULL: no rules (every decision is allow) */
    const char *lists_dir;        /* NULL: the rules file's directory */
    const char *model_dir;        /* NULL: no model (score null) */
    const char *shadow_model_dir; /* NULL: no challenger */
    const char *state_dir;        /* required: RocksDB directory */
    size_t cache_bytes;           /* 0: the state store's default */
    int state_sync;               /* fsync every state commit (default no: see operations.md) */
    int64_t state_checkpoint_ms;  /* 0: every state commit is written to RocksDB; > 0: commits
                                     are written together at most this often, and a crash
                                     goes back to the last such checkpoint (the caller must
                                     replay from the state's offsets: vg_state_opts_t) */
    int state_scratch;            /* the state directory is deleted after use: written only
                                     when the cache is full (vg_state_opts_t.scratch) */
    int state_async_writes;       /* without state_checkpoint_ms: each commit written on the
                                     state's writer thread (vg_state_opts_t.async_writes) */
    int reasons;                  /* top contributions on review/block decisions (0 = none) */
    double review_sample_rate;    /* share of allowed transactions also sent to review */
    double review_band_low;       /* allowed transactions scored in [low, high) go to review */
    double review_band_high;      /* too ("near_threshold"); low == high: off */
    int threads; /* 2: a worker thread shares decoding (vg_pipeline_process), rules and
                    scoring, and encoding decisions; features and outputs keep their
                    order. 0/1: none */
    int overlap; /* 1: vg_pipeline_process_decoded() returns once a batch's state is done;
                    its rules, scoring, decisions and outputs run on a back thread beside
                    the caller's next batch, helped by the caller while it waits for them
                    (vg_pipeline_wait()). Outputs keep their order. Instead of threads; not
                    with vg_pipeline_process() */
    /* A stage of the repartition topology (docs/scaling.md): the state keeps only these
     * entity types (NULL: all); the other features' values come with each input (feats). */
    const char *const *stage_types;
    size_t nstage_types;
    int forward; /* 1: no rules, model or decisions: each transaction goes to the sink as
                    VG_OUT_FORWARD with its feature row, for the next stage */
} vg_pipeline_opts_t;

void vg_pipeline_opts_default(vg_pipeline_opts_t *opts);

typedef enum vg_input_kind { VG_IN_TXN = 0, VG_IN_LABEL = 1 } vg_input_kind_t;

/* One input message, borrowed for the duration of vg_pipeline_process(). */
typedef struct vg_input {
    vg_input_kind_t kind;
    const char *data;
    size_t len;
    int32_t partition; /* source position, for dead-letter headers; -1 for files */
    int64_t offset;
    int64_t timestamp_ms; /* source timestamp (Kafka), -1 if none */
    int emit;             /* 0: update state only (rebuilding state after a crash) */
    const double *feats;  /* a stage's input: the row computed upstream, NULL: none */
} vg_input_t;

typedef enum vg_output_kind {
    VG_OUT_DECISION = 0, /* topic decisions, key card_id */
    VG_OUT_REVIEW = 1,   /* topic review, key card_id: a case for analysts */
    VG_OUT_DLQ = 2,      /* topic transactions.dlq: the original bytes, reason in `reason` */
    VG_OUT_FORWARD = 3,  /* opts.forward: the transaction's bytes and its row in `feats` */
} vg_output_kind_t;

typedef struct vg_output {
    vg_output_kind_t kind;
    const char *key;
    size_t keylen;
    /* a decision's or case's value stays valid and unchanged until the pipeline processes the
     * batch after next (two sets of rows, used in turn): a Kafka sink can produce it without a
     * copy once each batch is delivered before the one after it is processed; others only
     * for the emit call */
    const char *value;
    size_t len;
    const vg_input_t *input; /* what produced it */
    const char *reason;      /* VG_OUT_DLQ only */
    int action;              /* VG_OUT_DECISION/REVIEW: the vg_action_t */
    const vg_txn_t *txn;     /* VG_OUT_FORWARD: the decoded transaction */
    const double *feats;     /* VG_OUT_FORWARD: its row, vg_pipeline_feature_count() values */
} vg_output_t;

/* Receives outputs; a non-VG_OK return stops the batch and is returned by process(). */
typedef struct vg_sink {
    void *opaque;
    vg_err_t (*emit)(void *opaque, const vg_output_t *out);
} vg_sink_t;

/* Counters since start, for metrics and summaries. */
typedef struct vg_pipeline_stats {
    uint64_t transactions, labels, labels_unknown, dead_letters;
    uint64_t decisions[3]; /* by vg_action_t */
    uint64_t reviews, review_samples;
    uint64_t rules_reloads, rules_reload_failures, model_reloads, model_reload_failures;
    uint64_t *rule_hits; /* per rule of the current rule set; vg_pipeline_rule_count() long */
    uint64_t recovered;  /* transactions replayed into state without emitting */
} vg_pipeline_stats_t;

typedef struct vg_pipeline vg_pipeline_t;

/* Loads catalogue, rules, model(s) and opens the state. NULL + errbuf on error. */
vg_pipeline_t *vg_pipeline_new(const vg_pipeline_opts_t *opts, char *errbuf, size_t errlen);
void vg_pipeline_free(vg_pipeline_t *pipeline);

/* Processes one micro-batch. Errors are sink or state failures, never bad input. The
 * inputs are borrowed for the call. Equivalent to vg_pipeline_decode() into an internal
 * batch followed by vg_pipeline_process_decoded(). */
vg_err_t vg_pipeline_process(vg_pipeline_t *pipeline, const vg_input_t *in, size_t n,
                             const vg_sink_t *sink, char *errbuf, size_t errlen);

/*
 * The two halves of vg_pipeline_process(), so that a caller with a spare core can decode
 * the next batch while this one is processed. vg_pipeline_decode() reads only the
 * pipeline's schema (fixed for its life), so it may run on another thread than the one
 * processing, on a batch of its own. The inputs (and their bytes) must stay valid until
 * the batch has been processed.
 */
typedef struct vg_batch vg_batch_t;
vg_batch_t *vg_batch_new(void);
void vg_batch_free(vg_batch_t *batch);
void vg_pipeline_decode(const vg_pipeline_t *pipeline, vg_batch_t *batch, const vg_input_t *in,
                        size_t n);
vg_err_t vg_pipeline_process_decoded(vg_pipeline_t *pipeline, vg_batch_t *batch,
                                     const vg_sink_t *sink, char *errbuf, size_t errlen);

/* opts.overlap: waits for the last batch's outputs, and returns its error, if any. Until
 * then that batch, its inputs and the sink it was given must stay valid;
 * vg_pipeline_process_decoded() waits for the batch before the one it is given. Without
 * overlap, returns VG_OK at once. */
vg_err_t vg_pipeline_wait(vg_pipeline_t *pipeline, char *errbuf, size_t errlen);

/* Commits state changed since the last commit, with the caller's offsets blob, atomically. */
vg_err_t vg_pipeline_commit(vg_pipeline_t *pipeline, const void *offsets, size_t len, char *errbuf,
                            size_t errlen);
/* With opts.state_async_writes or state_checkpoint_ms: commits, but a write it makes waits
 * for vg_pipeline_release() (vg_state_commit_held): the batch's Kafka transaction commits
 * meanwhile. */
vg_err_t vg_pipeline_commit_held(vg_pipeline_t *pipeline, const void *offsets, size_t len,
                                 char *errbuf, size_t errlen);
void vg_pipeline_release(vg_pipeline_t *pipeline);
/* With opts.state_checkpoint_ms: writes the commits not yet written now (when input pauses);
 * otherwise nothing to do. */
vg_err_t vg_pipeline_checkpoint(vg_pipeline_t *pipeline, char *errbuf, size_t errlen);
/* With state_checkpoint_ms or state_async_writes: waits for the state write in flight (its
 * error, if it failed); otherwise nothing to do. */
vg_err_t vg_pipeline_wait_written(vg_pipeline_t *pipeline, char *errbuf, size_t errlen);
/* The offsets blob of the last state commit (malloc'd; NULL/0 if none). */
vg_err_t vg_pipeline_offsets(vg_pipeline_t *pipeline, void **blob, size_t *len);
/* The state's changelog (features.h): what the next commit writes, and restoring a record. */
size_t vg_pipeline_changes(vg_pipeline_t *pipeline, vg_state_change_cb *cb, void *opaque);
vg_err_t vg_pipeline_restore(vg_pipeline_t *pipeline, int32_t partition, const char *entity,
                             const char *key, size_t klen, const void *value, size_t vlen,
                             char *errbuf, size_t errlen);

/*
 * Reloads rules (and their lists) and models if their files changed, or always if force.
 * A valid new version replaces the old; a bad one leaves the old serving, is logged and
 * counted. Call between batches.
 */
void vg_pipeline_reload(vg_pipeline_t *pipeline, int force);

const vg_pipeline_stats_t *vg_pipeline_stats(const vg_pipeline_t *pipeline);
size_t vg_pipeline_rule_count(const vg_pipeline_t *pipeline);
size_t vg_pipeline_feature_count(const vg_pipeline_t *pipeline);
/* The schema index of transaction field name, -1 if the pipeline does not read it. */
int vg_pipeline_field(const vg_pipeline_t *pipeline, const char *name);
const char *vg_pipeline_rule_id(const vg_pipeline_t *pipeline, size_t i);
const char *vg_pipeline_catalog_version(const vg_pipeline_t *pipeline);
const char *vg_pipeline_rules_version(const vg_pipeline_t *pipeline); /* NULL: no rules */
const char *vg_pipeline_model_version(const vg_pipeline_t *pipeline); /* NULL: no model */
/* The state store's figures (features.h), for metrics. */
void vg_pipeline_state_stats(vg_pipeline_t *pipeline, vg_state_stats_t *stats);
/* The state by home partition (vg_state_partition_sizes). */
size_t vg_pipeline_partition_sizes(vg_pipeline_t *pipeline, uint64_t *bytes, uint64_t *entities,
                                   size_t max);

#endif
