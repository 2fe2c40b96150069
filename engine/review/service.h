/*
 * service.h - the `vigil review` service: consumes the `review` topic into the case store,
 * serves the web UI and the JSON API over HTTP, and produces analyst verdicts to `labels`.
 *
 * Delivery guarantees (docs/review.md has the long form):
 *  - cases: consumer offsets are committed only after the batch of cases is written and
 *    synced, so a crash re-delivers at most the last batch, and re-delivered cases are
 *    recognised by txn_id and left as they are;
 *  - verdicts: written (synced) as pending together with the closed case, then produced with
 *    the idempotent producer and marked sent only once Kafka acknowledged them; pending
 *    verdicts are re-sent at start. A crash between the acknowledgement and the "sent" mark
 *    re-sends that label once after restart (at-least-once; the label is keyed by txn_id).
 */
#ifndef VG_REVIEW_SERVICE_H
#define VG_REVIEW_SERVICE_H

#include "engine/common.h"
#include "engine/kafka.h"

typedef struct vg_review_opts {
    const char *brokers;     /* bootstrap servers */
    const char *group;       /* consumer group id */
    const char *http;        /* HOST:PORT to listen on (IPv4) */
    const char *store_dir;   /* case store directory */
    const char *users_path;  /* users file (re-read when it changes) */
    const vg_kprop_t *props; /* librdkafka properties for both clients */
    size_t nprops;
    int64_t claim_ttl_ms;  /* how long a claim holds */
    int history;           /* also consume `decisions` into the card history index */
    const char *port_file; /* if set, the bound port is written there once listening */
} vg_review_opts_t;

/* Runs the service until SIGINT/SIGTERM. VG_OK after a clean stop, else an error in errbuf. */
vg_err_t vg_review_serve(const vg_review_opts_t *opts, char *errbuf, size_t errlen);

/* The embedded web assets (ui.c). */
extern const char vg_review_index_html[];
extern const char vg_review_app_css[];
extern const char vg_review_app_js[];

#endif
