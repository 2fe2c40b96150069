/*
 * http.h - a small HTTP server (libmicrohttpd, its own thread) for /metrics, /health and
 * /ready. The processing thread publishes text snapshots; the server only copies them out,
 * so a scrape never touches pipeline state.
 */
#ifndef VG_HTTP_H
#define VG_HTTP_H

#include "engine/common.h"

typedef struct vg_http vg_http_t;

/* Listens on addr "HOST:PORT" (e.g. "127.0.0.1:9464"; port 0 = any free port). */
vg_http_t *vg_http_start(const char *addr, char *errbuf, size_t errlen);
/* The port actually bound. */
int vg_http_port(const vg_http_t *http);
/* Replaces the /metrics body (Prometheus text format). Thread-safe. */
void vg_http_set_metrics(vg_http_t *http, const char *text, size_t len);
/* Sets readiness (/ready answers 200 when ready, 503 otherwise). /health is 200 while the
 * process serves at all. */
void vg_http_set_ready(vg_http_t *http, int ready);
void vg_http_stop(vg_http_t *http);

/* A latency histogram with Prometheus' cumulative buckets (seconds). */
#define VG_HIST_BUCKETS 14
typedef struct vg_hist {
    uint64_t counts[VG_HIST_BUCKETS + 1]; /* last = +Inf */
    double sum;
    uint64_t count;
} vg_hist_t;

/* Bucket upper bounds, in seconds: 0.5ms .. 10s. */
extern const double vg_hist_bounds[VG_HIST_BUCKETS];
void vg_hist_observe(vg_hist_t *hist, double seconds);
/* The q-quantile (0..1) estimated from the buckets (upper bound of the bucket). */
double vg_hist_quantile(const vg_hist_t *hist, double q);
/* Appends "name_bucket{le=...}", "_sum" and "_count" lines with HELP and TYPE. */
void vg_hist_write(const vg_hist_t *hist, const char *name, const char *help, vg_buf_t *out);

#endif
