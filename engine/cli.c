/*
 * cli.c - helpers every subcommand shares: usage errors and signal handling.
 */
#include "engine/cli.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

int vg_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vigil %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'vigil %s --help'.\n", cmd);
    return 2;
}

static volatile sig_atomic_t stop_signals;

static void on_signal(int sig)
{
    if (stop_signals++ > 0)
        _exit(128 + sig);
}

void vg_signals_install(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int vg_stop_requested(void)
{
    return stop_signals > 0;
}
