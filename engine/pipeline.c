/*
 * pipeline.c - the decision pipeline shared by `vigil run` and `vigil replay`.
 *
 * Per batch:
 *   1. decode every input; bad ones go to the sink as dead letters, in place;
 *   2. in input order, transactions get their features from the state store (which then
 *      adds them) and labels update label-driven state;
 *   3. pre-model rules for every emitting transaction, one model call for the batch (and one
 *      for the shadow model), post-model (score) rules;
 *   4. decisions, with reason codes for review/block, are encoded and emitted in input order.
 *
 * Invariants: nothing here reads the wall clock or a random source that is not derived from
 * the input, so the same inputs in the same order give byte-identical outputs. Per-event
 * memory comes from a per-batch arena and buffers reused across batches.
 */
#include "engine/pipeline.h"

#include "features/features.h"
#include "models/models.h"
#include "rules/rules.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VG_MAX_REASONS 16

typedef struct vg_item {
    const vg_input_t *in;
    int ok;           /* decoded */
    vg_txn_t txn;     /* VG_IN_TXN */
    vg_label_t label; /* VG_IN_LABEL */
    char *reason;     /* !ok: why (arena) */
    size_t row;       /* index of the feature row (transactions that emit) */
} vg_item_t;

/* A decoded micro-batch: its items and the arenas their strings live in (the second for
 * the half a worker decodes). */
struct vg_batch {
    vg_arena_t arena, arena2;
    vg_item_t *items;
    size_t n, cap;
    const vg_input_t *in;
};

/* One batch's rows, from its features to its encoded decisions. There are two: with
 * opts.overlap the back half of batch n reads one while the front half of batch n+1 fills
 * the other. */
typedef struct vg_rows {
    vg_batch_t *batch;
    size_t nrows, cap;
    double *feats; /* rows x nfeat, doubles for rules and the decision record */
    float *xrows;  /* the same rows as floats for the model */
    float *scores, *shadow_scores;
    vg_rules_result_t *results;
    size_t *row_item;     /* row -> index of its item in the batch */
    const char **sampled; /* row -> review sampling reason, or NULL */
    size_t *enc_off;      /* row -> its encoded decision: offset and length in enc[who] */
    uint32_t *enc_len;
    uint8_t *enc_who;
    vg_buf_t enc[2];
} vg_rows_t;

/* opts.overlap: the back half of a batch, on the back thread. */
typedef struct vg_back_job {
    vg_rows_t *r;
    vg_sink_t sink;
    vg_err_t err;
    char errbuf[VG_ERRLEN];
} vg_back_job_t;

/*
 * The data-parallel steps of a batch (decoding, rules and scoring, encoding decisions) are
 * tasks: split() cuts a range into chunks, which the thread that called it and one helper
 * take until none is left. The helper is the worker thread (opts.threads = 2), or with
 * opts.overlap the processing thread, between its front halves, for the splits the back
 * thread runs. Whichever has more of a core does more chunks. Feature state, counting and
 * emitting stay in input order on one thread, so outputs do not depend on who ran which
 * chunk.
 */
typedef void vg_split_fn(vg_pipeline_t *p, void *ctx, size_t lo, size_t hi, int who);

typedef struct vg_task {
    vg_split_fn *fn;
    void *ctx;
    size_t n, chunk;
    size_t next; /* the next chunk's start, taken atomically */
    size_t done; /* items finished (under the pipeline's lock) */
    int helpers; /* helpers inside it (likewise) */
} vg_task_t;

typedef struct vg_watch {
    char *path;
    int64_t mtime_ns;
    int64_t size;
} vg_watch_t;

struct vg_pipeline {
    vg_pipeline_opts_t opts;
    char *catalog_path, *rules_path, *lists_dir, *model_dir, *shadow_dir, *state_dir;
    vg_schema_t schema;
    vg_catalog_t *catalog;
    size_t nfeat;
    const char **feat_names;
    char **feat_keys; /* ",\"name\":" (no comma for the first), built once for encoding */
    size_t *feat_key_len;
    vg_state_t *state;
    vg_catalog_t *state_catalog; /* opts.stage_types: the stage's part of the catalogue */
    size_t *state_map;           /* its feature k is catalogue feature state_map[k] */
    double *state_row;
    vg_rules_t *rules;
    vg_model_t *model, *shadow;
    vg_watch_t rules_watch, model_watch, shadow_watch;

    vg_batch_t *batch; /* used by vg_pipeline_process() */
    vg_rows_t rows[2];
    int cur; /* the rows the next batch fills */

    /* threads: the lock and condition guard what follows */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t worker, back_thread;
    int worker_started, back_started, quit;
    vg_task_t *task; /* the split in progress, or NULL */
    vg_back_job_t job;
    int job_posted, job_busy;

    vg_pipeline_stats_t stats;
};

void vg_pipeline_opts_default(vg_pipeline_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->reasons = 5;
}

static char *dup_or_null(const char *s)
{
    return s ? vg_xstrdup(s) : NULL;
}

/* mtime+size of a file, so reloads happen when content may have changed. */
static void watch_stat(vg_watch_t *w, int64_t *mtime_ns, int64_t *size)
{
    struct stat st;
    if (!w->path || stat(w->path, &st) != 0) {
        *mtime_ns = -1;
        *size = -1;
        return;
    }
    *mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    *size = (int64_t)st.st_size;
}

static int watch_changed(vg_watch_t *w)
{
    int64_t m, s;
    watch_stat(w, &m, &s);
    if (m == w->mtime_ns && s == w->size)
        return 0;
    w->mtime_ns = m;
    w->size = s;
    return 1;
}

static void watch_init(vg_watch_t *w, const char *path)
{
    w->path = dup_or_null(path);
    watch_stat(w, &w->mtime_ns, &w->size);
}

static vg_rules_t *load_rules(vg_pipeline_t *p, char *errbuf, size_t errlen)
{
    vg_rules_env_t env = {
        .features = p->feat_names,
        .nfeatures = p->nfeat,
        .schema = &p->schema,
        .have_model = p->model_dir != NULL,
        .lists_dir = p->lists_dir,
    };
    return vg_rules_load(p->rules_path, &env, errbuf, errlen);
}

static vg_model_t *load_model(vg_pipeline_t *p, const char *dir, char *errbuf, size_t errlen)
{
    return vg_model_load(dir, p->feat_names, p->nfeat, vg_catalog_version(p->catalog), errbuf,
                         errlen);
}

static void reset_rule_hits(vg_pipeline_t *p)
{
    free(p->stats.rule_hits);
    p->stats.rule_hits = vg_xcalloc(p->rules ? vg_rules_count(p->rules) + 1 : 1, sizeof(uint64_t));
}

/* ---- threads ---- */

/* Takes chunks of t until none is left; returns how many items it did. */
static size_t task_chunks(vg_pipeline_t *p, vg_task_t *t, int who)
{
    size_t did = 0;
    for (;;) {
        size_t lo = __atomic_fetch_add(&t->next, t->chunk, __ATOMIC_RELAXED);
        if (lo >= t->n)
            return did;
        size_t hi = lo + t->chunk < t->n ? lo + t->chunk : t->n;
        t->fn(p, t->ctx, lo, hi, who);
        did += hi - lo;
    }
}

/* A helper's turn, with p->lock held: joins the split in progress if a chunk is left.
 * Returns 1 if it did some. */
static int help(vg_pipeline_t *p)
{
    vg_task_t *t = p->task;
    if (!t || __atomic_load_n(&t->next, __ATOMIC_RELAXED) >= t->n)
        return 0;
    t->helpers++;
    pthread_mutex_unlock(&p->lock);
    size_t did = task_chunks(p, t, 1);
    pthread_mutex_lock(&p->lock);
    t->done += did;
    t->helpers--;
    pthread_cond_broadcast(&p->cond);
    return 1;
}

/* Runs fn over [0, n) in chunks, here and by the helper (if any, and n is worth it);
 * returns when all are done. fn may be called several times for each `who`. */
static void split(vg_pipeline_t *p, vg_split_fn *fn, void *ctx, size_t n)
{
    if (!(p->worker_started || p->back_started) || n < 64) {
        fn(p, ctx, 0, n, 0);
        return;
    }
    vg_task_t t = {.fn = fn, .ctx = ctx, .n = n, .chunk = n / 16 > 64 ? n / 16 : 64};
    pthread_mutex_lock(&p->lock);
    p->task = &t;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    size_t did = task_chunks(p, &t, 0);
    pthread_mutex_lock(&p->lock);
    t.done += did;
    while (t.done < n || t.helpers)
        pthread_cond_wait(&p->cond, &p->lock);
    p->task = NULL;
    pthread_mutex_unlock(&p->lock);
}

/* opts.threads = 2: helps every split until the pipeline is freed. */
static void *worker_main(void *arg)
{
    vg_pipeline_t *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->quit)
        if (!help(p))
            pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static vg_err_t back(vg_pipeline_t *p, vg_rows_t *r, const vg_sink_t *sink, char *errbuf,
                     size_t errlen);

/* opts.overlap: runs each batch's back half as it is posted. */
static void *back_main(void *arg)
{
    vg_pipeline_t *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->job_posted && !p->quit)
            pthread_cond_wait(&p->cond, &p->lock);
        if (!p->job_posted)
            break;
        p->job_posted = 0;
        pthread_mutex_unlock(&p->lock);
        vg_back_job_t *job = &p->job;
        job->err = back(p, job->r, &job->sink, job->errbuf, sizeof(job->errbuf));
        pthread_mutex_lock(&p->lock);
        p->job_busy = 0;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void threads_start(vg_pipeline_t *p)
{
    int want = p->opts.overlap || p->opts.threads > 1;
    if (p->opts.overlap) /* the processing thread helps the back thread's splits */
        p->back_started = pthread_create(&p->back_thread, NULL, back_main, p) == 0;
    else if (p->opts.threads > 1)
        p->worker_started = pthread_create(&p->worker, NULL, worker_main, p) == 0;
    if (want && !p->back_started && !p->worker_started)
        vg_warn("pipeline", "cannot start a thread: running on one thread");
}

/* Lets a back half in flight finish, then stops the threads. */
static void threads_stop(vg_pipeline_t *p)
{
    pthread_mutex_lock(&p->lock);
    while (p->job_busy)
        pthread_cond_wait(&p->cond, &p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (p->worker_started)
        pthread_join(p->worker, NULL);
    if (p->back_started)
        pthread_join(p->back_thread, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
}

vg_pipeline_t *vg_pipeline_new(const vg_pipeline_opts_t *opts, char *errbuf, size_t errlen)
{
    vg_pipeline_t *p = vg_xcalloc(1, sizeof(*p));
    p->opts = *opts;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->catalog_path = dup_or_null(opts->catalog_path);
    p->rules_path = dup_or_null(opts->rules_path);
    p->lists_dir = dup_or_null(opts->lists_dir);
    p->model_dir = dup_or_null(opts->model_dir);
    p->shadow_dir = dup_or_null(opts->shadow_model_dir);
    p->state_dir = dup_or_null(opts->state_dir);
    vg_schema_init(&p->schema);
    p->batch = vg_batch_new();
    for (int k = 0; k < 2; k++) {
        vg_buf_init(&p->rows[k].enc[0]);
        vg_buf_init(&p->rows[k].enc[1]);
    }

    if (!p->catalog_path || !p->state_dir) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG,
                "a feature catalogue and a state directory are "
                "required");
        goto fail;
    }
    p->catalog = vg_catalog_load(p->catalog_path, &p->schema, errbuf, errlen);
    if (!p->catalog)
        goto fail;
    p->nfeat = vg_catalog_size(p->catalog);
    p->feat_names = vg_xcalloc(p->nfeat + 1, sizeof(char *));
    p->feat_keys = vg_xcalloc(p->nfeat + 1, sizeof(char *));
    p->feat_key_len = vg_xcalloc(p->nfeat + 1, sizeof(size_t));
    for (size_t i = 0; i < p->nfeat; i++) {
        p->feat_names[i] = vg_catalog_feature_name(p->catalog, i);
        vg_buf_t key;
        vg_buf_init(&key);
        if (i)
            vg_buf_putc(&key, ',');
        vg_buf_json_str(&key, p->feat_names[i], strlen(p->feat_names[i]));
        vg_buf_putc(&key, ':');
        vg_buf_reserve(&key, VG_BUF_PAD); /* readable VG_BUF_PAD bytes: vg_buf_append_padded */
        memset(key.data + key.len, 0, key.cap - key.len);
        p->feat_keys[i] = key.data;
        p->feat_key_len[i] = key.len;
    }

    if (p->model_dir) {
        char manifest[4200];
        snprintf(manifest, sizeof(manifest), "%s/manifest.json", p->model_dir);
        watch_init(&p->model_watch, manifest);
        if (p->model_watch.mtime_ns < 0) {
            /* No bundle yet is a normal state: rules alone until one appears. */
            vg_warn("pipeline",
                    "no model bundle at %s yet: deciding on rules alone until one "
                    "appears there",
                    p->model_dir);
        } else if (!(p->model = load_model(p, p->model_dir, errbuf, errlen))) {
            goto fail;
        }
    }
    if (p->shadow_dir) {
        char manifest[4200];
        snprintf(manifest, sizeof(manifest), "%s/manifest.json", p->shadow_dir);
        watch_init(&p->shadow_watch, manifest);
        if (!(p->shadow = load_model(p, p->shadow_dir, errbuf, errlen)))
            goto fail;
    }
    if (p->rules_path) {
        watch_init(&p->rules_watch, p->rules_path);
        if (!(p->rules = load_rules(p, errbuf, errlen)))
            goto fail;
    }
    reset_rule_hits(p);

    const vg_catalog_t *scat = p->catalog;
    if (opts->stage_types) {
        p->state_catalog = vg_catalog_load_types(p->catalog_path, &p->schema, opts->stage_types,
                                                 opts->nstage_types, errbuf, errlen);
        if (!p->state_catalog)
            goto fail;
        scat = p->state_catalog;
        size_t ns = vg_catalog_size(scat);
        p->state_map = vg_xcalloc(ns, sizeof(size_t));
        p->state_row = vg_xcalloc(ns, sizeof(double));
        for (size_t k = 0; k < ns; k++)
            p->state_map[k] =
                (size_t)vg_catalog_feature_index(p->catalog, vg_catalog_feature_name(scat, k));
    }
    vg_state_opts_t sopts = {0};
    sopts.cache_bytes = opts->cache_bytes;
    sopts.nosync = !p->opts.state_sync;
    sopts.checkpoint_ms = p->opts.state_checkpoint_ms;
    sopts.scratch = p->opts.state_scratch;
    sopts.async_writes = p->opts.state_async_writes;
    p->state = vg_state_open(p->state_dir, scat, &sopts, errbuf, errlen);
    if (!p->state)
        goto fail;
    threads_start(p);
    return p;
fail:
    vg_pipeline_free(p);
    return NULL;
}

void vg_pipeline_free(vg_pipeline_t *p)
{
    if (!p)
        return;
    threads_stop(p);
    vg_state_close(p->state);
    vg_rules_free(p->rules);
    vg_model_free(p->model);
    vg_model_free(p->shadow);
    for (size_t i = 0; p->feat_keys && i < p->nfeat; i++)
        free(p->feat_keys[i]);
    free(p->feat_keys);
    free(p->feat_key_len);
    free(p->feat_names);
    vg_catalog_free(p->catalog);
    vg_catalog_free(p->state_catalog);
    free(p->state_map);
    free(p->state_row);
    vg_schema_free(&p->schema);
    vg_batch_free(p->batch);
    for (int k = 0; k < 2; k++) {
        vg_rows_t *r = &p->rows[k];
        vg_buf_free(&r->enc[0]);
        vg_buf_free(&r->enc[1]);
        free(r->row_item);
        free(r->sampled);
        free(r->enc_off);
        free(r->enc_len);
        free(r->enc_who);
        free(r->feats);
        free(r->xrows);
        free(r->scores);
        free(r->shadow_scores);
        free(r->results);
    }
    free(p->stats.rule_hits);
    free(p->rules_watch.path);
    free(p->model_watch.path);
    free(p->shadow_watch.path);
    free(p->catalog_path);
    free(p->rules_path);
    free(p->lists_dir);
    free(p->model_dir);
    free(p->shadow_dir);
    free(p->state_dir);
    free(p);
}

static void reserve(const vg_pipeline_t *p, vg_rows_t *r, size_t n)
{
    if (n > r->cap) {
        size_t width = p->nfeat ? p->nfeat : 1;
        r->feats = vg_xrealloc(r->feats, n * width * sizeof(double));
        r->xrows = vg_xrealloc(r->xrows, n * width * sizeof(float));
        r->scores = vg_xrealloc(r->scores, n * sizeof(float));
        r->shadow_scores = vg_xrealloc(r->shadow_scores, n * sizeof(float));
        r->results = vg_xrealloc(r->results, n * sizeof(*r->results));
        r->row_item = vg_xrealloc(r->row_item, n * sizeof(*r->row_item));
        r->sampled = vg_xrealloc(r->sampled, n * sizeof(*r->sampled));
        r->enc_off = vg_xrealloc(r->enc_off, n * sizeof(*r->enc_off));
        r->enc_len = vg_xrealloc(r->enc_len, n * sizeof(*r->enc_len));
        r->enc_who = vg_xrealloc(r->enc_who, n * sizeof(*r->enc_who));
        r->cap = n;
    }
}

/* Deterministic per-transaction draw in [0, 1) for review sampling: a hash of txn_id, so a
 * replay samples the same transactions as the live run did. */
static double sample_draw(const vg_txn_t *txn)
{
    uint64_t h = vg_hash64(txn->str[VG_F_TXN_ID], txn->len[VG_F_TXN_ID], 0x9e3779b97f4a7c15ULL);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (double)(h >> 11) / 9007199254740992.0;
}

/* Appends the decision record for item it to b. Reads the pipeline, never writes it: runs on
 * the worker too. */
static void encode_decision(const vg_pipeline_t *p, const vg_rows_t *rows, vg_buf_t *b,
                            const vg_item_t *it, const vg_rules_result_t *res, int have_score,
                            float score, const char *sampled)
{
    const vg_txn_t *t = &it->txn;
    char ts[32];
    vg_time_format(t->ts_ms, ts);
    vg_buf_puts(b, "{\"txn_id\":");
    vg_buf_json_str(b, t->str[VG_F_TXN_ID], t->len[VG_F_TXN_ID]);
    vg_buf_puts(b, ",\"ts\":\"");
    vg_buf_puts(b, ts);
    vg_buf_puts(b, "\",\"card_id\":");
    vg_buf_json_str(b, t->str[VG_F_CARD_ID], t->len[VG_F_CARD_ID]);
    vg_buf_puts(b, ",\"amount\":");
    vg_buf_json_num(b, t->amount);
    vg_buf_puts(b, ",\"decision\":\"");
    vg_buf_puts(b, vg_action_name(res->action));
    vg_buf_puts(b, "\",\"score\":");
    if (have_score)
        vg_buf_json_num(b, (double)score);
    else
        vg_buf_puts(b, "null");

    vg_buf_puts(b, ",\"rules\":[");
    for (size_t i = 0; i < res->nfired; i++) {
        size_t r = res->fired[i];
        vg_buf_puts(b, i ? ",{\"id\":\"" : "{\"id\":\"");
        vg_buf_puts(b, vg_rules_id(p->rules, r));
        vg_buf_puts(b, "\",\"action\":\"");
        vg_buf_puts(b, vg_action_name(vg_rules_action(p->rules, r)));
        vg_buf_puts(b, vg_rules_shadow(p->rules, r) ? "\",\"shadow\":true}" : "\"}");
    }
    vg_buf_putc(b, ']');

    vg_buf_puts(b, ",\"reasons\":[");
    if (have_score && p->opts.reasons > 0 && res->action != VG_ACTION_ALLOW) {
        vg_reason_t reasons[VG_MAX_REASONS];
        size_t k =
            (size_t)p->opts.reasons < VG_MAX_REASONS ? (size_t)p->opts.reasons : VG_MAX_REASONS;
        size_t nout = 0;
        char errbuf[VG_ERRLEN];
        if (vg_model_explain(p->model, &rows->xrows[it->row * p->nfeat], k, reasons, &nout, errbuf,
                             sizeof(errbuf)) != VG_OK) {
            vg_warn("pipeline", "reason codes for %s: %s", t->str[VG_F_TXN_ID], errbuf);
            nout = 0;
        }
        for (size_t i = 0; i < nout; i++) {
            vg_buf_puts(b, i ? ",{\"feature\":\"" : "{\"feature\":\"");
            vg_buf_puts(b, p->feat_names[reasons[i].feature]);
            vg_buf_puts(b, "\",\"value\":");
            vg_buf_json_num(b, rows->feats[it->row * p->nfeat + reasons[i].feature]);
            vg_buf_puts(b, ",\"contribution\":");
            vg_buf_json_num(b, (double)reasons[i].contribution);
            vg_buf_putc(b, '}');
        }
    }
    vg_buf_putc(b, ']');

    vg_buf_puts(b, ",\"features\":{");
    const double *row = &rows->feats[it->row * p->nfeat];
    for (size_t f = 0; f < p->nfeat; f++) {
        size_t n = p->feat_key_len[f];
        if (n <= VG_BUF_PAD)
            vg_buf_append_padded(b, p->feat_keys[f], n);
        else
            vg_buf_append(b, p->feat_keys[f], n);
        vg_buf_json_num(b, row[f]);
    }
    vg_buf_puts(b, "},\"catalog\":\"");
    vg_buf_puts(b, vg_catalog_version(p->catalog));
    vg_buf_puts(b, "\",\"model\":");
    if (p->model) {
        vg_buf_putc(b, '"');
        vg_buf_puts(b, vg_model_version(p->model));
        vg_buf_putc(b, '"');
    } else {
        vg_buf_puts(b, "null");
    }
    vg_buf_puts(b, ",\"rules_version\":");
    if (p->rules) {
        vg_buf_putc(b, '"');
        vg_buf_puts(b, vg_rules_version(p->rules));
        vg_buf_putc(b, '"');
    } else {
        vg_buf_puts(b, "null");
    }
    if (p->shadow) {
        vg_buf_puts(b, ",\"shadow_score\":");
        vg_buf_json_num(b, (double)rows->shadow_scores[it->row]);
        vg_buf_puts(b, ",\"shadow_model\":\"");
        vg_buf_puts(b, vg_model_version(p->shadow));
        vg_buf_putc(b, '"');
    }
    if (sampled) {
        vg_buf_puts(b, ",\"review_reason\":\"");
        vg_buf_puts(b, sampled);
        vg_buf_putc(b, '"');
    }
    /* The transaction as received (already validated JSON): analysts and training need it. */
    vg_buf_puts(b, ",\"txn\":");
    vg_buf_append(b, t->raw, t->raw_len);
    vg_buf_putc(b, '}');
}

vg_batch_t *vg_batch_new(void)
{
    vg_batch_t *b = vg_xcalloc(1, sizeof(*b));
    vg_arena_init(&b->arena, 1 << 20);
    vg_arena_init(&b->arena2, 1 << 20);
    return b;
}

void vg_batch_free(vg_batch_t *b)
{
    if (!b)
        return;
    vg_arena_free(&b->arena);
    vg_arena_free(&b->arena2);
    free(b->items);
    free(b);
}

static void batch_prepare(vg_batch_t *b, const vg_input_t *in, size_t n)
{
    vg_arena_reset(&b->arena);
    vg_arena_reset(&b->arena2);
    if (n > b->cap) {
        b->items = vg_xrealloc(b->items, n * sizeof(*b->items));
        b->cap = n;
    }
    b->n = n;
    b->in = in;
}

static void decode_range(const vg_pipeline_t *p, vg_batch_t *b, size_t lo, size_t hi,
                         vg_arena_t *arena)
{
    const vg_input_t *in = b->in;
    for (size_t i = lo; i < hi; i++) {
        vg_item_t *it = &b->items[i];
        char reason[VG_ERRLEN];
        it->in = &in[i];
        it->reason = NULL;
        if (in[i].kind == VG_IN_TXN)
            it->ok = vg_txn_decode(&p->schema, in[i].data, in[i].len, arena, &it->txn, reason,
                                   sizeof(reason)) == VG_OK;
        else
            it->ok = vg_label_decode(in[i].data, in[i].len, arena, &it->label, reason,
                                     sizeof(reason)) == VG_OK;
        if (!it->ok)
            it->reason = vg_arena_strndup(arena, reason, strlen(reason));
    }
}

void vg_pipeline_decode(const vg_pipeline_t *p, vg_batch_t *b, const vg_input_t *in, size_t n)
{
    batch_prepare(b, in, n);
    decode_range(p, b, 0, n, &b->arena);
}

static void decode_split(vg_pipeline_t *p, void *ctx, size_t lo, size_t hi, int who)
{
    vg_batch_t *b = ctx;
    decode_range(p, b, lo, hi, who ? &b->arena2 : &b->arena);
}

vg_err_t vg_pipeline_process(vg_pipeline_t *p, const vg_input_t *in, size_t n,
                             const vg_sink_t *sink, char *errbuf, size_t errlen)
{
    batch_prepare(p->batch, in, n);
    split(p, decode_split, p->batch, n);
    return vg_pipeline_process_decoded(p, p->batch, sink, errbuf, errlen);
}

/* Rows [lo, hi): rules before the model, the model (and the shadow model), rules after it.
 * Rows are independent, and XGBoost's in-place prediction is thread-safe for tree models
 * (its result buffer is per thread), so the chunks give what one pass would. */
typedef struct rate_ctx {
    vg_rows_t *r;
    vg_err_t err[2];
    int shadow_err[2];
    char errbuf[2][VG_ERRLEN];
} rate_ctx_t;

static void rate_split(vg_pipeline_t *p, void *ctx, size_t lo, size_t hi, int who)
{
    rate_ctx_t *rc = ctx;
    vg_rows_t *r = rc->r;
    for (size_t k = lo; k < hi; k++) {
        vg_rules_result_t *res = &r->results[k];
        if (p->rules)
            vg_rules_eval(p->rules, VG_RULES_PRE, &r->batch->items[r->row_item[k]].txn,
                          &r->feats[k * p->nfeat], NAN, res);
        else
            memset(res, 0, sizeof(*res));
    }
    if (!p->model || lo == hi)
        return;
    const float *x = &r->xrows[lo * p->nfeat];
    char eb[VG_ERRLEN];
    vg_err_t err = vg_model_score(p->model, x, hi - lo, &r->scores[lo], eb, sizeof(eb));
    if (err) {
        if (!rc->err[who]) { /* the first failure of this thread's chunks */
            rc->err[who] = err;
            memcpy(rc->errbuf[who], eb, sizeof(eb));
        }
        return;
    }
    if (p->shadow &&
        vg_model_score(p->shadow, x, hi - lo, &r->shadow_scores[lo], eb, sizeof(eb)) != VG_OK)
        rc->shadow_err[who] = 1;
    for (size_t k = lo; p->rules && k < hi; k++)
        vg_rules_eval(p->rules, VG_RULES_POST, &r->batch->items[r->row_item[k]].txn,
                      &r->feats[k * p->nfeat], (double)r->scores[k], &r->results[k]);
}

/* Appends the decisions of rows [lo, hi) to enc[who]. */
static void encode_split(vg_pipeline_t *p, void *ctx, size_t lo, size_t hi, int who)
{
    vg_rows_t *r = ctx;
    vg_buf_t *b = &r->enc[who];
    for (size_t k = lo; k < hi; k++) {
        const vg_item_t *it = &r->batch->items[r->row_item[k]];
        size_t off = b->len;
        encode_decision(p, r, b, it, &r->results[k], p->model != NULL,
                        p->model ? r->scores[k] : NAN, r->sampled[k]);
        r->enc_off[k] = off;
        r->enc_len[k] = (uint32_t)(b->len - off);
        r->enc_who[k] = (uint8_t)who;
    }
}

/* opts.forward: dead letters and transactions with their rows, in input order. */
static vg_err_t forward(vg_pipeline_t *p, const vg_rows_t *r, const vg_sink_t *sink, char *errbuf,
                        size_t errlen)
{
    vg_err_t err = VG_OK;
    const vg_batch_t *batch = r->batch;
    for (size_t i = 0; i < batch->n && !err; i++) {
        const vg_item_t *it = &batch->items[i];
        const vg_input_t *in = &batch->in[i];
        vg_output_t out = {.input = in, .value = in->data, .len = in->len};
        if (!in->emit || (it->ok && in->kind != VG_IN_TXN))
            continue;
        if (!it->ok) {
            p->stats.dead_letters++;
            out.kind = VG_OUT_DLQ;
            out.reason = it->reason;
        } else {
            p->stats.transactions++;
            out.kind = VG_OUT_FORWARD;
            out.txn = &it->txn;
            out.feats = &r->feats[it->row * p->nfeat];
        }
        err = sink->emit(sink->opaque, &out);
    }
    if (err)
        vg_errf(errbuf, errlen, err, "emitting outputs failed");
    return err;
}

/* The front half of a batch, steps 1-2: state in input order, into rows r. The hints to the
 * state store go a few transactions ahead, so that their cache misses overlap this one's
 * work (vg_state_prefetch). */
static vg_err_t front(vg_pipeline_t *p, vg_rows_t *r, char *errbuf, size_t errlen)
{
    const vg_input_t *in = r->batch->in;
    size_t n = r->batch->n;
    vg_item_t *items = r->batch->items;
    vg_err_t err;
    reserve(p, r, n);
    size_t nrows = 0, ahead = 0;
    for (size_t i = 0; i < n; i++) {
        vg_item_t *it = &items[i];
        for (ahead = ahead > i ? ahead : i; ahead < n && ahead <= i + 3; ahead++)
            if (items[ahead].ok && in[ahead].kind == VG_IN_TXN)
                vg_state_prefetch(p->state, &items[ahead].txn);
        if (!it->ok)
            continue;
        if (in[i].kind == VG_IN_LABEL) {
            p->stats.labels++;
            vg_err_t lerr = vg_state_label(p->state, &it->label);
            if (lerr == VG_ERR_NOTFOUND)
                p->stats.labels_unknown++;
            else if (lerr)
                return vg_errf(errbuf, errlen, lerr, "state: applying label for %s failed",
                               it->label.txn_id);
            continue;
        }
        it->row = nrows;
        double *row = &r->feats[nrows * p->nfeat];
        vg_state_set_partition(p->state, in[i].partition);
        if ((err = vg_state_process(p->state, &it->txn, p->state_map ? p->state_row : row)))
            return vg_errf(errbuf, errlen, err, "state: processing %s failed",
                           it->txn.str[VG_F_TXN_ID]);
        if (p->state_map) { /* a stage: upstream's values, then this stage's own */
            for (size_t f = 0; f < p->nfeat; f++)
                row[f] = in[i].feats ? in[i].feats[f] : NAN;
            for (size_t k = 0; k < vg_catalog_size(p->state_catalog); k++)
                row[p->state_map[k]] = p->state_row[k];
        }
        if (!in[i].emit) {
            p->stats.recovered++;
            continue;
        }
        if (!p->opts.forward) { /* the model's input; a forwarding stage has no model */
            float *x = &r->xrows[nrows * p->nfeat];
            for (size_t f = 0; f < p->nfeat; f++)
                x[f] = (float)row[f];
        }
        r->row_item[nrows] = i;
        nrows++;
    }
    r->nrows = nrows;
    return VG_OK;
}

/* The back half, steps 3-4, over rows r as the front half left them. It reads no state, so
 * that with opts.overlap it runs beside the next batch's front half. */
static vg_err_t back(vg_pipeline_t *p, vg_rows_t *r, const vg_sink_t *sink, char *errbuf,
                     size_t errlen)
{
    vg_err_t err = VG_OK;
    const vg_input_t *in = r->batch->in;
    size_t n = r->batch->n, nrows = r->nrows;
    vg_item_t *items = r->batch->items;

    /* 3: rules before the model, the model, rules after it (data-parallel). */
    rate_ctx_t rc = {.r = r};
    split(p, rate_split, &rc, nrows);
    for (int who = 0; who < 2; who++)
        if (rc.err[who])
            return vg_errf(errbuf, errlen, rc.err[who], "%s", rc.errbuf[who]);
    if (p->shadow && (rc.shadow_err[0] || rc.shadow_err[1]))
        for (size_t k = 0; k < nrows; k++) /* a challenger never stops the champion */
            r->shadow_scores[k] = NAN;

    /* 4: count and sample (in input order), encode (data-parallel), emit (in input order). */
    for (size_t k = 0; k < nrows; k++) {
        vg_item_t *it = &items[r->row_item[k]];
        vg_rules_result_t *res = &r->results[k];
        float score = p->model ? r->scores[k] : NAN;
        for (size_t f = 0; f < res->nfired; f++)
            p->stats.rule_hits[res->fired[f]]++;
        p->stats.decisions[res->action]++;
        p->stats.transactions++;
        /* Beyond flagged cases: labels must not come only from what rules and model already
         * suspect (selection bias), so some allowed transactions go to review as well. */
        const char *sampled = NULL;
        if (res->action == VG_ACTION_ALLOW) {
            if (p->model && score >= p->opts.review_band_low && score < p->opts.review_band_high)
                sampled = "near_threshold";
            else if (p->opts.review_sample_rate > 0 &&
                     sample_draw(&it->txn) < p->opts.review_sample_rate)
                sampled = "random_sample";
        }
        r->sampled[k] = sampled;
    }
    vg_buf_reset(&r->enc[0]);
    vg_buf_reset(&r->enc[1]);
    split(p, encode_split, r, nrows);
    for (size_t i = 0; i < n && !err; i++) {
        vg_item_t *it = &items[i];
        vg_output_t out = {0};
        out.input = &in[i];
        if (!it->ok) {
            if (!in[i].emit)
                continue; /* rebuilding state: dead-lettered the first time round */
            p->stats.dead_letters++;
            out.kind = VG_OUT_DLQ;
            out.value = in[i].data;
            out.len = in[i].len;
            out.reason = it->reason;
            err = sink->emit(sink->opaque, &out);
            continue;
        }
        if (in[i].kind != VG_IN_TXN || !in[i].emit)
            continue;
        size_t k = it->row;
        const char *sampled = r->sampled[k];
        out.kind = VG_OUT_DECISION;
        out.key = it->txn.str[VG_F_CARD_ID];
        out.keylen = it->txn.len[VG_F_CARD_ID];
        out.value = r->enc[r->enc_who[k]].data + r->enc_off[k];
        out.len = r->enc_len[k];
        out.action = r->results[k].action;
        if ((err = sink->emit(sink->opaque, &out)))
            break;
        if (out.action == VG_ACTION_REVIEW || sampled) {
            p->stats.reviews++;
            p->stats.review_samples += sampled != NULL;
            out.kind = VG_OUT_REVIEW;
            err = sink->emit(sink->opaque, &out);
        }
    }
    if (err)
        vg_errf(errbuf, errlen, err, "emitting outputs failed");
    return err;
}

vg_err_t vg_pipeline_wait(vg_pipeline_t *p, char *errbuf, size_t errlen)
{
    if (!p->back_started)
        return VG_OK;
    pthread_mutex_lock(&p->lock);
    while (p->job_busy) /* meanwhile, help the back half's splits */
        if (!help(p))
            pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    vg_err_t err = p->job.err;
    p->job.err = VG_OK;
    return err ? vg_errf(errbuf, errlen, err, "%s", p->job.errbuf) : VG_OK;
}

vg_err_t vg_pipeline_process_decoded(vg_pipeline_t *p, vg_batch_t *batch, const vg_sink_t *sink,
                                     char *errbuf, size_t errlen)
{
    vg_rows_t *r = &p->rows[p->cur];
    r->batch = batch;
    vg_err_t err = front(p, r, errbuf, errlen);
    if (err)
        return err;
    if (p->opts.forward)
        return forward(p, r, sink, errbuf, errlen);
    if (!p->back_started) {
        err = back(p, r, sink, errbuf, errlen);
        p->cur ^= 1; /* this batch's decisions stay until the batch after next (pipeline.h) */
        return err;
    }
    /* The previous batch's back half reads the other rows: once it is done, this batch's
     * goes to the back thread, and the next front half fills the other rows. */
    if ((err = vg_pipeline_wait(p, errbuf, errlen)))
        return err;
    pthread_mutex_lock(&p->lock);
    p->job.r = r;
    p->job.sink = *sink;
    p->job_posted = 1;
    p->job_busy = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    p->cur ^= 1;
    return VG_OK;
}

vg_err_t vg_pipeline_commit(vg_pipeline_t *p, const void *offsets, size_t len, char *errbuf,
                            size_t errlen)
{
    return vg_state_commit(p->state, offsets, len, errbuf, errlen);
}

vg_err_t vg_pipeline_commit_held(vg_pipeline_t *p, const void *offsets, size_t len, char *errbuf,
                                 size_t errlen)
{
    return vg_state_commit_held(p->state, offsets, len, errbuf, errlen);
}

void vg_pipeline_release(vg_pipeline_t *p)
{
    vg_state_release(p->state);
}

size_t vg_pipeline_changes(vg_pipeline_t *p, vg_state_change_cb *cb, void *opaque)
{
    return vg_state_changes(p->state, cb, opaque);
}

vg_err_t vg_pipeline_restore(vg_pipeline_t *p, int32_t partition, const char *entity,
                             const char *key, size_t klen, const void *value, size_t vlen,
                             char *errbuf, size_t errlen)
{
    vg_state_set_partition(p->state, partition);
    return vg_state_restore(p->state, entity, key, klen, value, vlen, errbuf, errlen);
}

vg_err_t vg_pipeline_checkpoint(vg_pipeline_t *p, char *errbuf, size_t errlen)
{
    return vg_state_checkpoint(p->state, errbuf, errlen);
}

vg_err_t vg_pipeline_wait_written(vg_pipeline_t *p, char *errbuf, size_t errlen)
{
    return vg_state_wait_written(p->state, errbuf, errlen);
}

vg_err_t vg_pipeline_offsets(vg_pipeline_t *p, void **blob, size_t *len)
{
    return vg_state_offsets(p->state, blob, len);
}

void vg_pipeline_reload(vg_pipeline_t *p, int force)
{
    char errbuf[VG_ERRLEN * 4];
    if (p->back_started) { /* a back half in flight uses the rules and models */
        pthread_mutex_lock(&p->lock);
        while (p->job_busy)
            pthread_cond_wait(&p->cond, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
    if (p->rules_path && (watch_changed(&p->rules_watch) || force)) {
        vg_rules_t *r = load_rules(p, errbuf, sizeof(errbuf));
        if (!r) {
            p->stats.rules_reload_failures++;
            vg_error("pipeline", "rules reload failed, keeping version %s:\n%s",
                     p->rules ? vg_rules_version(p->rules) : "none", errbuf);
        } else if (p->rules && strcmp(vg_rules_version(r), vg_rules_version(p->rules)) == 0) {
            vg_rules_free(r); /* touched, not changed */
        } else {
            vg_info("pipeline", "rules reloaded: version %s -> %s (%zu rules)",
                    p->rules ? vg_rules_version(p->rules) : "none", vg_rules_version(r),
                    vg_rules_count(r));
            vg_rules_free(p->rules);
            p->rules = r;
            p->stats.rules_reloads++;
            reset_rule_hits(p);
        }
    }
    struct {
        const char *dir;
        vg_watch_t *watch;
        vg_model_t **slot;
        const char *what;
    } models[] = {{p->model_dir, &p->model_watch, &p->model, "model"},
                  {p->shadow_dir, &p->shadow_watch, &p->shadow, "shadow model"}};
    for (size_t i = 0; i < VG_ARRAY_LEN(models); i++) {
        if (!models[i].dir || !(watch_changed(models[i].watch) || force))
            continue;
        if (models[i].watch->mtime_ns < 0)
            continue; /* no bundle there (yet, or any more): keep what serves, if anything */
        vg_model_t *m = load_model(p, models[i].dir, errbuf, sizeof(errbuf));
        if (!m) {
            p->stats.model_reload_failures++;
            vg_error("pipeline", "%s reload failed, keeping %s: %s", models[i].what,
                     *models[i].slot ? vg_model_version(*models[i].slot) : "none", errbuf);
        } else if (*models[i].slot &&
                   strcmp(vg_model_version(m), vg_model_version(*models[i].slot)) == 0) {
            vg_model_free(m);
        } else {
            vg_info("pipeline", "%s reloaded: %s -> %s", models[i].what,
                    *models[i].slot ? vg_model_version(*models[i].slot) : "none",
                    vg_model_version(m));
            vg_model_free(*models[i].slot);
            *models[i].slot = m;
            p->stats.model_reloads++;
        }
    }
}

const vg_pipeline_stats_t *vg_pipeline_stats(const vg_pipeline_t *p)
{
    return &p->stats;
}

size_t vg_pipeline_feature_count(const vg_pipeline_t *p)
{
    return p->nfeat;
}

int vg_pipeline_field(const vg_pipeline_t *p, const char *name)
{
    return vg_schema_field(&p->schema, name);
}

size_t vg_pipeline_rule_count(const vg_pipeline_t *p)
{
    return p->rules ? vg_rules_count(p->rules) : 0;
}

const char *vg_pipeline_rule_id(const vg_pipeline_t *p, size_t i)
{
    return vg_rules_id(p->rules, i);
}

const char *vg_pipeline_catalog_version(const vg_pipeline_t *p)
{
    return vg_catalog_version(p->catalog);
}

const char *vg_pipeline_rules_version(const vg_pipeline_t *p)
{
    return p->rules ? vg_rules_version(p->rules) : NULL;
}

const char *vg_pipeline_model_version(const vg_pipeline_t *p)
{
    return p->model ? vg_model_version(p->model) : NULL;
}

void vg_pipeline_state_stats(vg_pipeline_t *p, vg_state_stats_t *stats)
{
    vg_state_stats(p->state, stats);
}

size_t vg_pipeline_partition_sizes(vg_pipeline_t *p, uint64_t *bytes, uint64_t *entities,
                                   size_t max)
{
    return vg_state_partition_sizes(p->state, bytes, entities, max);
}
