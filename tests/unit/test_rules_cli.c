/*
 * test_rules_cli.c - `vigil rules check` as a user runs it: the exact output and exit
 * status for a good file (with the note about score rules), a bad file (every error), the
 * shipped rules/default.rules, and usage errors. Needs $VIGIL (set by ctest).
 */
#include "vg_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char *dir;

static void write_file(const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/* Runs `$VIGIL rules check ARGS` from dir; returns the exit status, output in out. */
static int run(const char *args, char *out, size_t outlen)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' rules check %s 2>&1", dir, getenv("VIGIL"), args);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_check(void)
{
    char out[8192];
    write_file("features.txt", "# the test catalogue\ncard_count_10m\n card_count_1h \n\nnight\n");
    write_file("allowlist.txt", "card-1\n");
    write_file("good.rules", "block a if card_count_10m >= 5\n"
                             "review b shadow if night == 1\n"
                             "review m if score > 0.6\n"
                             "allow vip if card_id in @allowlist\n");
    VG_CHECK_INT(run("good.rules --features features.txt", out, sizeof(out)), 0);
    VG_CHECK(strncmp(out, "ok: 4 rules (1 shadow)\nversion: ", 32) == 0);
    VG_CHECK(
        strstr(out, "\nnote: 1 rule uses score and is skipped without a model: m (line 3)\n") !=
        NULL);
    VG_CHECK_INT(run("good.rules --features features.txt --model", out, sizeof(out)), 0);
    VG_CHECK(strstr(out, "note:") == NULL);

    write_file("bad.rules", "block a if card_cnt_1h > 3\n"
                            "review b if channel > 2\n"
                            "allow c if card_id in @nope\n");
    VG_CHECK_INT(run("bad.rules --features features.txt", out, sizeof(out)), 1);
    char expected[1024];
    snprintf(expected, sizeof(expected),
             "bad.rules:1:12: unknown feature card_cnt_1h (did you mean card_count_1h?)\n"
             "bad.rules:2:21: type mismatch: '>' needs numbers, found string field channel\n"
             "bad.rules:3:23: cannot read list @nope: ./nope.txt: No such file or directory\n");
    VG_CHECK_STR(out, expected);

    /* --lists points elsewhere; --field adds a string field */
    write_file("f.rules", "block a if ip_country != country and card_id in @allowlist\n");
    VG_CHECK_INT(run("f.rules --features features.txt --field ip_country --lists /nonexistent", out,
                     sizeof(out)),
                 1);
    VG_CHECK_STR(out, "f.rules:1:49: cannot read list @allowlist: /nonexistent/allowlist.txt: "
                      "No such file or directory\n");
    VG_CHECK_INT(run("f.rules --features features.txt --field ip_country", out, sizeof(out)), 0);
}

static void test_default_rules(void)
{
    /* the shipped rules against the shipped catalogue, as the engine loads them */
    char out[8192], args[4096];
    snprintf(args, sizeof(args), "'%s/rules/default.rules' --catalog '%s/features/default.conf'",
             getenv("VG_SOURCE_DIR"), getenv("VG_SOURCE_DIR"));
    VG_CHECK_INT(run(args, out, sizeof(out)), 0);
    VG_CHECK(strncmp(out, "ok: 22 rules (3 shadow)\n", 24) == 0);
    VG_CHECK(strstr(out, "skipped without a model: model_high") != NULL);
}

static void test_usage(void)
{
    char out[8192];
    VG_CHECK_INT(run("good.rules", out, sizeof(out)), 2);
    VG_CHECK(strstr(out, "give exactly one of --features or --catalog") != NULL);
    VG_CHECK_INT(run("--features features.txt", out, sizeof(out)), 2);
    VG_CHECK(strstr(out, "expected one rule FILE") != NULL);
    VG_CHECK_INT(run("--help", out, sizeof(out)), 0);
    VG_CHECK(strstr(out, "usage: vigil rules check FILE") != NULL);
    VG_CHECK_INT(run("missing.rules --features features.txt", out, sizeof(out)), 1);
    VG_CHECK_STR(out, "missing.rules: No such file or directory\n");
}

int main(void)
{
    if (!getenv("VIGIL") || !getenv("VG_SOURCE_DIR")) {
        fprintf(stderr, "VIGIL and VG_SOURCE_DIR must be set (ctest sets them)\n");
        return 2;
    }
    dir = vg_test_tmpdir();
    VG_RUN(test_check);
    VG_RUN(test_default_rules);
    VG_RUN(test_usage);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
    return vg_test_done();
}
