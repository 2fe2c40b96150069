/*
 * cmd_run.c - `vigil run`: the streaming engine.
 *
 * One processing thread: poll a micro-batch (bounded by count and time) from the
 * transactions and labels topics, run it through the pipeline, produce decisions, cases and
 * dead letters, then make it durable:
 *
 *   exactly_once   one Kafka transaction per batch holds the outputs AND the consumed
 *                  offsets; only after it commits is the feature state committed (one
 *                  RocksDB WriteBatch carrying the same offsets).
 *   at_least_once  outputs are produced and flushed, state is committed, then offsets.
 *
 * Either way the state store's offsets are never ahead of what Kafka holds as done. On
 * (re)assignment of a partition the engine starts reading at the state's offset S, and until
 * it reaches the group's committed offset K it only rebuilds state (no outputs): after a
 * kill -9 between the Kafka commit and the state commit, the batch is replayed into state
 * without being emitted twice. See docs/operations.md.
 *
 * With topology repartition the same loop runs a chain of stages (below, "stages and
 * per-partition offsets"): the batch's messages from the stages' own topics go to their
 * partitions' aligners (align.h), and every stage processes what it may release, all in the
 * batch's one Kafka transaction.
 */
#include "engine/align.h"
#include "engine/cli.h"
#include "engine/config.h"
#include "engine/http.h"
#include "engine/kafka.h"
#include "engine/pipeline.h"
#include "rules/rules.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const vg_option_t run_options[] = {
    {"engine", "group", VG_OPT_STRING, "vigil", "consumer group id", 0, 0, NULL},
    {"engine", "instance", VG_OPT_STRING, "0",
     "this process's name in the group; makes the transactional.id vigil-GROUP-INSTANCE", 0, 0,
     NULL},
    {"engine", "state", VG_OPT_STRING, "vigil-state", "RocksDB state directory", 0, 0, NULL},
    {"engine", "catalog", VG_OPT_STRING, "features/default.conf", "feature catalogue file", 0, 0,
     NULL},
    {"engine", "rules", VG_OPT_STRING, NULL, "rule file (none: every decision is allow)", 0, 0,
     NULL},
    {"engine", "lists", VG_OPT_STRING, NULL, "directory of @list files (default: the rule file's)",
     0, 0, NULL},
    {"engine", "model", VG_OPT_STRING, NULL, "model bundle directory (none: rules only)", 0, 0,
     NULL},
    {"engine", "shadow.model", VG_OPT_STRING, NULL, "challenger bundle, scored but never acting", 0,
     0, NULL},
    {"engine", "processing.guarantee", VG_OPT_ENUM, "exactly_once", "delivery guarantee", 0, 0,
     "exactly_once|at_least_once"},
    {"engine", "batch.max.messages", VG_OPT_INT, "20000", "micro-batch size bound", 1, 1000000,
     NULL},
    {"engine", "batch.max.ms", VG_OPT_DURATION, "50ms",
     "micro-batch time bound, from the batch's first message", 1, 60000, NULL},
    {"engine", "batch.linger.ms", VG_OPT_DURATION, "0",
     "how long a batch waits for more once the input queue is drained (0: close it at once, "
     "so batches are small under light traffic and full under load)",
     0, 60000, NULL},
    {"engine", "threads", VG_OPT_INT, "2",
     "1 or 2: a second thread decodes and encodes half of each batch (outputs unchanged)", 1, 2,
     NULL},
    {"engine", "reasons", VG_OPT_INT, "5", "top feature contributions on review/block decisions", 0,
     16, NULL},
    {"engine", "review.sample.rate", VG_OPT_DOUBLE, "0",
     "share of allowed transactions also sent to review (against selection bias)", 0, 1, NULL},
    {"engine", "review.band.low", VG_OPT_DOUBLE, "0",
     "allowed transactions scored in [low, high) also go to review, as near_threshold", 0, 1, NULL},
    {"engine", "review.band.high", VG_OPT_DOUBLE, "0", "see review.band.low (equal: off)", 0, 1,
     NULL},
    {"engine", "reload.interval", VG_OPT_DURATION, "2s",
     "how often rule and model files are checked for changes", 100, 3600000, NULL},
    {"engine", "state.sync", VG_OPT_BOOL, "false",
     "fsync each state commit (not needed for correctness: a state that lost its tail in a "
     "power cut is behind Kafka, and is rebuilt from the input)",
     0, 0, NULL},
    {"engine", "state.checkpoint.interval", VG_OPT_DURATION, "0",
     "0: every batch's state commit is written to RocksDB. Else commits are written together "
     "at most this often (and when input pauses): far less written, and a crash rebuilds up "
     "to this much input without emitting. Only on Apache Kafka or Redpanda: the local "
     "broker does not move group offsets, so there a crash would emit those batches again",
     0, 3600000, NULL},
    {"engine", "state.changelog", VG_OPT_BOOL, "false",
     "write every state change to the changelog topic in the batch's Kafka transaction, and "
     "restore an assigned partition's state from it (for several processes in one group)",
     0, 0, NULL},
    {"engine", "topology", VG_OPT_ENUM, "single",
     "single: one pipeline computes every feature. repartition: a stage per entity type that "
     "spans partitions (terminal, merchant, device, IP), each fed through its own topic keyed by "
     "that entity, so that several processes compute every feature exactly (needs "
     "state.changelog = true; docs/scaling.md)",
     0, 0, "single|repartition"},
    {"engine", "watermark.idle", VG_OPT_DURATION, "2s",
     "repartition: a transactions partition read to its end and without new messages this "
     "long stops holding back the stages: its watermark moves to the wall clock (or just past "
     "the newest transaction read, if that is later)",
     1, 3600000, NULL},
    {"engine", "cache.bytes", VG_OPT_INT, "0", "state cache bound in bytes (0: store default)", 0,
     1e12, NULL},
    {"engine", "http", VG_OPT_STRING, "127.0.0.1:9464", "address of /metrics, /health, /ready", 0,
     0, NULL},
    {"engine", "log.level", VG_OPT_ENUM, "info", "log level", 0, 0, "debug|info|warn|error"},
    {"topics", "transactions", VG_OPT_STRING, VG_TOPIC_TRANSACTIONS, "input transactions", 0, 0,
     NULL},
    {"topics", "labels", VG_OPT_STRING, VG_TOPIC_LABELS, "input labels", 0, 0, NULL},
    {"topics", "decisions", VG_OPT_STRING, VG_TOPIC_DECISIONS, "every decision", 0, 0, NULL},
    {"topics", "review", VG_OPT_STRING, VG_TOPIC_REVIEW, "cases for analysts", 0, 0, NULL},
    {"topics", "dlq", VG_OPT_STRING, VG_TOPIC_DLQ, "dead letters (bad input)", 0, 0, NULL},
    {"topics", "changelog", VG_OPT_STRING, VG_TOPIC_CHANGELOG,
     "state changelog: as many partitions as transactions; compacted in production; with "
     "topology repartition, stage ENTITY's is CHANGELOG.ENTITY",
     0, 0, NULL},
    {"topics", "repartition", VG_OPT_STRING, VG_TOPIC_REPARTITION,
     "topology repartition: stage ENTITY reads PREFIX.ENTITY (as many partitions as "
     "transactions; delete retention in production)",
     0, 0, NULL},
};

/* Flags that are shorthands for config keys. */
static const struct {
    const char *flag, *section, *key;
} flag_keys[] = {
    {"brokers", "kafka", "bootstrap.servers"},
    {"group", "engine", "group"},
    {"instance", "engine", "instance"},
    {"state", "engine", "state"},
    {"catalog", "engine", "catalog"},
    {"rules", "engine", "rules"},
    {"lists", "engine", "lists"},
    {"model", "engine", "model"},
    {"shadow-model", "engine", "shadow.model"},
    {"guarantee", "engine", "processing.guarantee"},
    {"batch-size", "engine", "batch.max.messages"},
    {"batch-ms", "engine", "batch.max.ms"},
    {"batch-linger", "engine", "batch.linger.ms"},
    {"http", "engine", "http"},
    {"log-level", "engine", "log.level"},
};

static void help(void)
{
    printf("usage: vigil run [OPTIONS]\n\n"
           "The streaming engine: consumes transactions and labels, computes features, applies\n"
           "rules and the model, and produces decisions (and review cases, and dead letters).\n\n"
           "Options:\n"
           "  --config FILE          INI file ([engine], [topics], [kafka] sections)\n"
           "  --brokers ADDR         = [kafka] bootstrap.servers\n"
           "  --group ID             = [engine] group\n"
           "  --instance NAME        = [engine] instance\n"
           "  --state DIR            = [engine] state\n"
           "  --catalog FILE         = [engine] catalog\n"
           "  --rules FILE           = [engine] rules\n"
           "  --lists DIR            = [engine] lists\n"
           "  --model DIR            = [engine] model\n"
           "  --shadow-model DIR     = [engine] shadow.model\n"
           "  --guarantee G          = [engine] processing.guarantee\n"
           "  --batch-size N         = [engine] batch.max.messages\n"
           "  --batch-ms DURATION    = [engine] batch.max.ms\n"
           "  --batch-linger DUR     = [engine] batch.linger.ms\n"
           "  --http HOST:PORT       = [engine] http\n"
           "  --log-level LEVEL      = [engine] log.level\n"
           "  --set SECTION.KEY=V    any option, e.g. --set kafka.linger.ms=5\n"
           "  --max-messages N       stop after N input messages (tests, benchmarks)\n"
           "  --idle-exit DURATION   stop after this long without input (tests, benchmarks)\n"
           "  --passthrough          no pipeline: copy transactions to decisions with the same\n"
           "                         consume/produce/commit path (the benchmark's baseline)\n"
           "  -h, --help             this help\n\n"
           "[engine] options:\n");
    vg_config_help(run_options, VG_ARRAY_LEN(run_options), "engine", stdout);
    printf("\n[topics] options:\n");
    vg_config_help(run_options, VG_ARRAY_LEN(run_options), "topics", stdout);
    printf("\n[kafka] takes any librdkafka property (bootstrap.servers, security.protocol, ...).\n"
           "Signals: SIGTERM/SIGINT finish the batch, commit and exit (a second one exits at\n"
           "once); SIGHUP reloads rules, lists and models.\n");
}

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

static int stage_of(int t)
{
    return t <= TP_CHANGELOG ? 0 : (t - 1) / 2;
}
/* The consumer's topics are transactions, labels, then stage 1, 2, ... topics. */
static int tp_of_consumer(int c)
{
    return c < 2 ? c : 2 * c - 1;
}
static int consumer_of_tp(int t)
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

/* The record of a partition, created on first sight; O(1), since it runs per message. */
static vg_tp_t *tp_get(vg_run_t *r, int topic_idx, int32_t partition)
{
    size_t p = (size_t)partition;
    if (p < r->tp_nslot[topic_idx] && r->tp_slot[topic_idx][p])
        return &r->tps[r->tp_slot[topic_idx][p] - 1];
    if (p >= r->tp_nslot[topic_idx]) {
        size_t n = (p + 1) * 2;
        r->tp_slot[topic_idx] = vg_xrealloc(r->tp_slot[topic_idx], n * sizeof(size_t));
        memset(r->tp_slot[topic_idx] + r->tp_nslot[topic_idx], 0,
               (n - r->tp_nslot[topic_idx]) * sizeof(size_t));
        r->tp_nslot[topic_idx] = n;
    }
    r->tps = vg_xrealloc(r->tps, (r->ntps + 1) * sizeof(*r->tps));
    r->done = vg_xrealloc(r->done, (r->ntps + 1) * sizeof(*r->done));
    vg_tp_t *tp = &r->tps[r->ntps++];
    *tp = (vg_tp_t){.topic_idx = topic_idx,
                    .partition = partition,
                    .next = -1,
                    .low = -1,
                    .maxts = INT64_MIN,
                    .wm_sent = INT64_MIN};
    r->tp_slot[topic_idx][p] = r->ntps;
    return tp;
}

/* A stage's offsets blob: one "topic_idx partition next" line per partition of the stage ever
 * seen, and for a stage's topic "a topic_idx partition low bookkeeping" (align.h). */
static void offsets_encode(const vg_run_t *r, const vg_stage_t *st, vg_buf_t *out)
{
    vg_buf_reset(out);
    for (size_t i = 0; i < r->ntps; i++) {
        const vg_tp_t *tp = &r->tps[i];
        if (tp->next < 0 || stage_of(tp->topic_idx) != st->k)
            continue;
        vg_buf_printf(out, "%d %d %lld\n", tp->topic_idx, (int)tp->partition, (long long)tp->next);
        if (tp->align_text)
            vg_buf_printf(out, "a %d %d %lld %s\n", tp->topic_idx, (int)tp->partition,
                          (long long)tp->low, tp->align_text);
    }
}

static void offsets_decode(vg_run_t *r, const char *blob, size_t len)
{
    char *copy = vg_xmalloc(len + 1);
    memcpy(copy, blob, len);
    copy[len] = '\0';
    char *line = copy;
    while (line && *line) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        int t, p, used;
        long long v;
        if (sscanf(line, "a %d %d %lld %n", &t, &p, &v, &used) == 3 && t > TP_CHANGELOG &&
            t < TP_TOPICS) {
            vg_tp_t *tp = tp_get(r, t, p);
            tp->low = v;
            free(tp->align_text);
            tp->align_text = vg_xstrdup(line + used);
        } else if (sscanf(line, "%d %d %lld", &t, &p, &v) == 3 && t >= 0 && t < TP_TOPICS) {
            tp_get(r, t, p)->next = v;
        }
        line = end ? end + 1 : NULL;
    }
    free(copy);
}

static void changelog_restore(vg_run_t *r, const vg_assignment_t *parts, size_t n);

/* "transactions [0 3 7], labels [1 2]": what this process holds after a rebalance. */
static void log_holdings(const vg_run_t *r)
{
    vg_buf_t b;
    vg_buf_init(&b);
    for (size_t c = 0; c < r->ntopics; c++) {
        int t = tp_of_consumer((int)c);
        size_t n = 0;
        vg_buf_printf(&b, "%s%s [", c ? ", " : "", r->topics[c]);
        for (size_t p = 0; p < r->tp_nslot[t]; p++) {
            size_t slot = r->tp_slot[t][p];
            if (slot && r->tps[slot - 1].assigned)
                vg_buf_printf(&b, n++ ? " %zu" : "%zu", p);
        }
        vg_buf_putc(&b, ']');
    }
    vg_buf_putc(&b, '\0');
    vg_info("run", "holding %s", b.data);
    vg_buf_free(&b);
}

static void on_rebalance(void *opaque, int revoked, vg_assignment_t *parts, size_t n)
{
    vg_run_t *r = opaque;
    r->last_input_ms = vg_now_ms();
    if (!revoked && r->stages[0].changelog && !r->fatal)
        changelog_restore(r, parts, n);
    for (size_t i = 0; i < n; i++) {
        if (parts[i].topic_idx < 0)
            continue;
        int t = tp_of_consumer(parts[i].topic_idx);
        vg_tp_t *tp = tp_get(r, t, parts[i].partition);
        tp->assigned = !revoked;
        tp->last_msg_ms = r->last_input_ms;
        if (tp->align)
            r->late += vg_align_late(tp->align);
        vg_align_free(tp->align);
        tp->align = NULL;
        if (revoked)
            continue;
        /* A stage's topic is read again from the oldest transaction its aligner held. */
        int64_t state = tp->low >= 0 ? tp->low : tp->next, committed = parts[i].committed;
        if (t > TP_CHANGELOG) {
            vg_stage_t *st = &r->stages[stage_of(t)];
            char errbuf[VG_ERRLEN];
            tp->align = vg_align_new(st->nsrc);
            if (tp->align_text &&
                vg_align_resume(tp->align, tp->align_text, tp->next, errbuf, sizeof(errbuf))) {
                vg_error("run", "%s [%d]: %s", st->topic, (int)tp->partition, errbuf);
                r->fatal = 1;
            }
        }
        /* Start where the state is; emit only from where Kafka says we got to. */
        parts[i].start = state >= 0 ? state : committed;
        tp->emit_from = committed >= 0 ? committed : 0;
        if (state >= 0 && committed >= 0 && state < committed)
            vg_warn("run",
                    "%s [%d]: state is at offset %lld, group at %lld: rebuilding state for %lld "
                    "messages without emitting",
                    r->topics[parts[i].topic_idx], (int)tp->partition, (long long)state,
                    (long long)committed, (long long)(committed - state));
        else if (state < 0 && committed > 0) {
            /* A partition new to this state store (another process had it, or the state
             * directory is new): rebuild its state from what the topic still holds. */
            parts[i].start = VG_OFFSET_BEGINNING;
            vg_warn("run",
                    "%s [%d]: no local state for this partition: rebuilding it from the start of "
                    "the partition up to offset %lld without emitting (as far as retention "
                    "allows)",
                    r->topics[parts[i].topic_idx], (int)tp->partition, (long long)committed);
        }
        if (tp->next < 0 && parts[i].start >= 0)
            tp->next = parts[i].start;
    }
    log_holdings(r);
}

/* ---- outputs ---- */

/* The forward record (a stage's output for the next, little-endian):
 *   "VGF1" | u32 source partition | u64 sequence | i64 ts | i64 Kafka timestamp of the
 *   transaction | u32 nfeat | u16 txn_id length | u16 0 | nfeat f64 | txn_id | transaction JSON
 * and the watermarks of the stage's partitions that moved, one record to every partition of the
 * next topic: key "@wm", value "VGW1" | u32 count | count x (u32 source, i64 wm). */
#define FWD_HDR 40u

typedef struct vg_fwd {
    int32_t src;
    uint64_t seq;
    int64_t ts, kts;
    uint32_t nfeat;
    const char *id, *json;
    size_t idlen, jsonlen;
    const double *feats; /* unaligned: memcpy */
} vg_fwd_t;

static int fwd_parse(const char *v, size_t len, vg_fwd_t *f)
{
    uint32_t src;
    uint16_t idlen;
    if (len < FWD_HDR || memcmp(v, "VGF1", 4) != 0)
        return -1;
    memcpy(&src, v + 4, 4);
    memcpy(&f->seq, v + 8, 8);
    memcpy(&f->ts, v + 16, 8);
    memcpy(&f->kts, v + 24, 8);
    memcpy(&f->nfeat, v + 32, 4);
    memcpy(&idlen, v + 36, 2);
    f->src = (int32_t)src;
    if ((size_t)f->nfeat * 8 + idlen > len - FWD_HDR)
        return -1;
    f->feats = (const double *)(const void *)(v + FWD_HDR);
    f->id = v + FWD_HDR + (size_t)f->nfeat * 8;
    f->idlen = idlen;
    f->json = f->id + idlen;
    f->jsonlen = len - FWD_HDR - (size_t)f->nfeat * 8 - idlen;
    return 0;
}

static vg_err_t forward(vg_stage_t *st, const vg_output_t *out, char *errbuf, size_t errlen)
{
    vg_run_t *r = st->r;
    const vg_txn_t *t = out->txn;
    uint32_t src = (uint32_t)out->input->partition;
    uint64_t seq = st->k == 0 ? (uint64_t)out->input->offset : st->seq[out->input - st->in];
    uint32_t nfeat = (uint32_t)vg_pipeline_feature_count(st->pipeline);
    uint16_t idlen = (uint16_t)(t->len[VG_F_TXN_ID] < 0xffff ? t->len[VG_F_TXN_ID] : 0xffff);
    uint16_t zero = 0;
    vg_buf_t *b = &r->fwd;
    vg_buf_reset(b);
    vg_buf_append(b, "VGF1", 4);
    vg_buf_append(b, &src, 4);
    vg_buf_append(b, &seq, 8);
    vg_buf_append(b, &t->ts_ms, 8);
    vg_buf_append(b, &out->input->timestamp_ms, 8);
    vg_buf_append(b, &nfeat, 4);
    vg_buf_append(b, &idlen, 2);
    vg_buf_append(b, &zero, 2);
    vg_buf_append(b, out->feats, (size_t)nfeat * 8);
    vg_buf_append(b, t->str[VG_F_TXN_ID], idlen);
    vg_buf_append(b, out->value, out->len);
    /* keyed by the next stage's entity; a transaction without one by its id (it changes no
     * state there, so any partition will do) */
    int f = st->next_field >= 0 && t->str[st->next_field] ? st->next_field : VG_F_TXN_ID;
    vg_tp_t *in = tp_get(r, st->k == 0 ? TP_TXNS : TP_REPART(st->k), out->input->partition);
    if (st->k == 0 && t->ts_ms > in->maxts)
        in->maxts = t->ts_ms;
    if (st->k == 0 && t->ts_ms > r->max_ts)
        r->max_ts = t->ts_ms;
    vg_kheader_t h = {"vigil.batch", r->batch_id, strlen(r->batch_id)};
    return vg_producer_send_h(r->producer, st->next_topic, t->str[f], t->len[f], b->data, b->len,
                              &h, 1, errbuf, errlen);
}

/* A decision of this batch, for its end-to-end latency once the batch commits. */
static void note_decided(vg_run_t *r, int64_t timestamp_ms)
{
    if (timestamp_ms <= 0)
        return;
    if (r->ndecided == r->capdecided) {
        r->capdecided = r->capdecided ? r->capdecided * 2 : 1024;
        r->decided_ts = vg_xrealloc(r->decided_ts, r->capdecided * sizeof(int64_t));
    }
    r->decided_ts[r->ndecided++] = timestamp_ms;
}

static vg_err_t emit(void *opaque, const vg_output_t *out)
{
    vg_stage_t *st = opaque;
    vg_run_t *r = st->r;
    char errbuf[VG_ERRLEN];
    vg_err_t err;
    if (out->kind == VG_OUT_FORWARD) {
        err = forward(st, out, errbuf, sizeof(errbuf));
    } else if (out->kind == VG_OUT_DLQ) {
        char part[16], off[24];
        snprintf(part, sizeof(part), "%d", (int)out->input->partition);
        snprintf(off, sizeof(off), "%lld", (long long)out->input->offset);
        const char *src = r->topics[out->input->kind == VG_IN_LABEL ? 1 : 0];
        vg_kheader_t h[] = {
            {"vigil.reason", out->reason, strlen(out->reason)},
            {"vigil.source.topic", src, strlen(src)},
            {"vigil.source.partition", part, strlen(part)},
            {"vigil.source.offset", off, strlen(off)},
        };
        err = vg_producer_send_h(r->producer, vg_config_str(r->config, "topics", "dlq"), NULL, 0,
                                 out->value, out->len, h, VG_ARRAY_LEN(h), errbuf, sizeof(errbuf));
    } else {
        const char *topic =
            vg_config_str(r->config, "topics", out->kind == VG_OUT_REVIEW ? "review" : "decisions");
        vg_kheader_t h = {"vigil.batch", r->batch_id, strlen(r->batch_id)};
        err = vg_producer_send_h(r->producer, topic, out->key, out->keylen, out->value, out->len,
                                 &h, 1, errbuf, sizeof(errbuf));
        if (out->kind == VG_OUT_DECISION)
            note_decided(r, out->input->timestamp_ms);
    }
    if (err)
        vg_error("run", "%s", errbuf);
    return err;
}

/* An aligner released a transaction: it becomes an input of the stage's batch. */
static void on_release(void *opaque, vg_held_t *h, uint64_t seq)
{
    vg_stage_t *st = opaque;
    vg_fwd_t f;
    fwd_parse(h->data, h->len, &f); /* checked when it arrived */
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 1024;
        st->in = vg_xrealloc(st->in, st->cap * sizeof(*st->in));
        st->seq = vg_xrealloc(st->seq, st->cap * sizeof(*st->seq));
        st->held = vg_xrealloc(st->held, st->cap * sizeof(*st->held));
    }
    st->in[st->n] = (vg_input_t){
        .kind = VG_IN_TXN,
        .data = f.json,
        .len = f.jsonlen,
        .partition = st->cur_part,
        .offset = h->offset,
        .timestamp_ms = f.kts,
        .emit = 1, /* restored from the changelog, a stage is never behind its commit */
        .feats = f.nfeat == vg_pipeline_feature_count(st->pipeline) ? f.feats : NULL,
    };
    st->seq[st->n] = seq;
    st->held[st->n++] = h;
}

/* 1 if m is a watermarks record: "VGW1" | u32 count | count x (u32 source, i64 wm). */
static int is_watermarks(const vg_msg_t *m)
{
    uint32_t count;
    if (m->len < 8 || memcmp(m->value, "VGW1", 4) != 0)
        return 0;
    memcpy(&count, m->value + 4, 4);
    return m->len == 8 + 12 * (size_t)count;
}

/* A message of stage st's topic: to its partition's aligner. */
static void stage_read(vg_run_t *r, vg_stage_t *st, vg_tp_t *tp, const vg_msg_t *m)
{
    if (!tp->align)
        return;
    st->cur_part = m->partition;
    vg_fwd_t f;
    uint32_t src;
    int64_t wm;
    if (m->len >= 4 && memcmp(m->value, "VGL1", 4) == 0) {
        if (vg_align_replaying(tp->align, m->offset))
            return; /* applied before the commit this restart resumes from */
        if (st->nlab == st->caplab) {
            st->caplab = st->caplab ? st->caplab * 2 : 256;
            st->lab = vg_xrealloc(st->lab, st->caplab * sizeof(*st->lab));
        }
        /* emit 0: a label the first stage dead-lettered is not dead-lettered again */
        st->lab[st->nlab++] = (vg_input_t){.kind = VG_IN_LABEL,
                                           .data = m->value + 4,
                                           .len = m->len - 4,
                                           .partition = m->partition,
                                           .offset = m->offset,
                                           .timestamp_ms = m->timestamp_ms};
    } else if (is_watermarks(m)) {
        uint32_t count;
        memcpy(&count, m->value + 4, 4);
        for (uint32_t i = 0; i < count; i++) {
            memcpy(&src, m->value + 8 + 12 * (size_t)i, 4);
            memcpy(&wm, m->value + 12 + 12 * (size_t)i, 8);
            vg_align_watermark(tp->align, m->offset, (int32_t)src, wm);
        }
    } else if (fwd_parse(m->value, m->len, &f) == 0) {
        vg_align_data(tp->align, m->offset, f.src, f.seq, f.ts, f.id, f.idlen, m->value, m->len,
                      on_release, st);
    } else if (r->bad_forwards++ == 0) {
        vg_error("run", "%s [%d] offset %lld: not a forward record or watermark (skipped)",
                 st->topic, (int)m->partition, (long long)m->offset);
    }
}

/* 1 if an input partition has been idle long enough for a watermark from the wall clock, and
 * has not had one since its last message (one releases everything held before it). */
static int idle_watermark_due(const vg_run_t *r, int64_t now_ms)
{
    for (size_t i = 0; i < r->ntps; i++) {
        const vg_tp_t *tp = &r->tps[i];
        if (tp->assigned && tp->topic_idx == TP_TXNS && !tp->idle_sent &&
            now_ms - tp->last_msg_ms >= r->idle_ms)
            return 1;
    }
    return 0;
}

/* Labels go down the chain of stages: each stage applies a label where it arrives (as one
 * process applies labels as they arrive), in whichever of its partitions holds the labelled
 * transaction's record; the label's transaction is not known before, so every partition of the
 * next stage gets it: from stage 0, and from partition 0 of a later stage. */
static vg_err_t forward_labels(vg_run_t *r, const vg_stage_t *st, const vg_input_t *in, size_t n,
                               char *errbuf, size_t errlen)
{
    vg_kheader_t h = {"vigil.batch", r->batch_id, strlen(r->batch_id)};
    for (size_t i = 0; i < n && st->next_topic; i++) {
        if (in[i].kind != VG_IN_LABEL || (st->k == 0 ? !in[i].emit : in[i].partition != 0))
            continue;
        vg_buf_reset(&r->fwd);
        vg_buf_append(&r->fwd, "VGL1", 4);
        vg_buf_append(&r->fwd, in[i].data, in[i].len);
        for (int q = 0; q < st->nout; q++) {
            vg_err_t err = vg_producer_send_to(r->producer, st->next_topic, q, "@label", 6,
                                               r->fwd.data, r->fwd.len, &h, 1, errbuf, errlen);
            if (err)
                return err;
        }
    }
    return VG_OK;
}

/* The release order of a stage's batch: (ts, txn_id), then partition. */
static const vg_stage_t *sort_stage;
static int cmp_release(const void *x, const void *y)
{
    const vg_held_t *a = sort_stage->held[*(const size_t *)x];
    const vg_held_t *b = sort_stage->held[*(const size_t *)y];
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    size_t n = a->idlen < b->idlen ? a->idlen : b->idlen;
    int c = memcmp(a->id, b->id, n);
    if (c || a->idlen != b->idlen)
        return c ? c : (a->idlen < b->idlen ? -1 : 1);
    return (int)(sort_stage->in[*(const size_t *)x].partition -
                 sort_stage->in[*(const size_t *)y].partition);
}

/* Releases what every stage's partitions held here can let go of: below the smallest of their
 * fronts, so that a partition whose sources are read ahead does not run ahead of the others;
 * then merges the partitions' releases into one time order (what a replay sorted by time gives:
 * entity expiry follows the greatest time processed, docs/features.md). Late arrivals, already
 * in the list, are sorted in with the rest. */
static void stages_release(vg_run_t *r)
{
    for (int k = 1; k < r->nstages; k++) {
        vg_stage_t *st = &r->stages[k];
        int64_t limit = INT64_MAX;
        for (size_t i = 0; i < r->ntps; i++)
            if (r->tps[i].topic_idx == TP_REPART(k) && r->tps[i].align &&
                vg_align_limit(r->tps[i].align) < limit)
                limit = vg_align_limit(r->tps[i].align);
        for (size_t i = 0; i < r->ntps; i++)
            if (r->tps[i].topic_idx == TP_REPART(k) && r->tps[i].align) {
                st->cur_part = r->tps[i].partition;
                vg_align_release(r->tps[i].align, limit, on_release, st);
            }
        if (st->n < 2)
            continue;
        size_t *order = vg_xmalloc(st->n * sizeof(*order));
        for (size_t i = 0; i < st->n; i++)
            order[i] = i;
        sort_stage = st;
        qsort(order, st->n, sizeof(*order), cmp_release);
        vg_input_t *in = vg_xmalloc(st->n * sizeof(*in));
        uint64_t *seq = vg_xmalloc(st->n * sizeof(*seq));
        vg_held_t **held = vg_xmalloc(st->n * sizeof(*held));
        for (size_t i = 0; i < st->n; i++) {
            in[i] = st->in[order[i]];
            seq[i] = st->seq[order[i]];
            held[i] = st->held[order[i]];
        }
        memcpy(st->in, in, st->n * sizeof(*in));
        memcpy(st->held, held, st->n * sizeof(*held));
        /* Each partition's release numbers are the next stage's sequence numbers: they must
         * rise in the order the records are sent, which the sort changed if a late arrival
         * (numbered when it came) moved before earlier releases. A partition's numbers in a
         * batch are consecutive: hand them out again in sorted order. */
        size_t nparts = 0;
        for (size_t i = 0; i < st->n; i++)
            if ((size_t)in[i].partition + 1 > nparts)
                nparts = (size_t)in[i].partition + 1;
        uint64_t *next = vg_xmalloc(nparts * sizeof(*next));
        for (size_t q = 0; q < nparts; q++)
            next[q] = UINT64_MAX;
        for (size_t i = 0; i < st->n; i++)
            if (seq[i] < next[in[i].partition])
                next[in[i].partition] = seq[i];
        for (size_t i = 0; i < st->n; i++)
            st->seq[i] = next[in[i].partition]++;
        free(next);
        free(order);
        free(in);
        free(seq);
        free(held);
    }
}

/* Sends the watermark of each input partition of each forwarding stage that moved: a stage's
 * input partition promises nothing below it any more (stage 0: its greatest ts, the
 * transactions topic being in time order per partition; stage k: its aligner's front). In a
 * batch that consumed nothing (idle), a transactions partition read to its end and idle for
 * watermark.idle promises nothing below the wall clock. */
static vg_err_t send_watermarks(vg_run_t *r, int64_t now_ms, int idle, char *errbuf, size_t errlen)
{
    vg_kheader_t h = {"vigil.batch", r->batch_id, strlen(r->batch_id)};
    for (int k = 0; k + 1 < r->nstages; k++) {
        /* one record per next-stage partition, with every watermark of this stage that moved */
        vg_buf_t *b = &r->fwd;
        uint32_t count = 0;
        vg_buf_reset(b);
        vg_buf_append(b, "VGW1", 4);
        vg_buf_append(b, &count, 4);
        for (size_t i = 0; i < r->ntps; i++) {
            vg_tp_t *tp = &r->tps[i];
            if (!tp->assigned || tp->topic_idx != (k == 0 ? TP_TXNS : TP_REPART(k)))
                continue;
            int64_t wm = k == 0 ? tp->maxts : vg_align_released(tp->align);
            if (k == 0 && idle && !tp->idle_sent && now_ms - tp->last_msg_ms >= r->idle_ms) {
                /* once per pause: a partition not read to its end has a message coming */
                int64_t end = vg_consumer_end_offset(r->consumer, TP_TXNS, tp->partition);
                /* past the wall clock, or past every transaction read here (a log from the
                 * future, or a test's): either way nothing earlier is expected any more */
                int64_t idle_wm =
                    r->max_ts != INT64_MIN && r->max_ts + 1 > now_ms ? r->max_ts + 1 : now_ms;
                if (end >= 0 && tp->next >= end && idle_wm > wm) {
                    vg_info("run",
                            "%s [%d]: read to its end and idle for %lld ms: its watermark moves "
                            "to %s",
                            r->topics[0], (int)tp->partition, (long long)(now_ms - tp->last_msg_ms),
                            idle_wm > now_ms ? "just past the newest transaction read"
                                             : "the wall clock");
                    wm = idle_wm;
                }
                tp->idle_sent = 1;
            }
            if (wm == INT64_MIN || wm <= tp->wm_sent)
                continue;
            uint32_t src = (uint32_t)tp->partition;
            vg_buf_append(b, &src, 4);
            vg_buf_append(b, &wm, 8);
            tp->wm_sent = wm;
            count++;
        }
        if (count == 0)
            continue;
        memcpy(b->data + 4, &count, 4);
        for (int q = 0; q < r->stages[k].nout; q++) {
            vg_err_t err = vg_producer_send_to(r->producer, r->stages[k].next_topic, q, "@wm", 3,
                                               b->data, b->len, &h, 1, errbuf, errlen);
            if (err)
                return err;
        }
        r->watermarks_sent += count;
    }
    return VG_OK;
}

/* After a batch: each aligner's bookkeeping, for the state commit and the changelog marker. */
static void align_snapshot(vg_run_t *r)
{
    vg_buf_t b;
    vg_buf_init(&b);
    for (size_t i = 0; i < r->ntps; i++) {
        vg_tp_t *tp = &r->tps[i];
        if (!tp->align)
            continue;
        vg_buf_reset(&b);
        vg_align_encode(tp->align, &b);
        vg_buf_putc(&b, '\0');
        free(tp->align_text);
        tp->align_text = vg_xstrdup(b.data);
        tp->low = vg_align_low(tp->align);
    }
    vg_buf_free(&b);
}

/* ---- the changelog ----
 *
 * With state.changelog, each batch's Kafka transaction also carries, for every transactions
 * partition p this process holds and the batch touched: one record per entity of p that the
 * batch changed (key "TYPE/ID", value the entity's encoded state, a tombstone when it expired),
 * then a marker (key "@offsets", value "next=N catalog=V": the input offset the state now
 * reflects). Both go to changelog partition p, so the changelog is exactly the committed state.
 * A process assigned p reads changelog p from where its own state left it and applies each
 * batch's records when it reads the batch's marker; records after the last marker belong to
 * a batch that never committed (on a broker without abort markers, like the local one) and are
 * dropped. Then it reads the input from the marker's offset.
 */

#define CL_MARKER "@offsets"

/* The input partition of stage st whose changelog partition is part (NULL: not held now). */
static vg_tp_t *stage_tp(vg_run_t *r, const vg_stage_t *st, int32_t part)
{
    int t = st->k == 0 ? TP_TXNS : TP_REPART(st->k);
    if (part < 0 || (size_t)part >= r->tp_nslot[t] || !r->tp_slot[t][part])
        return NULL;
    vg_tp_t *tp = &r->tps[r->tp_slot[t][part] - 1];
    return tp->assigned ? tp : NULL;
}

static void on_change(void *opaque, int32_t part, const char *entity, const char *key, size_t klen,
                      const void *value, size_t vlen)
{
    vg_stage_t *st = opaque;
    vg_run_t *r = st->r;
    /* Only partitions held now: an entity of a partition that moved away (changed here by a
     * late label) belongs to its new owner's changelog. */
    vg_tp_t *tp = r->clerr ? NULL : stage_tp(r, st, part);
    if (!tp)
        return;
    vg_buf_reset(&r->clkey);
    vg_buf_printf(&r->clkey, "%s/", entity);
    vg_buf_append(&r->clkey, key, klen);
    vg_kheader_t h = {"vigil.batch", r->batch_id, strlen(r->batch_id)};
    r->clerr = vg_producer_send_to(r->producer, st->changelog, part, r->clkey.data, r->clkey.len,
                                   value, vlen, &h, 1, r->clerrbuf, sizeof(r->clerrbuf));
    tp->changed = 1;
    r->cl_records++;
}

/* Queues this batch's changelog: every stage's changed entities; then, once they and every
 * other output of the batch are delivered, a marker per input partition touched (a stage >= 1
 * adds where to re-read from and its aligner's bookkeeping). Waiting for the deliveries costs
 * a round trip per batch, and is what makes a marker trustworthy on a broker that shows
 * aborted transactions (the local one): a marker that became visible follows a batch that is
 * visible whole, never one whose kill left some of its outputs unsent. */
static vg_err_t changelog_send(vg_run_t *r, char *errbuf, size_t errlen)
{
    r->clerr = VG_OK;
    for (int k = 0; k < r->nstages && !r->clerr; k++)
        vg_pipeline_changes(r->stages[k].pipeline, on_change, &r->stages[k]);
    if (r->clerr)
        return vg_errf(errbuf, errlen, r->clerr, "changelog: %s", r->clerrbuf);
    vg_err_t err = vg_producer_flush(r->producer, 60000, errbuf, errlen);
    vg_kheader_t h = {"vigil.batch", r->batch_id, strlen(r->batch_id)};
    for (size_t i = 0; i < r->ntps && !err; i++) {
        vg_tp_t *tp = &r->tps[i];
        vg_stage_t *st = &r->stages[stage_of(tp->topic_idx)];
        if ((tp->topic_idx != TP_TXNS && tp->topic_idx != TP_REPART(st->k)) || !tp->changed)
            continue;
        vg_buf_reset(&r->clval);
        vg_buf_printf(&r->clval, "next=%lld catalog=%s stage=%s", (long long)tp->next,
                      vg_pipeline_catalog_version(st->pipeline), st->name);
        if (tp->align_text)
            vg_buf_printf(&r->clval, " low=%lld align=%s", (long long)tp->low, tp->align_text);
        err = vg_producer_send_to(r->producer, st->changelog, tp->partition, CL_MARKER,
                                  strlen(CL_MARKER), r->clval.data, r->clval.len, &h, 1, errbuf,
                                  errlen);
    }
    return err;
}

/* After the Kafka commit: how far each changelog partition written now reflects our state. */
static void changelog_committed(vg_run_t *r)
{
    for (size_t i = 0; i < r->ntps; i++) {
        vg_tp_t *tp = &r->tps[i];
        int k = stage_of(tp->topic_idx);
        if ((tp->topic_idx != TP_TXNS && tp->topic_idx != TP_REPART(k)) || !tp->changed)
            continue;
        tp->changed = 0;
        int64_t last = vg_producer_tracked(r->producer, r->stages[k].changelog, tp->partition);
        if (last >= 0)
            tp_get(r, TP_CL(k), tp->partition)->next = last + 1;
    }
}

/* Drops the held records of one partition (all of them if partition < 0). */
static void pending_drop(vg_run_t *r, int32_t partition)
{
    size_t k = 0;
    for (size_t i = 0; i < r->npending; i++) {
        if (partition < 0 || r->pending[i].partition == partition) {
            free(r->pending[i].key);
            free(r->pending[i].value);
        } else {
            r->pending[k++] = r->pending[i];
        }
    }
    r->npending = k;
}

/* Applies a marker of stage st's changelog: its batch's records, then its offsets. */
static vg_err_t restore_marker(vg_run_t *r, vg_stage_t *st, int32_t part, int64_t offset,
                               const char *text, char *errbuf, size_t errlen)
{
    long long next, low = -1;
    char catalog[64], stage[128] = "all"; /* markers before stages had no stage= */
    int used = 0, used2 = 0, used3 = 0;
    if (sscanf(text, "next=%lld catalog=%63s%n", &next, catalog, &used) == 2 &&
        strncmp(text + used, " stage=", 7) == 0 &&
        sscanf(text + used, " stage=%127s%n", stage, &used3) == 1)
        used += used3;
    if (used == 0 || (st->k > 0 && sscanf(text + used, " low=%lld align=%n", &low, &used2) != 1))
        return vg_errf(errbuf, errlen, VG_ERR_STATE,
                       "%s [%d] offset %lld: bad marker '%.80s' (expected next=N catalog=V "
                       "stage=S%s)",
                       st->changelog, (int)part, (long long)offset, text,
                       st->k ? " low=N align=..." : "");
    if (strcmp(stage, st->name) != 0)
        return vg_errf(errbuf, errlen, VG_ERR_STATE,
                       "%s [%d] was written by stage %s, this engine's is %s: a changelog "
                       "belongs to one topology (use a new changelog topic for another)",
                       st->changelog, (int)part, stage, st->name);
    if (strcmp(catalog, vg_pipeline_catalog_version(st->pipeline)) != 0)
        return vg_errf(errbuf, errlen, VG_ERR_STATE,
                       "%s [%d] was written under catalogue %s, this engine runs %s: restore "
                       "needs the same catalogue (use a new changelog topic for a new one)",
                       st->changelog, (int)part, catalog,
                       vg_pipeline_catalog_version(st->pipeline));
    for (size_t i = 0; i < r->npending; i++) {
        vg_pending_t *pr = &r->pending[i];
        if (pr->partition != part)
            continue;
        char *slash = memchr(pr->key, '/', pr->klen);
        if (!slash)
            return vg_errf(errbuf, errlen, VG_ERR_STATE,
                           "%s [%d]: record key '%.*s' is not TYPE/ID", st->changelog, (int)part,
                           (int)pr->klen, pr->key);
        *slash = '\0';
        vg_err_t err = vg_pipeline_restore(st->pipeline, part, pr->key, slash + 1,
                                           pr->klen - (size_t)(slash - pr->key) - 1, pr->value,
                                           pr->vlen, errbuf, errlen);
        if (err)
            return err;
        r->restored_records++;
    }
    pending_drop(r, part);
    vg_tp_t *tp = tp_get(r, st->k == 0 ? TP_TXNS : TP_REPART(st->k), part);
    if (st->k == 0) {
        if (next > tp->next)
            tp->next = next;
    } else { /* each marker read is newer than the local state: take it whole */
        tp->next = next;
        tp->low = low;
        free(tp->align_text);
        tp->align_text = vg_xstrdup(text + used + used2);
    }
    tp_get(r, TP_CL(st->k), part)->next = offset + 1;
    return VG_OK;
}

static vg_err_t on_restore_record(void *opaque, int32_t part, int64_t offset, const void *key,
                                  size_t klen, const void *value, size_t vlen, char *errbuf,
                                  size_t errlen)
{
    vg_run_t *r = opaque;
    if (klen == strlen(CL_MARKER) && memcmp(key, CL_MARKER, klen) == 0) {
        char *text = vg_xmalloc(vlen + 1);
        memcpy(text, value ? value : "", value ? vlen : 0);
        text[value ? vlen : 0] = '\0';
        vg_err_t err = restore_marker(r, r->restoring, part, offset, text, errbuf, errlen);
        free(text);
        return err;
    }
    if (r->npending == r->cappending) {
        r->cappending = r->cappending ? r->cappending * 2 : 1024;
        r->pending = vg_xrealloc(r->pending, r->cappending * sizeof(*r->pending));
    }
    vg_pending_t *pr = &r->pending[r->npending++];
    pr->partition = part;
    pr->key = vg_xmalloc(klen + 1);
    memcpy(pr->key, key, klen);
    pr->klen = klen;
    pr->value = value ? vg_xmalloc(vlen ? vlen : 1) : NULL;
    if (value)
        memcpy(pr->value, value, vlen);
    pr->vlen = vlen;
    return VG_OK;
}

/* Restores the state of stage st's newly assigned input partitions from their changelog
 * tail, then commits it. On failure sets r->fatal: the loop stops (a restart retries). */
static void stage_restore(vg_run_t *r, vg_stage_t *st, const vg_assignment_t *parts, size_t n)
{
    int t = st->k == 0 ? TP_TXNS : TP_REPART(st->k);
    vg_readpos_t *pos = vg_xcalloc(n, sizeof(*pos));
    size_t np = 0;
    for (size_t i = 0; i < n; i++)
        if (parts[i].topic_idx >= 0 && tp_of_consumer(parts[i].topic_idx) == t) {
            int64_t from = tp_get(r, TP_CL(st->k), parts[i].partition)->next;
            pos[np++] = (vg_readpos_t){.partition = parts[i].partition,
                                       .from = from >= 0 ? from : VG_OFFSET_BEGINNING};
        }
    if (np == 0) { /* nothing of this stage's: nothing to restore */
        free(pos);
        return;
    }
    char errbuf[VG_ERRLEN];
    int64_t t0 = vg_mono_ns();
    r->restoring = st;
    vg_err_t err = vg_topic_read(r->brokers, r->props, r->nprops, st->changelog, pos, np, 30000,
                                 on_restore_record, r, errbuf, sizeof(errbuf));
    double secs = (double)(vg_mono_ns() - t0) / 1e9;
    uint64_t msgs = 0, bytes = 0;
    for (size_t i = 0; i < np; i++) {
        vg_debug("run", "restore: %s [%d] from %lld to %lld: %llu records", st->changelog,
                 (int)pos[i].partition, (long long)pos[i].from, (long long)pos[i].end,
                 (unsigned long long)pos[i].messages);
        msgs += pos[i].messages;
        bytes += pos[i].bytes;
    }
    r->cl_discarded += r->npending;
    if (!err && r->npending)
        vg_warn("run",
                "restore: dropped %zu changelog records after the last marker: a batch that "
                "never committed",
                r->npending);
    pending_drop(r, -1);
    vg_buf_t offsets;
    vg_buf_init(&offsets);
    if (!err) {
        offsets_encode(r, st, &offsets);
        err = vg_pipeline_commit(st->pipeline, offsets.data, offsets.len, errbuf, sizeof(errbuf));
    }
    vg_buf_free(&offsets);
    if (err) {
        vg_error("run", "restoring state from %s failed: %s", st->changelog, errbuf);
        r->fatal = 1;
    } else if (msgs > 0) {
        r->restored_partitions += np;
        r->restored_bytes += bytes;
        r->restore_secs += secs;
        vg_info("run",
                "restored %zu partition(s) from %s: %llu records, %.1f MB in %.2f s (%.0f "
                "records/s, %.1f MB/s)",
                np, st->changelog, (unsigned long long)msgs, (double)bytes / 1e6, secs,
                (double)msgs / (secs > 0 ? secs : 1e-9),
                (double)bytes / 1e6 / (secs > 0 ? secs : 1e-9));
    }
    free(pos);
}

static void changelog_restore(vg_run_t *r, const vg_assignment_t *parts, size_t n)
{
    for (int k = 0; k < r->nstages && !r->fatal; k++)
        stage_restore(r, &r->stages[k], parts, n);
}

/* ---- metrics ---- */

/* The state stores' figures: one family at a time (Prometheus wants them contiguous), with a
 * stage label when there are several. */
static void write_state_metrics(vg_run_t *r, vg_buf_t *b)
{
    enum { ENTITIES, CACHED, CACHE_BYTES, EXPIRED, WATERMARK, PART_BYTES, PART_ENTITIES };
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"vigil_state_entities", "gauge",
         "Entities in state, by entity type (RocksDB's estimate of stored keys)."},
        {"vigil_state_cached_entities", "gauge", "Entities in the write-back cache."},
        {"vigil_state_cache_bytes", "gauge", "Memory held by the state cache."},
        {"vigil_state_expired_total", "counter",
         "Entities reset after idling past their longest window."},
        {"vigil_event_time_watermark_seconds", "gauge", "Greatest event time processed."},
        {"vigil_state_partition_bytes", "gauge",
         "Encoded state by home partition (of the stage's input topic), of the entities in the "
         "cache: all of them while the state fits cache.bytes."},
        {"vigil_state_partition_entities", "gauge",
         "Entities by home partition, in the cache (as vigil_state_partition_bytes)."},
    };
    static uint64_t pbytes[MAX_STAGES][1024], pents[MAX_STAGES][1024];
    vg_state_stats_t st[MAX_STAGES];
    size_t nparts[MAX_STAGES];
    for (int k = 0; k < r->nstages; k++) {
        vg_pipeline_state_stats(r->stages[k].pipeline, &st[k]);
        nparts[k] = vg_pipeline_partition_sizes(r->stages[k].pipeline, pbytes[k], pents[k],
                                                VG_ARRAY_LEN(pbytes[k]));
    }
    for (size_t f = 0; f < VG_ARRAY_LEN(fam); f++) {
        vg_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name,
                      fam[f].type);
        for (int k = 0; k < r->nstages; k++) {
            /* labels: `stage="S",` with several stages, then the family's own */
            char stage[160] = "";
            if (r->nstages > 1)
                snprintf(stage, sizeof(stage), "stage=\"%s\",", r->stages[k].name);
            for (size_t i = 0; (f == ENTITIES || f == CACHED) && i < st[k].ntypes; i++)
                vg_buf_printf(b, "%s{%sentity=\"%s\"} %llu\n", fam[f].name, stage,
                              st[k].types[i].entity,
                              (unsigned long long)(f == ENTITIES ? st[k].types[i].stored_estimate
                                                                 : st[k].types[i].cached));
            for (size_t p = 0; (f == PART_BYTES || f == PART_ENTITIES) && p < nparts[k]; p++)
                if (pents[k][p])
                    vg_buf_printf(
                        b, "%s{%spartition=\"%zu\"} %llu\n", fam[f].name, stage, p,
                        (unsigned long long)(f == PART_BYTES ? pbytes[k][p] : pents[k][p]));
            size_t sl = strlen(stage);
            if (sl) /* the stage label alone: no trailing comma */
                stage[sl - 1] = '\0';
            if (f == CACHE_BYTES || f == EXPIRED)
                vg_buf_printf(
                    b, "%s%s%s%s %llu\n", fam[f].name, sl ? "{" : "", stage, sl ? "}" : "",
                    (unsigned long long)(f == CACHE_BYTES ? st[k].cache_bytes : st[k].expired));
            else if (f == WATERMARK)
                vg_buf_printf(b, "%s%s%s%s %.3f\n", fam[f].name, sl ? "{" : "", stage,
                              sl ? "}" : "", (double)st[k].watermark_ms / 1e3);
        }
    }
}

static void write_metrics(vg_run_t *r, vg_buf_t *b)
{
    vg_buf_reset(b);
    vg_buf_printf(b, "# HELP vigil_consumed_total Messages consumed, by topic.\n"
                     "# TYPE vigil_consumed_total counter\n");
    for (size_t c = 0; c < r->ntopics; c++)
        vg_buf_printf(b, "vigil_consumed_total{topic=\"%s\"} %llu\n", r->topics[c],
                      (unsigned long long)r->consumed[c]);
    if (!r->pipeline) /* --passthrough */
        return;
    const vg_pipeline_stats_t *s = vg_pipeline_stats(r->pipeline);
    const vg_pipeline_stats_t *s0 = vg_pipeline_stats(r->stages[0].pipeline); /* input's */
    vg_buf_printf(b, "# HELP vigil_decisions_total Decisions produced, by action.\n"
                     "# TYPE vigil_decisions_total counter\n");
    for (int a = 0; a < 3; a++)
        vg_buf_printf(b, "vigil_decisions_total{action=\"%s\"} %llu\n",
                      vg_action_name((vg_action_t)a), (unsigned long long)s->decisions[a]);
    vg_buf_printf(b,
                  "# HELP vigil_review_cases_total Cases sent to review (sampled included).\n"
                  "# TYPE vigil_review_cases_total counter\n"
                  "vigil_review_cases_total %llu\n"
                  "# HELP vigil_dead_letters_total Bad input sent to the dead-letter topic.\n"
                  "# TYPE vigil_dead_letters_total counter\n"
                  "vigil_dead_letters_total %llu\n"
                  "# HELP vigil_labels_total Labels applied to state.\n"
                  "# TYPE vigil_labels_total counter\n"
                  "vigil_labels_total %llu\n"
                  "# HELP vigil_labels_unknown_total Labels for transactions not in state.\n"
                  "# TYPE vigil_labels_unknown_total counter\n"
                  "vigil_labels_unknown_total %llu\n"
                  "# HELP vigil_recovered_total Transactions replayed into state without "
                  "emitting, after a restart.\n"
                  "# TYPE vigil_recovered_total counter\n"
                  "vigil_recovered_total %llu\n",
                  (unsigned long long)s->reviews, (unsigned long long)s0->dead_letters,
                  (unsigned long long)s0->labels, (unsigned long long)s0->labels_unknown,
                  (unsigned long long)s->recovered);
    vg_buf_printf(b, "# HELP vigil_rule_hits_total Times each rule fired.\n"
                     "# TYPE vigil_rule_hits_total counter\n");
    for (size_t i = 0; i < vg_pipeline_rule_count(r->pipeline); i++)
        vg_buf_printf(b, "vigil_rule_hits_total{rule=\"%s\"} %llu\n",
                      vg_pipeline_rule_id(r->pipeline, i), (unsigned long long)s->rule_hits[i]);
    vg_buf_printf(b,
                  "# HELP vigil_reloads_total Successful reloads, by what.\n"
                  "# TYPE vigil_reloads_total counter\n"
                  "vigil_reloads_total{what=\"rules\"} %llu\n"
                  "vigil_reloads_total{what=\"model\"} %llu\n"
                  "# HELP vigil_reload_failures_total Failed reloads (old version kept).\n"
                  "# TYPE vigil_reload_failures_total counter\n"
                  "vigil_reload_failures_total{what=\"rules\"} %llu\n"
                  "vigil_reload_failures_total{what=\"model\"} %llu\n"
                  "# HELP vigil_kafka_transactions_total Kafka transactions, by outcome.\n"
                  "# TYPE vigil_kafka_transactions_total counter\n"
                  "vigil_kafka_transactions_total{outcome=\"committed\"} %llu\n"
                  "vigil_kafka_transactions_total{outcome=\"aborted\"} %llu\n"
                  "# HELP vigil_offset_resets_total Out-of-range offsets: data deleted before "
                  "it was read.\n"
                  "# TYPE vigil_offset_resets_total counter\n"
                  "vigil_offset_resets_total %llu\n",
                  (unsigned long long)s->rules_reloads, (unsigned long long)s->model_reloads,
                  (unsigned long long)s->rules_reload_failures,
                  (unsigned long long)s->model_reload_failures, (unsigned long long)r->commits,
                  (unsigned long long)r->aborts,
                  (unsigned long long)vg_consumer_offset_resets(r->consumer));
    if (r->stages[0].changelog)
        vg_buf_printf(b,
                      "# HELP vigil_changelog_records_total Entity records written to the "
                      "changelog.\n# TYPE vigil_changelog_records_total counter\n"
                      "vigil_changelog_records_total %llu\n"
                      "# HELP vigil_restore_records_total Changelog records applied by restores.\n"
                      "# TYPE vigil_restore_records_total counter\n"
                      "vigil_restore_records_total %llu\n"
                      "# HELP vigil_restore_bytes_total Changelog bytes read by restores.\n"
                      "# TYPE vigil_restore_bytes_total counter\n"
                      "vigil_restore_bytes_total %llu\n"
                      "# HELP vigil_restore_seconds_total Time spent restoring state.\n"
                      "# TYPE vigil_restore_seconds_total counter\n"
                      "vigil_restore_seconds_total %.3f\n"
                      "# HELP vigil_restore_partitions_total Partitions restored from the "
                      "changelog.\n# TYPE vigil_restore_partitions_total counter\n"
                      "vigil_restore_partitions_total %llu\n",
                      (unsigned long long)r->cl_records, (unsigned long long)r->restored_records,
                      (unsigned long long)r->restored_bytes, r->restore_secs,
                      (unsigned long long)r->restored_partitions);
    vg_buf_printf(b, "# HELP vigil_consumer_lag Messages behind the high watermark, by "
                     "partition.\n# TYPE vigil_consumer_lag gauge\n");
    for (size_t i = 0; i < r->nlags; i++)
        if (r->lags[i].topic_idx >= 0)
            vg_buf_printf(b, "vigil_consumer_lag{topic=\"%s\",partition=\"%d\"} %lld\n",
                          r->topics[r->lags[i].topic_idx], (int)r->lags[i].partition,
                          (long long)r->lags[i].start);
    vg_buf_printf(
        b,
        "# HELP vigil_info Versions serving now.\n# TYPE vigil_info gauge\n"
        "vigil_info{catalog=\"%s\",rules=\"%s\",model=\"%s\"} 1\n",
        vg_pipeline_catalog_version(r->pipeline),
        vg_pipeline_rules_version(r->pipeline) ? vg_pipeline_rules_version(r->pipeline) : "",
        vg_pipeline_model_version(r->pipeline) ? vg_pipeline_model_version(r->pipeline) : "");
    write_state_metrics(r, b);
    if (r->nstages > 1) {
        vg_buf_printf(b, "# HELP vigil_stage_held Transactions a stage holds for event-time "
                         "alignment, by topic partition.\n# TYPE vigil_stage_held gauge\n");
        uint64_t late = r->late;
        for (size_t i = 0; i < r->ntps; i++)
            if (r->tps[i].align) {
                vg_buf_printf(b, "vigil_stage_held{topic=\"%s\",partition=\"%d\"} %zu\n",
                              r->topics[consumer_of_tp(r->tps[i].topic_idx)],
                              (int)r->tps[i].partition, vg_align_held(r->tps[i].align));
                late += vg_align_late(r->tps[i].align);
            }
        vg_buf_printf(b,
                      "# HELP vigil_stage_late_total Transactions that reached a stage below its "
                      "event-time front (released at once, out of order), since assignment.\n"
                      "# TYPE vigil_stage_late_total counter\nvigil_stage_late_total %llu\n"
                      "# HELP vigil_watermarks_sent_total Watermarks sent to a next stage.\n"
                      "# TYPE vigil_watermarks_sent_total counter\n"
                      "vigil_watermarks_sent_total %llu\n",
                      (unsigned long long)late, (unsigned long long)r->watermarks_sent);
    }
    vg_hist_write(&r->batch_sizes, "vigil_batch_messages",
                  "Messages per micro-batch (buckets are counts / 1000).", b);
    vg_hist_write(&r->proc, "vigil_processing_seconds",
                  "Pipeline time per micro-batch, decode to outputs queued.", b);
    vg_hist_write(&r->kafka_commit, "vigil_kafka_commit_seconds",
                  "Per micro-batch: the Kafka transaction commit (exactly once) or the producer "
                  "flush (at least once).",
                  b);
    vg_hist_write(&r->state_commit, "vigil_state_commit_seconds",
                  "Per micro-batch: the feature state commit (RocksDB write batch).", b);
    vg_hist_write(&r->e2e, "vigil_end_to_end_seconds",
                  "From a transaction's Kafka timestamp to the commit of its decision.", b);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Exact q-quantile of the end-to-end latencies seen (seconds); sorts them. */
static double quantile(vg_run_t *r, double q)
{
    if (r->nlat == 0)
        return 0;
    qsort(r->lat, r->nlat, sizeof(*r->lat), cmp_float);
    size_t i = (size_t)(q * (double)(r->nlat - 1) + 0.5);
    return (double)r->lat[i];
}

/* ---- the loop ---- */

static volatile sig_atomic_t reload_requested;

static void on_sighup(int sig)
{
    (void)sig;
    reload_requested = 1;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end)
        return -1;
    *out = v;
    return 0;
}

/* "PREFIX.NAME", malloc'd. */
static char *dotted(const char *prefix, const char *name)
{
    size_t n = strlen(prefix) + strlen(name) + 2;
    char *s = vg_xmalloc(n);
    snprintf(s, n, "%s.%s", prefix, name);
    return s;
}

/* Plans the stages (one unless topology repartition finds entity types beyond card_id and
 * customer_id), opens their pipelines and reads their offsets. */
static vg_err_t stages_plan(vg_run_t *r, const vg_pipeline_opts_t *base, char *errbuf,
                            size_t errlen)
{
    const char *changelog = vg_config_bool(r->config, "engine", "state.changelog")
                                ? vg_config_str(r->config, "topics", "changelog")
                                : NULL;
    const char *prefix = vg_config_str(r->config, "topics", "repartition");
    if (strcmp(vg_config_str(r->config, "engine", "topology"), "repartition") == 0) {
        /* A stage restores its aligner from its changelog's markers: without them a restart
         * could not tell which of the transactions it releases again it had emitted. */
        if (!changelog)
            return vg_errf(errbuf, errlen, VG_ERR_CONFIG,
                           "engine.topology = repartition needs engine.state.changelog = true");
        vg_schema_t schema;
        vg_schema_init(&schema);
        vg_catalog_t *c = vg_catalog_load(base->catalog_path, &schema, errbuf, errlen);
        vg_schema_free(&schema);
        if (!c)
            return VG_ERR_CONFIG;
        for (size_t t = 0; t < vg_catalog_entity_types(c); t++) {
            const char *name = vg_catalog_entity_name(c, t);
            vg_stage_t *st = &r->stages[r->nstages];
            if (strcmp(name, "card_id") == 0 || strcmp(name, "customer_id") == 0) {
                r->stages[0].types[r->stages[0].ntypes++] = vg_xstrdup(name);
                continue;
            }
            if (r->nstages == MAX_STAGES) {
                vg_catalog_free(c);
                return vg_errf(errbuf, errlen, VG_ERR_CONFIG,
                               "topology repartition: at most %d stages, and %s names more "
                               "entity types than card_id, customer_id and %d others",
                               MAX_STAGES, base->catalog_path, MAX_STAGES - 1);
            }
            st->r = r;
            st->k = r->nstages++;
            st->types[st->ntypes++] = vg_xstrdup(name);
            snprintf(st->name, sizeof(st->name), "%s", name);
            st->topic = dotted(prefix, name);
            st->changelog = changelog ? dotted(changelog, name) : NULL;
            r->topics[r->ntopics++] = st->topic;
        }
        vg_catalog_free(c);
        if (r->nstages == 1)
            vg_warn("run",
                    "topology repartition: %s keys no entity type beyond card_id and "
                    "customer_id: one stage does everything",
                    base->catalog_path);
    }
    vg_stage_t *st0 = &r->stages[0];
    st0->changelog = changelog ? vg_xstrdup(changelog) : NULL;
    snprintf(st0->name, sizeof(st0->name), "%s",
             r->nstages == 1 ? "all"
             : st0->ntypes   ? st0->types[0]
                             : "input");
    if (r->nstages > 1 && st0->ntypes > 1)
        snprintf(st0->name, sizeof(st0->name), "%s+%s", st0->types[0], st0->types[1]);
    if (r->nstages > 1 && mkdir(base->state_dir, 0755) != 0 && errno != EEXIST)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "cannot create %s: %s", base->state_dir,
                       strerror(errno));
    for (int k = 0; k < r->nstages; k++) {
        vg_stage_t *st = &r->stages[k];
        vg_pipeline_opts_t opts = *base;
        char dir[4200];
        if (r->nstages > 1) {
            snprintf(dir, sizeof(dir), "%s/%s", base->state_dir, st->name);
            opts.state_dir = dir;
            opts.stage_types = (const char *const *)st->types;
            opts.nstage_types = st->ntypes;
        }
        if (k < r->nstages - 1) {
            opts.forward = 1;
            opts.rules_path = opts.model_dir = opts.shadow_model_dir = NULL;
            st->next_topic = vg_xstrdup(r->stages[k + 1].topic);
        }
        if (!(st->pipeline = vg_pipeline_new(&opts, errbuf, errlen)))
            return VG_ERR_CONFIG;
        st->next_field =
            st->next_topic ? vg_pipeline_field(st->pipeline, r->stages[k + 1].types[0]) : -1;
        void *blob;
        size_t bloblen;
        if (vg_pipeline_offsets(st->pipeline, &blob, &bloblen) == VG_OK && blob) {
            offsets_decode(r, blob, bloblen);
            free(blob);
        }
    }
    return VG_OK;
}

static void stages_free(vg_run_t *r)
{
    for (int k = 0; k < MAX_STAGES; k++) {
        vg_stage_t *st = &r->stages[k];
        vg_pipeline_free(st->pipeline);
        for (size_t t = 0; t < st->ntypes; t++)
            free(st->types[t]);
        for (size_t i = 0; i < st->n; i++)
            vg_held_free(st->held[i]);
        free(st->topic);
        free(st->changelog);
        free(st->next_topic);
        free(st->in);
        free(st->seq);
        free(st->held);
        free(st->lab);
    }
}

int vg_cmd_run(int argc, char **argv)
{
    static struct option opts[VG_ARRAY_LEN(flag_keys) + 7];
    size_t no = 0;
    for (size_t i = 0; i < VG_ARRAY_LEN(flag_keys); i++)
        opts[no++] = (struct option){flag_keys[i].flag, required_argument, NULL, 1000 + (int)i};
    opts[no++] = (struct option){"config", required_argument, NULL, 'c'};
    opts[no++] = (struct option){"set", required_argument, NULL, 's'};
    opts[no++] = (struct option){"max-messages", required_argument, NULL, 'm'};
    opts[no++] = (struct option){"idle-exit", required_argument, NULL, 'i'};
    opts[no++] = (struct option){"passthrough", no_argument, NULL, 'P'};
    opts[no++] = (struct option){"help", no_argument, NULL, 'h'};
    opts[no] = (struct option){NULL, 0, NULL, 0};

    char errbuf[VG_ERRLEN * 4];
    vg_run_t run = {0};
    vg_run_t *r = &run;
    r->config = vg_config_new(run_options, VG_ARRAY_LEN(run_options));
    uint64_t max_messages = 0;
    int64_t idle_exit_ms = 0;
    int status = 1, opt, passthrough = 0;

    /* The config file first, whatever its position, so that flags override it. */
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
        if (path && vg_config_load(r->config, path, errbuf, sizeof(errbuf))) {
            fprintf(stderr, "vigil run: %s\n", errbuf);
            vg_config_free(r->config);
            return 2;
        }
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt >= 1000) {
            size_t k = (size_t)(opt - 1000);
            char origin[64];
            snprintf(origin, sizeof(origin), "--%s", flag_keys[k].flag);
            if (vg_config_set(r->config, flag_keys[k].section, flag_keys[k].key, optarg, origin,
                              errbuf, sizeof(errbuf))) {
                status = vg_cli_usage_error("run", "%s", errbuf);
                goto out;
            }
            continue;
        }
        switch (opt) {
        case 'c':
            break;
        case 'P':
            passthrough = 1;
            break;
        case 's': {
            char *eq = strchr(optarg, '='), *dot = strchr(optarg, '.');
            if (!eq || !dot || dot > eq) {
                status =
                    vg_cli_usage_error("run", "--set takes SECTION.KEY=VALUE, got '%s'", optarg);
                goto out;
            }
            char section[64], key[256];
            snprintf(section, sizeof(section), "%.*s", (int)(dot - optarg), optarg);
            snprintf(key, sizeof(key), "%.*s", (int)(eq - dot - 1), dot + 1);
            if (vg_config_set(r->config, section, key, eq + 1, "--set", errbuf, sizeof(errbuf))) {
                status = vg_cli_usage_error("run", "%s", errbuf);
                goto out;
            }
            break;
        }
        case 'm':
            if (parse_u64(optarg, &max_messages)) {
                status =
                    vg_cli_usage_error("run", "--max-messages takes a count, got '%s'", optarg);
                goto out;
            }
            break;
        case 'i':
            if (vg_duration_parse(optarg, &idle_exit_ms)) {
                status =
                    vg_cli_usage_error("run", "--idle-exit takes a duration, got '%s'", optarg);
                goto out;
            }
            break;
        case 'h':
            help();
            status = 0;
            goto out;
        default:
            status = vg_cli_usage_error("run", "unknown option");
            goto out;
        }
    }
    if (optind < argc) {
        status = vg_cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
        goto out;
    }

    vg_log_level_t level;
    vg_log_parse_level(vg_config_str(r->config, "engine", "log.level"), &level);
    vg_log_set_level(level);

    size_t nprops;
    const vg_kprop_t *props = vg_config_kafka(r->config, &nprops);
    const char *brokers = NULL;
    for (size_t i = 0; i < nprops; i++)
        if (strcmp(props[i].key, "bootstrap.servers") == 0)
            brokers = props[i].value;
    if (!brokers) {
        status = vg_cli_usage_error("run", "no brokers: give --brokers or [kafka] "
                                           "bootstrap.servers");
        goto out;
    }

    vg_pipeline_opts_t popts;
    vg_pipeline_opts_default(&popts);
    popts.catalog_path = vg_config_str(r->config, "engine", "catalog");
    if (strcmp(popts.catalog_path, "features/default.conf") == 0) /* the default */
        popts.catalog_path = vg_shipped_path(popts.catalog_path);
    popts.rules_path = vg_config_str(r->config, "engine", "rules");
    popts.lists_dir = vg_config_str(r->config, "engine", "lists");
    popts.model_dir = vg_config_str(r->config, "engine", "model");
    popts.shadow_model_dir = vg_config_str(r->config, "engine", "shadow.model");
    popts.state_dir = vg_config_str(r->config, "engine", "state");
    popts.cache_bytes = (size_t)vg_config_int(r->config, "engine", "cache.bytes");
    popts.state_sync = vg_config_bool(r->config, "engine", "state.sync");
    popts.state_checkpoint_ms = vg_config_int(r->config, "engine", "state.checkpoint.interval");
    popts.reasons = (int)vg_config_int(r->config, "engine", "reasons");
    popts.review_sample_rate = vg_config_double(r->config, "engine", "review.sample.rate");
    popts.review_band_low = vg_config_double(r->config, "engine", "review.band.low");
    popts.review_band_high = vg_config_double(r->config, "engine", "review.band.high");
    popts.threads = (int)vg_config_int(r->config, "engine", "threads");
    r->topics[0] = vg_config_str(r->config, "topics", "transactions");
    r->topics[1] = vg_config_str(r->config, "topics", "labels");
    r->ntopics = 2;
    r->nstages = 1;
    r->stages[0].r = r;
    if (!passthrough) {
        if (stages_plan(r, &popts, errbuf, sizeof(errbuf)) != VG_OK) {
            vg_error("run", "%s", errbuf);
            goto out;
        }
        r->pipeline = r->stages[r->nstages - 1].pipeline;
    }
    const char *group = vg_config_str(r->config, "engine", "group");
    r->eos =
        strcmp(vg_config_str(r->config, "engine", "processing.guarantee"), "exactly_once") == 0;
    if (r->eos) {
        char txn_id[512];
        snprintf(txn_id, sizeof(txn_id), "vigil-%s-%s", group,
                 vg_config_str(r->config, "engine", "instance"));
        r->producer = vg_producer_new_txn(brokers, txn_id, props, nprops, errbuf, sizeof(errbuf));
    } else {
        r->producer = vg_producer_new(brokers, props, nprops, errbuf, sizeof(errbuf));
    }
    if (!r->producer) {
        vg_error("run", "%s", errbuf);
        goto out;
    }
    r->brokers = brokers;
    r->props = props;
    r->nprops = nprops;
    const char *outputs[2 + 3 * MAX_STAGES] = {vg_config_str(r->config, "topics", "decisions"),
                                               vg_config_str(r->config, "topics", "review"),
                                               vg_config_str(r->config, "topics", "dlq")};
    size_t noutputs = 3;
    for (int k = 0; k < r->nstages; k++) {
        if (r->stages[k].changelog) {
            vg_producer_track(r->producer, r->stages[k].changelog);
            outputs[noutputs++] = r->stages[k].changelog;
        }
        if (r->stages[k].next_topic)
            outputs[noutputs++] = r->stages[k].next_topic;
    }
    vg_producer_warm(r->producer, outputs, noutputs);
    r->consumer = vg_consumer_new(brokers, group, r->topics, r->ntopics, props, nprops,
                                  on_rebalance, r, errbuf, sizeof(errbuf));
    if (!r->consumer) {
        vg_error("run", "%s", errbuf);
        goto out;
    }
    for (int k = 0; k < r->nstages; k++) { /* partition counts of the stages' topics */
        vg_stage_t *st = &r->stages[k];
        const char *from = r->topics[k == 1 ? 0 : k]; /* the previous stage's topic */
        if ((k > 0 && (st->nsrc = vg_consumer_partition_count(r->consumer, from, errbuf,
                                                              sizeof(errbuf))) < 1) ||
            (st->next_topic && (st->nout = vg_consumer_partition_count(
                                    r->consumer, st->next_topic, errbuf, sizeof(errbuf))) < 1)) {
            vg_error("run",
                     "%s (topology repartition: create each stage's topic with as many "
                     "partitions as %s)",
                     errbuf, r->topics[0]);
            goto out;
        }
    }
    if (r->nstages > 1) {
        vg_buf_t plan;
        vg_buf_init(&plan);
        for (int k = 0; k < r->nstages; k++)
            vg_buf_printf(&plan, "%s%s (%s)", k ? " -> " : "", r->stages[k].name,
                          k ? r->stages[k].topic : r->topics[0]);
        vg_buf_putc(&plan, '\0');
        vg_info("run",
                "topology repartition, %d stages: %s; this process runs each for the "
                "partitions it is assigned",
                r->nstages, plan.data);
        vg_buf_free(&plan);
    }
    const char *http_addr = vg_config_str(r->config, "engine", "http");
    if (http_addr && *http_addr && strcmp(http_addr, "off") != 0) {
        r->http = vg_http_start(http_addr, errbuf, sizeof(errbuf));
        if (!r->http) {
            vg_error("run", "%s", errbuf);
            goto out;
        }
    }

    vg_signals_install();
    signal(SIGHUP, on_sighup);
    vg_info("run",
            "consuming %s and %s as group %s (%s), batches of up to %lld messages / %lld ms; "
            "catalogue %s, rules %s, model %s; metrics on http://%s/metrics",
            r->topics[0], r->topics[1], group, r->eos ? "exactly once" : "at least once",
            (long long)vg_config_int(r->config, "engine", "batch.max.messages"),
            (long long)vg_config_int(r->config, "engine", "batch.max.ms"),
            r->pipeline ? vg_pipeline_catalog_version(r->pipeline) : "(passthrough)",
            r->pipeline && vg_pipeline_rules_version(r->pipeline)
                ? vg_pipeline_rules_version(r->pipeline)
                : "none",
            r->pipeline && vg_pipeline_model_version(r->pipeline)
                ? vg_pipeline_model_version(r->pipeline)
                : "none",
            r->http ? http_addr : "(off)");

    /* Fault injection for the crash tests: VIGIL_CRASH_AFTER_KAFKA_COMMIT=N dies by SIGKILL
     * right after the Nth Kafka commit, before the state commit: the narrowest window. */
    const char *crash_env = getenv("VIGIL_CRASH_AFTER_KAFKA_COMMIT");
    long crash_after_kafka_commit = crash_env ? strtol(crash_env, NULL, 10) : 0;
    size_t max_batch = (size_t)vg_config_int(r->config, "engine", "batch.max.messages");
    int batch_ms = (int)vg_config_int(r->config, "engine", "batch.max.ms");
    int linger_ms = (int)vg_config_int(r->config, "engine", "batch.linger.ms");
    int64_t reload_every = vg_config_int(r->config, "engine", "reload.interval");
    vg_msg_t *msgs = vg_xcalloc(max_batch, sizeof(*msgs));
    vg_input_t *inputs = vg_xcalloc(max_batch, sizeof(*inputs));
    vg_buf_t offsets, metrics;
    vg_buf_init(&offsets);
    vg_buf_init(&metrics);
    uint64_t total = 0;
    int64_t last_reload = vg_now_ms(), last_metrics = 0, started_ms = last_reload;
    r->last_input_ms = last_reload;
    r->idle_ms = vg_config_int(r->config, "engine", "watermark.idle");
    r->max_ts = INT64_MIN;
    if (r->http)
        vg_http_set_ready(r->http, 1);
    status = 0;

    while (!vg_stop_requested()) {
        int64_t now = vg_now_ms();
        if (r->pipeline && (reload_requested || now - last_reload >= reload_every)) {
            vg_pipeline_reload(r->pipeline, reload_requested);
            reload_requested = 0;
            last_reload = now;
        }
        if (r->http && now - last_metrics >= 500) {
            r->nlags = vg_consumer_lags(r->consumer, r->lags, VG_ARRAY_LEN(r->lags));
            write_metrics(r, &metrics);
            vg_http_set_metrics(r->http, metrics.data, metrics.len);
            last_metrics = now;
        }
        size_t want = max_batch;
        if (max_messages && max_messages - total < want)
            want = (size_t)(max_messages - total);
        size_t n = vg_consumer_poll(r->consumer, msgs, want, 100, batch_ms, linger_ms);
        if (r->fatal) {
            status = 1;
            break;
        }
        /* topology repartition: an input partition that went idle still moves its watermark,
         * in a batch of its own */
        int idle_wm = n == 0 && r->nstages > 1 && r->started && idle_watermark_due(r, vg_now_ms());
        if (n == 0 && idle_exit_ms && vg_now_ms() - r->last_input_ms >= idle_exit_ms) {
            vg_info("run", "no input for %lld ms: stopping", (long long)idle_exit_ms);
            break;
        }
        if (n == 0 && !idle_wm) {
            /* input paused: write what the commits since the last checkpoint changed, so
             * that a crash now has nothing to rebuild */
            vg_err_t cerr = VG_OK;
            for (int k = 0; k < r->nstages && r->pipeline && !cerr; k++)
                cerr = vg_pipeline_checkpoint(r->stages[k].pipeline, errbuf, sizeof(errbuf));
            if (cerr) {
                vg_error("run", "state checkpoint failed: %s", errbuf);
                status = 1;
                break;
            }
            continue;
        }
        int64_t now_ms = vg_now_ms();
        int64_t t0 = vg_mono_ns();
        if (!r->first_msg_ns)
            r->first_msg_ns = t0;
        size_t n0 = 0; /* stage 0's inputs; the other stages' come from their aligners */
        for (size_t i = 0; i < n; i++) {
            int t = tp_of_consumer(msgs[i].topic_idx);
            vg_tp_t *tp = tp_get(r, t, msgs[i].partition);
            int emit_it = msgs[i].offset >= tp->emit_from;
            r->consumed[msgs[i].topic_idx]++;
            tp->last_msg_ms = now_ms;
            tp->idle_sent = 0;
            /* what --idle-exit waits for: input, or a stage's transactions (not watermarks) */
            if (t <= TP_LABELS || !is_watermarks(&msgs[i]))
                r->last_input_ms = now_ms;
            if (t <= TP_LABELS) {
                inputs[n0++] = (vg_input_t){
                    .kind = t == TP_LABELS ? VG_IN_LABEL : VG_IN_TXN,
                    .data = msgs[i].value,
                    .len = msgs[i].len,
                    .partition = msgs[i].partition,
                    .offset = msgs[i].offset,
                    .timestamp_ms = msgs[i].timestamp_ms,
                    .emit = emit_it,
                };
            } else {
                stage_read(r, &r->stages[stage_of(t)], tp, &msgs[i]);
            }
            if (t != TP_LABELS)
                tp->changed = 1;
            r->started |= t == TP_TXNS;
            /* the offset this batch moves the partition to, for Kafka and for the state */
            if (msgs[i].offset + 1 > tp->next)
                tp->next = msgs[i].offset + 1;
        }
        snprintf(r->batch_id, sizeof(r->batch_id), "%s.%d.%lld:%llu",
                 vg_config_str(r->config, "engine", "instance"), (int)getpid(),
                 (long long)started_ms, (unsigned long long)r->commits);
        if (r->eos && vg_producer_begin(r->producer, errbuf, sizeof(errbuf))) {
            vg_error("run", "%s", errbuf);
            status = 1;
            break;
        }
        r->ndecided = 0;
        vg_err_t perr = VG_OK;
        if (passthrough) {
            for (size_t i = 0; i < n && !perr; i++) {
                perr = vg_producer_send(
                    r->producer, vg_config_str(r->config, "topics", "decisions"), msgs[i].key,
                    msgs[i].keylen, msgs[i].value, msgs[i].len, errbuf, sizeof(errbuf));
                note_decided(r, msgs[i].timestamp_ms);
            }
        } else {
            stages_release(r);
            for (int k = 0; k < r->nstages && !perr; k++) {
                vg_stage_t *st = &r->stages[k];
                vg_sink_t sink = {st, emit};
                const vg_input_t *lab = k == 0 ? inputs : st->lab;
                size_t nlab = k == 0 ? n0 : st->nlab;
                perr = forward_labels(r, st, lab, nlab, errbuf, sizeof(errbuf));
                if (!perr && k > 0 && st->nlab) /* labels first: they arrived before */
                    perr = vg_pipeline_process(st->pipeline, st->lab, st->nlab, &sink, errbuf,
                                               sizeof(errbuf));
                size_t nk = k == 0 ? n0 : st->n;
                if (!perr && nk)
                    perr = vg_pipeline_process(st->pipeline, k == 0 ? inputs : st->in, nk, &sink,
                                               errbuf, sizeof(errbuf));
                st->nlab = 0;
            }
            if (!perr && r->nstages > 1) {
                align_snapshot(r);
                perr = send_watermarks(r, vg_now_ms(), idle_wm, errbuf, sizeof(errbuf));
            }
            if (!perr && r->stages[0].changelog)
                perr = changelog_send(r, errbuf, sizeof(errbuf));
        }
        if (perr) {
            vg_error("run", "%s", errbuf);
            status = 1;
            break;
        }
        vg_hist_observe(&r->proc, (double)(vg_mono_ns() - t0) / 1e9);
        vg_hist_observe(&r->batch_sizes, (double)n / 1000.0);

        /* one entry per partition held, however few messages the batch has */
        vg_assignment_t *done = r->done;
        size_t ndone = 0;
        for (size_t i = 0; i < r->ntps; i++)
            if (r->tps[i].assigned && r->tps[i].next >= r->tps[i].emit_from && r->tps[i].next > 0)
                done[ndone++] = (vg_assignment_t){consumer_of_tp(r->tps[i].topic_idx),
                                                  r->tps[i].partition, -1, r->tps[i].next};
        vg_err_t err;
        int64_t t1 = vg_mono_ns();
        if (r->eos) {
            err = vg_producer_commit(r->producer, r->consumer, done, ndone, errbuf, sizeof(errbuf));
        } else {
            err = vg_producer_flush(r->producer, 60000, errbuf, sizeof(errbuf));
        }
        if (err) {
            /* The batch did not happen: state goes back to the last commit, and so must the
             * consumer. Restarting does both with the recovery logic above. */
            r->aborts++;
            vg_error("run", "%s: exiting so that a restart resumes from the last commit", errbuf);
            status = 1;
            break;
        }
        r->commits++;
        if (crash_after_kafka_commit && r->commits == (uint64_t)crash_after_kafka_commit) {
            vg_warn("run",
                    "fault injection: killing myself between Kafka commit %llu and the "
                    "state commit",
                    (unsigned long long)r->commits);
            raise(SIGKILL);
        }
        /* Decisions are visible to readers from here (Kafka commit, or delivery acks): the
         * end-to-end latency ends now, not after the state commit that follows. */
        int64_t t2 = vg_mono_ns(), committed_ms = vg_now_ms();
        if (r->stages[0].changelog)
            changelog_committed(r);
        vg_err_t serr = VG_OK;
        for (int k = 0; k < r->nstages && r->pipeline && !serr; k++) {
            vg_stage_t *st = &r->stages[k];
            offsets_encode(r, st, &offsets);
            serr =
                vg_pipeline_commit(st->pipeline, offsets.data, offsets.len, errbuf, sizeof(errbuf));
            for (size_t i = 0; i < st->n; i++) /* the released transactions are done */
                vg_held_free(st->held[i]);
            st->n = 0;
        }
        if (serr) {
            vg_error("run", "state commit failed: %s", errbuf);
            status = 1;
            break;
        }
        if (!r->eos &&
            vg_consumer_commit(r->consumer, done, ndone, errbuf, sizeof(errbuf)) != VG_OK)
            vg_warn("run", "%s (will be retried with the next batch)", errbuf);
        r->last_commit_ns = vg_mono_ns();
        double phase_ms[3] = {(double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6,
                              (double)(r->last_commit_ns - t2) / 1e6};
        vg_hist_observe(&r->kafka_commit, phase_ms[1] / 1e3);
        vg_hist_observe(&r->state_commit, phase_ms[2] / 1e3);
        for (int k = 0; k < 3; k++)
            if (phase_ms[k] > r->max_ms[k])
                r->max_ms[k] = phase_ms[k];
        vg_debug("run",
                 "batch %llu: %zu messages; process %.1f ms, kafka commit %.1f ms, state "
                 "commit %.1f ms",
                 (unsigned long long)r->commits, n, phase_ms[0], phase_ms[1], phase_ms[2]);
        for (size_t i = 0; i < r->ndecided; i++) {
            double secs = (double)(committed_ms - r->decided_ts[i]) / 1e3;
            vg_hist_observe(&r->e2e, secs);
            if (r->nlat == r->caplat && r->caplat < (1u << 26)) {
                r->caplat = r->caplat ? r->caplat * 2 : 65536;
                r->lat = vg_xrealloc(r->lat, r->caplat * sizeof(*r->lat));
            }
            if (r->nlat < r->caplat)
                r->lat[r->nlat++] = (float)secs;
        }
        total += n;
        if (max_messages && total >= max_messages) {
            vg_info("run", "read %llu messages: stopping", (unsigned long long)total);
            break;
        }
    }
    if (r->http)
        vg_http_set_ready(r->http, 0);
    vg_pipeline_stats_t none = {0};
    const vg_pipeline_stats_t *s = r->pipeline ? vg_pipeline_stats(r->pipeline) : &none;
    const vg_pipeline_stats_t *s0 = r->pipeline ? vg_pipeline_stats(r->stages[0].pipeline) : &none;
    vg_info("run",
            "stopped: %llu consumed, %llu transactions, %llu labels, decisions allow %llu / review "
            "%llu / block %llu, %llu dead letters, %llu commits; end-to-end latency p50 %.1f ms, "
            "p99 %.1f ms",
            (unsigned long long)total, (unsigned long long)s->transactions,
            (unsigned long long)s0->labels, (unsigned long long)s->decisions[0],
            (unsigned long long)s->decisions[1], (unsigned long long)s->decisions[2],
            (unsigned long long)s0->dead_letters, (unsigned long long)r->commits,
            quantile(r, 0.5) * 1e3, quantile(r, 0.99) * 1e3);
    if (r->commits)
        vg_info("run",
                "per batch: process mean %.1f ms (max %.1f), kafka commit mean %.1f ms (max "
                "%.1f), state commit mean %.1f ms (max %.1f)",
                r->proc.sum * 1e3 / (double)r->proc.count, r->max_ms[0],
                r->kafka_commit.sum * 1e3 / (double)r->kafka_commit.count, r->max_ms[1],
                r->state_commit.sum * 1e3 / (double)r->state_commit.count, r->max_ms[2]);
    if (r->nstages > 1) {
        uint64_t late = r->late;
        for (size_t i = 0; i < r->ntps; i++)
            late += r->tps[i].align ? vg_align_late(r->tps[i].align) : 0;
        vg_info("run",
                "stages: %llu transactions reached a stage late (released out of time order), "
                "%llu watermarks sent, %llu unreadable stage records",
                (unsigned long long)late, (unsigned long long)r->watermarks_sent,
                (unsigned long long)r->bad_forwards);
    }
    if (r->last_commit_ns > r->first_msg_ns) {
        double secs = (double)(r->last_commit_ns - r->first_msg_ns) / 1e9;
        vg_info("run",
                "throughput: %llu messages in %.2f s from the first message to the last "
                "commit: %.0f messages/s",
                (unsigned long long)total, secs, (double)total / secs);
    }
    free(msgs);
    free(inputs);
    vg_buf_free(&offsets);
    vg_buf_free(&metrics);
out:
    vg_http_stop(r->http);
    vg_consumer_free(r->consumer);
    vg_producer_free(r->producer);
    stages_free(r);
    vg_config_free(r->config);
    for (size_t i = 0; i < r->ntps; i++) {
        vg_align_free(r->tps[i].align);
        free(r->tps[i].align_text);
    }
    free(r->tps);
    free(r->done);
    for (int t = 0; t < TP_TOPICS; t++)
        free(r->tp_slot[t]);
    for (size_t i = 0; i < r->npending; i++) {
        free(r->pending[i].key);
        free(r->pending[i].value);
    }
    free(r->pending);
    vg_buf_free(&r->clkey);
    vg_buf_free(&r->clval);
    vg_buf_free(&r->fwd);
    free(r->lat);
    free(r->decided_ts);
    return status;
}
