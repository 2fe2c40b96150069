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
#define VG_TOPIC_CHANGELOG    "vigil.changelog"
#define VG_TOPIC_REPARTITION  "vigil.repartition" /* prefix: vigil.repartition.ENTITY */

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
/* Waits until every queued message is delivered or timeout_ms passes. Like send, reports
 * the delivery failures since the last report once (then forgets them). */
vg_err_t vg_producer_flush(vg_producer_t *producer, int timeout_ms, char *errbuf, size_t errlen);
/*
 * Learns the partitions and leaders of topics before the first message to them, so that the
 * first batch that produces to, say, `review` does not wait for a metadata round (it took
 * ~750 ms on the local broker, in the middle of a transaction). Best effort: logs failures.
 */
void vg_producer_warm(vg_producer_t *producer, const char *const *topics, size_t n);
/* Messages delivered / failed so far. */
void vg_producer_counts(const vg_producer_t *producer, uint64_t *delivered, uint64_t *failed);
void vg_producer_free(vg_producer_t *producer);

/* A header on a produced message (dead letters carry the reason and the source position). */
typedef struct vg_kheader {
    const char *name;
    const void *value;
    size_t len;
} vg_kheader_t;

/* Like vg_producer_send(), with headers. */
vg_err_t vg_producer_send_h(vg_producer_t *producer, const char *topic, const void *key,
                            size_t keylen, const void *value, size_t valuelen,
                            const vg_kheader_t *headers, size_t nheaders, char *errbuf,
                            size_t errlen);

/* vg_producer_send_h() to a given partition (VG_PARTITION_ANY: the partitioner's choice);
 * value NULL sends a tombstone (a delete, for compacted topics). */
#define VG_PARTITION_ANY (-1)
vg_err_t vg_producer_send_to(vg_producer_t *producer, const char *topic, int32_t partition,
                             const void *key, size_t keylen, const void *value, size_t valuelen,
                             const vg_kheader_t *headers, size_t nheaders, char *errbuf,
                             size_t errlen);
/* vg_producer_send_h() without copying value: it must stay as it is until the message is
 * delivered (a flush, a committed transaction), which saves a copy of each decision. */
vg_err_t vg_producer_send_ref(vg_producer_t *producer, const char *topic, const void *key,
                              size_t keylen, const void *value, size_t valuelen,
                              const vg_kheader_t *headers, size_t nheaders, char *errbuf,
                              size_t errlen);
/* Remembers, from delivery reports, the greatest offset delivered to each partition of topic;
 * vg_producer_tracked() returns it (-1: none yet). After a transaction commits, its messages'
 * offsets are all known. */
void vg_producer_track(vg_producer_t *producer, const char *topic); /* up to 8 topics */
int64_t vg_producer_tracked(const vg_producer_t *producer, const char *topic, int32_t partition);

/* ---- consumer ---- */

typedef struct vg_consumer vg_consumer_t;

/* One consumed message, borrowed: valid until the next vg_consumer_poll() or _free(). */
typedef struct vg_msg {
    const char *topic;
    int topic_idx; /* index into the topics given to vg_consumer_new() */
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* the message's Kafka timestamp, -1 if none */
    const void *key;
    size_t keylen;
    const void *value;
    size_t len;
} vg_msg_t;

/* vg_assignment_t.start: read the partition from its earliest retained message. */
#define VG_OFFSET_BEGINNING (-2)

/* A partition the group just gave us, with the group's committed offset (-1 if none). */
typedef struct vg_assignment {
    int topic_idx;
    int32_t partition;
    int64_t committed;
    int64_t start; /* set by the callback: where to start reading (an offset, -1 for the
                      committed offset, or VG_OFFSET_BEGINNING); default = committed */
} vg_assignment_t;

/*
 * Called from within vg_consumer_poll() when partitions are assigned (revoked = 0) or revoked
 * (revoked = 1). On assignment the callback may set each start offset (e.g. earlier than
 * the committed offset, to rebuild state); nothing is in flight when it runs.
 */
typedef void(vg_rebalance_cb_t)(void *opaque, int revoked, vg_assignment_t *parts, size_t n);

/*
 * Joins consumer group `group` and subscribes to `topics` (borrowed, must outlive the
 * consumer) with the cooperative-sticky assignor, auto-commit off, isolation.level
 * read_committed, and props applied last.
 */
vg_consumer_t *vg_consumer_new(const char *brokers, const char *group, const char *const *topics,
                               size_t ntopics, const vg_kprop_t *props, size_t nprops,
                               vg_rebalance_cb_t *rebalance_cb, void *opaque, char *errbuf,
                               size_t errlen);
/*
 * Fills a batch of up to max messages: waits at most wait_ms for the first, then takes what
 * is queued; when the queue runs dry it waits up to linger_ms for more, and it closes the
 * batch max_ms after its first message at the latest. linger_ms = 0 is natural batching:
 * small batches when traffic is light (low latency), full ones under load. Consumer errors are
 * logged and counted, not returned: out-of-range offsets (data gone before it was read) are
 * logged as errors and counted in *offset_resets.
 */
size_t vg_consumer_poll(vg_consumer_t *consumer, vg_msg_t *msgs, size_t max, int wait_ms,
                        int max_ms, int linger_ms);
/* Commits offsets (next offsets to read) outside a transaction (at_least_once mode),
 * asynchronously: errors show up in the log, and a lost commit only means re-reading. */
vg_err_t vg_consumer_commit(vg_consumer_t *consumer, const vg_assignment_t *offsets, size_t n,
                            char *errbuf, size_t errlen);
/* Lag of each assigned partition: high watermark minus position (the cached watermark,
 * no broker round trip). Fills up to max entries (start = the lag); returns the count. */
size_t vg_consumer_lags(vg_consumer_t *consumer, vg_assignment_t *out, size_t max);
/* The end offset of a partition, asked of the broker (up to 1 s: not per message), else the
 * last one fetched; -1 if unknown. */
int64_t vg_consumer_end_offset(vg_consumer_t *consumer, int topic_idx, int32_t partition);
/* The partition count of topic (a metadata request), or -1 with errbuf. */
int vg_consumer_partition_count(vg_consumer_t *consumer, const char *topic, char *errbuf,
                                size_t errlen);
/* Out-of-range offset resets seen so far (an incident: data was lost before it was read). */
uint64_t vg_consumer_offset_resets(const vg_consumer_t *consumer);
/* Leaves the group cleanly and frees. */
void vg_consumer_free(vg_consumer_t *consumer);

/* ---- transactions (exactly once) ---- */

/*
 * A transactional producer with transactional.id `txn_id`; init_transactions() is done here,
 * fencing any older instance with the same id.
 */
vg_producer_t *vg_producer_new_txn(const char *brokers, const char *txn_id, const vg_kprop_t *props,
                                   size_t nprops, char *errbuf, size_t errlen);
vg_err_t vg_producer_begin(vg_producer_t *producer, char *errbuf, size_t errlen);
/*
 * Adds the consumer's offsets (next offset per partition) to the open transaction and
 * commits it. On failure the transaction is aborted and VG_ERR_KAFKA returned: the caller
 * must rewind to its last committed point. A fatal error (fenced) is logged as such.
 */
vg_err_t vg_producer_commit(vg_producer_t *producer, vg_consumer_t *consumer,
                            const vg_assignment_t *offsets, size_t n, char *errbuf, size_t errlen);
vg_err_t vg_producer_abort(vg_producer_t *producer, char *errbuf, size_t errlen);

/* ---- reading partitions to their end (changelog restore) ---- */

typedef struct vg_readpos {
    int32_t partition;
    int64_t from;      /* first offset to read, or VG_OFFSET_BEGINNING */
    int64_t end;       /* out: the partition's end offset when it was reached */
    uint64_t messages; /* out: messages read */
    uint64_t bytes;    /* out: key + value bytes read */
} vg_readpos_t;

/* One message of vg_topic_read(); value NULL for a tombstone. A non-OK return stops the read. */
typedef vg_err_t vg_record_cb(void *opaque, int32_t partition, int64_t offset, const void *key,
                              size_t klen, const void *value, size_t vlen, char *errbuf,
                              size_t errlen);
/*
 * Reads the given partitions of topic (read_committed, no consumer group) from their `from`
 * offsets to their end as of the read, calling cb for each message in offset order per
 * partition, logging progress every 2 s. VG_ERR_KAFKA if nothing arrives for stall_ms, or on a
 * fetch error.
 */
vg_err_t vg_topic_read(const char *brokers, const vg_kprop_t *props, size_t nprops,
                       const char *topic, vg_readpos_t *parts, size_t n, int stall_ms,
                       vg_record_cb *cb, void *opaque, char *errbuf, size_t errlen);

#endif
