/*
 * service.c - `vigil review`: the consumer loop, the HTTP server (web UI + JSON API),
 * sessions, CSRF checks and the verdict sender; see service.h for the guarantees.
 *
 * Threads: the main thread runs the consumer loop and the verdict sender (so one thread
 * owns each Kafka client); libmicrohttpd's pool threads serve HTTP. They share the case
 * store (which locks itself), the session table and the users file (each under its own
 * mutex), and an atomic "labels waiting" flag that lets the main loop send a new verdict
 * within one poll interval.
 *
 * Authentication: a browser logs in with POST /api/login and gets a random session token in
 * an HttpOnly, SameSite=Strict cookie plus a CSRF token it must echo in X-CSRF-Token on every
 * POST; any Origin header must match the Host. Scripts send "Authorization: Bearer TOKEN"
 * (a token from the users file or from login): no cookie, so no CSRF check is needed.
 */
#include "engine/review/service.h"

#include "engine/cli.h"
#include "engine/review/auth.h"
#include "engine/review/store.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_BODY      (64 * 1024)
#define MAX_NOTE      2000
#define MAX_SESSIONS  4096
#define SESSION_TTL   (12 * 3600 * 1000LL)
#define COOKIE_NAME   "vigil_session"
#define POLL_MAX      500
#define RESEND_PERIOD 2000

typedef struct session {
    char token[65], csrf[65], user[65];
    int64_t expires;
} session_t;

typedef struct service {
    const vg_review_opts_t *opts;
    vg_rstore_t *store;
    pthread_mutex_t users_lock;
    vg_users_t *users;
    struct timespec users_mtime;
    pthread_mutex_t sessions_lock;
    session_t sessions[MAX_SESSIONS];
    atomic_int labels_waiting;
} service_t;

/* Who is asking, once authenticated. */
typedef struct who {
    char user[65];
    char csrf[65]; /* empty for bearer tokens */
    int cookie;
} who_t;

typedef struct request {
    vg_buf_t body;
    int too_big;
} request_t;

/* ---- users and sessions ---- */

/* Re-reads the users file when it changed on disk (adduser needs no restart). */
static void users_refresh(service_t *svc)
{
    struct stat st;
    if (stat(svc->opts->users_path, &st) != 0)
        return;
    if (svc->users && st.st_mtim.tv_sec == svc->users_mtime.tv_sec &&
        st.st_mtim.tv_nsec == svc->users_mtime.tv_nsec)
        return;
    char errbuf[VG_ERRLEN];
    vg_users_t *u = vg_users_load(svc->opts->users_path, errbuf, sizeof(errbuf));
    if (!u) {
        vg_error("review", "%s (keeping the users loaded before)", errbuf);
        return;
    }
    vg_users_free(svc->users);
    svc->users = u;
    svc->users_mtime = st.st_mtim;
    vg_info("review", "users file %s: %zu credentials", svc->opts->users_path, vg_users_count(u));
}

static int session_new(service_t *svc, const char *user, session_t *out)
{
    session_t s = {0};
    if (vg_random_token(s.token, NULL, 0) || vg_random_token(s.csrf, NULL, 0))
        return -1;
    snprintf(s.user, sizeof(s.user), "%s", user);
    int64_t now = vg_now_ms();
    s.expires = now + SESSION_TTL;
    pthread_mutex_lock(&svc->sessions_lock);
    size_t slot = 0, oldest = 0;
    for (; slot < MAX_SESSIONS; slot++) {
        if (svc->sessions[slot].expires <= now)
            break;
        if (svc->sessions[slot].expires < svc->sessions[oldest].expires)
            oldest = slot;
    }
    svc->sessions[slot < MAX_SESSIONS ? slot : oldest] = s;
    pthread_mutex_unlock(&svc->sessions_lock);
    *out = s;
    return 0;
}

static int token_eq(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (n != strlen(b))
        return 0;
    unsigned d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned)(a[i] ^ b[i]);
    return d == 0;
}

static int session_find(service_t *svc, const char *token, session_t *out)
{
    int found = 0;
    int64_t now = vg_now_ms();
    if (strlen(token) != 64)
        return 0;
    pthread_mutex_lock(&svc->sessions_lock);
    for (size_t i = 0; i < MAX_SESSIONS && !found; i++)
        if (svc->sessions[i].expires > now && token_eq(svc->sessions[i].token, token)) {
            *out = svc->sessions[i];
            found = 1;
        }
    pthread_mutex_unlock(&svc->sessions_lock);
    return found;
}

static void session_drop(service_t *svc, const char *token)
{
    pthread_mutex_lock(&svc->sessions_lock);
    for (size_t i = 0; i < MAX_SESSIONS; i++)
        if (svc->sessions[i].expires && token_eq(svc->sessions[i].token, token))
            memset(&svc->sessions[i], 0, sizeof(session_t));
    pthread_mutex_unlock(&svc->sessions_lock);
}

/* The session cookie's value, or NULL. */
static const char *cookie_token(struct MHD_Connection *conn)
{
    return MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, COOKIE_NAME);
}

/* Authenticates a request by bearer token or session cookie; 0 if neither is valid. */
static int authenticate(service_t *svc, struct MHD_Connection *conn, who_t *who)
{
    memset(who, 0, sizeof(*who));
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    session_t s;
    if (auth && strncmp(auth, "Bearer ", 7) == 0) {
        const char *tok = auth + 7;
        if (session_find(svc, tok, &s)) {
            snprintf(who->user, sizeof(who->user), "%s", s.user);
            return 1;
        }
        pthread_mutex_lock(&svc->users_lock);
        users_refresh(svc);
        const char *name = svc->users ? vg_users_check_token(svc->users, tok) : NULL;
        if (name)
            snprintf(who->user, sizeof(who->user), "%s", name);
        pthread_mutex_unlock(&svc->users_lock);
        return name != NULL;
    }
    const char *tok = cookie_token(conn);
    if (tok && session_find(svc, tok, &s)) {
        snprintf(who->user, sizeof(who->user), "%s", s.user);
        snprintf(who->csrf, sizeof(who->csrf), "%s", s.csrf);
        who->cookie = 1;
        return 1;
    }
    return 0;
}

/* An Origin header, when a browser sends one, must be this server ("http://" + Host). */
static int origin_ok(struct MHD_Connection *conn)
{
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (!origin)
        return 1;
    return host && strncmp(origin, "http://", 7) == 0 && strcmp(origin + 7, host) == 0;
}

/* ---- responses ---- */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type,
                               const char *body, size_t len, const char *cookie)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'self'; style-src 'self'; "
                            "connect-src 'self'; img-src 'self'; form-action 'self'; "
                            "frame-ancestors 'none'; base-uri 'none'");
    if (cookie)
        MHD_add_response_header(r, "Set-Cookie", cookie);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *conn, unsigned status,
                                    const vg_buf_t *body, const char *cookie)
{
    return respond(conn, status, "application/json; charset=utf-8", body->data, body->len, cookie);
}

static enum MHD_Result respond_error(struct MHD_Connection *conn, unsigned status, const char *msg)
{
    vg_buf_t b;
    vg_buf_init(&b);
    vg_buf_puts(&b, "{\"error\":");
    vg_buf_json_str(&b, msg, strlen(msg));
    vg_buf_puts(&b, "}");
    enum MHD_Result r = respond_json(conn, status, &b, NULL);
    vg_buf_free(&b);
    return r;
}

static unsigned status_of(vg_err_t err)
{
    switch (err) {
    case VG_ERR_INPUT:
        return 400;
    case VG_ERR_NOTFOUND:
        return 404;
    case VG_ERR_CONFLICT:
        return 409;
    default:
        return 500;
    }
}

/* ---- the API ---- */

static int parse_size(const char *s, size_t lo, size_t hi, size_t *out)
{
    char *end;
    if (!s || !*s)
        return 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || s[0] == '-' || v < lo || v > hi)
        return -1;
    *out = (size_t)v;
    return 0;
}

/* "2018-04-01" (a whole day: `to` is then exclusive of the next day) or RFC 3339. */
static int parse_bound(const char *s, int is_to, int64_t *out)
{
    if (!s || !*s)
        return 0;
    size_t n = strlen(s);
    if (n == 10) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%sT00:00:00Z", s);
        if (vg_time_parse(buf, strlen(buf), out))
            return -1;
        if (is_to)
            *out += 86400000;
        return 0;
    }
    return vg_time_parse(s, n, out) ? -1 : 0;
}

static enum MHD_Result api_list(service_t *svc, struct MHD_Connection *conn)
{
    vg_rquery_t q = {.from_ms = INT64_MIN, .to_ms = INT64_MAX, .limit = 50};
    const char *status = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "status");
    const char *rule = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "rule");
    const char *from = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "from");
    const char *to = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "to");
    const char *sort = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "sort");
    if (status && *status && strcmp(status, "all") != 0) {
        if (strcmp(status, "open") && strcmp(status, "claimed") && strcmp(status, "closed"))
            return respond_error(conn, 400, "status must be open, claimed, closed or all");
        q.status = status;
    }
    q.rule = rule && *rule ? rule : NULL;
    if (parse_bound(from, 0, &q.from_ms))
        return respond_error(conn, 400, "from must be a date (2018-04-01) or an RFC 3339 time");
    if (parse_bound(to, 1, &q.to_ms))
        return respond_error(conn, 400, "to must be a date (2018-04-01) or an RFC 3339 time");
    if (parse_size(MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit"), 1, 1000,
                   &q.limit))
        return respond_error(conn, 400, "limit must be an integer 1..1000");
    if (parse_size(MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "offset"), 0,
                   SIZE_MAX / 2, &q.offset))
        return respond_error(conn, 400, "offset must be a non-negative integer");
    if (!sort || !*sort || strcmp(sort, "priority") == 0)
        q.sort = VG_RSORT_PRIORITY;
    else if (strcmp(sort, "newest") == 0)
        q.sort = VG_RSORT_NEWEST;
    else if (strcmp(sort, "oldest") == 0)
        q.sort = VG_RSORT_OLDEST;
    else
        return respond_error(conn, 400, "sort must be priority, newest or oldest");
    vg_buf_t b;
    vg_buf_init(&b);
    vg_rstore_list(svc->store, &q, vg_now_ms(), &b);
    enum MHD_Result r = respond_json(conn, 200, &b, NULL);
    vg_buf_free(&b);
    return r;
}

static enum MHD_Result api_get(service_t *svc, struct MHD_Connection *conn, const char *id)
{
    vg_buf_t b;
    vg_buf_init(&b);
    char errbuf[VG_ERRLEN];
    vg_err_t err = vg_rstore_get(svc->store, id, vg_now_ms(), &b, errbuf, sizeof(errbuf));
    enum MHD_Result r =
        err ? respond_error(conn, status_of(err), errbuf) : respond_json(conn, 200, &b, NULL);
    vg_buf_free(&b);
    return r;
}

static enum MHD_Result api_change(service_t *svc, struct MHD_Connection *conn, const who_t *who,
                                  const char *id, const char *action, const request_t *req)
{
    char errbuf[VG_ERRLEN];
    vg_err_t err;
    int64_t now = vg_now_ms();
    if (strcmp(action, "claim") == 0) {
        err = vg_rstore_claim(svc->store, id, who->user, now, svc->opts->claim_ttl_ms, errbuf,
                              sizeof(errbuf));
    } else if (strcmp(action, "release") == 0) {
        err = vg_rstore_release(svc->store, id, who->user, now, errbuf, sizeof(errbuf));
    } else {
        cJSON *body = cJSON_ParseWithLength(req->body.data ? req->body.data : "", req->body.len);
        const cJSON *label = cJSON_GetObjectItemCaseSensitive(body, "label");
        const cJSON *note = cJSON_GetObjectItemCaseSensitive(body, "note");
        if (!cJSON_IsObject(body))
            err = vg_errf(errbuf, sizeof(errbuf), VG_ERR_INPUT,
                          "body must be a JSON object {\"label\":\"fraud\"|\"legit\","
                          "\"note\":\"...\"}");
        else if (!cJSON_IsString(label))
            err = vg_errf(errbuf, sizeof(errbuf), VG_ERR_INPUT,
                          "label must be \"fraud\" or \"legit\"");
        else if (note && !cJSON_IsNull(note) && !cJSON_IsString(note))
            err = vg_errf(errbuf, sizeof(errbuf), VG_ERR_INPUT, "note must be a string");
        else if (cJSON_IsString(note) && strlen(note->valuestring) > MAX_NOTE)
            err = vg_errf(errbuf, sizeof(errbuf), VG_ERR_INPUT, "note is longer than %d bytes",
                          MAX_NOTE);
        else
            err = vg_rstore_label(svc->store, id, who->user, label->valuestring,
                                  cJSON_IsString(note) ? note->valuestring : NULL, now, errbuf,
                                  sizeof(errbuf));
        cJSON_Delete(body);
        if (!err)
            atomic_store(&svc->labels_waiting, 1);
    }
    if (err)
        return respond_error(conn, status_of(err), errbuf);
    return api_get(svc, conn, id);
}

static enum MHD_Result api_login(service_t *svc, struct MHD_Connection *conn, const request_t *req)
{
    cJSON *body = cJSON_ParseWithLength(req->body.data ? req->body.data : "", req->body.len);
    const char *user = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "user"));
    const char *pw = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "password"));
    enum MHD_Result r;
    if (!user || !pw) {
        r = respond_error(conn, 400, "body must be {\"user\":\"...\",\"password\":\"...\"}");
        goto out;
    }
    pthread_mutex_lock(&svc->users_lock);
    users_refresh(svc);
    int ok = svc->users && vg_auth_name_ok(user) && vg_users_check_password(svc->users, user, pw);
    pthread_mutex_unlock(&svc->users_lock);
    session_t s;
    if (!ok) {
        vg_warn("review", "failed login for '%.64s'", user);
        r = respond_error(conn, 401, "wrong user name or password");
        goto out;
    }
    if (session_new(svc, user, &s)) {
        r = respond_error(conn, 500, "no randomness for a session token");
        goto out;
    }
    char cookie[160];
    snprintf(cookie, sizeof(cookie), COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict", s.token);
    vg_buf_t b;
    vg_buf_init(&b);
    vg_buf_puts(&b, "{\"user\":");
    vg_buf_json_str(&b, s.user, strlen(s.user));
    vg_buf_printf(&b, ",\"csrf\":\"%s\",\"token\":\"%s\"}", s.csrf, s.token);
    vg_info("review", "%s logged in", s.user);
    r = respond_json(conn, 200, &b, cookie);
    vg_buf_free(&b);
out:
    cJSON_Delete(body);
    return r;
}

static enum MHD_Result handle(service_t *svc, struct MHD_Connection *conn, const char *url,
                              const char *method, const request_t *req)
{
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int post = strcmp(method, "POST") == 0;
    if (get && (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0))
        return respond(conn, 200, "text/html; charset=utf-8", vg_review_index_html,
                       strlen(vg_review_index_html), NULL);
    if (get && strcmp(url, "/app.js") == 0)
        return respond(conn, 200, "text/javascript; charset=utf-8", vg_review_app_js,
                       strlen(vg_review_app_js), NULL);
    if (get && strcmp(url, "/app.css") == 0)
        return respond(conn, 200, "text/css; charset=utf-8", vg_review_app_css,
                       strlen(vg_review_app_css), NULL);
    if (get && strcmp(url, "/health") == 0)
        return respond(conn, 200, "text/plain", "ok\n", 3, NULL);
    if (strncmp(url, "/api/", 5) != 0)
        return respond_error(conn, 404, "not found");
    if (!get && !post)
        return respond_error(conn, 405, "method not allowed");
    if (post && !origin_ok(conn))
        return respond_error(conn, 403, "cross-origin request refused (Origin does not match)");
    if (req->too_big)
        return respond_error(conn, 413, "request body larger than 64 KiB");
    if (post && strcmp(url, "/api/login") == 0)
        return api_login(svc, conn, req);

    who_t who;
    if (!authenticate(svc, conn, &who))
        return respond_error(conn, 401, "not logged in (log in, or send Authorization: Bearer)");
    if (post && who.cookie) {
        const char *csrf = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CSRF-Token");
        if (!csrf || !token_eq(csrf, who.csrf))
            return respond_error(conn, 403, "missing or wrong X-CSRF-Token");
    }
    if (strcmp(url, "/api/session") == 0 && get) {
        vg_buf_t b;
        vg_buf_init(&b);
        vg_buf_puts(&b, "{\"user\":");
        vg_buf_json_str(&b, who.user, strlen(who.user));
        vg_buf_puts(&b, ",\"csrf\":");
        vg_buf_json_str(&b, who.csrf, strlen(who.csrf));
        vg_buf_puts(&b, "}");
        enum MHD_Result r = respond_json(conn, 200, &b, NULL);
        vg_buf_free(&b);
        return r;
    }
    if (strcmp(url, "/api/logout") == 0 && post) {
        const char *tok = cookie_token(conn);
        if (tok)
            session_drop(svc, tok);
        vg_buf_t b = {"{}", 2, 3};
        return respond_json(conn, 200, &b,
                            COOKIE_NAME "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    }
    if (strcmp(url, "/api/cases") == 0) {
        if (!get)
            return respond_error(conn, 405, "method not allowed");
        return api_list(svc, conn);
    }
    if (strncmp(url, "/api/cases/", 11) != 0 || !url[11])
        return respond_error(conn, 404, "not found");
    const char *id = url + 11;
    if (get)
        return api_get(svc, conn, id);
    const char *slash = strrchr(id, '/');
    if (!slash || (strcmp(slash, "/claim") && strcmp(slash, "/release") && strcmp(slash, "/label")))
        return respond_error(conn, 404, "not found (POST .../claim, .../release or .../label)");
    size_t idlen = (size_t)(slash - id);
    if (idlen == 0 || idlen > 256)
        return respond_error(conn, 404, "not found");
    char idbuf[257];
    memcpy(idbuf, id, idlen);
    idbuf[idlen] = '\0';
    return api_change(svc, conn, &who, idbuf, slash + 1, req);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    service_t *svc = cls;
    request_t *req = *req_cls;
    if (!req) {
        req = vg_xcalloc(1, sizeof(*req));
        vg_buf_init(&req->body);
        *req_cls = req;
        return MHD_YES;
    }
    if (*upload_size) {
        if (req->body.len + *upload_size > MAX_BODY)
            req->too_big = 1;
        else
            vg_buf_append(&req->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return handle(svc, conn, url, method, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    request_t *req = *req_cls;
    if (!req)
        return;
    vg_buf_free(&req->body);
    free(req);
    *req_cls = NULL;
}

static struct MHD_Daemon *http_start(service_t *svc, const char *addr, int *port, char *errbuf,
                                     size_t errlen)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sin = {0};
    char *end = NULL;
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || (size_t)(colon - addr) >= sizeof(host) || !end || *end || p < 0 || p > 65535) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG, "--http must be HOST:PORT, got '%s'", addr);
        return NULL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)p);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG,
                "--http must be an IPv4 HOST:PORT like 127.0.0.1:8080, got '%s'", addr);
        return NULL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, svc,
        MHD_OPTION_SOCK_ADDR, &sin, MHD_OPTION_THREAD_POOL_SIZE, 4u, MHD_OPTION_CONNECTION_TIMEOUT,
        30u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, svc, MHD_OPTION_END);
    if (!d) {
        vg_errf(errbuf, errlen, VG_ERR_IO, "cannot listen on %s", addr);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : (int)p;
    return d;
}

/* ---- the verdict sender ---- */

typedef struct sending {
    vg_producer_t *producer;
    char **ids;
    size_t n, cap;
    int failed;
    char errbuf[VG_ERRLEN];
} sending_t;

static void send_one(void *ctx, const char *txn_id, const char *msg, size_t len)
{
    sending_t *s = ctx;
    if (s->failed)
        return;
    if (vg_producer_send(s->producer, VG_TOPIC_LABELS, txn_id, strlen(txn_id), msg, len, s->errbuf,
                         sizeof(s->errbuf))) {
        s->failed = 1;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->ids = vg_xrealloc(s->ids, s->cap * sizeof(char *));
    }
    s->ids[s->n++] = vg_xstrdup(txn_id);
}

/* Produces every pending label and marks them sent once Kafka acknowledged all of them. */
static void send_pending(service_t *svc, vg_producer_t *producer)
{
    sending_t s = {.producer = producer};
    uint64_t d0, f0, d1, f1;
    vg_producer_counts(producer, &d0, &f0);
    vg_rstore_pending(svc->store, send_one, &s);
    if (s.n == 0 && !s.failed)
        goto out;
    char errbuf[VG_ERRLEN];
    vg_producer_flush(producer, 10000, errbuf, sizeof(errbuf)); /* counts tell what happened */
    vg_producer_counts(producer, &d1, &f1);
    if (s.failed || d1 - d0 != s.n || f1 != f0) {
        vg_warn("review", "labels not acknowledged (%llu of %zu delivered%s%s); retrying",
                (unsigned long long)(d1 - d0), s.n, s.failed ? ": " : "", s.failed ? s.errbuf : "");
        goto out;
    }
    if (vg_rstore_mark_sent(svc->store, s.ids, s.n, vg_now_ms(), errbuf, sizeof(errbuf)))
        vg_error("review", "marking %zu labels sent: %s", s.n, errbuf);
    else
        vg_info("review", "%zu label(s) acknowledged by Kafka", s.n);
out:
    for (size_t i = 0; i < s.n; i++)
        free(s.ids[i]);
    free(s.ids);
}

/* ---- the consumer loop ---- */

typedef struct offsets {
    vg_assignment_t *a;
    size_t n, cap;
} offsets_t;

static void offsets_note(offsets_t *o, const vg_msg_t *m)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->a[i].topic_idx == m->topic_idx && o->a[i].partition == m->partition) {
            if (m->offset + 1 > o->a[i].start)
                o->a[i].start = m->offset + 1;
            return;
        }
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 64;
        o->a = vg_xrealloc(o->a, o->cap * sizeof(vg_assignment_t));
    }
    o->a[o->n++] = (vg_assignment_t){m->topic_idx, m->partition, -1, m->offset + 1};
}

static vg_err_t consume_batch(service_t *svc, vg_consumer_t *consumer, vg_msg_t *msgs, size_t n,
                              char *errbuf, size_t errlen)
{
    vg_rrecord_t *cases = vg_xcalloc(n, sizeof(vg_rrecord_t));
    vg_rrecord_t *hist = vg_xcalloc(n, sizeof(vg_rrecord_t));
    size_t ncases = 0, nhist = 0, added = 0, dups = 0, bad = 0;
    offsets_t o = {0};
    for (size_t i = 0; i < n; i++) {
        vg_rrecord_t r = {msgs[i].value, msgs[i].len};
        if (msgs[i].topic_idx == 0)
            cases[ncases++] = r;
        else
            hist[nhist++] = r;
        offsets_note(&o, &msgs[i]);
    }
    char why[VG_ERRLEN];
    vg_err_t err = VG_OK;
    if (ncases) {
        err = vg_rstore_add(svc->store, cases, ncases, vg_now_ms(), &added, &dups, &bad, why,
                            sizeof(why));
        if (err)
            vg_errf(errbuf, errlen, err, "writing %zu cases: %s", ncases, why);
        else if (bad)
            vg_warn("review", "%zu malformed review record(s) skipped, first: %s", bad, why);
        if (!err && (added || dups))
            vg_info("review", "%zu new case(s), %zu already stored", added, dups);
    }
    if (!err && nhist)
        err = vg_rstore_add_history(svc->store, hist, nhist, errbuf, errlen);
    /* only now that the store has synced them may the group move past these messages; a
     * failed commit (e.g. during a rebalance) only means they may be delivered again, which
     * the store recognises, so it is not fatal */
    if (!err && vg_consumer_commit(consumer, o.a, o.n, why, sizeof(why)))
        vg_warn("review", "%s (the cases are stored; they may be delivered again)", why);
    free(o.a);
    free(cases);
    free(hist);
    return err;
}

vg_err_t vg_review_serve(const vg_review_opts_t *opts, char *errbuf, size_t errlen)
{
    service_t *svc = vg_xcalloc(1, sizeof(*svc));
    svc->opts = opts;
    pthread_mutex_init(&svc->users_lock, NULL);
    pthread_mutex_init(&svc->sessions_lock, NULL);
    atomic_init(&svc->labels_waiting, 1); /* re-send whatever a previous run left pending */
    vg_err_t err = VG_OK;
    vg_producer_t *producer = NULL;
    vg_consumer_t *consumer = NULL;
    struct MHD_Daemon *daemon = NULL;
    vg_msg_t *msgs = vg_xcalloc(POLL_MAX, sizeof(vg_msg_t));
    static const char *const topics[] = {VG_TOPIC_REVIEW, VG_TOPIC_DECISIONS};

    users_refresh(svc);
    if (!svc->users) {
        err = vg_errf(errbuf, errlen, VG_ERR_CONFIG,
                      "cannot read users file %s (create it with 'vigil review adduser')",
                      opts->users_path);
        goto out;
    }
    svc->store = vg_rstore_open(opts->store_dir, errbuf, errlen);
    if (!svc->store) {
        err = VG_ERR_STATE;
        goto out;
    }
    vg_info("review", "case store %s: %zu cases", opts->store_dir, vg_rstore_count(svc->store));
    producer = vg_producer_new(opts->brokers, opts->props, opts->nprops, errbuf, errlen);
    if (!producer) {
        err = VG_ERR_KAFKA;
        goto out;
    }
    consumer = vg_consumer_new(opts->brokers, opts->group, topics, opts->history ? 2 : 1,
                               opts->props, opts->nprops, NULL, NULL, errbuf, errlen);
    if (!consumer) {
        err = VG_ERR_KAFKA;
        goto out;
    }
    int port;
    daemon = http_start(svc, opts->http, &port, errbuf, errlen);
    if (!daemon) {
        err = VG_ERR_IO;
        goto out;
    }
    vg_info("review", "serving http://%.*s:%d/", (int)(strrchr(opts->http, ':') - opts->http),
            opts->http, port);
    if (opts->port_file) {
        FILE *f = fopen(opts->port_file, "w");
        if (f) {
            fprintf(f, "%d\n", port);
            fclose(f);
        }
    }
    int64_t last_send = 0;
    while (!vg_stop_requested()) {
        size_t n = vg_consumer_poll(consumer, msgs, POLL_MAX, 100, 100, 0);
        if (n && (err = consume_batch(svc, consumer, msgs, n, errbuf, errlen)))
            break;
        /* a new verdict goes out at once; anything left pending is retried periodically */
        int64_t now = vg_now_ms();
        if (atomic_exchange(&svc->labels_waiting, 0) || now - last_send >= RESEND_PERIOD) {
            send_pending(svc, producer);
            last_send = now;
        }
    }
    if (!err)
        send_pending(svc, producer);
out:
    if (daemon)
        MHD_stop_daemon(daemon);
    vg_consumer_free(consumer);
    vg_producer_free(producer);
    vg_rstore_close(svc->store);
    vg_users_free(svc->users);
    pthread_mutex_destroy(&svc->users_lock);
    pthread_mutex_destroy(&svc->sessions_lock);
    free(msgs);
    free(svc);
    return err;
}
