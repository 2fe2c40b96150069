/*
 * kafka.c - the only file that includes librdkafka. Mock cluster, producer, consumer and
 * the transactional loop the engine runs on.
 */
#include "engine/kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>
#include <string.h>

static vg_err_t conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errbuf,
                         size_t errlen)
{
    char rderr[256];
    if (rd_kafka_conf_set(conf, key, value, rderr, sizeof(rderr)) != RD_KAFKA_CONF_OK)
        return vg_errf(errbuf, errlen, VG_ERR_CONFIG, "kafka property %s=%s: %s", key, value,
                       rderr);
    return VG_OK;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    vg_log(level <= 3   ? VG_LOG_ERROR
           : level <= 5 ? VG_LOG_WARN
                        : VG_LOG_DEBUG,
           "kafka", "%s: %s", fac, buf);
}

/* ---- mock cluster ---- */

struct vg_mock {
    rd_kafka_t *rk; /* the mock cluster needs a client instance to live in */
    rd_kafka_mock_cluster_t *mcluster;
};

vg_mock_t *vg_mock_new(int brokers, char *errbuf, size_t errlen)
{
    char rderr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    /* This client only hosts the cluster and never connects: keep its config warnings out. */
    rd_kafka_conf_set(conf, "log_level", "3", rderr, sizeof(rderr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
    if (!rk) {
        vg_errf(errbuf, errlen, VG_ERR_KAFKA, "cannot create client: %s", rderr);
        return NULL;
    }
    rd_kafka_mock_cluster_t *mcluster = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mcluster) {
        rd_kafka_destroy(rk);
        vg_errf(errbuf, errlen, VG_ERR_KAFKA, "cannot start mock cluster of %d brokers", brokers);
        return NULL;
    }
    vg_mock_t *mock = vg_xcalloc(1, sizeof(*mock));
    mock->rk = rk;
    mock->mcluster = mcluster;
    return mock;
}

const char *vg_mock_bootstraps(const vg_mock_t *mock)
{
    return rd_kafka_mock_cluster_bootstraps(mock->mcluster);
}

vg_err_t vg_mock_create_topic(vg_mock_t *mock, const char *topic, int partitions, char *errbuf,
                              size_t errlen)
{
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mock->mcluster, topic, partitions, 1);
    if (err)
        return vg_errf(errbuf, errlen, VG_ERR_KAFKA, "create topic %s: %s", topic,
                       rd_kafka_err2str(err));
    return VG_OK;
}

void vg_mock_free(vg_mock_t *mock)
{
    if (!mock)
        return;
    rd_kafka_mock_cluster_destroy(mock->mcluster);
    rd_kafka_destroy(mock->rk);
    free(mock);
}

/* ---- producer ---- */

struct vg_producer {
    rd_kafka_t *rk;
    uint64_t delivered, failed; /* since the start, for counts */
    uint64_t unreported;        /* failures not yet returned by send/flush/commit */
    char last_error[256];
    /* vg_producer_track(): per tracked topic, the greatest delivered offset per partition */
    struct {
        char *topic;
        int64_t *offsets;
        size_t n;
    } track[8];
    size_t ntrack;
    /* Topic handles by name: a send by name makes librdkafka look the topic up in its list
     * (a lock and string compares) for every message. */
    rd_kafka_topic_t **topics;
    size_t ntopics;
    unsigned sends; /* since the last poll */
};

/* Serves delivery reports every 64 sends, not every one: a poll takes the queue's lock, and
 * a batch sends tens of thousands (a full queue, a flush and a commit poll anyway). */
static void poll_some(vg_producer_t *p)
{
    if (++p->sends >= 64) {
        p->sends = 0;
        rd_kafka_poll(p->rk, 0);
    }
}

/* The handle of topic, created on first use (a handful per process); NULL on error. */
static rd_kafka_topic_t *topic_handle(vg_producer_t *p, const char *topic)
{
    for (size_t i = 0; i < p->ntopics; i++)
        if (strcmp(rd_kafka_topic_name(p->topics[i]), topic) == 0)
            return p->topics[i];
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    if (rkt) {
        p->topics = vg_xrealloc(p->topics, (p->ntopics + 1) * sizeof(*p->topics));
        p->topics[p->ntopics++] = rkt;
    }
    return rkt;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    vg_producer_t *p = opaque;
    if (m->err) { /* (delivered and failed are read by the metrics, on another thread) */
        __atomic_add_fetch(&p->failed, 1, __ATOMIC_RELAXED);
        p->unreported++;
        snprintf(p->last_error, sizeof(p->last_error), "%s", rd_kafka_err2str(m->err));
    } else {
        __atomic_add_fetch(&p->delivered, 1, __ATOMIC_RELAXED);
        for (size_t t = 0; t < p->ntrack && m->rkt && m->partition >= 0; t++) {
            if (strcmp(rd_kafka_topic_name(m->rkt), p->track[t].topic) != 0)
                continue;
            size_t i = (size_t)m->partition;
            if (i >= p->track[t].n) {
                size_t n = (i + 1) * 2;
                p->track[t].offsets = vg_xrealloc(p->track[t].offsets, n * sizeof(int64_t));
                for (size_t k = p->track[t].n; k < n; k++)
                    p->track[t].offsets[k] = -1;
                p->track[t].n = n;
            }
            if (m->offset > p->track[t].offsets[i])
                p->track[t].offsets[i] = m->offset;
            break;
        }
    }
}

/* Returns (and forgets) the delivery failures since the last report. */
static vg_err_t report_failures(vg_producer_t *p, char *errbuf, size_t errlen)
{
    vg_err_t err = vg_errf(errbuf, errlen, VG_ERR_KAFKA, "%llu deliveries failed, last: %s",
                           (unsigned long long)p->unreported, p->last_error);
    p->unreported = 0;
    return err;
}

vg_producer_t *vg_producer_new(const char *brokers, const vg_kprop_t *props, size_t nprops,
                               char *errbuf, size_t errlen)
{
    vg_producer_t *p = vg_xcalloc(1, sizeof(*p));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char rderr[256];
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    if (conf_set(conf, "bootstrap.servers", brokers, errbuf, errlen) ||
        conf_set(conf, "enable.idempotence", "true", errbuf, errlen) ||
        conf_set(conf, "linger.ms", "5", errbuf, errlen))
        goto fail;
    for (size_t i = 0; i < nprops; i++)
        if (conf_set(conf, props[i].key, props[i].value, errbuf, errlen))
            goto fail;
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
    if (!p->rk) {
        vg_errf(errbuf, errlen, VG_ERR_KAFKA, "cannot create producer: %s", rderr);
        goto fail;
    }
    return p;
fail:
    if (!p->rk)
        rd_kafka_conf_destroy(conf);
    free(p);
    return NULL;
}

vg_err_t vg_producer_send(vg_producer_t *p, const char *topic, const void *key, size_t keylen,
                          const void *value, size_t valuelen, char *errbuf, size_t errlen)
{
    for (;;) {
        rd_kafka_topic_t *rkt = topic_handle(p, topic);
        rd_kafka_resp_err_t err =
            rkt ? rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_KEY(key, keylen),
                                    RD_KAFKA_V_VALUE((void *)value, valuelen),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)
                : rd_kafka_last_error();
        if (!err)
            break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return vg_errf(errbuf, errlen, VG_ERR_KAFKA, "produce to %s: %s", topic,
                           rd_kafka_err2str(err));
        rd_kafka_poll(p->rk, 10);
    }
    poll_some(p);
    if (p->unreported)
        return report_failures(p, errbuf, errlen);
    return VG_OK;
}

vg_err_t vg_producer_flush(vg_producer_t *p, int timeout_ms, char *errbuf, size_t errlen)
{
    rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, timeout_ms);
    if (err)
        return vg_errf(errbuf, errlen, VG_ERR_KAFKA, "flush: %s (%d messages still queued)",
                       rd_kafka_err2str(err), rd_kafka_outq_len(p->rk));
    if (p->unreported)
        return report_failures(p, errbuf, errlen);
    return VG_OK;
}

void vg_producer_warm(vg_producer_t *p, const char *const *topics, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topics[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err =
            rkt ? rd_kafka_metadata(p->rk, 0, rkt, &md, 10000) : rd_kafka_last_error();
        if (err)
            vg_warn("kafka", "metadata for topic %s: %s", topics[i], rd_kafka_err2str(err));
        if (md)
            rd_kafka_metadata_destroy(md);
        if (rkt)
            rd_kafka_topic_destroy(rkt);
    }
}

void vg_producer_counts(const vg_producer_t *p, uint64_t *delivered, uint64_t *failed)
{
    *delivered = __atomic_load_n(&p->delivered, __ATOMIC_RELAXED);
    *failed = __atomic_load_n(&p->failed, __ATOMIC_RELAXED);
}

void vg_producer_free(vg_producer_t *p)
{
    if (!p)
        return;
    rd_kafka_flush(p->rk, 10000);
    for (size_t i = 0; i < p->ntopics; i++)
        rd_kafka_topic_destroy(p->topics[i]);
    free(p->topics);
    rd_kafka_destroy(p->rk);
    for (size_t t = 0; t < p->ntrack; t++) {
        free(p->track[t].topic);
        free(p->track[t].offsets);
    }
    free(p);
}

vg_err_t vg_producer_send_h(vg_producer_t *p, const char *topic, const void *key, size_t keylen,
                            const void *value, size_t valuelen, const vg_kheader_t *headers,
                            size_t nheaders, char *errbuf, size_t errlen)
{
    if (nheaders == 0)
        return vg_producer_send(p, topic, key, keylen, value, valuelen, errbuf, errlen);
    return vg_producer_send_to(p, topic, VG_PARTITION_ANY, key, keylen, value, valuelen, headers,
                               nheaders, errbuf, errlen);
}

/* copy 0: value must stay as it is until its delivery report (RD_KAFKA_MSG_F_COPY unset). */
static vg_err_t send_to(vg_producer_t *p, const char *topic, int32_t partition, const void *key,
                        size_t keylen, const void *value, size_t valuelen,
                        const vg_kheader_t *headers, size_t nheaders, int copy, char *errbuf,
                        size_t errlen)
{
    for (;;) {
        /* producev takes ownership of the headers only on success. */
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(nheaders);
        for (size_t i = 0; i < nheaders; i++)
            rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
                                (ssize_t)headers[i].len);
        rd_kafka_topic_t *rkt = topic_handle(p, topic);
        rd_kafka_resp_err_t err =
            !rkt ? rd_kafka_last_error()
                 : rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(rkt),
                                     RD_KAFKA_V_PARTITION(partition == VG_PARTITION_ANY
                                                              ? RD_KAFKA_PARTITION_UA
                                                              : partition),
                                     RD_KAFKA_V_KEY(key, keylen),
                                     RD_KAFKA_V_VALUE((void *)value, value ? valuelen : 0),
                                     RD_KAFKA_V_MSGFLAGS(copy ? RD_KAFKA_MSG_F_COPY : 0),
                                     RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (!err)
            break;
        rd_kafka_headers_destroy(hdrs);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return vg_errf(errbuf, errlen, VG_ERR_KAFKA, "produce to %s: %s", topic,
                           rd_kafka_err2str(err));
        rd_kafka_poll(p->rk, 10);
    }
    poll_some(p);
    return VG_OK;
}

vg_err_t vg_producer_send_to(vg_producer_t *p, const char *topic, int32_t partition,
                             const void *key, size_t keylen, const void *value, size_t valuelen,
                             const vg_kheader_t *headers, size_t nheaders, char *errbuf,
                             size_t errlen)
{
    return send_to(p, topic, partition, key, keylen, value, valuelen, headers, nheaders, 1, errbuf,
                   errlen);
}

vg_err_t vg_producer_send_ref(vg_producer_t *p, const char *topic, const void *key, size_t keylen,
                              const void *value, size_t valuelen, const vg_kheader_t *headers,
                              size_t nheaders, char *errbuf, size_t errlen)
{
    return send_to(p, topic, VG_PARTITION_ANY, key, keylen, value, valuelen, headers, nheaders, 0,
                   errbuf, errlen);
}

void vg_producer_track(vg_producer_t *p, const char *topic)
{
    if (p->ntrack < VG_ARRAY_LEN(p->track))
        p->track[p->ntrack++].topic = vg_xstrdup(topic);
}

int64_t vg_producer_tracked(const vg_producer_t *p, const char *topic, int32_t partition)
{
    for (size_t t = 0; t < p->ntrack; t++)
        if (strcmp(p->track[t].topic, topic) == 0)
            return partition >= 0 && (size_t)partition < p->track[t].n
                       ? p->track[t].offsets[partition]
                       : -1;
    return -1;
}

/* ---- consumer ---- */

#define VG_MAX_TOPICS 8

struct vg_consumer {
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    const char *const *topics;
    size_t ntopics;
    vg_rebalance_cb_t *rebalance_cb;
    void *opaque;
    rd_kafka_message_t **held; /* messages lent out by the last poll */
    size_t nheld, capheld;
    uint64_t offset_resets;
    int ever_assigned;
};

static int topic_index(const vg_consumer_t *c, const char *topic)
{
    for (size_t i = 0; i < c->ntopics; i++)
        if (strcmp(c->topics[i], topic) == 0)
            return (int)i;
    return -1;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    vg_consumer_t *c = opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    vg_assignment_t *a = vg_xcalloc((size_t)parts->cnt + 1, sizeof(*a));
    for (int i = 0; i < parts->cnt; i++) {
        a[i].topic_idx = topic_index(c, parts->elems[i].topic);
        a[i].partition = parts->elems[i].partition;
        a[i].committed = -1;
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        c->ever_assigned = 1;
        rd_kafka_resp_err_t cerr = rd_kafka_committed(rk, parts, 30000);
        if (cerr)
            vg_error("kafka", "cannot read committed offsets on assignment: %s",
                     rd_kafka_err2str(cerr));
        for (int i = 0; i < parts->cnt; i++) {
            a[i].committed = parts->elems[i].offset >= 0 ? parts->elems[i].offset : -1;
            a[i].start = a[i].committed;
        }
        if (c->rebalance_cb)
            c->rebalance_cb(c->opaque, 0, a, (size_t)parts->cnt);
        for (int i = 0; i < parts->cnt; i++)
            parts->elems[i].offset = a[i].start >= 0                     ? a[i].start
                                     : a[i].start == VG_OFFSET_BEGINNING ? RD_KAFKA_OFFSET_BEGINNING
                                                                         : RD_KAFKA_OFFSET_INVALID;
        vg_info("kafka", "assigned %d partition(s) (%s)", parts->cnt,
                cooperative ? "cooperative" : "eager");
        rd_kafka_error_t *error = NULL;
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        if (error) {
            vg_error("kafka", "assign: %s", rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        }
    } else {
        if (c->rebalance_cb)
            c->rebalance_cb(c->opaque, 1, a, (size_t)parts->cnt);
        vg_info("kafka", "revoked %d partition(s)", parts->cnt);
        if (cooperative) {
            rd_kafka_error_t *error = rd_kafka_incremental_unassign(rk, parts);
            if (error)
                rd_kafka_error_destroy(error);
        } else {
            rd_kafka_assign(rk, NULL);
        }
    }
    free(a);
}

vg_consumer_t *vg_consumer_new(const char *brokers, const char *group, const char *const *topics,
                               size_t ntopics, const vg_kprop_t *props, size_t nprops,
                               vg_rebalance_cb_t *cb, void *opaque, char *errbuf, size_t errlen)
{
    vg_consumer_t *c = vg_xcalloc(1, sizeof(*c));
    c->topics = topics;
    c->ntopics = ntopics;
    c->rebalance_cb = cb;
    c->opaque = opaque;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char rderr[256];
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    if (conf_set(conf, "bootstrap.servers", brokers, errbuf, errlen) ||
        conf_set(conf, "group.id", group, errbuf, errlen) ||
        conf_set(conf, "enable.auto.commit", "false", errbuf, errlen) ||
        conf_set(conf, "enable.auto.offset.store", "false", errbuf, errlen) ||
        conf_set(conf, "isolation.level", "read_committed", errbuf, errlen) ||
        conf_set(conf, "auto.offset.reset", "earliest", errbuf, errlen) ||
        conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", errbuf, errlen) ||
        conf_set(conf, "fetch.wait.max.ms", "10", errbuf, errlen))
        goto fail;
    for (size_t i = 0; i < nprops; i++)
        if (conf_set(conf, props[i].key, props[i].value, errbuf, errlen))
            goto fail;
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rderr, sizeof(rderr));
    if (!c->rk) {
        vg_errf(errbuf, errlen, VG_ERR_KAFKA, "cannot create consumer: %s", rderr);
        goto fail;
    }
    conf = NULL;
    rd_kafka_poll_set_consumer(c->rk);
    c->queue = rd_kafka_queue_get_consumer(c->rk);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new((int)ntopics);
    for (size_t i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (err) {
        vg_errf(errbuf, errlen, VG_ERR_KAFKA, "subscribe: %s", rd_kafka_err2str(err));
        goto fail;
    }
    return c;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    vg_consumer_free(c);
    return NULL;
}

static void release_held(vg_consumer_t *c)
{
    for (size_t i = 0; i < c->nheld; i++)
        rd_kafka_message_destroy(c->held[i]);
    c->nheld = 0;
}

/* Takes up to max - got more messages into c->held[got..], waiting up to timeout_ms for them. */
static size_t take(vg_consumer_t *c, size_t got, size_t max, int timeout_ms)
{
    ssize_t k = rd_kafka_consume_batch_queue(c->queue, timeout_ms, c->held + got, max - got);
    return k > 0 ? (size_t)k : 0;
}

size_t vg_consumer_poll(vg_consumer_t *c, vg_msg_t *msgs, size_t max, int wait_ms, int max_ms,
                        int linger_ms)
{
    release_held(c);
    if (c->capheld < max) {
        c->held = vg_xrealloc(c->held, max * sizeof(*c->held));
        c->capheld = max;
    }
    size_t got = take(c, 0, max > 0 ? 1 : 0, wait_ms);
    if (got > 0) {
        int64_t start = vg_mono_ns();
        for (;;) {
            size_t k = take(c, got, max, 0); /* what is already queued */
            got += k;
            int64_t left = max_ms - (vg_mono_ns() - start) / 1000000;
            if (got == max || left <= 0)
                break;
            if (k == 0) { /* the queue ran dry: linger for one more, or close the batch */
                int t = linger_ms < left ? linger_ms : (int)left;
                if (t <= 0 || (k = take(c, got, got + 1, t)) == 0)
                    break;
                got += k;
            }
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < got; i++) {
        rd_kafka_message_t *m = c->held[i];
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
                m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
                c->offset_resets++;
                vg_error("kafka",
                         "DATA LOSS: offset out of range on %s [%d] at offset %lld: messages "
                         "were deleted before they were read (%s)",
                         m->rkt ? rd_kafka_topic_name(m->rkt) : "?", (int)m->partition,
                         (long long)m->offset, rd_kafka_message_errstr(m));
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                vg_warn("kafka", "consumer: %s", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        c->held[n] = m;
        vg_msg_t *out = &msgs[n++];
        out->topic = rd_kafka_topic_name(m->rkt);
        out->topic_idx = topic_index(c, out->topic);
        out->partition = m->partition;
        out->offset = m->offset;
        out->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
        out->key = m->key;
        out->keylen = m->key_len;
        out->value = m->payload;
        out->len = m->len;
    }
    c->nheld = n;
    return n;
}

static rd_kafka_topic_partition_list_t *offsets_list(const vg_consumer_t *c,
                                                     const vg_assignment_t *o, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, c->topics[o[i].topic_idx], o[i].partition)->offset =
            o[i].start;
    return l;
}

vg_err_t vg_consumer_commit(vg_consumer_t *c, const vg_assignment_t *offsets, size_t n,
                            char *errbuf, size_t errlen)
{
    if (n == 0)
        return VG_OK;
    rd_kafka_topic_partition_list_t *l = offsets_list(c, offsets, n);
    /* Asynchronous: a lost commit only means re-reading (at least once), never a loss. */
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
    if (err)
        return vg_errf(errbuf, errlen, VG_ERR_KAFKA, "commit offsets: %s", rd_kafka_err2str(err));
    return VG_OK;
}

size_t vg_consumer_lags(vg_consumer_t *c, vg_assignment_t *out, size_t max)
{
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (rd_kafka_assignment(c->rk, &assigned) || !assigned)
        return 0;
    rd_kafka_position(c->rk, assigned);
    size_t n = 0;
    for (int i = 0; i < assigned->cnt && n < max; i++) {
        rd_kafka_topic_partition_t *tp = &assigned->elems[i];
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(c->rk, tp->topic, tp->partition, &lo, &hi))
            continue;
        int64_t pos = tp->offset >= 0 ? tp->offset : lo;
        out[n++] = (vg_assignment_t){topic_index(c, tp->topic), tp->partition, -1,
                                     hi > pos ? hi - pos : 0};
    }
    rd_kafka_topic_partition_list_destroy(assigned);
    return n;
}

int64_t vg_consumer_end_offset(vg_consumer_t *c, int topic_idx, int32_t partition)
{
    int64_t lo, hi;
    const char *topic = c->topics[topic_idx];
    if (rd_kafka_query_watermark_offsets(c->rk, topic, partition, &lo, &hi, 1000) == 0)
        return hi;
    if (rd_kafka_get_watermark_offsets(c->rk, topic, partition, &lo, &hi) == 0 && hi >= 0)
        return hi;
    return -1;
}

int vg_consumer_partition_count(vg_consumer_t *c, const char *topic, char *errbuf, size_t errlen)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err =
        rkt ? rd_kafka_metadata(c->rk, 0, rkt, &md, 10000) : RD_KAFKA_RESP_ERR__INVALID_ARG;
    int n = -1;
    if (!err && md->topic_cnt == 1 && !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    else
        vg_errf(errbuf, errlen, VG_ERR_KAFKA, "topic %s: cannot read its partition count: %s",
                topic,
                rd_kafka_err2str(err             ? err
                                 : md->topic_cnt ? md->topics[0].err
                                                 : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return n;
}

uint64_t vg_consumer_offset_resets(const vg_consumer_t *c)
{
    return c->offset_resets;
}

void vg_consumer_free(vg_consumer_t *c)
{
    if (!c)
        return;
    release_held(c);
    free(c->held);
    if (c->queue)
        rd_kafka_queue_destroy(c->queue);
    if (c->rk) {
        rd_kafka_consumer_close(c->rk);
        /* librdkafka before 2.3 asserts in the cooperative-sticky assignor when a consumer
         * that never had an assignment is destroyed (librdkafka issue #4312): such a handle
         * is left for process exit to reclaim. */
        if (c->ever_assigned)
            rd_kafka_destroy(c->rk);
    }
    free(c);
}

/* ---- transactions ---- */

/* Translates an rd_kafka_error_t (consumed) into errbuf. */
static vg_err_t txn_error(rd_kafka_error_t *error, const char *what, char *errbuf, size_t errlen)
{
    vg_err_t err =
        vg_errf(errbuf, errlen, VG_ERR_KAFKA, "%s: %s%s", what, rd_kafka_error_string(error),
                rd_kafka_error_is_fatal(error) ? " (fatal)" : "");
    rd_kafka_error_destroy(error);
    return err;
}

vg_producer_t *vg_producer_new_txn(const char *brokers, const char *txn_id, const vg_kprop_t *props,
                                   size_t nprops, char *errbuf, size_t errlen)
{
    vg_kprop_t *all = vg_xcalloc(nprops + 2, sizeof(*all));
    all[0] = (vg_kprop_t){"transactional.id", txn_id};
    all[1] = (vg_kprop_t){"transaction.timeout.ms", "60000"};
    for (size_t i = 0; i < nprops; i++)
        all[i + 2] = props[i];
    vg_producer_t *p = vg_producer_new(brokers, all, nprops + 2, errbuf, errlen);
    free(all);
    if (!p)
        return NULL;
    rd_kafka_error_t *error = rd_kafka_init_transactions(p->rk, 60000);
    if (error) {
        txn_error(error, "init transactions", errbuf, errlen);
        vg_producer_free(p);
        return NULL;
    }
    return p;
}

vg_err_t vg_producer_begin(vg_producer_t *p, char *errbuf, size_t errlen)
{
    rd_kafka_error_t *error = rd_kafka_begin_transaction(p->rk);
    return error ? txn_error(error, "begin transaction", errbuf, errlen) : VG_OK;
}

vg_err_t vg_producer_commit(vg_producer_t *p, vg_consumer_t *c, const vg_assignment_t *offsets,
                            size_t n, char *errbuf, size_t errlen)
{
    rd_kafka_error_t *error = NULL;
    if (n > 0) {
        rd_kafka_topic_partition_list_t *l = offsets_list(c, offsets, n);
        rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(c->rk);
        error = rd_kafka_send_offsets_to_transaction(p->rk, l, cgmd, 30000);
        rd_kafka_consumer_group_metadata_destroy(cgmd);
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (!error)
        error = rd_kafka_commit_transaction(p->rk, 60000);
    if (!error && p->unreported) /* a delivery failed inside the transaction: it must not stand */
        return vg_errf(errbuf, errlen, VG_ERR_KAFKA, "delivery failed in transaction: %s",
                       p->last_error);
    if (!error)
        return VG_OK;
    int fatal = rd_kafka_error_is_fatal(error);
    vg_err_t err = txn_error(error, "commit transaction", errbuf, errlen);
    if (!fatal) {
        char abort_err[VG_ERRLEN];
        if (vg_producer_abort(p, abort_err, sizeof(abort_err)))
            vg_error("kafka", "%s", abort_err);
    }
    return err;
}

vg_err_t vg_producer_abort(vg_producer_t *p, char *errbuf, size_t errlen)
{
    rd_kafka_error_t *error = rd_kafka_abort_transaction(p->rk, 60000);
    p->unreported = 0;
    return error ? txn_error(error, "abort transaction", errbuf, errlen) : VG_OK;
}

/* ---- reading partitions to their end (changelog restore) ---- */

vg_err_t vg_topic_read(const char *brokers, const vg_kprop_t *props, size_t nprops,
                       const char *topic, vg_readpos_t *parts, size_t n, int stall_ms,
                       vg_record_cb *cb, void *opaque, char *errbuf, size_t errlen)
{
    if (n == 0)
        return VG_OK;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char rderr[256];
    rd_kafka_conf_set_log_cb(conf, log_cb);
    /* librdkafka wants a group.id even for assign(); this one never joins nor commits. */
    if (conf_set(conf, "bootstrap.servers", brokers, errbuf, errlen) ||
        conf_set(conf, "group.id", "vigil-reader", errbuf, errlen) ||
        conf_set(conf, "fetch.wait.max.ms", "10", errbuf, errlen) ||
        conf_set(conf, "enable.auto.commit", "false", errbuf, errlen) ||
        conf_set(conf, "enable.partition.eof", "true", errbuf, errlen) ||
        conf_set(conf, "isolation.level", "read_committed", errbuf, errlen) ||
        conf_set(conf, "auto.offset.reset", "earliest", errbuf, errlen)) {
        rd_kafka_conf_destroy(conf);
        return VG_ERR_KAFKA;
    }
    for (size_t i = 0; i < nprops; i++)
        if (strcmp(props[i].key, "group.id") != 0 &&
            conf_set(conf, props[i].key, props[i].value, errbuf, errlen)) {
            rd_kafka_conf_destroy(conf);
            return VG_ERR_KAFKA;
        }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rderr, sizeof(rderr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return vg_errf(errbuf, errlen, VG_ERR_KAFKA, "cannot create consumer: %s", rderr);
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        parts[i].end = parts[i].from >= 0 ? parts[i].from : 0;
        parts[i].messages = parts[i].bytes = 0;
        rd_kafka_topic_partition_list_add(l, topic, parts[i].partition)->offset =
            parts[i].from >= 0 ? parts[i].from : RD_KAFKA_OFFSET_BEGINNING;
    }
    vg_err_t err = VG_OK;
    rd_kafka_resp_err_t kerr = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (kerr)
        err = vg_errf(errbuf, errlen, VG_ERR_KAFKA, "assigning %s: %s", topic,
                      rd_kafka_err2str(kerr));
    /* How much there is, for the progress log of a long read. */
    int64_t total = 0, read = 0;
    for (size_t i = 0; i < n && !err; i++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic, parts[i].partition, &lo, &hi, 5000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR)
            total += hi - (parts[i].from > lo ? parts[i].from : lo);
    }
    size_t left = n;
    uint8_t *done = vg_xcalloc(n, 1);
    int64_t last_progress = vg_now_ms(), last_log = last_progress;
    while (!err && left > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            if (vg_now_ms() - last_progress > stall_ms)
                err = vg_errf(errbuf, errlen, VG_ERR_KAFKA,
                              "reading %s: no progress for %d ms (%zu partitions not at their end)",
                              topic, stall_ms, left);
            continue;
        }
        last_progress = vg_now_ms();
        if (last_progress - last_log >= 2000) {
            vg_info("kafka", "reading %s: %lld of ~%lld messages (%.0f%%)", topic, (long long)read,
                    (long long)total, total > 0 ? 100.0 * (double)read / (double)total : 100.0);
            last_log = last_progress;
        }
        size_t i = 0;
        while (i < n && parts[i].partition != m->partition)
            i++;
        vg_readpos_t *pos = i < n && !done[i] ? &parts[i] : NULL;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (pos) {
                pos->end = m->offset;
                done[i] = 1;
                left--;
            }
        } else if (m->err) {
            err = vg_errf(errbuf, errlen, VG_ERR_KAFKA, "reading %s [%d]: %s", topic,
                          (int)m->partition, rd_kafka_message_errstr(m));
        } else if (pos) {
            read++;
            pos->end = m->offset + 1;
            pos->messages++;
            pos->bytes += m->key_len + m->len;
            err = cb(opaque, m->partition, m->offset, m->key, m->key_len, m->payload, m->len,
                     errbuf, errlen);
        }
        rd_kafka_message_destroy(m);
    }
    free(done);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return err;
}
