/*
 * cli.h - the `vigil` subcommands. Each takes the arguments after its name (argv[0] is the
 * command name), prints its own --help, and returns the process exit status: 0 on success,
 * 1 on failure, 2 on a usage error.
 */
#ifndef VG_CLI_H
#define VG_CLI_H

typedef struct vg_command {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} vg_command_t;

int vg_cmd_broker(int argc, char **argv);
int vg_cmd_simulate(int argc, char **argv);
int vg_cmd_rules(int argc, char **argv);
int vg_cmd_run(int argc, char **argv);
int vg_cmd_replay(int argc, char **argv);
int vg_cmd_backtest(int argc, char **argv);
int vg_cmd_train(int argc, char **argv);
int vg_cmd_eval(int argc, char **argv);
int vg_cmd_model(int argc, char **argv);
int vg_cmd_review(int argc, char **argv);

/* Prints "vigil CMD: message" and a hint to --help on stderr; returns 2 (usage error). */
int vg_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Installs SIGINT/SIGTERM handlers: the first signal sets the stop flag (finish what is in
 * hand, then exit cleanly), a second one exits at once with status 130.
 */
void vg_signals_install(void);
/* Non-zero once a stop was requested. Safe to poll from the processing loop. */
int vg_stop_requested(void);

#endif
