/*
 * http.c - /metrics, /health, /ready over libmicrohttpd; latency histograms.
 */
#include "engine/http.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct vg_http {
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;
    char *metrics;
    size_t metrics_len;
    int ready;
    int port;
};

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type,
                               const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **req_cls)
{
    vg_http_t *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return respond(conn, 405, "text/plain", "method not allowed\n", 19);
    if (strcmp(url, "/metrics") == 0) {
        pthread_mutex_lock(&h->lock);
        enum MHD_Result r = respond(conn, 200, "text/plain; version=0.0.4; charset=utf-8",
                                    h->metrics ? h->metrics : "", h->metrics_len);
        pthread_mutex_unlock(&h->lock);
        return r;
    }
    if (strcmp(url, "/health") == 0)
        return respond(conn, 200, "text/plain", "ok\n", 3);
    if (strcmp(url, "/ready") == 0) {
        pthread_mutex_lock(&h->lock);
        int ready = h->ready;
        pthread_mutex_unlock(&h->lock);
        return ready ? respond(conn, 200, "text/plain", "ready\n", 6)
                     : respond(conn, 503, "text/plain", "not ready\n", 10);
    }
    return respond(conn, 404, "text/plain", "not found\n", 10);
}

vg_http_t *vg_http_start(const char *addr, char *errbuf, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof(host)) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG, "http address must be HOST:PORT, got '%s'", addr);
        return NULL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (*end || port < 0 || port > 65535 || inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG,
                "http address must be IPv4-HOST:PORT like 127.0.0.1:9464, got '%s'", addr);
        return NULL;
    }
    vg_http_t *h = vg_xcalloc(1, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                 handler, h, MHD_OPTION_SOCK_ADDR, &sin,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!h->daemon) {
        vg_errf(errbuf, errlen, VG_ERR_IO, "cannot listen on %s", addr);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : (int)port;
    return h;
}

int vg_http_port(const vg_http_t *h)
{
    return h->port;
}

void vg_http_set_metrics(vg_http_t *h, const char *text, size_t len)
{
    char *copy = vg_xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    pthread_mutex_lock(&h->lock);
    free(h->metrics);
    h->metrics = copy;
    h->metrics_len = len;
    pthread_mutex_unlock(&h->lock);
}

void vg_http_set_ready(vg_http_t *h, int ready)
{
    pthread_mutex_lock(&h->lock);
    h->ready = ready;
    pthread_mutex_unlock(&h->lock);
}

void vg_http_stop(vg_http_t *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    pthread_mutex_destroy(&h->lock);
    free(h->metrics);
    free(h);
}

const double vg_hist_bounds[VG_HIST_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05,
                                                0.1,    0.2,   0.5,    1,     2.5,  5,    10};

void vg_hist_observe(vg_hist_t *hist, double seconds)
{
    size_t i = 0;
    while (i < VG_HIST_BUCKETS && seconds > vg_hist_bounds[i])
        i++;
    hist->counts[i]++;
    hist->sum += seconds;
    hist->count++;
}

double vg_hist_quantile(const vg_hist_t *hist, double q)
{
    if (hist->count == 0)
        return 0;
    uint64_t target = (uint64_t)(q * (double)hist->count + 0.5), seen = 0;
    for (size_t i = 0; i <= VG_HIST_BUCKETS; i++) {
        seen += hist->counts[i];
        if (seen >= target && seen > 0)
            return i < VG_HIST_BUCKETS ? vg_hist_bounds[i] : INFINITY;
    }
    return INFINITY;
}

void vg_hist_write(const vg_hist_t *hist, const char *name, const char *help, vg_buf_t *out)
{
    vg_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t i = 0; i < VG_HIST_BUCKETS; i++) {
        cum += hist->counts[i];
        vg_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, vg_hist_bounds[i],
                      (unsigned long long)cum);
    }
    cum += hist->counts[VG_HIST_BUCKETS];
    vg_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                  (unsigned long long)cum, name, hist->sum, name, (unsigned long long)hist->count);
}
