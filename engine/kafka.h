/*
 * kafka.h - vigil's small interface to Kafka. engine/kafka.c is the only file that
 * includes librdkafka's header; everything else talks Kafka through this.
 *
 * Client properties are librdkafka's own ("bootstrap.servers", "linger.ms", ...), passed
 * through untouched from the [kafka] section of the config file and --set flags.
 */
#ifndef VG_KAFKA_H
#define VG_KAFKA_H

#include "engine/common.h"

/* The topics vigil uses, by role. */
#define VG_TOPIC_TRANSACTIONS "transactions"
#define VG_TOPIC_DECISIONS    "decisions"
#define VG_TOPIC_REVIEW       "review"
#define VG_TOPIC_LABELS       "labels"
#define VG_TOPIC_DLQ          "transactions.dlq"

/* A librdkafka property. */
typedef struct vg_kprop {
    const char *key;
    const char *value;
} vg_kprop_t;

/* ---- the local broker: librdkafka's mock cluster ---- */

typedef struct vg_mock vg_mock_t;

/* Starts a mock cluster of `brokers` brokers listening on 127.0.0.1. NULL + errbuf on error. */
vg_mock_t *vg_mock_new(int brokers, char *errbuf, size_t errlen);
/* "127.0.0.1:port,..." valid until vg_mock_free(). */
const char *vg_mock_bootstraps(const vg_mock_t *mock);
vg_err_t vg_mock_create_topic(vg_mock_t *mock, const char *topic, int partitions, char *errbuf,
                              size_t errlen);
void vg_mock_free(vg_mock_t *mock);

/* ---- producer ---- */

typedef struct vg_producer vg_producer_t;

/* A producer to `brokers` with extra properties (may be NULL/0). Idempotent by default. */
vg_producer_t *vg_producer_new(const char *brokers, const vg_kprop_t *props, size_t nprops,
                               char *errbuf, size_t errlen);
/*
 * Queues one message (copied). Blocks while librdkafka's queue is full, serving delivery
 * reports. Returns VG_ERR_KAFKA if a delivery has failed since the last call.
 */
vg_err_t vg_producer_send(vg_producer_t *producer, const char *topic, const void *key,
                          size_t keylen, const void *value, size_t valuelen, char *errbuf,
                          size_t errlen);
/* Waits until every queued message is delivered or timeout_ms passes. */
vg_err_t vg_producer_flush(vg_producer_t *producer, int timeout_ms, char *errbuf, size_t errlen);
/* Messages delivered / failed so far. */
void vg_producer_counts(const vg_producer_t *producer, uint64_t *delivered, uint64_t *failed);
void vg_producer_free(vg_producer_t *producer);

#endif
