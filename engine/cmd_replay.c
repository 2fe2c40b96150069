/*
 * cmd_replay.c - `vigil replay`: the pipeline over historical logs instead of Kafka.
 *
 * Transactions and labels (JSON lines, plain or gzip) are merged in event time: a label
 * takes effect before every transaction whose ts is at or after the label's ts. The merged
 * stream runs through the very pipeline `vigil run` uses, in batches of the same size, so a
 * replay gives byte-identical decisions run after run, and the decisions a live run would
 * have given to the same stream in the same order.
 *
 * With --to-kafka the merged stream is produced to the transactions and labels topics
 * instead (as fast as possible, or paced at --speedup times its own clock), for a running
 * engine to consume as live traffic.
 */
#include "engine/cli.h"
#include "engine/contract.h"
#include "engine/kafka.h"
#include "engine/pipeline.h"
#include "rules/rules.h"

#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- line reader over zlib (reads plain files too) ---- */

typedef struct vg_lines {
    gzFile gz;
    const char *path;
    char *buf;
    size_t cap, start, end; /* unread bytes are buf[start, end) */
    int eof;
    uint64_t lineno;
    int64_t size; /* file size, for progress */
} vg_lines_t;

static int lines_open(vg_lines_t *l, const char *path, char *errbuf, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    l->path = path;
    l->gz = gzopen(path, "rb");
    if (!l->gz) {
        vg_errf(errbuf, errlen, VG_ERR_IO, "cannot open %s", path);
        return -1;
    }
    gzbuffer(l->gz, 1 << 18);
    struct stat st;
    l->size = stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
    l->cap = 1 << 20;
    l->buf = vg_xmalloc(l->cap);
    return 0;
}

static void lines_close(vg_lines_t *l)
{
    if (l->gz)
        gzclose(l->gz);
    free(l->buf);
}

/* Next line without its newline (blank lines skipped), borrowed until the next call; NULL at
 * the end. A line longer than VG_MAX_MESSAGE is returned cut, and decoding rejects it. */
static const char *lines_next(vg_lines_t *l, size_t *len)
{
    for (;;) {
        char *nl = memchr(l->buf + l->start, '\n', l->end - l->start);
        if (nl || (l->eof && l->end > l->start)) {
            size_t n = nl ? (size_t)(nl - (l->buf + l->start)) : l->end - l->start;
            const char *line = l->buf + l->start;
            l->start += n + (nl != NULL);
            l->lineno++;
            if (n && line[n - 1] == '\r')
                n--;
            if (n == 0)
                continue;
            *len = n;
            return line;
        }
        if (l->eof)
            return NULL;
        /* make room: move unread bytes to the front, grow if a line fills the buffer */
        memmove(l->buf, l->buf + l->start, l->end - l->start);
        l->end -= l->start;
        l->start = 0;
        if (l->end == l->cap) {
            if (l->cap > 2 * VG_MAX_MESSAGE) { /* hand over a cut line; it gets rejected */
                *len = l->end;
                l->start = l->end;
                l->lineno++;
                return l->buf;
            }
            l->cap *= 2;
            l->buf = vg_xrealloc(l->buf, l->cap);
        }
        int got = gzread(l->gz, l->buf + l->end, (unsigned)(l->cap - l->end));
        if (got <= 0)
            l->eof = 1;
        else
            l->end += (size_t)got;
    }
}

/* One side of the merge: the next record of a file and its event time. */
typedef struct vg_stream {
    vg_lines_t lines;
    int open;
    vg_input_kind_t kind;
    const char *line;
    size_t len;
    int64_t ts;
    uint64_t lineno;
} vg_stream_t;

static void stream_advance(vg_stream_t *s)
{
    s->line = s->open ? lines_next(&s->lines, &s->len) : NULL;
    s->lineno = s->lines.lineno;
    /* A line whose ts cannot be read goes now: the pipeline will dead-letter it. */
    if (s->line && vg_peek_ts(s->line, s->len, &s->ts) != VG_OK)
        s->ts = INT64_MIN;
}

/* The stream whose record comes next in event time (labels first on ties), or NULL. */
static vg_stream_t *merge_next(vg_stream_t *txns, vg_stream_t *labels)
{
    if (!txns->line)
        return labels->line ? labels : NULL;
    if (!labels->line)
        return txns;
    return labels->ts <= txns->ts ? labels : txns;
}

/* ---- outputs to files ---- */

typedef struct vg_replay_out {
    FILE *decisions, *dlq;
    const char *txn_path, *label_path;
    const uint64_t *linenos; /* line of each input of the batch */
    vg_buf_t line;
} vg_replay_out_t;

static vg_err_t file_emit(void *opaque, const vg_output_t *out)
{
    vg_replay_out_t *o = opaque;
    if (out->kind == VG_OUT_REVIEW)
        return VG_OK; /* a review case is its decision record; the decisions file has it */
    if (out->kind == VG_OUT_DECISION) {
        if (fwrite(out->value, 1, out->len, o->decisions) != out->len ||
            fputc('\n', o->decisions) == EOF)
            return VG_ERR_IO;
        return VG_OK;
    }
    vg_buf_reset(&o->line);
    vg_buf_puts(&o->line, "{\"reason\":");
    vg_buf_json_str(&o->line, out->reason, strlen(out->reason));
    const char *src = out->input->kind == VG_IN_LABEL ? o->label_path : o->txn_path;
    vg_buf_puts(&o->line, ",\"source\":");
    vg_buf_json_str(&o->line, src, strlen(src));
    vg_buf_printf(&o->line, ",\"line\":%lld,\"message\":", (long long)out->input->offset);
    vg_buf_json_str(&o->line, out->value, out->len);
    vg_buf_puts(&o->line, "}\n");
    if (fwrite(o->line.data, 1, o->line.len, o->dlq) != o->line.len)
        return VG_ERR_IO;
    return VG_OK;
}

/* Share of a file read so far (compressed bytes for gzip). */
static double read_fraction(const vg_lines_t *l)
{
    double frac = l->size > 0 ? (double)gzoffset(l->gz) / (double)l->size : 0;
    return frac > 1 ? 1 : frac;
}

/* ---- the reader thread: merge, copy and decode the next batch ---- */

/* Three slots, taken in turn: the reader fills batch n+2 while the pipeline computes the
 * features of n+1 and decides n (opts.overlap). */
#define VG_SLOTS 3

typedef struct vg_slot {
    vg_input_t *inputs;
    size_t *starts;
    vg_buf_t data; /* the batch's lines, back to back: a reader's line lives one call */
    vg_batch_t *batch;
    size_t n; /* 0: the end of the input */
    double read_fraction;
} vg_slot_t;

typedef struct vg_reader {
    vg_stream_t *txns, *labels;
    size_t batch;
    const vg_pipeline_t *p;
    vg_slot_t slots[VG_SLOTS];
    int full[VG_SLOTS]; /* slot k holds a decoded batch the pipeline has not given back */
    int stop;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
} vg_reader_t;

static void *reader_main(void *arg)
{
    vg_reader_t *rd = arg;
    for (int k = 0;; k = (k + 1) % VG_SLOTS) {
        pthread_mutex_lock(&rd->lock);
        while (rd->full[k] && !rd->stop)
            pthread_cond_wait(&rd->cond, &rd->lock);
        int stop = rd->stop;
        pthread_mutex_unlock(&rd->lock);
        if (stop)
            break;
        vg_slot_t *slot = &rd->slots[k];
        size_t n = 0;
        vg_buf_reset(&slot->data);
        vg_stream_t *s;
        while (n < rd->batch && (s = merge_next(rd->txns, rd->labels))) {
            slot->starts[n] = slot->data.len;
            vg_buf_append(&slot->data, s->line, s->len);
            slot->inputs[n] = (vg_input_t){.kind = s->kind,
                                           .len = s->len,
                                           .partition = -1,
                                           .offset = (int64_t)s->lineno,
                                           .timestamp_ms = -1,
                                           .emit = 1};
            n++;
            stream_advance(s);
        }
        for (size_t i = 0; i < n; i++)
            slot->inputs[i].data = slot->data.data + slot->starts[i];
        vg_pipeline_decode(rd->p, slot->batch, slot->inputs, n);
        slot->n = n;
        slot->read_fraction = read_fraction(&rd->txns->lines);
        pthread_mutex_lock(&rd->lock);
        rd->full[k] = 1;
        pthread_cond_broadcast(&rd->cond);
        pthread_mutex_unlock(&rd->lock);
        if (n == 0)
            break;
    }
    return NULL;
}

static void reader_start(vg_reader_t *rd)
{
    for (int k = 0; k < VG_SLOTS; k++) {
        rd->slots[k].inputs = vg_xcalloc(rd->batch, sizeof(vg_input_t));
        rd->slots[k].starts = vg_xcalloc(rd->batch, sizeof(size_t));
        vg_buf_init(&rd->slots[k].data);
        rd->slots[k].batch = vg_batch_new();
    }
    pthread_mutex_init(&rd->lock, NULL);
    pthread_cond_init(&rd->cond, NULL);
    if (pthread_create(&rd->thread, NULL, reader_main, rd) != 0) {
        perror("vigil replay: pthread_create");
        abort();
    }
}

/* Waits for slot k to be decoded and lends it to the processing thread. */
static vg_slot_t *reader_take(vg_reader_t *rd, int k)
{
    pthread_mutex_lock(&rd->lock);
    while (!rd->full[k])
        pthread_cond_wait(&rd->cond, &rd->lock);
    pthread_mutex_unlock(&rd->lock);
    return &rd->slots[k];
}

static void reader_give_back(vg_reader_t *rd, int k)
{
    pthread_mutex_lock(&rd->lock);
    rd->full[k] = 0;
    pthread_cond_broadcast(&rd->cond);
    pthread_mutex_unlock(&rd->lock);
}

static void reader_stop(vg_reader_t *rd)
{
    pthread_mutex_lock(&rd->lock);
    rd->stop = 1;
    pthread_cond_broadcast(&rd->cond);
    pthread_mutex_unlock(&rd->lock);
    pthread_join(rd->thread, NULL);
    pthread_mutex_destroy(&rd->lock);
    pthread_cond_destroy(&rd->cond);
    for (int k = 0; k < VG_SLOTS; k++) {
        free(rd->slots[k].inputs);
        free(rd->slots[k].starts);
        vg_buf_free(&rd->slots[k].data);
        vg_batch_free(rd->slots[k].batch);
    }
}

static void help(void)
{
    printf("usage: vigil replay --transactions FILE [--labels FILE] --out FILE [OPTIONS]\n"
           "       vigil replay --transactions FILE [--labels FILE] --to-kafka ADDR "
           "[--speedup X]\n\n"
           "Runs the engine's pipeline over historical logs (JSON lines, plain or .gz), merged in\n"
           "event time, and writes one decision per line. Deterministic: the same inputs,\n"
           "catalogue, rules and model give byte-identical output. Or pushes the merged log\n"
           "into Kafka for a running engine.\n\n"
           "Options:\n"
           "  --transactions FILE   transactions, one JSON object per line (required)\n"
           "  --labels FILE         labels, applied at their own ts\n"
           "  --out FILE            decisions, JSON lines ('-' = stdout)\n"
           "  --dlq FILE            dead letters (default: OUT.dlq, or stderr for '-')\n"
           "  --catalog FILE        feature catalogue (default features/default.conf)\n"
           "  --rules FILE          rule file (default: none)\n"
           "  --lists DIR           directory of @list files (default: the rule file's)\n"
           "  --model DIR           model bundle (default: none)\n"
           "  --shadow-model DIR    challenger bundle\n"
           "  --state DIR           state directory (default: a fresh temporary one, removed)\n"
           "  --batch-size N        micro-batch size (default 5000; changes speed only)\n"
           "  --cache-mb N          state cache bound in MiB (default 1024): beyond it, state\n"
           "                        is written to RocksDB and evicted (changes speed only)\n"
           "  --threads N           1 or 2: with 2, rules, scoring and decisions run on a\n"
           "                        thread of their own beside the next batch's features\n"
           "                        (default 2; the output is the same)\n"
           "  --commit-every N      commit state every N messages (default 100000; the state\n"
           "                        cache holds what is uncommitted, so this bounds memory)\n"
           "  --reasons K           reason codes on flagged decisions (default 5)\n"
           "  --review-sample-rate R  as [engine] review.sample.rate (default 0)\n"
           "  --review-band LO..HI  as [engine] review.band.low/high (default off)\n"
           "  --to-kafka ADDR       produce to the topics at ADDR instead of deciding\n"
           "  --speedup X           with --to-kafka: pace at X times the log's own clock\n"
           "  --quiet               no progress line\n"
           "  -h, --help            this help\n");
}

static void progress(double frac, uint64_t n, int64_t t0, int final)
{
    double secs = (double)(vg_mono_ns() - t0) / 1e9;
    double rate = secs > 0 ? (double)n / secs : 0;
    double eta = frac > 0 ? secs * (1 - frac) / frac : 0;
    fprintf(stderr, "\r  %llu messages  %.0f/s  %3.0f%%  ETA %.0fs   %s", (unsigned long long)n,
            rate, frac * 100, final ? 0 : eta, final ? "\n" : "");
}

static int to_kafka(vg_stream_t *txns, vg_stream_t *labels, const char *brokers, double speedup,
                    int quiet)
{
    char errbuf[VG_ERRLEN];
    vg_producer_t *producer = vg_producer_new(brokers, NULL, 0, errbuf, sizeof(errbuf));
    if (!producer) {
        vg_error("replay", "%s", errbuf);
        return 1;
    }
    vg_signals_install();
    uint64_t n = 0;
    int64_t t0 = vg_mono_ns(), first_ts = INT64_MIN, last_progress = 0;
    vg_arena_t arena;
    vg_arena_init(&arena, 1 << 16);
    int status = 0;
    vg_stream_t *s;
    while ((s = merge_next(txns, labels)) && !vg_stop_requested()) {
        if (speedup > 0 && s->ts != INT64_MIN) {
            if (first_ts == INT64_MIN)
                first_ts = s->ts;
            double due_ns = (double)(s->ts - first_ts) * 1e6 / speedup;
            double wait_ns = due_ns - (double)(vg_mono_ns() - t0);
            if (wait_ns > 1e6)
                usleep((useconds_t)(wait_ns / 1e3));
        }
        /* key: card_id for transactions, txn_id for labels (best effort: bad lines keyless) */
        const char *key = NULL;
        size_t keylen = 0;
        char reason[VG_ERRLEN];
        vg_arena_reset(&arena);
        if (s->kind == VG_IN_TXN) {
            vg_txn_t txn;
            vg_schema_t schema;
            vg_schema_init(&schema);
            if (vg_txn_decode(&schema, s->line, s->len, &arena, &txn, reason, sizeof(reason)) ==
                VG_OK) {
                key = txn.str[VG_F_CARD_ID];
                keylen = txn.len[VG_F_CARD_ID];
            }
            vg_schema_free(&schema);
        } else {
            vg_label_t label;
            if (vg_label_decode(s->line, s->len, &arena, &label, reason, sizeof(reason)) == VG_OK) {
                key = label.txn_id;
                keylen = strlen(key);
            }
        }
        if (vg_producer_send(producer,
                             s->kind == VG_IN_TXN ? VG_TOPIC_TRANSACTIONS : VG_TOPIC_LABELS, key,
                             keylen, s->line, s->len, errbuf, sizeof(errbuf))) {
            vg_error("replay", "%s", errbuf);
            status = 1;
            break;
        }
        n++;
        stream_advance(s);
        if (!quiet && isatty(2) && vg_mono_ns() - last_progress > 500000000) {
            progress(read_fraction(&txns->lines), n, t0, 0);
            last_progress = vg_mono_ns();
        }
    }
    if (!status && vg_producer_flush(producer, 60000, errbuf, sizeof(errbuf))) {
        vg_error("replay", "%s", errbuf);
        status = 1;
    }
    if (!quiet && isatty(2))
        progress(1, n, t0, 1);
    vg_info("replay", "produced %llu messages to %s in %.1f s", (unsigned long long)n, brokers,
            (double)(vg_mono_ns() - t0) / 1e9);
    vg_arena_free(&arena);
    vg_producer_free(producer);
    return status;
}

int vg_cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        {"transactions", required_argument, NULL, 't'},
        {"labels", required_argument, NULL, 'l'},
        {"out", required_argument, NULL, 'o'},
        {"dlq", required_argument, NULL, 'd'},
        {"catalog", required_argument, NULL, 'c'},
        {"rules", required_argument, NULL, 'r'},
        {"lists", required_argument, NULL, 'L'},
        {"model", required_argument, NULL, 'm'},
        {"shadow-model", required_argument, NULL, 'M'},
        {"state", required_argument, NULL, 's'},
        {"batch-size", required_argument, NULL, 'b'},
        {"reasons", required_argument, NULL, 'k'},
        {"review-sample-rate", required_argument, NULL, 'R'},
        {"review-band", required_argument, NULL, 'B'},
        {"to-kafka", required_argument, NULL, 'K'},
        {"speedup", required_argument, NULL, 'x'},
        {"quiet", no_argument, NULL, 'q'},
        {"commit-every", required_argument, NULL, 'C'},
        {"cache-mb", required_argument, NULL, 'S'},
        {"threads", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *txn_path = NULL, *label_path = NULL, *out_path = NULL, *dlq_path = NULL;
    const char *kafka = NULL;
    double speedup = 0;
    long batch = 5000;
    uint64_t commit_every = 100000;
    int quiet = 0, opt;
    vg_pipeline_opts_t popts;
    vg_pipeline_opts_default(&popts);
    popts.catalog_path = vg_shipped_path("features/default.conf");
    popts.state_sync = 0;              /* a replay that dies is simply run again */
    popts.state_checkpoint_ms = 10000; /* likewise: commits reach RocksDB every 10 s */
    popts.cache_bytes = (size_t)1024 << 20;
    popts.threads = 2;
    char *end;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 't':
            txn_path = optarg;
            break;
        case 'l':
            label_path = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'd':
            dlq_path = optarg;
            break;
        case 'c':
            popts.catalog_path = optarg;
            break;
        case 'r':
            popts.rules_path = optarg;
            break;
        case 'L':
            popts.lists_dir = optarg;
            break;
        case 'm':
            popts.model_dir = optarg;
            break;
        case 'M':
            popts.shadow_model_dir = optarg;
            break;
        case 's':
            popts.state_dir = optarg;
            break;
        case 'T':
            popts.threads = (int)strtol(optarg, &end, 10);
            if (*end || popts.threads < 1 || popts.threads > 2)
                return vg_cli_usage_error("replay", "--threads must be 1 or 2, got '%s'", optarg);
            break;
        case 'b':
            batch = strtol(optarg, &end, 10);
            if (*end || batch < 1 || batch > 1000000)
                return vg_cli_usage_error("replay", "--batch-size must be 1..1000000, got '%s'",
                                          optarg);
            break;
        case 'k':
            popts.reasons = (int)strtol(optarg, &end, 10);
            if (*end || popts.reasons < 0 || popts.reasons > 16)
                return vg_cli_usage_error("replay", "--reasons must be 0..16, got '%s'", optarg);
            break;
        case 'R':
            popts.review_sample_rate = strtod(optarg, &end);
            if (*end || !(popts.review_sample_rate >= 0 && popts.review_sample_rate <= 1))
                return vg_cli_usage_error("replay", "--review-sample-rate must be 0..1, got '%s'",
                                          optarg);
            break;
        case 'B':
            if (sscanf(optarg, "%lf..%lf", &popts.review_band_low, &popts.review_band_high) != 2 ||
                !(popts.review_band_low >= 0 && popts.review_band_low <= popts.review_band_high &&
                  popts.review_band_high <= 1))
                return vg_cli_usage_error("replay",
                                          "--review-band takes LOW..HIGH in [0, 1], got "
                                          "'%s'",
                                          optarg);
            break;
        case 'K':
            kafka = optarg;
            break;
        case 'x':
            speedup = strtod(optarg, &end);
            if (*end || !(speedup > 0))
                return vg_cli_usage_error("replay", "--speedup must be a number > 0, got '%s'",
                                          optarg);
            break;
        case 'q':
            quiet = 1;
            break;
        case 'S': {
            long mb = strtol(optarg, &end, 10);
            if (*end || mb < 16 || mb > (1L << 20))
                return vg_cli_usage_error("replay", "--cache-mb must be 16..1048576, got '%s'",
                                          optarg);
            popts.cache_bytes = (size_t)mb << 20;
            break;
        }
        case 'C':
            commit_every = strtoull(optarg, &end, 10);
            if (*end || commit_every < 1)
                return vg_cli_usage_error("replay", "--commit-every must be a count >= 1, got '%s'",
                                          optarg);
            break;
        case 'h':
            help();
            return 0;
        default:
            return vg_cli_usage_error("replay", "unknown option");
        }
    }
    if (optind < argc)
        return vg_cli_usage_error("replay", "unexpected argument '%s'", argv[optind]);
    popts.overlap = popts.threads > 1;
    if (!txn_path)
        return vg_cli_usage_error("replay", "--transactions is required");
    if (!out_path && !kafka)
        return vg_cli_usage_error("replay", "give --out FILE or --to-kafka ADDR");

    char errbuf[VG_ERRLEN * 4];
    vg_stream_t txns = {.kind = VG_IN_TXN}, labels = {.kind = VG_IN_LABEL};
    if (lines_open(&txns.lines, txn_path, errbuf, sizeof(errbuf))) {
        vg_error("replay", "%s", errbuf);
        return 1;
    }
    txns.open = 1;
    if (label_path) {
        if (lines_open(&labels.lines, label_path, errbuf, sizeof(errbuf))) {
            vg_error("replay", "%s", errbuf);
            lines_close(&txns.lines);
            return 1;
        }
        labels.open = 1;
    }
    stream_advance(&txns);
    stream_advance(&labels);
    if (kafka) {
        int st = to_kafka(&txns, &labels, kafka, speedup, quiet);
        lines_close(&txns.lines);
        lines_close(&labels.lines);
        return st;
    }

    int status = 1;
    char tmpdir[] = "/tmp/vigil-replay-XXXXXX";
    int own_state = popts.state_dir == NULL;
    if (own_state) {
        if (!mkdtemp(tmpdir)) {
            vg_error("replay", "cannot create a temporary state directory");
            goto close_inputs;
        }
        popts.state_dir = tmpdir;
        popts.state_scratch = 1; /* deleted at the end: written only when the cache is full */
    }
    vg_replay_out_t o = {0};
    o.txn_path = txn_path;
    o.label_path = label_path ? label_path : "";
    vg_buf_init(&o.line);
    vg_pipeline_t *p = vg_pipeline_new(&popts, errbuf, sizeof(errbuf));
    if (!p) {
        vg_error("replay", "%s", errbuf);
        goto cleanup;
    }
    char dlq_default[4200];
    if (strcmp(out_path, "-") == 0) {
        o.decisions = stdout;
        o.dlq = dlq_path ? fopen(dlq_path, "w") : stderr;
    } else {
        o.decisions = fopen(out_path, "w");
        snprintf(dlq_default, sizeof(dlq_default), "%s.dlq", out_path);
        o.dlq = fopen(dlq_path ? dlq_path : dlq_default, "w");
    }
    if (!o.decisions || !o.dlq) {
        vg_error("replay", "cannot open the output files");
        goto cleanup;
    }
    /* Decisions run to gigabytes: 1 MiB writes instead of stdio's 4 KiB. */
    setvbuf(o.decisions, NULL, _IOFBF, 1 << 20);
    vg_signals_install();

    /* A reader thread merges, copies and decodes batch n+2 while this thread computes the
     * features of batch n+1 and the pipeline's back thread decides batch n: a slot is given
     * back once the batch after it has been handed over (its outputs are written then). */
    vg_reader_t rd = {.txns = &txns, .labels = &labels, .batch = (size_t)batch, .p = p};
    reader_start(&rd);
    vg_sink_t sink = {&o, file_emit};
    uint64_t nmsgs = 0, since_commit = 0;
    int64_t t0 = vg_mono_ns(), last_progress = 0;
    int show = !quiet && isatty(2);
    status = 0;
    int prev = -1;
    for (int k = 0;; k = (k + 1) % VG_SLOTS) {
        vg_slot_t *slot = reader_take(&rd, k);
        size_t n = slot->n;
        if (n == 0)
            break;
        since_commit += n;
        if (vg_pipeline_process_decoded(p, slot->batch, &sink, errbuf, sizeof(errbuf)) ||
            ((since_commit >= commit_every || n < (size_t)batch) &&
             vg_pipeline_commit(p, NULL, 0, errbuf, sizeof(errbuf)))) {
            vg_error("replay", "%s", errbuf);
            status = 1;
            break;
        }
        nmsgs += n;
        if (since_commit >= commit_every)
            since_commit = 0;
        if (show && vg_mono_ns() - last_progress > 250000000) {
            progress(slot->read_fraction, nmsgs, t0, 0);
            last_progress = vg_mono_ns();
        }
        if (prev >= 0)
            reader_give_back(&rd, prev);
        prev = k;
        if (vg_stop_requested()) {
            vg_warn("replay", "interrupted: output is incomplete");
            status = 1;
            break;
        }
    }
    if (vg_pipeline_wait(p, errbuf, sizeof(errbuf)) && !status) {
        vg_error("replay", "%s", errbuf);
        status = 1;
    }
    reader_stop(&rd);
    if (show)
        progress(1, nmsgs, t0, 1);
    if (fflush(o.decisions) != 0 || ferror(o.decisions)) {
        vg_error("replay", "writing %s failed", out_path);
        status = 1;
    }
    double secs = (double)(vg_mono_ns() - t0) / 1e9;
    const vg_pipeline_stats_t *st = vg_pipeline_stats(p);
    fprintf(stderr,
            "replay: %llu transactions, %llu labels (%llu for unknown transactions), "
            "%llu dead letters\n"
            "replay: decisions: allow %llu, review %llu, block %llu\n"
            "replay: %.2f s, %.0f transactions/s\n",
            (unsigned long long)st->transactions, (unsigned long long)st->labels,
            (unsigned long long)st->labels_unknown, (unsigned long long)st->dead_letters,
            (unsigned long long)st->decisions[VG_ACTION_ALLOW],
            (unsigned long long)st->decisions[VG_ACTION_REVIEW],
            (unsigned long long)st->decisions[VG_ACTION_BLOCK], secs,
            secs > 0 ? (double)st->transactions / secs : 0);
cleanup:
    if (o.decisions && o.decisions != stdout)
        fclose(o.decisions);
    if (o.dlq && o.dlq != stderr)
        fclose(o.dlq);
    vg_buf_free(&o.line);
    vg_pipeline_free(p);
    if (own_state) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            vg_warn("replay", "could not remove %s", tmpdir);
    }
close_inputs:
    lines_close(&txns.lines);
    lines_close(&labels.lines);
    return status;
}
