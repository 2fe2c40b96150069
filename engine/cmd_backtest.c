/*
 * cmd_backtest.c - `vigil backtest`: replays history once, then judges a baseline and a
 * candidate (rules and/or model) over the same served features against the labels.
 *
 * The replay is `vigil replay` itself, run as a child process of this very binary
 * (/proc/self/exe) into a temporary decisions file: the backtest gets the features exactly
 * as the engine's pipeline serves them without a second copy of the replay loop. The
 * replay runs without rules or model (features do not depend on them), so it is as fast as
 * a replay gets. --decisions reuses an earlier replay's output instead, and
 * --save-decisions keeps this one's, which is what iterating on a rule file wants.
 */
#include "engine/backtest.h"
#include "engine/cli.h"

#include <getopt.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

extern char **environ;

static void help(void)
{
    printf("usage: vigil backtest --transactions FILE --labels FILE [--rules FILE] [--model DIR]\n"
           "                      [--baseline-rules FILE] [--baseline-model DIR] [OPTIONS]\n\n"
           "Replays history once through the engine's pipeline, then evaluates a candidate (rules\n"
           "and/or model) and optionally a baseline over the same served features, and reports\n"
           "each against the labels: per rule hits, precision, fraud caught, false positives and\n"
           "load per day; per side the confusion matrix of flagged (review or block) and of\n"
           "blocked; and which decisions changed between the sides, with examples.\n\n"
           "Options:\n"
           "  --transactions FILE    transactions, JSON lines, plain or .gz (needed unless\n"
           "                         --decisions)\n"
           "  --labels FILE          labels (required): fraud if the latest label says so,\n"
           "                         whenever it arrived (hindsight)\n"
           "  --rules FILE           candidate rule file\n"
           "  --model DIR            candidate model bundle\n"
           "  --baseline-rules FILE  baseline rule file\n"
           "  --baseline-model DIR   baseline model bundle\n"
           "  --catalog FILE         feature catalogue (default features/default.conf)\n"
           "  --lists DIR            where @lists are (default: each rule file's directory)\n"
           "  --from DATE            judge transactions from DATE (YYYY-MM-DD or RFC 3339)\n"
           "  --to DATE              ... up to DATE: a plain date includes that whole day, a\n"
           "                         timestamp is exclusive. History before --from still builds\n"
           "                         the state.\n"
           "  --json FILE            the report as JSON ('-' = stdout instead of the table)\n"
           "  --report FILE.html     the report as a self-contained HTML page\n"
           "  --decisions FILE       decisions from an earlier `vigil replay` (no replay)\n"
           "  --save-decisions FILE  keep the replay's decisions there (for --decisions)\n"
           "  --examples N           changed-decision examples kept per transition (default 5)\n"
           "  --quiet                no progress lines\n"
           "  -h, --help             this help\n\n"
           "docs/backtest.md describes the report.\n");
}

/* Parses DATE or RFC 3339; a plain date as --to means the end of that day. */
static int parse_when(const char *s, int end_of_day, int64_t *ms)
{
    int y;
    unsigned m, d;
    char tail;
    if (strlen(s) == 10 && sscanf(s, "%4d-%2u-%2u%c", &y, &m, &d, &tail) == 3) {
        char full[32];
        snprintf(full, sizeof(full), "%sT00:00:00Z", s);
        if (vg_time_parse(full, strlen(full), ms) != VG_OK)
            return -1;
        if (end_of_day)
            *ms += 86400000LL;
        return 0;
    }
    return vg_time_parse(s, strlen(s), ms) == VG_OK ? 0 : -1;
}

/* Runs `vigil replay` on the inputs into out; 0 on success. */
static int run_replay(const char *txns, const char *labels, const char *catalog, const char *out,
                      int quiet)
{
    char *argv[16];
    int n = 0;
    argv[n++] = "vigil";
    argv[n++] = "replay";
    argv[n++] = "--transactions";
    argv[n++] = (char *)txns;
    argv[n++] = "--labels";
    argv[n++] = (char *)labels;
    argv[n++] = "--catalog";
    argv[n++] = (char *)catalog;
    argv[n++] = "--out";
    argv[n++] = (char *)out;
    argv[n++] = "--reasons";
    argv[n++] = "0";
    if (quiet)
        argv[n++] = "--quiet";
    argv[n] = NULL;
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ);
    if (rc != 0) {
        vg_error("backtest", "cannot start the replay: %s", strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        vg_error("backtest", "the replay failed (see its messages above)");
        return -1;
    }
    return 0;
}

static int write_file(const char *path, const vg_buf_t *buf)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f) {
        vg_error("backtest", "cannot write %s", path);
        return -1;
    }
    int ok = fwrite(buf->data, 1, buf->len, f) == buf->len;
    ok &= f == stdout ? fflush(f) == 0 : fclose(f) == 0;
    if (!ok)
        vg_error("backtest", "writing %s failed", path);
    return ok ? 0 : -1;
}

/* Feeds every decision of path to bt, with a progress line on a terminal. */
static int judge(vg_backtest_t *bt, const char *path, int show)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        vg_error("backtest", "cannot open %s", path);
        return -1;
    }
    gzbuffer(gz, 1 << 18);
    FILE *probe = fopen(path, "rb");
    long size = 0;
    if (probe && fseek(probe, 0, SEEK_END) == 0)
        size = ftell(probe);
    if (probe)
        fclose(probe);
    vg_buf_t line;
    vg_buf_init(&line);
    char errbuf[VG_ERRLEN];
    uint64_t lineno = 0;
    int64_t t0 = vg_mono_ns(), last = 0;
    int status = 0;
    for (;;) {
        vg_buf_reset(&line);
        int got = 0;
        for (;;) {
            vg_buf_reserve(&line, 1 << 16);
            char *at = line.data + line.len;
            if (!gzgets(gz, at, (int)(line.cap - line.len)))
                break;
            got = 1;
            size_t k = strlen(at);
            line.len += k;
            if (k && at[k - 1] == '\n') {
                line.data[--line.len] = '\0';
                break;
            }
        }
        if (!got)
            break;
        lineno++;
        if (line.len == 0)
            continue;
        if (vg_backtest_add_decision(bt, line.data, line.len, errbuf, sizeof(errbuf)) != VG_OK) {
            vg_error("backtest", "%s:%llu: %s", path, (unsigned long long)lineno, errbuf);
            status = -1;
            break;
        }
        if (show && (lineno & 4095) == 0 && vg_mono_ns() - last > 250000000) {
            double secs = (double)(vg_mono_ns() - t0) / 1e9;
            double frac = size > 0 ? (double)gzoffset(gz) / (double)size : 0;
            fprintf(stderr, "\r  judging %llu decisions  %.0f/s  %3.0f%%   ",
                    (unsigned long long)lineno, secs > 0 ? (double)lineno / secs : 0,
                    frac > 1 ? 100 : frac * 100);
            last = vg_mono_ns();
        }
        if (vg_stop_requested()) {
            vg_warn("backtest", "interrupted");
            status = -1;
            break;
        }
    }
    if (show)
        fprintf(stderr, "\r  judged %llu decisions in %.1f s%20s\n", (unsigned long long)lineno,
                (double)(vg_mono_ns() - t0) / 1e9, "");
    if (!status && vg_backtest_finish(bt, errbuf, sizeof(errbuf)) != VG_OK) {
        vg_error("backtest", "%s", errbuf);
        status = -1;
    }
    vg_buf_free(&line);
    gzclose(gz);
    return status;
}

int vg_cmd_backtest(int argc, char **argv)
{
    static const struct option opts[] = {
        {"transactions", required_argument, NULL, 't'},
        {"labels", required_argument, NULL, 'l'},
        {"rules", required_argument, NULL, 'r'},
        {"model", required_argument, NULL, 'm'},
        {"baseline-rules", required_argument, NULL, 'R'},
        {"baseline-model", required_argument, NULL, 'M'},
        {"catalog", required_argument, NULL, 'c'},
        {"lists", required_argument, NULL, 'L'},
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 'T'},
        {"json", required_argument, NULL, 'j'},
        {"report", required_argument, NULL, 'o'},
        {"decisions", required_argument, NULL, 'd'},
        {"save-decisions", required_argument, NULL, 's'},
        {"examples", required_argument, NULL, 'e'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *txn_path = NULL, *label_path = NULL, *json_path = NULL, *html_path = NULL;
    const char *decisions_path = NULL, *save_path = NULL;
    int quiet = 0, opt;
    vg_backtest_opts_t bopts;
    vg_backtest_opts_default(&bopts);
    bopts.catalog_path = vg_shipped_path("features/default.conf");
    char *end;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 't':
            txn_path = optarg;
            break;
        case 'l':
            label_path = optarg;
            break;
        case 'r':
            bopts.rules_path[VG_BT_CANDIDATE] = optarg;
            break;
        case 'm':
            bopts.model_dir[VG_BT_CANDIDATE] = optarg;
            break;
        case 'R':
            bopts.rules_path[VG_BT_BASELINE] = optarg;
            break;
        case 'M':
            bopts.model_dir[VG_BT_BASELINE] = optarg;
            break;
        case 'c':
            bopts.catalog_path = optarg;
            break;
        case 'L':
            bopts.lists_dir = optarg;
            break;
        case 'f':
            if (parse_when(optarg, 0, &bopts.from_ms))
                return vg_cli_usage_error(
                    "backtest", "--from must be YYYY-MM-DD or RFC 3339, got '%s'", optarg);
            break;
        case 'T':
            if (parse_when(optarg, 1, &bopts.to_ms))
                return vg_cli_usage_error("backtest",
                                          "--to must be YYYY-MM-DD or RFC 3339, got '%s'", optarg);
            break;
        case 'j':
            json_path = optarg;
            break;
        case 'o':
            html_path = optarg;
            break;
        case 'd':
            decisions_path = optarg;
            break;
        case 's':
            save_path = optarg;
            break;
        case 'e': {
            long k = strtol(optarg, &end, 10);
            if (*end || k < 1 || k > 1000)
                return vg_cli_usage_error("backtest", "--examples must be 1..1000, got '%s'",
                                          optarg);
            bopts.examples_per_change = (size_t)k;
            break;
        }
        case 'q':
            quiet = 1;
            break;
        case 'h':
            help();
            return 0;
        default:
            return vg_cli_usage_error("backtest", "unknown option");
        }
    }
    if (optind < argc)
        return vg_cli_usage_error("backtest", "unexpected argument '%s'", argv[optind]);
    if (!label_path)
        return vg_cli_usage_error("backtest", "--labels is required");
    if (!txn_path && !decisions_path)
        return vg_cli_usage_error("backtest", "give --transactions FILE or --decisions FILE");
    if (decisions_path && save_path)
        return vg_cli_usage_error("backtest", "--save-decisions needs a replay, not --decisions");
    if (!bopts.rules_path[0] && !bopts.model_dir[0] && !bopts.rules_path[1] && !bopts.model_dir[1])
        return vg_cli_usage_error("backtest", "give --rules and/or --model to backtest");
    if (bopts.from_ms >= bopts.to_ms)
        return vg_cli_usage_error("backtest", "--from must be before --to");

    char errbuf[VG_ERRLEN * 8];
    vg_backtest_t *bt = vg_backtest_new(&bopts, errbuf, sizeof(errbuf));
    if (!bt) {
        fprintf(stderr, "vigil backtest: %s\n", errbuf);
        return 1;
    }
    int status = 1;
    char tmp[] = "/tmp/vigil-backtest-XXXXXX";
    int own_tmp = 0;
    if (vg_backtest_load_labels(bt, label_path, errbuf, sizeof(errbuf)) != VG_OK) {
        vg_error("backtest", "%s", errbuf);
        goto out;
    }
    vg_signals_install();
    int show = !quiet && isatty(2);
    if (!decisions_path) {
        if (save_path) {
            decisions_path = save_path;
        } else {
            int fd = mkstemp(tmp);
            if (fd < 0) {
                vg_error("backtest", "cannot create a temporary decisions file");
                goto out;
            }
            close(fd);
            own_tmp = 1;
            decisions_path = tmp;
        }
        if (show)
            fprintf(stderr, "backtest: replaying %s\n", txn_path);
        if (run_replay(txn_path, label_path, bopts.catalog_path, decisions_path, !show))
            goto out;
    }
    if (judge(bt, decisions_path, show))
        goto out;

    vg_buf_t buf;
    vg_buf_init(&buf);
    status = 0;
    if (!json_path || strcmp(json_path, "-") != 0) {
        vg_backtest_table(bt, &buf);
        status |= write_file("-", &buf);
    }
    if (json_path) {
        vg_buf_reset(&buf);
        vg_backtest_json(bt, &buf);
        vg_buf_putc(&buf, '\n');
        status |= write_file(json_path, &buf);
    }
    if (html_path) {
        vg_buf_reset(&buf);
        vg_backtest_html(bt, &buf);
        status |= write_file(html_path, &buf);
    }
    vg_buf_free(&buf);
    status = status ? 1 : 0;
out:
    if (own_tmp) {
        char dlq[sizeof(tmp) + 8];
        snprintf(dlq, sizeof(dlq), "%s.dlq", tmp);
        unlink(tmp);
        unlink(dlq);
    }
    vg_backtest_free(bt);
    return status;
}
