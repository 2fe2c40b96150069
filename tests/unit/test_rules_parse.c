/*
 * test_rules_parse.c - the rule loader's diagnostics: for a corpus of bad rule files, the
 * exact "FILE:LINE:COL: message" lines; plus what a good file loads to (ids, actions,
 * shadow, score use, version) and where lists are looked for.
 */
#include "features/features.h"
#include "rules/rules.h"
#include "vg_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const features[] = {
    "card_count_10m",        "card_count_1h", "card_amount_mean_30d",
    "card_geo_velocity_kmh", "hour",          "night",
};

static char *dir; /* holds allowlist.txt */
static vg_schema_t schema;

static vg_rules_env_t env(void)
{
    vg_rules_env_t e = {features, VG_ARRAY_LEN(features), &schema, 1, dir};
    return e;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/* Loads src as "t.rules"; returns the error text ("" when it loaded). */
static const char *errors_of(const char *src)
{
    static char errbuf[4096];
    vg_rules_env_t e = env();
    vg_rules_t *rs = vg_rules_load_buffer("t.rules", src, strlen(src), &e, errbuf, sizeof(errbuf));
    if (rs) {
        vg_rules_free(rs);
        return "";
    }
    return errbuf;
}

static const struct {
    const char *src;
    const char *errors;
} bad[] = {
    /* names */
    {"block x if card_cnt_1h > 3\n",
     "t.rules:1:12: unknown feature card_cnt_1h (did you mean card_count_1h?)\n"},
    {"block x if zzzzqqq > 3\n", "t.rules:1:12: unknown feature zzzzqqq\n"},
    {"block x if chanel == \"pos\"\n",
     "t.rules:1:12: unknown feature chanel (did you mean channel?)\n"},
    {"review x if scor > 0.5\n", "t.rules:1:13: unknown feature scor (did you mean score?)\n"},
    /* tokens */
    {"block x if amount $ 3\n", "t.rules:1:19: unexpected character '$'\n"},
    {"block x if amount > $\n", "t.rules:1:21: unexpected character '$'\n"},
    {"block x if !night\n", "t.rules:1:12: unexpected character '!' (use 'not' or '!=')\n"},
    {"block x if channel == \"ecom\n", "t.rules:1:23: unterminated string\n"},
    {"block x if amount > 1.2.3\n", "t.rules:1:21: malformed number '1.2.3'\n"},
    {"block x if amount > 12abc\n", "t.rules:1:21: malformed number '12abc'\n"},
    {"block x if amount > 1e999\n", "t.rules:1:21: number out of range: 1e999\n"},
    {"block x if card_id in @\n", "t.rules:1:23: expected a list name after '@'\n"},
    /* rule structure */
    {"deny x if amount > 1\n",
     "t.rules:1:1: unknown action 'deny' (expected block, review or allow)\n"},
    {"42 block\n", "t.rules:1:1: expected an action (block, review or allow), found number 42\n"},
    {"block if amount > 1\n", "t.rules:1:7: expected a rule id after 'block', found 'if'\n"},
    {"block x amount > 3\n", "t.rules:1:9: expected 'if' after rule id 'x', found 'amount'\n"},
    {"review x shadow amount > 3\n",
     "t.rules:1:17: expected 'if' after rule id 'x', found 'amount'\n"},
    {"block x if\n", "t.rules:1:11: expected a condition after 'if', found end of line\n"},
    {"block x if amount > 1\nreview x if amount > 2\n",
     "t.rules:2:8: duplicate rule id 'x' (first defined at line 1)\n"},
    {"block x if amount > 1 night > 0\n",
     "t.rules:1:23: expected an operator or the end of the rule, found 'night'\n"},
    {"block x if amount >\n", "t.rules:1:20: expected a value, found end of line\n"},
    {"block x if amount > block\n", "t.rules:1:21: expected a value, found 'block'\n"},
    /* parentheses */
    {"block x if (amount > 3\n",
     "t.rules:1:12: unbalanced parentheses: this '(' is never closed\n"},
    {"block x if amount > 3)\n",
     "t.rules:1:22: unbalanced parentheses: this ')' has no matching '('\n"},
    {"block x if ()\n", "t.rules:1:13: expected a value before ')'\n"},
    {"block x if (amount > 3 night > 1)\n",
     "t.rules:1:24: expected ')' or an operator, found 'night'\n"},
    {"block x if 1 < amount < 3\n",
     "t.rules:1:23: comparisons do not chain: write 'a < b and b < c'\n"},
    /* types */
    {"block x if channel == 3\n",
     "t.rules:1:20: type mismatch: cannot compare string field channel with a number\n"},
    {"block x if 3 != country\n",
     "t.rules:1:14: type mismatch: cannot compare a number with string field country\n"},
    {"block x if channel > 3\n",
     "t.rules:1:20: type mismatch: '>' needs numbers, found string field channel\n"},
    {"block x if channel < \"b\"\n",
     "t.rules:1:20: type mismatch: '<' needs numbers, found string field channel\n"},
    {"block x if channel + 1 > 2\n",
     "t.rules:1:20: type mismatch: '+' needs numbers, found string field channel\n"},
    {"block x if -\"a\" < 1\n",
     "t.rules:1:12: type mismatch: '-' needs a number, found string \"a\"\n"},
    {"block x if amount * 2\n",
     "t.rules:1:12: type mismatch: a rule needs a condition, found a number\n"},
    {"block x if card_id\n",
     "t.rules:1:12: type mismatch: a rule needs a condition, found string field card_id\n"},
    {"block x if amount and night > 0\n",
     "t.rules:1:19: type mismatch: 'and' needs conditions, found a number\n"},
    {"block x if not amount\n",
     "t.rules:1:12: type mismatch: 'not' needs a condition, found a number\n"},
    {"block x if amount + (night > 0) > 1\n",
     "t.rules:1:19: type mismatch: '+' needs numbers, found a condition\n"},
    {"block x if (night > 0) == (hour > 1)\n",
     "t.rules:1:24: type mismatch: '==' needs numbers or strings, found a condition\n"},
    {"block x if amount in @allowlist\n",
     "t.rules:1:22: type mismatch: 'in' needs a string field on its left, found a number\n"},
    {"block x if card_id in allowlist\n",
     "t.rules:1:23: expected a list (@name) after 'in', found 'allowlist'\n"},
    /* lists */
    {"block x if card_id in @vip\n",
     "t.rules:1:23: cannot read list @vip: DIR/vip.txt: No such file or directory\n"},
    /* recovery: every error in the file, in order, one per rule */
    {"block a if card_cnt_1h > 3\n"
     "review b if amount >\n"
     "allow c if channel == \"pos\"\n"
     "block d if (amount > 1\n"
     "block e if night > 0 and ip in @vip or device_id in @vip\n"
     "block f if nigth > 0 and chanel == 1\n",
     "t.rules:1:12: unknown feature card_cnt_1h (did you mean card_count_1h?)\n"
     "t.rules:2:21: expected a value, found end of line\n"
     "t.rules:4:12: unbalanced parentheses: this '(' is never closed\n"
     "t.rules:5:32: cannot read list @vip: DIR/vip.txt: No such file or directory\n"
     "t.rules:6:12: unknown feature nigth (did you mean night?)\n"
     "t.rules:6:26: unknown feature chanel (did you mean channel?)\n"},
    /* a line that is not a rule after an error is skipped, not reported again */
    {"block a if (amount > 1 and\nnight > 0 night\nreview b if hour > 1 1\n",
     "t.rules:2:11: expected ')' or an operator, found 'night'\n"
     "t.rules:3:22: expected an operator or the end of the rule, found number 1\n"},
};

static void test_bad_files(void)
{
    for (size_t i = 0; i < VG_ARRAY_LEN(bad); i++) {
        /* The expected text names the list directory as DIR. */
        char expected[2048], *o = expected;
        for (const char *s = bad[i].errors; *s;) {
            if (strncmp(s, "DIR", 3) == 0) {
                o += sprintf(o, "%s", dir);
                s += 3;
            } else {
                *o++ = *s++;
            }
        }
        *o = '\0';
        const char *got = errors_of(bad[i].src);
        if (strcmp(got, expected) != 0)
            fprintf(stderr, "case %zu: %s", i, bad[i].src);
        VG_CHECK_STR(got, expected);
    }
}

static void test_nesting_limit(void)
{
    char src[512] = "block x if ";
    for (int i = 0; i < 70; i++)
        strcat(src, "(");
    strcat(src, "night > 0");
    for (int i = 0; i < 70; i++)
        strcat(src, ")");
    strcat(src, "\n");
    VG_CHECK_STR(errors_of(src),
                 "t.rules:1:76: condition nested too deeply (more than 64 levels)\n");
    /* 64 levels are fine */
    strcpy(src, "block x if ");
    for (int i = 0; i < 64; i++)
        strcat(src, "(");
    strcat(src, "night > 0");
    for (int i = 0; i < 64; i++)
        strcat(src, ")");
    VG_CHECK_STR(errors_of(src), "");
    /* a long flat chain is bounded too */
    size_t cap = 20000;
    char *big = malloc(cap);
    strcpy(big, "block x if night");
    for (int i = 0; i < 1500; i++)
        strcat(big, " + 1");
    strcat(big, " > 0\n");
    const char *got = errors_of(big);
    VG_CHECK(strstr(got, "condition too long (more than 1000 terms)") != NULL);
    free(big);
}

static void test_continuation(void)
{
    VG_CHECK_STR(errors_of("block a if (amount > 1 and\n  night > 0)\n"), "");
    VG_CHECK_STR(errors_of("block a if amount > 1 and\n  night > 0\n"), "");
    VG_CHECK_STR(errors_of("block a if amount > 1\n  and night > 0\n"),
                 "t.rules:2:3: expected an action (block, review or allow), found 'and'\n");
    VG_CHECK_STR(errors_of("block a if (amount > 1\n  and night > 0)\n"), "");
    VG_CHECK_STR(errors_of("# only comments\n\n   # and blanks\n"), "");
    VG_CHECK_STR(errors_of("block a if night > 0 # trailing comment\r\n"), "");
}

static void test_errbuf_whole_lines(void)
{
    const char *src = "block a if nope1 > 1\nblock b if nope2 > 1\n";
    char small[50];
    vg_rules_env_t e = env();
    vg_rules_t *rs = vg_rules_load_buffer("t.rules", src, strlen(src), &e, small, sizeof(small));
    VG_CHECK(rs == NULL);
    VG_CHECK_STR(small, "t.rules:1:12: unknown feature nope1\n");
    /* more than 50 errors: the rest are counted */
    char *many = malloc(60 * 32);
    many[0] = '\0';
    for (int i = 0; i < 60; i++)
        sprintf(many + strlen(many), "block r%d if nope > 1\n", i);
    char big[8192];
    rs = vg_rules_load_buffer("t.rules", many, strlen(many), &e, big, sizeof(big));
    VG_CHECK(rs == NULL);
    VG_CHECK(strstr(big, "t.rules:50:14: unknown feature nope\n") != NULL);
    VG_CHECK(strstr(big, "t.rules:51:") == NULL);
    VG_CHECK(strstr(big, "t.rules: 10 more errors not shown\n") != NULL);
    free(many);
}

static void test_good_file(void)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/good.rules", dir);
    write_file(path, "# a good file\n"
                     "block  card_testing  if card_count_10m >= 5\n"
                     "review model_high    if score > 0.6\n"
                     "review new_rule shadow if hour < 5 and night == 1\n"
                     "allow  vip           if card_id in @allowlist\n");
    vg_rules_env_t e = env();
    e.lists_dir = NULL; /* next to the rule file */
    char errbuf[1024] = "";
    vg_rules_t *rs = vg_rules_load(path, &e, errbuf, sizeof(errbuf));
    VG_CHECK(rs != NULL);
    VG_CHECK_STR(errbuf, "");
    if (!rs)
        return;
    VG_CHECK_INT(vg_rules_count(rs), 4);
    VG_CHECK_STR(vg_rules_id(rs, 0), "card_testing");
    VG_CHECK_STR(vg_rules_id(rs, 3), "vip");
    VG_CHECK_INT(vg_rules_action(rs, 0), VG_ACTION_BLOCK);
    VG_CHECK_INT(vg_rules_action(rs, 1), VG_ACTION_REVIEW);
    VG_CHECK_INT(vg_rules_action(rs, 3), VG_ACTION_ALLOW);
    VG_CHECK_INT(vg_rules_shadow(rs, 2), 1);
    VG_CHECK_INT(vg_rules_shadow(rs, 0), 0);
    VG_CHECK_INT(vg_rules_uses_score(rs, 1), 1);
    VG_CHECK_INT(vg_rules_uses_score(rs, 0), 0);
    VG_CHECK_INT(vg_rules_line(rs, 0), 2);
    VG_CHECK_INT(vg_rules_line(rs, 3), 5);
    VG_CHECK_INT(strlen(vg_rules_version(rs)), 16);
    char v1[17];
    snprintf(v1, sizeof(v1), "%s", vg_rules_version(rs));
    vg_rules_free(rs);

    /* Same bytes, same version; a changed list changes it. */
    rs = vg_rules_load(path, &e, errbuf, sizeof(errbuf));
    VG_CHECK_STR(vg_rules_version(rs), v1);
    vg_rules_free(rs);
    char lpath[4096];
    snprintf(lpath, sizeof(lpath), "%s/allowlist.txt", dir);
    write_file(lpath, "card-1\ncard-2\ncard-9\n");
    rs = vg_rules_load(path, &e, errbuf, sizeof(errbuf));
    VG_CHECK(rs && strcmp(vg_rules_version(rs), v1) != 0);
    vg_rules_free(rs);
    write_file(lpath, "# vip cards\ncard-1\n  card-2  \n\n");

    VG_CHECK(vg_rules_load("/nonexistent/x.rules", &e, errbuf, sizeof(errbuf)) == NULL);
    VG_CHECK_STR(errbuf, "/nonexistent/x.rules: No such file or directory\n");
    vg_rules_free(NULL);
}

static void test_action_names(void)
{
    VG_CHECK_STR(vg_action_name(VG_ACTION_ALLOW), "allow");
    VG_CHECK_STR(vg_action_name(VG_ACTION_REVIEW), "review");
    VG_CHECK_STR(vg_action_name(VG_ACTION_BLOCK), "block");
}

static void test_default_rules(void)
{
    /* rules/default.rules loads against the names it is written for. */
    /* The shipped rules against the shipped catalogue, as the engine loads them. */
    vg_schema_t cat_schema;
    vg_schema_init(&cat_schema);
    char cerr[VG_ERRLEN] = "";
    vg_catalog_t *cat =
        vg_catalog_load(VG_SOURCE_DIR "/features/default.conf", &cat_schema, cerr, sizeof(cerr));
    VG_CHECK_STR(cerr, "");
    if (!cat) {
        vg_schema_free(&cat_schema);
        return;
    }
    const char *catalog[64];
    size_t nfeat = vg_catalog_size(cat);
    for (size_t i = 0; i < nfeat && i < 64; i++)
        catalog[i] = vg_catalog_feature_name(cat, i);
    vg_rules_env_t e = {catalog, nfeat, &cat_schema, 0, NULL};
    char errbuf[4096] = "";
    vg_rules_t *rs =
        vg_rules_load(VG_SOURCE_DIR "/rules/default.rules", &e, errbuf, sizeof(errbuf));
    VG_CHECK_STR(errbuf, "");
    VG_CHECK(rs != NULL);
    if (rs)
        VG_CHECK(vg_rules_count(rs) >= 10);
    vg_rules_free(rs);
    vg_catalog_free(cat);
    vg_schema_free(&cat_schema);
}

int main(void)
{
    dir = vg_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof(path), "%s/allowlist.txt", dir);
    write_file(path, "# vip cards\ncard-1\n  card-2  \n\n");
    vg_schema_init(&schema);
    vg_schema_add(&schema, "ip_country");
    VG_RUN(test_bad_files);
    VG_RUN(test_nesting_limit);
    VG_RUN(test_continuation);
    VG_RUN(test_errbuf_whole_lines);
    VG_RUN(test_good_file);
    VG_RUN(test_action_names);
    VG_RUN(test_default_rules);
    vg_schema_free(&schema);
    snprintf(path, sizeof(path), "rm -rf '%s'", dir);
    if (system(path) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
    return vg_test_done();
}
