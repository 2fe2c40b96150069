/*
 * cmd_simulate.c - `vigil simulate`: generates labelled transactions (engine/sim.h) to
 * files, or produces them to Kafka at a chosen pace.
 *
 * Into Kafka, transactions go to `transactions` (key card_id) and labels to `labels` (key
 * txn_id), interleaved in simulated time: a label is produced once the transactions before
 * its ts have been. Pacing applies to transactions (--rate) or to the simulated clock
 * (--speedup, labels included); labels after the last transaction are produced at once.
 */
#include "engine/cli.h"
#include "engine/common.h"
#include "engine/kafka.h"
#include "engine/sim.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void help(void)
{
    printf(
        "usage: vigil simulate [OPTIONS] (--out DIR | --brokers ADDR)\n\n"
        "Generates card transactions and their fraud labels with the generative process of\n"
        "the Fraud Detection Handbook (Le Borgne et al., chapter 3), plus optional card-testing\n"
        "and account-takeover scenarios. The same options and seed give the same bytes.\n\n"
        "Process:\n"
        "  --customers N            customers (default 5000)\n"
        "  --terminals N            terminals (default 10000)\n"
        "  --days N                 days simulated (default 183)\n"
        "  --start DATE             first day, YYYY-MM-DD, UTC (default 2018-04-01)\n"
        "  --seed S                 random seed, unsigned 64-bit (default 1)\n"
        "  --radius R               a customer uses the terminals within R grid units\n"
        "                           (default 5)\n"
        "  --scenarios LIST         fraud scenarios, comma-separated: handbook, card_testing,\n"
        "                           account_takeover, all, none (default handbook)\n"
        "  --card-testing-rate R    card-testing incidents per day, Poisson mean (default 2)\n"
        "  --account-takeover-rate R  account takeovers per day, Poisson mean (default 1)\n"
        "  --label-delay DUR        a label's ts is the transaction's ts + DUR (default 7d)\n"
        "  --label-legit            also label every legitimate transaction (default: only\n"
        "                           frauds get a label)\n\n"
        "Output (one of them, or both):\n"
        "  --out DIR                write DIR/transactions.jsonl and DIR/labels.jsonl\n"
        "                           (DIR is created if missing)\n"
        "  --brokers ADDR           produce to the 'transactions' and 'labels' topics\n"
        "  --rate N                 with --brokers: N transactions per second\n"
        "                           (default: as fast as possible)\n"
        "  --speedup X              with --brokers: X times the simulated clock\n"
        "  --set KEY=VALUE          with --brokers: a librdkafka producer property\n"
        "                           (repeatable)\n"
        "  --log-level LEVEL        debug, info, warn or error (default info)\n"
        "  -h, --help               this help\n\n"
        "A summary (transactions, frauds per scenario, fraud rate, elapsed) goes to stderr;\n"
        "with --brokers, a progress line too, every second.\n");
}

enum {
    O_CUSTOMERS = 256,
    O_TERMINALS,
    O_DAYS,
    O_START,
    O_SEED,
    O_RADIUS,
    O_SCENARIOS,
    O_CT_RATE,
    O_ATO_RATE,
    O_DELAY,
    O_LABEL_LEGIT,
    O_OUT,
    O_BROKERS,
    O_RATE,
    O_SPEEDUP,
    O_SET,
    O_LOG_LEVEL,
};

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno || v < lo || v > hi)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !vg_stop_requested())
        ;
}

static void summary(const vg_sim_t *sim, double gen_s, double out_s, const char *what)
{
    vg_sim_stats_t st;
    vg_sim_stats(sim, &st);
    fprintf(stderr,
            "simulate: %llu transactions, %llu frauds (%.3f%%): amount %llu, "
            "compromised_terminal %llu, compromised_customer %llu, card_testing %llu, "
            "account_takeover %llu; %llu labels; %llu customers without terminals\n"
            "simulate: generated in %.2f s, %s in %.2f s\n",
            (unsigned long long)st.transactions, (unsigned long long)st.frauds,
            st.transactions ? 100.0 * (double)st.frauds / (double)st.transactions : 0.0,
            (unsigned long long)st.by_scenario[1], (unsigned long long)st.by_scenario[2],
            (unsigned long long)st.by_scenario[3], (unsigned long long)st.by_scenario[4],
            (unsigned long long)st.by_scenario[5], (unsigned long long)st.labels,
            (unsigned long long)st.customers_without_terminals, gen_s, what, out_s);
}

/* Produces the interleaved stream; returns the process status. */
static int produce(vg_sim_t *sim, const char *brokers, const vg_kprop_t *props, size_t nprops,
                   double rate, double speedup)
{
    char errbuf[VG_ERRLEN], key[32];
    vg_producer_t *producer = vg_producer_new(brokers, props, nprops, errbuf, sizeof(errbuf));
    if (!producer) {
        vg_error("simulate", "%s", errbuf);
        return 1;
    }
    int status = 1;
    vg_buf_t buf;
    vg_buf_init(&buf);
    size_t n = vg_sim_count(sim);
    int64_t first_ts = n ? vg_sim_txn(sim, 0)->ts_ms : 0;
    int64_t last_ts = n ? vg_sim_txn(sim, n - 1)->ts_ms : 0;
    uint64_t ntx = 0, nlab = 0, last_ntx = 0;
    int64_t t0 = vg_mono_ns(), last_progress = t0, first_send = 0, last_send = 0;
    vg_sim_event_t ev;
    vg_sim_rewind(sim);
    while (vg_sim_next(sim, &ev)) {
        if (vg_stop_requested()) {
            vg_warn("simulate", "stopped by signal after %llu transactions",
                    (unsigned long long)ntx);
            break;
        }
        int64_t due = 0;
        if (rate > 0 && !ev.is_label)
            due = t0 + (int64_t)((double)ntx * 1e9 / rate);
        else if (speedup > 0 && ev.ts_ms <= last_ts)
            due = t0 + (int64_t)((double)(ev.ts_ms - first_ts) * 1e6 / speedup);
        for (;;) {
            int64_t now = vg_mono_ns();
            if (now - last_progress >= 1000000000LL) {
                char ts[32];
                vg_time_format(ev.ts_ms, ts);
                fprintf(stderr,
                        "simulate: %llu/%zu transactions, %llu labels, %.0f txn/s, "
                        "simulated time %s\n",
                        (unsigned long long)ntx, n, (unsigned long long)nlab,
                        (double)(ntx - last_ntx) * 1e9 / (double)(now - last_progress), ts);
                last_progress = now;
                last_ntx = ntx;
            }
            if (due <= now || vg_stop_requested())
                break;
            int64_t wait = due - now;
            sleep_ns(wait > 100000000 ? 100000000 : wait);
        }
        vg_buf_reset(&buf);
        vg_err_t err;
        if (ev.is_label) {
            vg_sim_encode_label(sim, ev.txn, &buf);
            vg_sim_txn_id(ev.txn, key);
            err = vg_producer_send(producer, VG_TOPIC_LABELS, key, strlen(key), buf.data,
                                   buf.len - 1, errbuf, sizeof(errbuf));
            nlab++;
        } else {
            vg_sim_encode_txn(sim, ev.txn, &buf);
            vg_sim_card_id(vg_sim_txn(sim, ev.txn)->customer, key);
            err = vg_producer_send(producer, VG_TOPIC_TRANSACTIONS, key, strlen(key), buf.data,
                                   buf.len - 1, errbuf, sizeof(errbuf));
            last_send = vg_mono_ns();
            if (ntx++ == 0)
                first_send = last_send;
        }
        if (err) {
            vg_error("simulate", "%s", errbuf);
            goto out;
        }
    }
    if (vg_producer_flush(producer, 60000, errbuf, sizeof(errbuf))) {
        vg_error("simulate", "%s", errbuf);
        goto out;
    }
    double span = (double)(last_send - first_send) / 1e9;
    fprintf(stderr,
            "simulate: produced %llu transactions and %llu labels; %.0f txn/s between the "
            "first and the last transaction\n",
            (unsigned long long)ntx, (unsigned long long)nlab,
            ntx > 1 && span > 0 ? (double)(ntx - 1) / span : 0.0);
    status = vg_stop_requested() ? 130 : 0;
out:
    vg_buf_free(&buf);
    vg_producer_free(producer);
    return status;
}

int vg_cmd_simulate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"customers", required_argument, NULL, O_CUSTOMERS},
        {"terminals", required_argument, NULL, O_TERMINALS},
        {"days", required_argument, NULL, O_DAYS},
        {"start", required_argument, NULL, O_START},
        {"seed", required_argument, NULL, O_SEED},
        {"radius", required_argument, NULL, O_RADIUS},
        {"scenarios", required_argument, NULL, O_SCENARIOS},
        {"card-testing-rate", required_argument, NULL, O_CT_RATE},
        {"account-takeover-rate", required_argument, NULL, O_ATO_RATE},
        {"label-delay", required_argument, NULL, O_DELAY},
        {"label-legit", no_argument, NULL, O_LABEL_LEGIT},
        {"out", required_argument, NULL, O_OUT},
        {"brokers", required_argument, NULL, O_BROKERS},
        {"rate", required_argument, NULL, O_RATE},
        {"speedup", required_argument, NULL, O_SPEEDUP},
        {"set", required_argument, NULL, O_SET},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    vg_sim_opts_t so = vg_sim_opts_default();
    const char *out = NULL, *brokers = NULL;
    double rate = 0, speedup = 0;
    vg_kprop_t props[32];
    char *propbuf[32];
    size_t nprops = 0;
    char errbuf[VG_ERRLEN];
    vg_log_level_t level;
    int opt, status = 2;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case O_CUSTOMERS:
            if (parse_u32(optarg, 1, 10000000, &so.customers))
                return vg_cli_usage_error("simulate", "--customers must be 1..10000000, got '%s'",
                                          optarg);
            break;
        case O_TERMINALS:
            if (parse_u32(optarg, 1, 10000000, &so.terminals))
                return vg_cli_usage_error("simulate", "--terminals must be 1..10000000, got '%s'",
                                          optarg);
            break;
        case O_DAYS:
            if (parse_u32(optarg, 1, 65535, &so.days))
                return vg_cli_usage_error("simulate", "--days must be 1..65535, got '%s'", optarg);
            break;
        case O_START: {
            char tmp[64];
            int64_t ms;
            snprintf(tmp, sizeof(tmp), "%sT00:00:00Z", optarg);
            if (strlen(optarg) != 10 || vg_time_parse(tmp, strlen(tmp), &ms))
                return vg_cli_usage_error("simulate", "--start must be a date YYYY-MM-DD, got '%s'",
                                          optarg);
            so.start_ms = ms;
            break;
        }
        case O_SEED: {
            char *end;
            errno = 0;
            so.seed = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *optarg == '-' || *end != '\0' || errno)
                return vg_cli_usage_error(
                    "simulate", "--seed must be an unsigned 64-bit integer, got '%s'", optarg);
            break;
        }
        case O_RADIUS:
            if (parse_double(optarg, 1e-9, 200, &so.radius))
                return vg_cli_usage_error("simulate", "--radius must be in (0, 200], got '%s'",
                                          optarg);
            break;
        case O_SCENARIOS:
            if (vg_sim_parse_scenarios(optarg, &so.scenarios, errbuf, sizeof(errbuf)))
                return vg_cli_usage_error("simulate", "--scenarios: %s", errbuf);
            break;
        case O_CT_RATE:
            if (parse_double(optarg, 0, 1e6, &so.card_testing_rate))
                return vg_cli_usage_error(
                    "simulate", "--card-testing-rate must be a number in [0, 1e6], got '%s'",
                    optarg);
            break;
        case O_ATO_RATE:
            if (parse_double(optarg, 0, 1e6, &so.account_takeover_rate))
                return vg_cli_usage_error(
                    "simulate", "--account-takeover-rate must be a number in [0, 1e6], got '%s'",
                    optarg);
            break;
        case O_DELAY:
            if (strcmp(optarg, "0") == 0)
                so.label_delay_ms = 0;
            else if (vg_duration_parse(optarg, &so.label_delay_ms))
                return vg_cli_usage_error(
                    "simulate", "--label-delay must be a duration like 7d, 12h or 0, got '%s'",
                    optarg);
            break;
        case O_LABEL_LEGIT:
            so.label_legit = 1;
            break;
        case O_OUT:
            out = optarg;
            break;
        case O_BROKERS:
            brokers = optarg;
            break;
        case O_RATE:
            if (parse_double(optarg, 1e-3, 1e9, &rate))
                return vg_cli_usage_error("simulate", "--rate must be a positive number, got '%s'",
                                          optarg);
            break;
        case O_SPEEDUP:
            if (parse_double(optarg, 1e-3, 1e12, &speedup))
                return vg_cli_usage_error("simulate",
                                          "--speedup must be a positive number, got '%s'", optarg);
            break;
        case O_SET: {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return vg_cli_usage_error("simulate", "--set takes KEY=VALUE, got '%s'", optarg);
            if (nprops == VG_ARRAY_LEN(props))
                return vg_cli_usage_error("simulate", "at most %zu --set flags",
                                          VG_ARRAY_LEN(props));
            /* getopt's argv outlives this function's use of props: point into it */
            propbuf[nprops] = optarg;
            props[nprops].key = NULL;
            props[nprops].value = eq + 1;
            nprops++;
            break;
        }
        case O_LOG_LEVEL:
            if (vg_log_parse_level(optarg, &level))
                return vg_cli_usage_error(
                    "simulate", "--log-level must be debug, info, warn or error, got '%s'", optarg);
            vg_log_set_level(level);
            break;
        case 'h':
            help();
            return 0;
        default:
            return vg_cli_usage_error("simulate", "unknown option");
        }
    }
    if (optind < argc)
        return vg_cli_usage_error("simulate", "unexpected argument '%s'", argv[optind]);
    if (!out && !brokers)
        return vg_cli_usage_error("simulate", "give --out DIR or --brokers ADDR");
    if ((rate > 0 || speedup > 0 || nprops) && !brokers)
        return vg_cli_usage_error("simulate", "--rate, --speedup and --set need --brokers");
    if (rate > 0 && speedup > 0)
        return vg_cli_usage_error("simulate", "--rate and --speedup exclude each other");

    /* split KEY=VALUE copies so the keys are NUL-terminated */
    char *keys[32];
    for (size_t i = 0; i < nprops; i++) {
        size_t klen = (size_t)(props[i].value - 1 - propbuf[i]);
        keys[i] = vg_xmalloc(klen + 1);
        memcpy(keys[i], propbuf[i], klen);
        keys[i][klen] = '\0';
        props[i].key = keys[i];
    }

    vg_signals_install();
    int64_t t0 = vg_mono_ns();
    vg_sim_t *sim = vg_sim_new(&so, errbuf, sizeof(errbuf));
    if (!sim) {
        vg_error("simulate", "%s", errbuf);
        status = 1;
        goto out_keys;
    }
    int64_t t1 = vg_mono_ns();
    status = 0;
    if (out) {
        uint64_t bytes = 0;
        if (mkdir(out, 0777) != 0 && errno != EEXIST) {
            vg_error("simulate", "cannot create %s: %s", out, strerror(errno));
            status = 1;
        } else if (vg_sim_write_files(sim, out, &bytes, errbuf, sizeof(errbuf))) {
            vg_error("simulate", "%s", errbuf);
            status = 1;
        } else {
            char what[4200];
            snprintf(what, sizeof(what), "%.1f MB written to %s", (double)bytes / 1e6, out);
            summary(sim, (double)(t1 - t0) / 1e9, (double)(vg_mono_ns() - t1) / 1e9, what);
        }
    }
    if (status == 0 && brokers) {
        int64_t t2 = vg_mono_ns();
        status = produce(sim, brokers, props, nprops, rate, speedup);
        if (status == 0)
            summary(sim, (double)(t1 - t0) / 1e9, (double)(vg_mono_ns() - t2) / 1e9,
                    "produced to Kafka");
    }
    vg_sim_free(sim);
out_keys:
    for (size_t i = 0; i < nprops; i++)
        free(keys[i]);
    return status;
}
