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
    uint64_t delivered, failed;
    char last_error[256];
};

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    vg_producer_t *p = opaque;
    if (m->err) {
        p->failed++;
        snprintf(p->last_error, sizeof(p->last_error), "%s", rd_kafka_err2str(m->err));
    } else {
        p->delivered++;
    }
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
        rd_kafka_resp_err_t err =
            rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, keylen),
                              RD_KAFKA_V_VALUE((void *)value, valuelen),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (!err)
            break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return vg_errf(errbuf, errlen, VG_ERR_KAFKA, "produce to %s: %s", topic,
                           rd_kafka_err2str(err));
        rd_kafka_poll(p->rk, 10);
    }
    rd_kafka_poll(p->rk, 0);
    if (p->failed)
        return vg_errf(errbuf, errlen, VG_ERR_KAFKA, "%llu deliveries failed, last: %s",
                       (unsigned long long)p->failed, p->last_error);
    return VG_OK;
}

vg_err_t vg_producer_flush(vg_producer_t *p, int timeout_ms, char *errbuf, size_t errlen)
{
    rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, timeout_ms);
    if (err)
        return vg_errf(errbuf, errlen, VG_ERR_KAFKA, "flush: %s (%d messages still queued)",
                       rd_kafka_err2str(err), rd_kafka_outq_len(p->rk));
    if (p->failed)
        return vg_errf(errbuf, errlen, VG_ERR_KAFKA, "%llu deliveries failed, last: %s",
                       (unsigned long long)p->failed, p->last_error);
    return VG_OK;
}

void vg_producer_counts(const vg_producer_t *p, uint64_t *delivered, uint64_t *failed)
{
    *delivered = p->delivered;
    *failed = p->failed;
}

void vg_producer_free(vg_producer_t *p)
{
    if (!p)
        return;
    rd_kafka_flush(p->rk, 10000);
    rd_kafka_destroy(p->rk);
    free(p);
}
