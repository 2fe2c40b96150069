/*
 * store.h - the analyst case store of `vigil review`: cases, the card history index and
 * pending verdicts, in RocksDB (through features/kv.h), with an in-memory queue index.
 *
 * Families:
 *   cases    txn_id -> the case (JSON): the decision record under "record", plus status,
 *            claim, verdict, analyst, note, label_state and an audit trail with times
 *   cards    card_id NUL (INT64_MAX - ts_ms, 8 bytes big-endian) txn_id -> a short summary
 *            of a transaction of that card (newest first under the card's prefix)
 *   pending  txn_id -> the exact label message still to be acknowledged by Kafka
 *
 * Invariants:
 *  - a case is keyed by txn_id and written once: adding a record whose txn_id is already
 *    stored changes nothing (re-delivery neither duplicates nor resets a case);
 *  - every change is one synced, atomic batch, so the case, its pending label and its audit
 *    entry never disagree after a crash;
 *  - a case with a pending label is closed; the pending entry is removed (and label_state
 *    set to "sent") only by vg_rstore_mark_sent(), i.e. after Kafka acknowledged it;
 *  - the in-memory index mirrors the cases family: it is rebuilt by a scan at open and
 *    updated only after a batch is written.
 *
 * Thread-safety: every function takes the store's mutex; the HTTP threads and the consumer
 * loop share one store.
 */
#ifndef VG_REVIEW_STORE_H
#define VG_REVIEW_STORE_H

#include "engine/common.h"

typedef struct vg_rstore vg_rstore_t;

/* Opens (creating) the store in dir and rebuilds the queue index. NULL + errbuf on error. */
vg_rstore_t *vg_rstore_open(const char *dir, char *errbuf, size_t errlen);
/* Closes. NULL: no-op. */
void vg_rstore_close(vg_rstore_t *store);

/* One decision record as consumed (borrowed bytes). */
typedef struct vg_rrecord {
    const char *json;
    size_t len;
} vg_rrecord_t;

/*
 * Adds the records as new open cases (and their card history entries) in one synced batch.
 * Records whose txn_id is already stored, or repeated in the batch, are counted in *dups and
 * left alone; malformed ones (not an object, no string txn_id/card_id, bad ts) in *bad, with
 * the first reason in errbuf. VG_ERR_STATE if the write failed (nothing was added).
 */
vg_err_t vg_rstore_add(vg_rstore_t *store, const vg_rrecord_t *recs, size_t n, int64_t now_ms,
                       size_t *added, size_t *dups, size_t *bad, char *errbuf, size_t errlen);

/* Adds history entries only (a transaction seen on `decisions`, not a case). */
vg_err_t vg_rstore_add_history(vg_rstore_t *store, const vg_rrecord_t *recs, size_t n, char *errbuf,
                               size_t errlen);

typedef enum vg_rsort {
    VG_RSORT_PRIORITY = 0, /* score desc (null last), then amount desc, then newest */
    VG_RSORT_NEWEST,
    VG_RSORT_OLDEST,
} vg_rsort_t;

typedef struct vg_rquery {
    const char *status; /* "open", "claimed", "closed" or NULL = all */
    const char *rule;   /* a rule id that fired (shadow included), "sample:REASON" for cases
                           sampled with that review_reason, or NULL */
    int64_t from_ms;    /* transaction ts >= from_ms (INT64_MIN: no bound) */
    int64_t to_ms;      /* transaction ts < to_ms (INT64_MAX: no bound) */
    size_t offset, limit;
    vg_rsort_t sort;
} vg_rquery_t;

/*
 * Appends the queue page as JSON: {"total":N,"offset":..,"limit":..,"counts":{"open":..,
 * "claimed":..,"closed":..},"rules":{id:count,...},"cases":[row,...]}; sampled cases count
 * under "sample:REASON" in rules. total counts every
 * match; counts ignore the status filter and rules ignore the rule filter, so a UI can show
 * what each filter value would give. A claim past its expiry counts as open.
 */
void vg_rstore_list(vg_rstore_t *store, const vg_rquery_t *query, int64_t now_ms, vg_buf_t *out);

/*
 * Appends {"case":{...},"history":[...],"usual":{feature:{"mean":x,"n":k}}} for txn_id: the
 * case with its effective status, up to 20 newer-first transactions of the same card (this
 * one excluded), and each feature's mean over the card's other transactions seen (up to 50).
 * VG_ERR_NOTFOUND "no case ID".
 */
vg_err_t vg_rstore_get(vg_rstore_t *store, const char *txn_id, int64_t now_ms, vg_buf_t *out,
                       char *errbuf, size_t errlen);

/*
 * Claims a case for analyst until now + ttl (renewing an own claim). VG_ERR_NOTFOUND;
 * VG_ERR_CONFLICT when closed or claimed by someone else (message says which).
 */
vg_err_t vg_rstore_claim(vg_rstore_t *store, const char *txn_id, const char *analyst,
                         int64_t now_ms, int64_t ttl_ms, char *errbuf, size_t errlen);
/* Releases an own claim (skip). Same errors as claim; releasing an open case is a no-op. */
vg_err_t vg_rstore_release(vg_rstore_t *store, const char *txn_id, const char *analyst,
                           int64_t now_ms, char *errbuf, size_t errlen);

/*
 * Closes a case with label "fraud" or "legit" (VG_ERR_INPUT otherwise) and an optional note,
 * and queues the label message {"txn_id","label","ts","source":"analyst","analyst","note"}
 * as pending, in one synced batch. VG_ERR_NOTFOUND; VG_ERR_CONFLICT when already closed or
 * claimed by someone else.
 */
vg_err_t vg_rstore_label(vg_rstore_t *store, const char *txn_id, const char *analyst,
                         const char *label, const char *note, int64_t now_ms, char *errbuf,
                         size_t errlen);

/* Called for each pending label; must not call back into the store. */
typedef void (*vg_rstore_pending_fn)(void *ctx, const char *txn_id, const char *msg, size_t len);
/* Calls fn for every pending label (oldest key order); returns how many. */
size_t vg_rstore_pending(vg_rstore_t *store, vg_rstore_pending_fn fn, void *ctx);
/* Marks labels as acknowledged by Kafka: removes their pending entries, sets label_state
 * "sent" and records it in the audit trail, in one synced batch. */
vg_err_t vg_rstore_mark_sent(vg_rstore_t *store, char *const *txn_ids, size_t n, int64_t now_ms,
                             char *errbuf, size_t errlen);

/* Number of cases stored. */
size_t vg_rstore_count(vg_rstore_t *store);

/* Appends JSON text with every < > & written as \u003c \u003e \u0026 (outside strings a JSON
 * text holds none of them, so this is exact): safe to embed anywhere in HTML. */
void vg_review_json_safe(vg_buf_t *out, const char *json, size_t len);

#endif
