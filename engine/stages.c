/*
 * stages.c - the stages of `vigil run`'s repartition topology (see run.h and the comment on
 * stages in it): planning them from the catalogue, the forward and watermark records between
 * them, labels down the chain, and releasing what the aligners (align.h) let go of, in one
 * time order per stage.
 */
#include "engine/run.h"

#include "features/features.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

vg_err_t vg_stages_forward(vg_stage_t *st, const vg_output_t *out, char *errbuf, size_t errlen)
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
    vg_tp_t *in = vg_run_tp(r, st->k == 0 ? TP_TXNS : TP_REPART(st->k), out->input->partition);
    if (st->k == 0 && t->ts_ms > in->maxts)
        in->maxts = t->ts_ms;
    if (st->k == 0 && t->ts_ms > r->max_ts)
        r->max_ts = t->ts_ms;
    vg_kheader_t h = {"vigil.batch", r->batch_id, strlen(r->batch_id)};
    return vg_producer_send_h(r->producer, st->next_topic, t->str[f], t->len[f], b->data, b->len,
                              &h, 1, errbuf, errlen);
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
int vg_stages_is_watermarks(const vg_msg_t *m)
{
    uint32_t count;
    if (m->len < 8 || memcmp(m->value, "VGW1", 4) != 0)
        return 0;
    memcpy(&count, m->value + 4, 4);
    return m->len == 8 + 12 * (size_t)count;
}

/* A message of stage st's topic: to its partition's aligner. */
void vg_stages_read(vg_run_t *r, vg_stage_t *st, vg_tp_t *tp, const vg_msg_t *m)
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
    } else if (vg_stages_is_watermarks(m)) {
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
int vg_stages_idle_due(const vg_run_t *r, int64_t now_ms)
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
vg_err_t vg_stages_forward_labels(vg_run_t *r, const vg_stage_t *st, const vg_input_t *in, size_t n,
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
void vg_stages_release(vg_run_t *r)
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
        /* Each partition's release numbers are the next stage's sequence numbers: they must
         * rise in the order the records are sent, which the sort changed if a late arrival
         * (numbered when it came) moved before earlier releases. A partition's numbers in a
         * batch are consecutive: hand them out again, from its first, in sorted order. */
        size_t nparts = 0;
        for (size_t i = 0; i < st->n; i++)
            if ((size_t)st->in[i].partition + 1 > nparts)
                nparts = (size_t)st->in[i].partition + 1;
        uint64_t *next = vg_xmalloc(nparts * sizeof(*next));
        for (size_t q = 0; q < nparts; q++)
            next[q] = UINT64_MAX;
        for (size_t i = 0; i < st->n; i++)
            if (st->seq[i] < next[st->in[i].partition])
                next[st->in[i].partition] = st->seq[i];
        vg_input_t *in = vg_xmalloc(st->n * sizeof(*in));
        vg_held_t **held = vg_xmalloc(st->n * sizeof(*held));
        for (size_t i = 0; i < st->n; i++) {
            in[i] = st->in[order[i]];
            held[i] = st->held[order[i]];
            st->seq[i] = next[in[i].partition]++;
        }
        memcpy(st->in, in, st->n * sizeof(*in));
        memcpy(st->held, held, st->n * sizeof(*held));
        free(next);
        free(order);
        free(in);
        free(held);
    }
}

/* Sends the watermark of each input partition of each forwarding stage that moved: a stage's
 * input partition promises nothing below it any more (stage 0: its greatest ts, the
 * transactions topic being in time order per partition; stage k: its aligner's front). In a
 * batch that consumed nothing (idle), a transactions partition read to its end and idle for
 * watermark.idle promises nothing below the wall clock. */
vg_err_t vg_stages_send_watermarks(vg_run_t *r, int64_t now_ms, int idle, char *errbuf,
                                   size_t errlen)
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
void vg_stages_snapshot(vg_run_t *r)
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
vg_err_t vg_stages_plan(vg_run_t *r, const vg_pipeline_opts_t *base, char *errbuf, size_t errlen)
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
            vg_run_offsets_decode(r, blob, bloblen);
            free(blob);
        }
    }
    return VG_OK;
}

void vg_stages_free(vg_run_t *r)
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
