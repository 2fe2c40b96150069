/*
 * run.h - what `vigil run`'s two files share: the engine loop and its partitions (cmd_run.c),
 * and the stages of the repartition topology (stages.c). Internal to `vigil run`.
 */
#ifndef VG_RUN_H
#define VG_RUN_H

#include "engine/align.h"
#include "engine/config.h"
#include "engine/http.h"
#include "engine/kafka.h"
#include "engine/pipeline.h"

#include <stdint.h>

/* ---- stages and per-partition offsets ----
 *
 * Topology single: one stage, the whole catalogue. Topology repartition: stage 0 reads the
 * transactions (and labels) and keeps card and customer state; stage k >= 1 keeps one entity
 * type that spans partitions (terminal_id, ...) and reads topic PREFIX.ENTITY, which stage
 * k - 1 writes: each transaction with the feature values so far (a forward record), keyed by
 * the entity, and watermarks to every partition (align.h). The last stage applies rules and
 * the model and decides. Every stage of a process runs in the same loop and the same Kafka
 * transaction per batch; each has its own state directory, changelog and offsets blob.
 */

#define MAX_STAGES 6

/* Indices of vg_tp_t.topic_idx: the two inputs and stage 0's changelog (whose `next` is how
 * far the local state reflects it, for restoring only the tail), then per stage k >= 1 its
 * topic and its changelog. */
enum { TP_TXNS = 0, TP_LABELS = 1, TP_CHANGELOG = 2, TP_TOPICS = 2 + 2 * MAX_STAGES };
#define TP_REPART(k) (1 + 2 * (k))
#define TP_CL(k)     (2 + 2 * (k))

static inline int stage_of(int t)
{
    return t <= TP_CHANGELOG ? 0 : (t - 1) / 2;
}
/* The consumer's topics are transactions, labels, then stage 1, 2, ... topics. */
static inline int tp_of_consumer(int c)
{
    return c < 2 ? c : 2 * c - 1;
}
static inline int consumer_of_tp(int t)
{
    return t < 2 ? t : (t + 1) / 2;
}

typedef struct vg_tp {
    int topic_idx;
    int32_t partition;
    int64_t next;      /* next offset to read (what is committed) */
    int64_t emit_from; /* offsets below this only rebuild state */
    int assigned;
    int changed; /* an input partition: its changelog partition gets a marker this batch */
    /* a stage's topic (stage >= 1) */
    vg_align_t *align; /* while assigned */
    int64_t low;       /* at the last commit: smallest offset still held (-1: none) */
    char *align_text;  /* at the last commit: the aligner's bookkeeping */
    /* an input partition of a stage that forwards */
    int64_t maxts;   /* greatest ts forwarded, INT64_MIN: none */
    int64_t wm_sent; /* greatest watermark sent */
    int64_t last_msg_ms;
    int idle_sent; /* a wall-clock watermark was sent since its last message */
} vg_tp_t;

typedef struct vg_stage {
    struct vg_run *r;
    int k;
    char name[128];                  /* "card_id+customer_id", "terminal_id" */
    char *types[VG_STATE_MAX_TYPES]; /* topology repartition: the entity types it keeps */
    size_t ntypes;
    char *topic;      /* stage >= 1: its topic */
    char *changelog;  /* its changelog topic, NULL when off */
    char *next_topic; /* the next stage's topic; NULL: this stage decides */
    int next_field;   /* the field the next topic is keyed by (this pipeline's schema) */
    int nsrc, nout;   /* partitions of the previous stage's topic, of the next one */
    vg_pipeline_t *pipeline;
    /* stage >= 1: this batch's released transactions */
    vg_input_t *in;
    uint64_t *seq;
    vg_held_t **held;
    size_t n, cap;
    int32_t cur_part; /* the partition whose aligner is releasing */
    vg_input_t *lab;  /* stage >= 1: this batch's labels, applied as they arrive */
    size_t nlab, caplab;
} vg_stage_t;

/* A changelog record read during a restore, held until its batch's marker is read. */
typedef struct vg_pending {
    int32_t partition;
    char *key, *value; /* value NULL: tombstone */
    size_t klen, vlen;
} vg_pending_t;

typedef struct vg_run {
    vg_config_t *config;
    const char *topics[2 + MAX_STAGES]; /* the consumer's */
    size_t ntopics;
    vg_stage_t stages[MAX_STAGES];
    int nstages;
    vg_pipeline_t *pipeline; /* the deciding stage's (rules, model, decisions) */
    vg_consumer_t *consumer;
    vg_producer_t *producer;
    vg_http_t *http;
    int eos;
    int state_async; /* state writes on the writer thread, waited for before a Kafka commit */
    /* exactly_once, one stage, no changelog: each batch's Kafka commit runs on the committer
     * thread while the next batch is read and processed (cmd_run.c, "the commit in flight") */
    int pipelined;
    int txn_open; /* pipelined: this batch's Kafka transaction has begun */
    struct vg_committer *committer;
    long crash_after; /* VIGIL_CRASH_AFTER_KAFKA_COMMIT */
    vg_tp_t *tps;
    size_t ntps;
    size_t *tp_slot[TP_TOPICS]; /* per topic, by partition: index + 1 into tps (0: none) */
    size_t tp_nslot[TP_TOPICS];
    vg_assignment_t *done; /* the offsets a batch moves to, one per partition held */
    /* metrics */
    vg_hist_t e2e, proc, batch_sizes, kafka_commit, state_commit;
    double max_ms[3]; /* longest batch: processing, Kafka commit, state commit */
    uint64_t consumed[2 + MAX_STAGES], commits, aborts;
    vg_assignment_t lags[1024]; /* per assigned partition, refreshed with the metrics */
    size_t nlags;
    int64_t last_input_ms; /* last input or (re)assignment: what --idle-exit measures from */
    char batch_id[64];     /* "instance.pid.start:seq", the vigil.batch header of every output */
    uint64_t batches;      /* seq: batches begun (r->commits lags while one is in flight) */
    float *lat;            /* every end-to-end latency (s), for exact quantiles at exit */
    size_t nlat, caplat;
    int64_t *decided_ts; /* this batch's decided transactions' Kafka timestamps */
    size_t ndecided, capdecided;
    int64_t first_msg_ns, last_commit_ns;
    /* topology repartition */
    vg_buf_t fwd;
    int64_t idle_ms;
    int started;    /* a transaction was read: idle watermarks may be sent */
    int64_t max_ts; /* greatest ts forwarded by stage 0 (INT64_MIN: none) */
    uint64_t bad_forwards, watermarks_sent, late; /* late: of aligners since freed */
    /* the changelog (state.changelog) */
    const char *brokers;
    const vg_kprop_t *props;
    size_t nprops;
    vg_buf_t clkey, clval;
    vg_err_t clerr; /* first error while producing a batch's changelog */
    char clerrbuf[VG_ERRLEN];
    vg_stage_t *restoring; /* the stage whose changelog is being read */
    vg_pending_t *pending;
    size_t npending, cappending;
    uint64_t cl_records, cl_discarded;
    uint64_t restored_records, restored_bytes, restored_partitions;
    double restore_secs;
    int fatal; /* a restore failed inside the rebalance callback: stop */
} vg_run_t;

/* ---- cmd_run.c ---- */

/* The record of a partition of topic index topic_idx (TP_*), created on first sight. */
vg_tp_t *vg_run_tp(vg_run_t *r, int topic_idx, int32_t partition);
/* Reads a stage's offsets blob (what its state committed) into the partitions' records. */
void vg_run_offsets_decode(vg_run_t *r, const char *blob, size_t len);

/* ---- stages.c ---- */

/* Plans the stages (one unless topology repartition finds entity types beyond card_id and
 * customer_id), opens their pipelines and reads their offsets. */
vg_err_t vg_stages_plan(vg_run_t *r, const vg_pipeline_opts_t *base, char *errbuf, size_t errlen);
void vg_stages_free(vg_run_t *r);
/* Sends a VG_OUT_FORWARD output of stage st to the next stage's topic. */
vg_err_t vg_stages_forward(vg_stage_t *st, const vg_output_t *out, char *errbuf, size_t errlen);
/* 1 if m is a watermarks record. */
int vg_stages_is_watermarks(const vg_msg_t *m);
/* A message of stage st's topic, partition tp: to its aligner (or st's labels). */
void vg_stages_read(vg_run_t *r, vg_stage_t *st, vg_tp_t *tp, const vg_msg_t *m);
/* Sends stage st's labels in[0..n) on down the chain. */
vg_err_t vg_stages_forward_labels(vg_run_t *r, const vg_stage_t *st, const vg_input_t *in, size_t n,
                                  char *errbuf, size_t errlen);
/* Releases what each stage's aligners may let go of into the stage's inputs, in time order. */
void vg_stages_release(vg_run_t *r);
/* 1 if an idle input partition is due a watermark (a batch of its own). */
int vg_stages_idle_due(const vg_run_t *r, int64_t now_ms);
/* Sends the watermarks that moved (idle: of idle partitions too). */
vg_err_t vg_stages_send_watermarks(vg_run_t *r, int64_t now_ms, int idle, char *errbuf,
                                   size_t errlen);
/* Records each aligner's bookkeeping, for the state commit and the changelog marker. */
void vg_stages_snapshot(vg_run_t *r);

#endif
