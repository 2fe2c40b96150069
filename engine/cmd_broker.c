/*
 * cmd_broker.c - `vigil broker`: a local Kafka-protocol broker for development, tests and
 * demos. It is librdkafka's mock cluster: real wire protocol (produce, fetch, consumer
 * groups, transactions, read_committed), state in memory only, and each partition keeps
 * only its newest ~5 MB.
 */
#include "engine/cli.h"
#include "engine/common.h"
#include "engine/kafka.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const topics[] = {
    VG_TOPIC_TRANSACTIONS, VG_TOPIC_DECISIONS, VG_TOPIC_REVIEW, VG_TOPIC_LABELS, VG_TOPIC_DLQ,
    VG_TOPIC_CHANGELOG,
    /* topology repartition: the stage topics and stage changelogs of the entity types that
     * span card partitions in the shipped catalogues */
    VG_TOPIC_REPARTITION ".terminal_id", VG_TOPIC_REPARTITION ".merchant_id",
    VG_TOPIC_REPARTITION ".device_id", VG_TOPIC_REPARTITION ".ip",
    VG_TOPIC_CHANGELOG ".terminal_id", VG_TOPIC_CHANGELOG ".merchant_id",
    VG_TOPIC_CHANGELOG ".device_id", VG_TOPIC_CHANGELOG ".ip"};

static void help(void)
{
    printf("usage: vigil broker [OPTIONS]\n\n"
           "Starts a local Kafka-protocol broker (librdkafka's mock cluster) on 127.0.0.1,\n"
           "creates vigil's topics, prints the bootstrap address on stdout and runs until\n"
           "SIGINT or SIGTERM. For development, tests and demos: state is in memory only and\n"
           "each partition keeps only its newest ~5 MB.\n\n"
           "Options:\n"
           "  --brokers N            number of brokers (default 1)\n"
           "  --partitions N         partitions per topic (default 32)\n"
           "  --topic NAME           create another topic too (repeatable)\n"
           "  --bootstrap-file FILE  also write the bootstrap address to FILE\n"
           "  --log-level LEVEL      debug, info, warn or error (default info)\n"
           "  -h, --help             this help\n\n"
           "Topics created: transactions, decisions, review, labels, transactions.dlq,\n"
           "vigil.changelog.\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int vg_cmd_broker(int argc, char **argv)
{
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"partitions", required_argument, NULL, 'p'},
        {"topic", required_argument, NULL, 't'},
        {"bootstrap-file", required_argument, NULL, 'f'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int brokers = 1, partitions = 32, opt;
    const char *bootstrap_file = NULL;
    const char *extra[16];
    size_t nextra = 0;
    char errbuf[VG_ERRLEN];
    vg_log_level_t level;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'b':
            if (parse_int(optarg, 1, 16, &brokers))
                return vg_cli_usage_error("broker", "--brokers must be 1..16, got '%s'", optarg);
            break;
        case 'p':
            if (parse_int(optarg, 1, 1024, &partitions))
                return vg_cli_usage_error("broker", "--partitions must be 1..1024, got '%s'",
                                          optarg);
            break;
        case 't':
            if (nextra == VG_ARRAY_LEN(extra))
                return vg_cli_usage_error("broker", "at most %zu --topic flags",
                                          VG_ARRAY_LEN(extra));
            extra[nextra++] = optarg;
            break;
        case 'f':
            bootstrap_file = optarg;
            break;
        case 'l':
            if (vg_log_parse_level(optarg, &level))
                return vg_cli_usage_error("broker",
                                          "--log-level must be debug, info, warn or "
                                          "error, got '%s'",
                                          optarg);
            vg_log_set_level(level);
            break;
        case 'h':
            help();
            return 0;
        default:
            return vg_cli_usage_error("broker", "unknown option");
        }
    }
    if (optind < argc)
        return vg_cli_usage_error("broker", "unexpected argument '%s'", argv[optind]);

    vg_signals_install();
    vg_mock_t *mock = vg_mock_new(brokers, errbuf, sizeof(errbuf));
    if (!mock) {
        vg_error("broker", "%s", errbuf);
        return 1;
    }
    int status = 1;
    for (size_t i = 0; i < VG_ARRAY_LEN(topics) + nextra; i++) {
        const char *t = i < VG_ARRAY_LEN(topics) ? topics[i] : extra[i - VG_ARRAY_LEN(topics)];
        if (vg_mock_create_topic(mock, t, partitions, errbuf, sizeof(errbuf))) {
            vg_error("broker", "%s", errbuf);
            goto out;
        }
    }
    const char *bootstraps = vg_mock_bootstraps(mock);
    if (bootstrap_file) {
        /* Written to a temporary name and renamed, so a reader never sees half an address. */
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", bootstrap_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%s\n", bootstraps) < 0 || fclose(f) != 0 ||
            rename(tmp, bootstrap_file) != 0) {
            vg_error("broker", "cannot write %s", bootstrap_file);
            goto out;
        }
    }
    printf("%s\n", bootstraps);
    fflush(stdout);
    vg_info("broker",
            "listening on %s: %d broker(s), %d partitions per topic, topics %s, %s, %s, "
            "%s, %s, %s, and %s.* and %s.* for topology repartition",
            bootstraps, brokers, partitions, topics[0], topics[1], topics[2], topics[3], topics[4],
            topics[5], VG_TOPIC_REPARTITION, VG_TOPIC_CHANGELOG);
    while (!vg_stop_requested())
        usleep(100 * 1000);
    vg_info("broker", "stopping");
    status = 0;
out:
    if (bootstrap_file && status == 0)
        unlink(bootstrap_file);
    vg_mock_free(mock);
    return status;
}
