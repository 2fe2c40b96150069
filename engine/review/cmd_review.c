/*
 * cmd_review.c - `vigil review`: runs the analyst service, manages the users file, and is a
 * small command-line client of the service's JSON API (list, show, label).
 *
 * The client speaks plain HTTP/1.0 over a TCP socket (the service binds 127.0.0.1 by
 * default; put a TLS proxy in front to expose it), so it needs no HTTP library.
 */
#include "engine/cli.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/review/auth.h"
#include "engine/review/service.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

static const vg_option_t review_options[] = {
    {"review", "http", VG_OPT_STRING, "127.0.0.1:8080", "HOST:PORT the web UI and API listen on", 0,
     0, NULL},
    {"review", "store", VG_OPT_STRING, "vigil-review", "case store directory (RocksDB)", 0, 0,
     NULL},
    {"review", "users", VG_OPT_STRING, "vigil-review.users", "users file (vigil review adduser)", 0,
     0, NULL},
    {"review", "group", VG_OPT_STRING, "vigil-review", "Kafka consumer group id", 0, 0, NULL},
    {"review", "brokers", VG_OPT_STRING, NULL, "bootstrap servers (or kafka bootstrap.servers)", 0,
     0, NULL},
    {"review", "claim.ttl", VG_OPT_DURATION, "15m", "how long an analyst's claim on a case holds",
     1000, 7 * 86400000.0, NULL},
    {"review", "history", VG_OPT_BOOL, "false",
     "also consume `decisions` so case pages show every transaction of the card", 0, 0, NULL},
};

/* ---- the service ---- */

static void serve_help(void)
{
    printf("usage: vigil review [OPTIONS]\n"
           "       vigil review adduser NAME [--users FILE] [--token]\n"
           "       vigil review list [--status S] [--rule R] [--from D] [--to D] ...\n"
           "       vigil review show ID\n"
           "       vigil review label ID fraud|legit [--note TEXT]\n\n"
           "Runs the analyst service: consumes the `review` topic into a case store, serves the\n"
           "web UI and JSON API, and produces analyst verdicts to `labels`. The subcommands\n"
           "manage analysts and talk to a running service ('vigil review SUB --help').\n\n"
           "Options:\n"
           "  --config FILE     INI file with a [review] section and [kafka] properties\n"
           "  --brokers ADDR    Kafka bootstrap servers\n"
           "  --http ADDR       listen address (default 127.0.0.1:8080; port 0 = any)\n"
           "  --store DIR       case store directory (default vigil-review)\n"
           "  --users FILE      users file (default vigil-review.users)\n"
           "  --group ID        consumer group (default vigil-review)\n"
           "  --claim-ttl DUR   claim expiry (default 15m)\n"
           "  --history         also consume `decisions` into the card history\n"
           "  --port-file FILE  write the bound port to FILE once listening\n"
           "  --log-level L     debug, info, warn or error\n"
           "  -h, --help        this help\n\n"
           "[review] keys:\n");
    vg_config_help(review_options, VG_ARRAY_LEN(review_options), "review", stdout);
    printf("\nSee docs/review.md for the API, the users file and the delivery guarantees.\n");
}

static int serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"brokers", required_argument, NULL, 'b'},
        {"http", required_argument, NULL, 'H'},
        {"store", required_argument, NULL, 's'},
        {"users", required_argument, NULL, 'u'},
        {"group", required_argument, NULL, 'g'},
        {"claim-ttl", required_argument, NULL, 't'},
        {"history", no_argument, NULL, 'y'},
        {"port-file", required_argument, NULL, 'p'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char errbuf[VG_ERRLEN];
    vg_config_t *config = vg_config_new(review_options, VG_ARRAY_LEN(review_options));
    const char *port_file = NULL;
    int opt, status = 2;
    vg_log_level_t level;
    struct {
        const char *key, *value;
        char origin[32];
    } sets[16];
    size_t nsets = 0;
    const char *config_path = NULL;

    optind = 1;
    int longindex = -1;
    while ((opt = getopt_long(argc, argv, "h", opts, &longindex)) != -1) {
        const char *key = NULL;
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'b':
            key = "brokers";
            break;
        case 'H':
            key = "http";
            break;
        case 's':
            key = "store";
            break;
        case 'u':
            key = "users";
            break;
        case 'g':
            key = "group";
            break;
        case 't':
            key = "claim.ttl";
            break;
        case 'y':
            key = "history";
            break;
        case 'p':
            port_file = optarg;
            break;
        case 'l':
            if (vg_log_parse_level(optarg, &level)) {
                status = vg_cli_usage_error("review",
                                            "--log-level must be debug, info, warn "
                                            "or error, got '%s'",
                                            optarg);
                goto out;
            }
            vg_log_set_level(level);
            break;
        case 'h':
            serve_help();
            status = 0;
            goto out;
        default:
            status = vg_cli_usage_error("review", "unknown option");
            goto out;
        }
        if (key && nsets < VG_ARRAY_LEN(sets)) { /* origin: the flag, for error messages */
            sets[nsets].key = key;
            sets[nsets].value = opt == 'y' ? "true" : optarg;
            snprintf(sets[nsets].origin, sizeof(sets[nsets].origin), "--%s",
                     longindex >= 0 ? opts[longindex].name : "?");
            nsets++;
        }
    }
    if (optind < argc) {
        status = vg_cli_usage_error("review", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (config_path && vg_config_load(config, config_path, errbuf, sizeof(errbuf))) {
        fprintf(stderr, "vigil review: %s\n", errbuf);
        goto out;
    }
    for (size_t i = 0; i < nsets; i++)
        if (vg_config_set(config, "review", sets[i].key, sets[i].value, sets[i].origin, errbuf,
                          sizeof(errbuf))) {
            fprintf(stderr, "vigil review: %s\n", errbuf);
            goto out;
        }
    size_t nprops;
    const vg_kprop_t *props = vg_config_kafka(config, &nprops);
    const char *brokers = vg_config_str(config, "review", "brokers");
    for (size_t i = 0; !brokers && i < nprops; i++)
        if (strcmp(props[i].key, "bootstrap.servers") == 0)
            brokers = props[i].value;
    if (!brokers) {
        status = vg_cli_usage_error("review", "--brokers (or [kafka] bootstrap.servers) is "
                                              "required");
        goto out;
    }
    vg_review_opts_t ro = {
        .brokers = brokers,
        .group = vg_config_str(config, "review", "group"),
        .http = vg_config_str(config, "review", "http"),
        .store_dir = vg_config_str(config, "review", "store"),
        .users_path = vg_config_str(config, "review", "users"),
        .props = props,
        .nprops = nprops,
        .claim_ttl_ms = vg_config_int(config, "review", "claim.ttl"),
        .history = vg_config_bool(config, "review", "history"),
        .port_file = port_file,
    };
    vg_signals_install();
    if (vg_review_serve(&ro, errbuf, sizeof(errbuf))) {
        vg_error("review", "%s", errbuf);
        status = 1;
    } else {
        status = 0;
    }
out:
    vg_config_free(config);
    return status;
}

/* ---- adduser ---- */

static void adduser_help(void)
{
    printf("usage: vigil review adduser NAME [--users FILE] [--token]\n\n"
           "Adds an analyst to the users file (default vigil-review.users, created with mode\n"
           "0600). The password is read from the first line of standard input and stored as\n"
           "PBKDF2-HMAC-SHA256 with a random salt (%d iterations). With --token, a fresh API\n"
           "token is printed on stdout instead and its SHA-256 stored: give it to scripts as\n"
           "'Authorization: Bearer TOKEN', VIGIL_REVIEW_TOKEN or --token.\n"
           "A running service picks up the change without a restart.\n",
           VG_AUTH_PBKDF2_ITER);
}

static int adduser(int argc, char **argv)
{
    static const struct option opts[] = {{"users", required_argument, NULL, 'u'},
                                         {"token", no_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *users = "vigil-review.users";
    int token = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'u')
            users = optarg;
        else if (opt == 't')
            token = 1;
        else if (opt == 'h') {
            adduser_help();
            return 0;
        } else
            return vg_cli_usage_error("review adduser", "unknown option");
    }
    if (optind + 1 != argc)
        return vg_cli_usage_error("review adduser", "expected one NAME");
    const char *name = argv[optind];
    if (!vg_auth_name_ok(name))
        return vg_cli_usage_error("review adduser",
                                  "NAME must be 1-64 characters of A-Z a-z 0-9 . _ -");
    char errbuf[VG_ERRLEN], tok[65];
    char *line = NULL;
    if (token) {
        if (vg_random_token(tok, errbuf, sizeof(errbuf))) {
            fprintf(stderr, "vigil review adduser: %s\n", errbuf);
            return 1;
        }
        line = vg_users_token_line(name, tok);
    } else {
        char pw[1024];
        if (isatty(0))
            fprintf(stderr, "password for %s: ", name);
        if (!fgets(pw, sizeof(pw), stdin)) {
            fprintf(stderr, "vigil review adduser: no password on standard input\n");
            return 1;
        }
        pw[strcspn(pw, "\r\n")] = '\0';
        if (strlen(pw) < 8) {
            fprintf(stderr, "vigil review adduser: the password must have at least 8 "
                            "characters\n");
            return 1;
        }
        line = vg_users_password_line(name, pw, errbuf, sizeof(errbuf));
        memset(pw, 0, sizeof(pw));
        if (!line) {
            fprintf(stderr, "vigil review adduser: %s\n", errbuf);
            return 1;
        }
    }
    int fd = open(users, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int ok = fd >= 0 && flock(fd, LOCK_EX) == 0 &&
             write(fd, line, strlen(line)) == (ssize_t)strlen(line) && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    free(line);
    if (!ok) {
        fprintf(stderr, "vigil review adduser: cannot write %s\n", users);
        return 1;
    }
    if (token)
        printf("%s\n", tok);
    else
        fprintf(stderr, "added %s to %s\n", name, users);
    return 0;
}

/* ---- the API client ---- */

typedef struct client {
    const char *url;
    const char *token;
    int json;
} client_t;

static void url_escape(vg_buf_t *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c))
            vg_buf_putc(b, (char)c);
        else
            vg_buf_printf(b, "%%%02X", c);
    }
}

/* One HTTP/1.0 request; *status and body (the response body) on success. */
static vg_err_t http_call(const client_t *cl, const char *method, const char *path,
                          const char *body, int *status, vg_buf_t *out, char *errbuf, size_t errlen)
{
    const char *u = cl->url;
    if (strncmp(u, "http://", 7) != 0)
        return vg_errf(errbuf, errlen, VG_ERR_CONFIG, "--url must start with http://, got '%s'", u);
    u += 7;
    size_t hostlen = strcspn(u, "/");
    char hostport[256], host[256], port[16] = "80";
    if (hostlen == 0 || hostlen >= sizeof(hostport))
        return vg_errf(errbuf, errlen, VG_ERR_CONFIG, "bad --url '%s'", cl->url);
    memcpy(hostport, u, hostlen);
    hostport[hostlen] = '\0';
    const char *prefix = u + hostlen;
    size_t plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    snprintf(host, sizeof(host), "%s", hostport);
    char *colon = strrchr(host, ':');
    if (colon) {
        *colon = '\0';
        snprintf(port, sizeof(port), "%s", colon + 1);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "%s: %s", hostport, gai_strerror(gai));
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "cannot connect to %s (is vigil review running?)",
                       hostport);
    vg_buf_t req;
    vg_buf_init(&req);
    vg_buf_printf(&req, "%s %.*s%s HTTP/1.0\r\nHost: %s\r\nAccept: application/json\r\n", method,
                  (int)plen, prefix, path, hostport);
    if (cl->token)
        vg_buf_printf(&req, "Authorization: Bearer %s\r\n", cl->token);
    if (body)
        vg_buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                      strlen(body));
    vg_buf_puts(&req, "\r\n");
    if (body)
        vg_buf_puts(&req, body);
    vg_err_t err = VG_OK;
    size_t off = 0;
    while (off < req.len) {
        ssize_t w = write(fd, req.data + off, req.len - off);
        if (w <= 0) {
            err = vg_errf(errbuf, errlen, VG_ERR_IO, "write to %s failed", hostport);
            break;
        }
        off += (size_t)w;
    }
    vg_buf_t resp;
    vg_buf_init(&resp);
    char chunk[8192];
    ssize_t r;
    while (!err && (r = read(fd, chunk, sizeof(chunk))) > 0)
        vg_buf_append(&resp, chunk, (size_t)r);
    close(fd);
    vg_buf_free(&req);
    if (!err) {
        char *hdr_end = resp.data ? strstr(resp.data, "\r\n\r\n") : NULL;
        if (!hdr_end || sscanf(resp.data, "HTTP/%*s %d", status) != 1)
            err = vg_errf(errbuf, errlen, VG_ERR_IO, "%s: not an HTTP response", hostport);
        else
            vg_buf_append(out, hdr_end + 4, resp.len - (size_t)(hdr_end + 4 - resp.data));
    }
    vg_buf_free(&resp);
    return err;
}

/* Runs a call and turns an HTTP error into "vigil review CMD: 409: message". Returns the
 * parsed JSON body of a 2xx response (caller deletes) or NULL after printing the error. */
static cJSON *call(const client_t *cl, const char *cmd, const char *method, const char *path,
                   const char *body, vg_buf_t *raw)
{
    char errbuf[VG_ERRLEN];
    int status = 0;
    vg_buf_reset(raw);
    if (http_call(cl, method, path, body, &status, raw, errbuf, sizeof(errbuf))) {
        fprintf(stderr, "vigil review %s: %s\n", cmd, errbuf);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(raw->data ? raw->data : "", raw->len);
    if (status < 200 || status > 299) {
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
        fprintf(stderr, "vigil review %s: %d: %s\n", cmd, status, msg ? msg : "request failed");
        cJSON_Delete(j);
        return NULL;
    }
    if (!j)
        fprintf(stderr, "vigil review %s: the service answered with invalid JSON\n", cmd);
    return j;
}

static const char *str_or(const cJSON *o, const char *key, const char *dflt)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
    return s ? s : dflt;
}

static void num_text(const cJSON *o, const char *key, char *out, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(v))
        snprintf(out, n, "%.3f", v->valuedouble);
    else
        snprintf(out, n, "-");
}

static void client_help(const char *sub)
{
    if (strcmp(sub, "list") == 0)
        printf("usage: vigil review list [--status open|claimed|closed|all] [--rule ID]\n"
               "                         [--from DATE] [--to DATE] [--sort priority|newest|"
               "oldest]\n"
               "                         [--limit N] [--offset N] [--json] [--url URL] "
               "[--token T]\n\n"
               "Lists cases from a running service, highest priority first (default: open).\n");
    else if (strcmp(sub, "show") == 0)
        printf("usage: vigil review show ID [--json] [--url URL] [--token T]\n\n"
               "Shows one case: transaction, rules, reasons, status and audit trail.\n");
    else
        printf("usage: vigil review label ID fraud|legit [--note TEXT] [--url URL] [--token "
               "T]\n\n"
               "Closes a case with a verdict; the service produces it to the labels topic.\n"
               "Fails with the service's message if the case is closed or claimed by someone "
               "else.\n");
    printf("\nCommon options:\n"
           "  --url URL     the service (default $VIGIL_REVIEW_URL or http://127.0.0.1:8080)\n"
           "  --token T     API token (default $VIGIL_REVIEW_TOKEN); see 'adduser --token'\n"
           "  --json        print the service's JSON as is\n"
           "  -h, --help    this help\n");
}

static int client_main(const char *sub, int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'U'},
        {"token", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'j'},
        {"status", required_argument, NULL, 's'},
        {"rule", required_argument, NULL, 'r'},
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"sort", required_argument, NULL, 'o'},
        {"limit", required_argument, NULL, 'L'},
        {"offset", required_argument, NULL, 'O'},
        {"note", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "review %s", sub);
    client_t cl = {getenv("VIGIL_REVIEW_URL"), getenv("VIGIL_REVIEW_TOKEN"), 0};
    if (!cl.url || !*cl.url)
        cl.url = "http://127.0.0.1:8080";
    const char *status = "open", *rule = NULL, *from = NULL, *to = NULL, *sort = NULL,
               *limit = NULL, *offset = NULL, *note = NULL;
    int opt, list = strcmp(sub, "list") == 0, label = strcmp(sub, "label") == 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'U':
            cl.url = optarg;
            break;
        case 'T':
            cl.token = optarg;
            break;
        case 'j':
            cl.json = 1;
            break;
        case 'h':
            client_help(sub);
            return 0;
        case 'n':
            if (!label)
                return vg_cli_usage_error(cmd, "--note is for label");
            note = optarg;
            break;
        case 's':
        case 'r':
        case 'f':
        case 't':
        case 'o':
        case 'L':
        case 'O':
            if (!list)
                return vg_cli_usage_error(cmd, "%s is for list", argv[optind - 2]);
            *(opt == 's'   ? &status
              : opt == 'r' ? &rule
              : opt == 'f' ? &from
              : opt == 't' ? &to
              : opt == 'o' ? &sort
              : opt == 'L' ? &limit
                           : &offset) = optarg;
            break;
        default:
            return vg_cli_usage_error(cmd, "unknown option");
        }
    }
    int want = list ? 0 : label ? 2 : 1;
    if (argc - optind != want)
        return vg_cli_usage_error(cmd, list    ? "takes no arguments"
                                       : label ? "expected ID and fraud|legit"
                                               : "expected one case ID");
    if (label && strcmp(argv[optind + 1], "fraud") && strcmp(argv[optind + 1], "legit"))
        return vg_cli_usage_error(cmd, "the verdict must be fraud or legit, got '%s'",
                                  argv[optind + 1]);
    if (!cl.token || !*cl.token)
        return vg_cli_usage_error(cmd, "an API token is needed: --token or VIGIL_REVIEW_TOKEN");

    vg_buf_t path, raw;
    vg_buf_init(&path);
    vg_buf_init(&raw);
    int rc = 1;
    cJSON *j = NULL;
    if (list) {
        const char *keys[] = {"status", "rule", "from", "to", "sort", "limit", "offset"};
        const char *vals[] = {status, rule, from, to, sort, limit, offset};
        vg_buf_puts(&path, "/api/cases");
        char sep = '?';
        for (size_t i = 0; i < VG_ARRAY_LEN(keys); i++) {
            if (!vals[i])
                continue;
            vg_buf_printf(&path, "%c%s=", sep, keys[i]);
            url_escape(&path, vals[i]);
            sep = '&';
        }
        if (!(j = call(&cl, sub, "GET", path.data, NULL, &raw)))
            goto out;
        if (cl.json) {
            fwrite(raw.data, 1, raw.len, stdout);
            putchar('\n');
        } else {
            const cJSON *c;
            printf("%-16s %-24s %-16s %10s %6s %-8s %s\n", "TXN", "TIME", "CARD", "AMOUNT", "SCORE",
                   "STATUS", "RULES");
            cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "cases"))
            {
                char score[32];
                num_text(c, "score", score, sizeof(score));
                vg_buf_t rules;
                vg_buf_init(&rules);
                const cJSON *r;
                cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(c, "rules"))
                    vg_buf_printf(&rules, "%s%s", rules.len ? "," : "", str_or(r, "id", "?"));
                printf("%-16s %-24s %-16s %10.2f %6s %-8s %s\n", str_or(c, "txn_id", "?"),
                       str_or(c, "ts", "-"), str_or(c, "card_id", "-"),
                       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "amount")), score,
                       str_or(c, "status", "?"), rules.data ? rules.data : "");
                vg_buf_free(&rules);
            }
            const cJSON *cases = cJSON_GetObjectItemCaseSensitive(j, "cases");
            printf("%d of %.0f cases\n", cJSON_GetArraySize(cases),
                   cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "total")));
        }
        rc = 0;
        goto out;
    }
    vg_buf_puts(&path, "/api/cases/");
    url_escape(&path, argv[optind]);
    if (label) {
        vg_buf_puts(&path, "/label");
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "label", argv[optind + 1]);
        if (note)
            cJSON_AddStringToObject(body, "note", note);
        char *text = cJSON_PrintUnformatted(body);
        j = call(&cl, sub, "POST", path.data, text, &raw);
        cJSON_free(text);
        cJSON_Delete(body);
    } else {
        j = call(&cl, sub, "GET", path.data, NULL, &raw);
    }
    if (!j)
        goto out;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "case");
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(c, "record");
    if (cl.json) {
        fwrite(raw.data, 1, raw.len, stdout);
        putchar('\n');
    } else if (label) {
        printf("%s: %s by %s (label %s)\n", str_or(c, "txn_id", "?"), str_or(c, "verdict", "?"),
               str_or(c, "analyst", "?"), str_or(c, "label_state", "?"));
    } else {
        char score[32];
        num_text(rec, "score", score, sizeof(score));
        printf("case      %s\nstatus    %s%s%s\nverdict   %s\ndecision  %s (score %s)\n"
               "amount    %.2f\ncard      %s\ntime      %s\n",
               str_or(c, "txn_id", "?"), str_or(c, "status", "?"),
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "claimed_by")) ? " by "
                                                                                       : "",
               str_or(c, "claimed_by", ""), str_or(c, "verdict", "-"), str_or(rec, "decision", "-"),
               score, cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(rec, "amount")),
               str_or(rec, "card_id", "-"), str_or(rec, "ts", "-"));
        const cJSON *x;
        printf("rules    ");
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(rec, "rules"))
            printf(" %s(%s%s)", str_or(x, "id", "?"), str_or(x, "action", "?"),
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "shadow")) ? ",shadow" : "");
        printf("\nreasons\n");
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(rec, "reasons"))
        {
            double v = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(x, "value"));
            double ctb = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(x, "contribution"));
            printf("  %-36s %12.4g %+9.4f\n", str_or(x, "feature", "?"), isnan(v) ? 0 : v, ctb);
        }
        printf("audit\n");
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(c, "audit"))
            printf("  %s %-10s %-10s %s\n", str_or(x, "ts", "-"), str_or(x, "analyst", "system"),
                   str_or(x, "action", "?"), str_or(x, "detail", ""));
    }
    rc = 0;
out:
    cJSON_Delete(j);
    vg_buf_free(&path);
    vg_buf_free(&raw);
    return rc;
}

int vg_cmd_review(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "adduser") == 0)
        return adduser(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "list") == 0 || strcmp(argv[1], "show") == 0 ||
                      strcmp(argv[1], "label") == 0))
        return client_main(argv[1], argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return serve(argc - 1, argv + 1);
    return serve(argc, argv);
}
