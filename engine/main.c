/*
 * main.c - the `vigil` binary: dispatches to a subcommand.
 */
#include "engine/cli.h"
#include "engine/common.h"

#include <stdio.h>
#include <string.h>

static const vg_command_t commands[] = {
    {"broker", vg_cmd_broker, "start a local Kafka-protocol broker (librdkafka mock cluster)"},
    {"simulate", vg_cmd_simulate, "generate labelled transactions to files or Kafka"},
    {"run", vg_cmd_run, "the streaming engine: transactions in, decisions out, exactly once"},
    {"replay", vg_cmd_replay, "the same pipeline over historical logs, deterministic"},
    {"backtest", vg_cmd_backtest, "judge rules and models against labels over a replay"},
    {"rules", vg_cmd_rules, "check a rule file: vigil rules check FILE --catalog FILE"},
    {"train", vg_cmd_train, "train a model bundle from decisions and labels"},
    {"eval", vg_cmd_eval, "evaluate a model bundle on a window of decisions"},
    {"model", vg_cmd_model, "model registry: list, show, add, promote"},
    {"review", vg_cmd_review, "analyst service (web UI, JSON API) and its command-line client"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: vigil COMMAND [OPTIONS]\n\n"
                 "vigil is a real-time streaming fraud-detection engine.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < VG_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'vigil COMMAND --help' describes a command's options.\n"
                 "'vigil --version' prints the version.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("vigil %s\n", VG_VERSION);
        return 0;
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].main(argc - 1, argv + 1);
    fprintf(stderr, "vigil: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
