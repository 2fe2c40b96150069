/*
 * cmd_run.c - `vigil run`: the streaming engine.
 *
 * One processing thread: poll a micro-batch (bounded by count and time) from the
 * transactions and labels topics, run it through the pipeline, produce decisions, cases and
 * dead letters, then make it durable:
 *
 *   exactly_once   one Kafka transaction per batch holds the outputs AND the consumed
 *                  offsets; only after it commits is the feature state written (one
 *                  RocksDB WriteBatch carrying the same offsets). By default that commit
 *                  runs on a committer thread while the next batch is processed ("the
 *                  commit in flight" below).
 *   at_least_once  outputs are produced and flushed, state is committed, then offsets.
 *
 * Either way the state store's offsets are never ahead of what Kafka holds as done. On
 * (re)assignment of a partition the engine starts reading at the state's offset S, and until
 * it reaches the group's committed offset K it only rebuilds state (no outputs): after a
 * kill -9 between the Kafka commit and the state commit, the batch is replayed into state
 * without being emitted twice. See docs/operations.md.
 *
 * With topology repartition the same loop runs a chain of stages (run.h, stages.c): the
 * batch's messages from the stages' own topics go to their partitions' aligners (align.h),
 * and every stage processes what it may release, all in the batch's one Kafka transaction.
 */
#include "engine/cli.h"
#include "engine/run.h"
#include "rules/rules.h"

#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
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
     "0: every batch's state commit is written to RocksDB (on a writer thread, done before the "
     "next batch's Kafka commit). Else commits are written together "
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

/* The record of a partition, created on first sight; O(1), since it runs per message. */
vg_tp_t *vg_run_tp(vg_run_t *r, int topic_idx, int32_t partition)
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

void vg_run_offsets_decode(vg_run_t *r, const char *blob, size_t len)
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
            vg_tp_t *tp = vg_run_tp(r, t, p);
            tp->low = v;
            free(tp->align_text);
            tp->align_text = vg_xstrdup(line + used);
        } else if (sscanf(line, "%d %d %lld", &t, &p, &v) == 3 && t >= 0 && t < TP_TOPICS) {
            vg_run_tp(r, t, p)->next = v;
        }
        line = end ? end + 1 : NULL;
    }
    free(copy);
}

/* ---- a batch's end ---- */

/* VIGIL_CRASH_AFTER_KAFKA_COMMIT=N (the crash tests): dies by SIGKILL right after the Nth
 * Kafka commit, before the state commit or its release: the narrowest window. */
static void crash_point(const vg_run_t *r, uint64_t commits)
{
    if (r->crash_after && commits == (uint64_t)r->crash_after) {
        vg_warn("run",
                "fault injection: killing myself between Kafka commit %llu and the state commit",
                (unsigned long long)commits);
        raise(SIGKILL);
    }
}

/* The metrics of a batch whose decisions became visible at committed_ms (its Kafka commit,
 * or delivery acks): phase_ms = processing, Kafka commit, state commit. */
static void batch_observe(vg_run_t *r, size_t n, const double phase_ms[3], int64_t committed_ms)
{
    vg_hist_observe(&r->kafka_commit, phase_ms[1] / 1e3);
    vg_hist_observe(&r->state_commit, phase_ms[2] / 1e3);
    for (int k = 0; k < 3; k++)
        if (phase_ms[k] > r->max_ms[k])
            r->max_ms[k] = phase_ms[k];
    int64_t oldest = INT64_MAX; /* the batch's longest end-to-end latency: where tails are */
    for (size_t i = 0; i < r->ndecided; i++)
        oldest = r->decided_ts[i] < oldest ? r->decided_ts[i] : oldest;
    vg_debug("run",
             "batch %llu: %zu messages; process %.1f ms, kafka commit %.1f ms, state commit %.1f "
             "ms; end-to-end at most %lld ms",
             (unsigned long long)r->commits, n, phase_ms[0], phase_ms[1], phase_ms[2],
             r->ndecided ? (long long)(committed_ms - oldest) : 0LL);
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
    r->ndecided = 0;
}

/* Adds a batch's n messages to total; 1 once --max-messages (max, 0: none) is reached. */
static int count_batch(uint64_t *total, size_t n, uint64_t max)
{
    *total += n;
    if (max && *total >= max) {
        vg_info("run", "read %llu messages: stopping", (unsigned long long)*total);
        return 1;
    }
    return 0;
}

/* ---- the commit in flight (r->pipelined) ----
 *
 * Batch n's Kafka transaction commits on the committer thread while the processing thread
 * reads batch n+1 and computes its features, rules, scores and decisions: the 10-30 ms a
 * commit takes are no longer a pause in processing. Batch n's state was committed before
 * batch n+1 touched it (vg_pipeline_commit_held: the values are copied), but its write to
 * RocksDB waits until the Kafka commit has succeeded (vg_pipeline_release), so the state store
 * is still never ahead of Kafka. Batch n+1's first output waits for batch n's commit (one
 * Kafka transaction at a time) and for its state write (without checkpoints), then opens
 * batch n+1's transaction (txn_begin): the state is never behind by more than one batch of
 * Kafka's, counting the open one. A restart on a broker that shows aborted transactions (the
 * local one) therefore decides at most one batch again, as without the commit in flight.
 */
typedef struct vg_committer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int todo, busy, quit;
    int pending;      /* posted, not yet finished by commit_finish */
    uint64_t commits; /* its successful ones */
    vg_run_t *r;
    vg_assignment_t *done; /* the offsets the batch moves to */
    size_t ndone, cap;
    size_t n;                 /* the batch's messages */
    double proc_ms, state_ms; /* its processing, its state commit */
    vg_err_t err;             /* the outcome */
    char errbuf[VG_ERRLEN];
    int64_t end_ns, commit_ns; /* when it ended (monotonic), how long it took */
    int64_t committed_ms;      /* when it ended (wall clock: the decisions' visibility) */
} vg_committer_t;

static void *committer_main(void *arg)
{
    vg_committer_t *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->todo && !c->quit)
            pthread_cond_wait(&c->cv, &c->mu);
        if (!c->todo)
            break;
        c->todo = 0;
        pthread_mutex_unlock(&c->mu);
        int64_t t0 = vg_mono_ns();
        c->err = vg_producer_commit(c->r->producer, c->r->consumer, c->done, c->ndone, c->errbuf,
                                    sizeof(c->errbuf));
        c->end_ns = vg_mono_ns();
        c->commit_ns = c->end_ns - t0;
        c->committed_ms = vg_now_ms();
        if (!c->err) { /* the state write may go now, beside the next batch's processing */
            crash_point(c->r, ++c->commits);
            vg_pipeline_release(c->r->pipeline);
        }
        pthread_mutex_lock(&c->mu);
        c->busy = 0;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Hands the Kafka commit of the batch just processed (its offsets done[0..ndone)) to the
 * committer thread, started on first use. */
static vg_err_t commit_post(vg_run_t *r, const vg_assignment_t *done, size_t ndone, size_t n,
                            double proc_ms, double state_ms, char *errbuf, size_t errlen)
{
    vg_committer_t *c = r->committer;
    if (!c) {
        c = vg_xcalloc(1, sizeof(*c));
        c->r = r;
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->cv, NULL);
        if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
            pthread_mutex_destroy(&c->mu);
            pthread_cond_destroy(&c->cv);
            free(c);
            return vg_errf(errbuf, errlen, VG_ERR_KAFKA, "cannot start the committer thread");
        }
        r->committer = c;
    }
    if (ndone > c->cap) {
        c->cap = ndone * 2;
        c->done = vg_xrealloc(c->done, c->cap * sizeof(*c->done));
    }
    if (ndone)
        memcpy(c->done, done, ndone * sizeof(*done));
    c->ndone = ndone;
    c->n = n;
    c->proc_ms = proc_ms;
    c->state_ms = state_ms;
    pthread_mutex_lock(&c->mu);
    c->todo = c->busy = c->pending = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return VG_OK;
}

/* Waits for the commit in flight, if any (whose thread released the state write once it
 * succeeded), and ends its batch: the metrics. Its error (the engine then exits: a restart
 * resumes from the last commit). */
static vg_err_t commit_finish(vg_run_t *r)
{
    vg_committer_t *c = r->committer;
    if (!c || !c->pending)
        return VG_OK;
    pthread_mutex_lock(&c->mu);
    while (c->busy)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    c->pending = 0;
    if (c->err) {
        vg_err_t err = c->err;
        c->err = VG_OK;
        r->aborts++;
        vg_error("run", "%s: exiting so that a restart resumes from the last commit", c->errbuf);
        return err;
    }
    r->commits++;
    r->last_commit_ns = c->end_ns;
    double phase_ms[3] = {c->proc_ms, (double)c->commit_ns / 1e6, c->state_ms};
    batch_observe(r, c->n, phase_ms, c->committed_ms);
    return VG_OK;
}

static void committer_free(vg_run_t *r)
{
    vg_committer_t *c = r->committer;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->quit = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->done);
    free(c);
    r->committer = NULL;
}

/* Opens the batch's Kafka transaction (exactly_once). Pipelined: at the batch's first output,
 * once the previous batch's commit is done. */
static vg_err_t txn_begin(vg_run_t *r, char *errbuf, size_t errlen)
{
    vg_err_t err = r->pipelined ? commit_finish(r) : VG_OK;
    if (err)
        return vg_errf(errbuf, errlen, err, "the previous batch's commit failed");
    /* and its state write (by now usually done, beside this batch's processing): so a kill
     * leaves at most one batch that Kafka has and the state has not, committed or open */
    if (r->pipelined && r->state_async &&
        (err = vg_pipeline_wait_written(r->pipeline, errbuf, errlen)) != VG_OK)
        return err;
    if ((err = vg_producer_begin(r->producer, errbuf, errlen)) == VG_OK)
        r->txn_open = 1;
    return err;
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
    if (commit_finish(r)) /* what the commit in flight moves must be done first */
        r->fatal = 1;
    if (!revoked && r->stages[0].changelog && !r->fatal)
        changelog_restore(r, parts, n);
    for (size_t i = 0; i < n; i++) {
        if (parts[i].topic_idx < 0)
            continue;
        int t = tp_of_consumer(parts[i].topic_idx);
        vg_tp_t *tp = vg_run_tp(r, t, parts[i].partition);
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
    if (r->pipelined && !r->txn_open && (err = txn_begin(r, errbuf, sizeof(errbuf)))) {
        vg_error("run", "%s", errbuf);
        return err;
    }
    if (out->kind == VG_OUT_FORWARD) {
        err = vg_stages_forward(st, out, errbuf, sizeof(errbuf));
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
        /* no copy: the batch is committed (or flushed) before the pipeline processes the
         * batch after next, the first to reuse the value's memory (pipeline.h) */
        vg_kheader_t h = {"vigil.batch", r->batch_id, strlen(r->batch_id)};
        err = vg_producer_send_ref(r->producer, topic, out->key, out->keylen, out->value, out->len,
                                   &h, 1, errbuf, sizeof(errbuf));
        if (out->kind == VG_OUT_DECISION)
            note_decided(r, out->input->timestamp_ms);
    }
    if (err)
        vg_error("run", "%s", errbuf);
    return err;
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
            vg_run_tp(r, TP_CL(k), tp->partition)->next = last + 1;
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
    vg_tp_t *tp = vg_run_tp(r, st->k == 0 ? TP_TXNS : TP_REPART(st->k), part);
    if (st->k == 0) {
        if (next > tp->next)
            tp->next = next;
    } else { /* each marker read is newer than the local state: take it whole */
        tp->next = next;
        tp->low = low;
        free(tp->align_text);
        tp->align_text = vg_xstrdup(text + used + used2);
    }
    vg_run_tp(r, TP_CL(st->k), part)->next = offset + 1;
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
            int64_t from = vg_run_tp(r, TP_CL(st->k), parts[i].partition)->next;
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
    /* Without checkpoints, each batch's state is written on the state's writer thread while
     * the next batch is processed, and is in RocksDB before that batch's Kafka commit (below,
     * and "the commit in flight"): a crash still finds the state at most the last committed
     * batch behind. Not with the changelog, whose records and markers follow each state
     * commit as it is made. */
    r->state_async =
        popts.state_checkpoint_ms == 0 && !vg_config_bool(r->config, "engine", "state.changelog");
    popts.state_async_writes = r->state_async;
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
        if (vg_stages_plan(r, &popts, errbuf, sizeof(errbuf)) != VG_OK) {
            vg_error("run", "%s", errbuf);
            goto out;
        }
        r->pipeline = r->stages[r->nstages - 1].pipeline;
    }
    const char *group = vg_config_str(r->config, "engine", "group");
    r->eos =
        strcmp(vg_config_str(r->config, "engine", "processing.guarantee"), "exactly_once") == 0;
    r->pipelined = r->eos && r->pipeline && r->nstages == 1 && !r->stages[0].changelog;
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

    const char *crash_env = getenv("VIGIL_CRASH_AFTER_KAFKA_COMMIT"); /* crash_point() */
    r->crash_after = crash_env ? strtol(crash_env, NULL, 10) : 0;
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
        int idle_wm = n == 0 && r->nstages > 1 && r->started && vg_stages_idle_due(r, vg_now_ms());
        if (n == 0 && idle_exit_ms && vg_now_ms() - r->last_input_ms >= idle_exit_ms) {
            vg_info("run", "no input for %lld ms: stopping", (long long)idle_exit_ms);
            break;
        }
        if (n == 0 && !idle_wm) {
            /* input paused: end the batch in flight, and write what the commits since the
             * last checkpoint changed, so that a crash now has nothing to rebuild */
            vg_err_t cerr = commit_finish(r);
            if (cerr) {
                status = 1;
                break;
            }
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
            vg_tp_t *tp = vg_run_tp(r, t, msgs[i].partition);
            int emit_it = msgs[i].offset >= tp->emit_from;
            r->consumed[msgs[i].topic_idx]++;
            tp->last_msg_ms = now_ms;
            tp->idle_sent = 0;
            /* what --idle-exit waits for: input, or a stage's transactions (not watermarks) */
            if (t <= TP_LABELS || !vg_stages_is_watermarks(&msgs[i]))
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
                vg_stages_read(r, &r->stages[stage_of(t)], tp, &msgs[i]);
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
                 (long long)started_ms, (unsigned long long)r->batches++);
        if (r->eos && !r->pipelined && txn_begin(r, errbuf, sizeof(errbuf))) {
            vg_error("run", "%s", errbuf);
            status = 1;
            break;
        }
        vg_err_t perr = VG_OK;
        if (passthrough) {
            for (size_t i = 0; i < n && !perr; i++) {
                perr = vg_producer_send(
                    r->producer, vg_config_str(r->config, "topics", "decisions"), msgs[i].key,
                    msgs[i].keylen, msgs[i].value, msgs[i].len, errbuf, sizeof(errbuf));
                note_decided(r, msgs[i].timestamp_ms);
            }
        } else {
            vg_stages_release(r);
            for (int k = 0; k < r->nstages && !perr; k++) {
                vg_stage_t *st = &r->stages[k];
                vg_sink_t sink = {st, emit};
                const vg_input_t *lab = k == 0 ? inputs : st->lab;
                size_t nlab = k == 0 ? n0 : st->nlab;
                perr = vg_stages_forward_labels(r, st, lab, nlab, errbuf, sizeof(errbuf));
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
                vg_stages_snapshot(r);
                perr = vg_stages_send_watermarks(r, vg_now_ms(), idle_wm, errbuf, sizeof(errbuf));
            }
            if (!perr && r->stages[0].changelog)
                perr = changelog_send(r, errbuf, sizeof(errbuf));
        }
        if (perr) {
            vg_error("run", "%s", errbuf);
            status = 1;
            break;
        }
        /* a batch without outputs still commits its offsets in a transaction */
        if (r->pipelined && !r->txn_open && txn_begin(r, errbuf, sizeof(errbuf))) {
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
        vg_err_t err = VG_OK;
        if (r->pipelined) { /* the state now, its write after the Kafka commit (above) */
            int64_t t1 = vg_mono_ns();
            offsets_encode(r, &r->stages[0], &offsets);
            err = vg_pipeline_commit_held(r->pipeline, offsets.data, offsets.len, errbuf,
                                          sizeof(errbuf));
            if (!err)
                err = commit_post(r, done, ndone, n, (double)(t1 - t0) / 1e6,
                                  (double)(vg_mono_ns() - t1) / 1e6, errbuf, sizeof(errbuf));
            if (err) {
                vg_error("run", "%s", errbuf);
                status = 1;
                break;
            }
            r->txn_open = 0;
            if (count_batch(&total, n, max_messages))
                break;
            continue;
        }
        for (int k = 0; r->state_async && k < r->nstages && r->pipeline && !err; k++)
            err = vg_pipeline_wait_written(r->stages[k].pipeline, errbuf, sizeof(errbuf));
        if (err) {
            vg_error("run", "state commit failed: %s", errbuf);
            status = 1;
            break;
        }
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
        crash_point(r, r->commits);
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
        batch_observe(r, n, phase_ms, committed_ms);
        if (count_batch(&total, n, max_messages))
            break;
    }
    if (commit_finish(r)) /* the last batch's */
        status = 1;
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
    committer_free(r);
    vg_http_stop(r->http);
    vg_consumer_free(r->consumer);
    vg_producer_free(r->producer);
    vg_stages_free(r);
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
