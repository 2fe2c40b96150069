/*
 * test_backtest.c - the backtest's figures on a hand-made set of eight decisions over two
 * days, two rule files and labels (one corrected by a later label, one ignored as older),
 * worked out by hand in the comments: per-rule hits and precision, both confusion
 * matrices, amounts, per-day counts, the change matrix and its examples; the --from/--to
 * window; HTML escaping; and the exact errors for records that do not fit the catalogue.
 */
#include "vg_test.h"

#include "engine/backtest.h"

#include <jansson.h>

static char *dir;
static char catalog[4096], base_rules[4096], cand_rules[4096];

static void write_file(char *path, const char *name, const char *text)
{
    snprintf(path, 4096, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/*
 * Baseline: block big if amount > 100; review fast if card_count_1h >= 3.
 * Candidate: block big if amount > 200; review fast if card_count_1h >= 2;
 *            review ecom (shadow) if channel == "ecom".
 *
 * row  day amount count channel  label   baseline       candidate
 * t1   1    50    0     pos      legit   allow          allow
 * t2   1   150    0     ecom     fraud   block (big)    allow (ecom*)
 * t3   1   250    2     pos      fraud   block (big)    block (big fast)
 * t4   1    20    3     pos      -       review (fast)  review (fast)
 * t5   2    30    2     ecom     fraud   allow          review (fast ecom*)
 * t6   2   120    1     pos      -       block (big)    allow
 * t7   2    10    null  pos      fraud   allow          allow
 * t8   2   300    5     pos      legit*  block (big fast) block (big fast)
 * (t8: fraud, then a later legit label: legit. t3: fraud, then an older legit: fraud.)
 */
static const char *decisions[] = {
    "{\"txn_id\":\"t1\",\"features\":{\"amount\":50,\"card_count_1h\":0},\"txn\":{\"txn_id\":"
    "\"t1\",\"ts\":\"2018-04-01T10:00:00Z\",\"card_id\":\"c1\",\"amount\":50,\"channel\":\"pos\"}}",
    "{\"txn_id\":\"t2\",\"features\":{\"amount\":150,\"card_count_1h\":0},\"txn\":{\"txn_id\":"
    "\"t2\",\"ts\":\"2018-04-01T11:00:00Z\",\"card_id\":\"c2\",\"amount\":150,\"channel\":"
    "\"ecom\",\"merchant_id\":\"m2\"}}",
    "{\"txn_id\":\"t3\",\"features\":{\"amount\":250,\"card_count_1h\":2},\"txn\":{\"txn_id\":"
    "\"t3\",\"ts\":\"2018-04-01T12:00:00Z\",\"card_id\":\"c3\",\"amount\":250,\"channel\":\"pos\"}"
    "}",
    "{\"txn_id\":\"t4\",\"features\":{\"amount\":20,\"card_count_1h\":3},\"txn\":{\"txn_id\":"
    "\"t4\",\"ts\":\"2018-04-01T13:00:00Z\",\"card_id\":\"c4\",\"amount\":20,\"channel\":\"pos\"}}",
    "{\"txn_id\":\"t5\",\"features\":{\"amount\":30,\"card_count_1h\":2},\"txn\":{\"txn_id\":"
    "\"t5\",\"ts\":\"2018-04-02T10:00:00Z\",\"card_id\":\"c5\",\"amount\":30,\"channel\":\"ecom\"}"
    "}",
    "{\"txn_id\":\"t6\",\"features\":{\"amount\":120,\"card_count_1h\":1},\"txn\":{\"txn_id\":"
    "\"t6\",\"ts\":\"2018-04-02T11:00:00Z\",\"card_id\":\"c6\",\"amount\":120,\"channel\":\"pos\","
    "\"merchant_id\":\"<script>alert('x')</script>\"}}",
    " { \"txn_id\" : \"t7\" , \"features\" : { \"amount\" : 10 , \"card_count_1h\" : null } , "
    "\"txn\":{\"txn_id\":\"t7\",\"ts\":\"2018-04-02T12:00:00Z\",\"card_id\":\"c7\",\"amount\":10,"
    "\"channel\":\"pos\"} } ",
    "{\"txn_id\":\"t8\",\"rules\":[{\"id\":\"x\"}],\"features\":{\"amount\":300,\"card_count_1h\":"
    "5},\"txn\":{\"txn_id\":\"t8\",\"ts\":\"2018-04-02T13:00:00Z\",\"card_id\":\"c8\",\"amount\":"
    "300,\"channel\":\"pos\"}}",
};

static const char *labels[] = {
    "{\"txn_id\":\"t1\",\"label\":\"legit\",\"ts\":\"2018-04-08T00:00:00Z\"}",
    "{\"txn_id\":\"t2\",\"label\":\"fraud\",\"ts\":\"2018-04-08T00:00:00Z\"}",
    "{\"txn_id\":\"t3\",\"label\":\"fraud\",\"ts\":\"2018-04-08T00:00:00Z\"}",
    "{\"txn_id\":\"t3\",\"label\":\"legit\",\"ts\":\"2018-04-05T00:00:00Z\"}",
    "{\"txn_id\":\"t5\",\"label\":\"fraud\",\"ts\":\"2018-04-09T00:00:00Z\"}",
    "{\"txn_id\":\"t7\",\"label\":\"fraud\",\"ts\":\"2018-04-09T00:00:00Z\"}",
    "{\"txn_id\":\"t8\",\"label\":\"fraud\",\"ts\":\"2018-04-10T00:00:00Z\"}",
    "{\"txn_id\":\"t8\",\"label\":\"legit\",\"ts\":\"2018-04-20T00:00:00Z\"}",
    "{\"txn_id\":\"t99\",\"label\":\"fraud\",\"ts\":\"2018-04-20T00:00:00Z\"}",
};

static vg_backtest_t *make(int64_t from, int64_t to, int both)
{
    vg_backtest_opts_t opts;
    vg_backtest_opts_default(&opts);
    opts.catalog_path = catalog;
    opts.rules_path[VG_BT_CANDIDATE] = cand_rules;
    if (both)
        opts.rules_path[VG_BT_BASELINE] = base_rules;
    opts.from_ms = from;
    opts.to_ms = to;
    char errbuf[VG_ERRLEN];
    vg_backtest_t *bt = vg_backtest_new(&opts, errbuf, sizeof(errbuf));
    if (!bt) {
        fprintf(stderr, "%s\n", errbuf);
        exit(2);
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(labels); i++)
        VG_CHECK_INT(
            vg_backtest_add_label(bt, labels[i], strlen(labels[i]), errbuf, sizeof(errbuf)), VG_OK);
    for (size_t i = 0; i < VG_ARRAY_LEN(decisions); i++) {
        vg_err_t err = vg_backtest_add_decision(bt, decisions[i], strlen(decisions[i]), errbuf,
                                                sizeof(errbuf));
        VG_CHECK_INT(err, VG_OK);
        if (err)
            fprintf(stderr, "decision %zu: %s\n", i, errbuf);
    }
    VG_CHECK_INT(vg_backtest_finish(bt, errbuf, sizeof(errbuf)), VG_OK);
    return bt;
}

static json_t *report_json(const vg_backtest_t *bt)
{
    vg_buf_t buf;
    vg_buf_init(&buf);
    vg_backtest_json(bt, &buf);
    json_error_t jerr;
    json_t *root = json_loadb(buf.data, buf.len, 0, &jerr);
    if (!root) {
        fprintf(stderr, "report is not JSON: %s\n%.*s\n", jerr.text, (int)buf.len, buf.data);
        exit(2);
    }
    vg_buf_free(&buf);
    return root;
}

static long long geti(json_t *obj, const char *path)
{
    /* path: keys separated by '.', array indices as numbers */
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", path);
    json_t *v = obj;
    for (char *tok = strtok(tmp, "."); tok && v; tok = strtok(NULL, "."))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
    if (!v) {
        fprintf(stderr, "no %s in the report\n", path);
        return -999999;
    }
    return json_is_integer(v) ? json_integer_value(v) : (long long)(json_number_value(v) * 1000);
}

static double getd(json_t *obj, const char *path)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", path);
    json_t *v = obj;
    for (char *tok = strtok(tmp, "."); tok && v; tok = strtok(NULL, "."))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
    return v && !json_is_null(v) ? json_number_value(v) : NAN;
}

static const char *gets_(json_t *obj, const char *path)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", path);
    json_t *v = obj;
    for (char *tok = strtok(tmp, "."); tok && v; tok = strtok(NULL, "."))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
    return v && json_is_string(v) ? json_string_value(v) : "(none)";
}

static void test_figures(void)
{
    vg_backtest_t *bt = make(INT64_MIN, INT64_MAX, 1);
    VG_CHECK_INT(vg_backtest_judged(bt), 8);
    VG_CHECK_INT(vg_backtest_skipped(bt), 0);
    json_t *r = report_json(bt);
    VG_CHECK_INT(geti(r, "transactions"), 8);
    VG_CHECK_INT(geti(r, "frauds"), 4);
    VG_CHECK_NEAR(getd(r, "fraud_amount"), 440, 0);
    VG_CHECK_INT(geti(r, "window.days"), 2);
    VG_CHECK_STR(gets_(r, "window.first"), "2018-04-01T10:00:00.000Z");

    /* baseline: allow t1 t5 t7, review t4, block t2 t3 t6 t8 */
    VG_CHECK_INT(geti(r, "sides.baseline.decisions.allow"), 3);
    VG_CHECK_INT(geti(r, "sides.baseline.decisions.review"), 1);
    VG_CHECK_INT(geti(r, "sides.baseline.decisions.block"), 4);
    VG_CHECK_INT(geti(r, "sides.baseline.flagged.tp"), 2); /* t2 t3 */
    VG_CHECK_INT(geti(r, "sides.baseline.flagged.fp"), 3); /* t4 t6 t8 */
    VG_CHECK_INT(geti(r, "sides.baseline.flagged.fn"), 2); /* t5 t7 */
    VG_CHECK_INT(geti(r, "sides.baseline.flagged.tn"), 1); /* t1 */
    VG_CHECK_NEAR(getd(r, "sides.baseline.flagged.precision"), 0.4, 1e-12);
    VG_CHECK_NEAR(getd(r, "sides.baseline.flagged.recall"), 0.5, 1e-12);
    VG_CHECK_INT(geti(r, "sides.baseline.blocked.tp"), 2);
    VG_CHECK_INT(geti(r, "sides.baseline.blocked.fp"), 2);
    VG_CHECK_INT(geti(r, "sides.baseline.blocked.fn"), 2);
    VG_CHECK_INT(geti(r, "sides.baseline.blocked.tn"), 2);
    VG_CHECK_NEAR(getd(r, "sides.baseline.fraud_amount_caught"), 400, 0);
    VG_CHECK_NEAR(getd(r, "sides.baseline.legit_amount_blocked"), 420, 0);
    VG_CHECK_NEAR(getd(r, "sides.baseline.reviews_per_day"), 0.5, 0);
    VG_CHECK_STR(gets_(r, "sides.baseline.rules.0.id"), "big");
    VG_CHECK_INT(geti(r, "sides.baseline.rules.0.hits"), 4);
    VG_CHECK_INT(geti(r, "sides.baseline.rules.0.fraud"), 2);
    VG_CHECK_INT(geti(r, "sides.baseline.rules.0.false_positives"), 2);
    VG_CHECK_NEAR(getd(r, "sides.baseline.rules.0.precision"), 0.5, 0);
    VG_CHECK_NEAR(getd(r, "sides.baseline.rules.0.fraud_amount"), 400, 0);
    VG_CHECK_NEAR(getd(r, "sides.baseline.rules.0.hits_per_day"), 2, 0);
    VG_CHECK_INT(geti(r, "sides.baseline.rules.1.hits"), 2); /* t4 t8 */
    VG_CHECK_INT(geti(r, "sides.baseline.rules.1.fraud"), 0);
    VG_CHECK_NEAR(getd(r, "sides.baseline.rules.1.precision"), 0, 0);

    /* candidate: allow t1 t2 t6 t7, review t4 t5, block t3 t8 */
    VG_CHECK_INT(geti(r, "sides.candidate.decisions.allow"), 4);
    VG_CHECK_INT(geti(r, "sides.candidate.decisions.review"), 2);
    VG_CHECK_INT(geti(r, "sides.candidate.decisions.block"), 2);
    VG_CHECK_INT(geti(r, "sides.candidate.flagged.tp"), 2); /* t3 t5 */
    VG_CHECK_INT(geti(r, "sides.candidate.flagged.fp"), 2); /* t4 t8 */
    VG_CHECK_INT(geti(r, "sides.candidate.flagged.fn"), 2); /* t2 t7 */
    VG_CHECK_INT(geti(r, "sides.candidate.flagged.tn"), 2); /* t1 t6 */
    VG_CHECK_INT(geti(r, "sides.candidate.blocked.tp"), 1);
    VG_CHECK_INT(geti(r, "sides.candidate.blocked.fp"), 1);
    VG_CHECK_INT(geti(r, "sides.candidate.blocked.fn"), 3);
    VG_CHECK_INT(geti(r, "sides.candidate.blocked.tn"), 3);
    VG_CHECK_NEAR(getd(r, "sides.candidate.blocked.precision"), 0.5, 0);
    VG_CHECK_NEAR(getd(r, "sides.candidate.blocked.recall"), 0.25, 0);
    VG_CHECK_NEAR(getd(r, "sides.candidate.fraud_amount_caught"), 280, 0);
    VG_CHECK_NEAR(getd(r, "sides.candidate.legit_amount_blocked"), 300, 0);
    VG_CHECK_INT(geti(r, "sides.candidate.rules.0.hits"), 2); /* big: t3 t8 */
    VG_CHECK_INT(geti(r, "sides.candidate.rules.0.fraud"), 1);
    VG_CHECK_INT(geti(r, "sides.candidate.rules.1.hits"), 4); /* fast: t3 t4 t5 t8 */
    VG_CHECK_INT(geti(r, "sides.candidate.rules.1.fraud"), 2);
    VG_CHECK_NEAR(getd(r, "sides.candidate.rules.1.recall"), 0.5, 0);
    VG_CHECK_STR(gets_(r, "sides.candidate.rules.2.id"), "ecom");
    VG_CHECK(json_is_true(json_object_get(
        json_array_get(
            json_object_get(json_object_get(json_object_get(r, "sides"), "candidate"), "rules"), 2),
        "shadow")));
    VG_CHECK_INT(geti(r, "sides.candidate.rules.2.hits"), 2); /* t2 t5, never acted on */
    VG_CHECK_INT(geti(r, "sides.candidate.rules.2.fraud"), 2);

    /* days */
    VG_CHECK_STR(gets_(r, "sides.baseline.daily.0.day"), "2018-04-01");
    VG_CHECK_INT(geti(r, "sides.baseline.daily.0.transactions"), 4);
    VG_CHECK_INT(geti(r, "sides.baseline.daily.0.frauds"), 2);
    VG_CHECK_INT(geti(r, "sides.baseline.daily.0.flagged"), 3);
    VG_CHECK_INT(geti(r, "sides.baseline.daily.0.flagged_fraud"), 2);
    VG_CHECK_INT(geti(r, "sides.baseline.daily.1.flagged"), 2);
    VG_CHECK_INT(geti(r, "sides.baseline.daily.1.flagged_fraud"), 0);
    VG_CHECK_INT(geti(r, "sides.candidate.daily.0.flagged"), 2);
    VG_CHECK_INT(geti(r, "sides.candidate.daily.0.flagged_fraud"), 1);
    VG_CHECK_INT(geti(r, "sides.candidate.daily.1.flagged"), 2);
    VG_CHECK_INT(geti(r, "sides.candidate.daily.1.flagged_fraud"), 1);
    VG_CHECK_INT(geti(r, "sides.candidate.daily.1.blocked"), 1);

    /* changes: t2 block->allow, t6 block->allow, t5 allow->review */
    VG_CHECK_INT(geti(r, "changed.total"), 3);
    json_t *tr = json_object_get(json_object_get(r, "changed"), "transitions");
    for (size_t i = 0; i < json_array_size(tr); i++) {
        json_t *t = json_array_get(tr, i);
        const char *from = json_string_value(json_object_get(t, "from"));
        const char *to = json_string_value(json_object_get(t, "to"));
        long long want = !strcmp(from, "block") && !strcmp(to, "allow")    ? 2
                         : !strcmp(from, "allow") && !strcmp(to, "review") ? 1
                                                                           : 0;
        VG_CHECK_INT(json_integer_value(json_object_get(t, "count")), want);
    }
    VG_CHECK_INT(json_array_size(tr), 6);
    /* examples in transition order (allow->review first), then record order */
    VG_CHECK_STR(gets_(r, "changed.examples.0.txn_id"), "t5");
    VG_CHECK_STR(gets_(r, "changed.examples.0.candidate_rules.0"), "fast");
    VG_CHECK_STR(gets_(r, "changed.examples.0.candidate_rules.1"), "ecom");
    VG_CHECK_STR(gets_(r, "changed.examples.1.txn_id"), "t2");
    VG_CHECK_STR(gets_(r, "changed.examples.1.baseline_rules.0"), "big");
    VG_CHECK_STR(gets_(r, "changed.examples.2.txn_id"), "t6");
    VG_CHECK_STR(gets_(r, "changed.examples.2.merchant_id"), "<script>alert('x')</script>");
    VG_CHECK_NEAR(getd(r, "changed.examples.2.amount"), 120, 0);
    json_decref(r);

    /* the HTML: the hostile merchant is escaped, nothing loads from outside */
    vg_buf_t html;
    vg_buf_init(&html);
    vg_backtest_html(bt, &html);
    VG_CHECK(strstr(html.data, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") != NULL);
    VG_CHECK(strstr(html.data, "<script") == NULL);
    VG_CHECK(strstr(html.data, "http") == NULL);
    VG_CHECK(strstr(html.data, "<svg") != NULL);
    vg_buf_free(&html);

    /* the table names the figures a reader looks for */
    vg_buf_t table;
    vg_buf_init(&table);
    vg_backtest_table(bt, &table);
    VG_CHECK(strstr(table.data, "== changed decisions: 3\n") != NULL);
    VG_CHECK(strstr(table.data, "  block  -> allow  2\n") != NULL);
    VG_CHECK(strstr(table.data, "decisions: allow 3, review 1 (12.50%, 0.5/day), block 4 "
                                "(50.00%, 2.0/day)\n") != NULL);
    vg_buf_free(&table);
    vg_backtest_free(bt);
}

static void test_window_and_one_side(void)
{
    int64_t from, to;
    vg_time_parse("2018-04-02T00:00:00Z", 20, &from);
    vg_time_parse("2018-04-02T12:00:00Z", 20, &to);
    vg_backtest_t *bt = make(from, to, 0);
    /* t5, t6 only (t7 at 12:00 is outside: to is exclusive) */
    VG_CHECK_INT(vg_backtest_judged(bt), 2);
    VG_CHECK_INT(vg_backtest_skipped(bt), 6);
    VG_CHECK(!vg_backtest_has_side(bt, VG_BT_BASELINE));
    json_t *r = report_json(bt);
    VG_CHECK(json_object_get(json_object_get(r, "sides"), "baseline") == NULL);
    VG_CHECK(json_is_null(json_object_get(r, "changed")));
    VG_CHECK_INT(geti(r, "frauds"), 1);
    VG_CHECK_INT(geti(r, "sides.candidate.flagged.tp"), 1);
    VG_CHECK_INT(geti(r, "sides.candidate.flagged.tn"), 1);
    VG_CHECK_INT(geti(r, "window.days"), 1);
    json_decref(r);
    vg_backtest_free(bt);
}

static void test_errors(void)
{
    vg_backtest_opts_t opts;
    vg_backtest_opts_default(&opts);
    opts.catalog_path = catalog;
    char errbuf[VG_ERRLEN];
    VG_CHECK(vg_backtest_new(&opts, errbuf, sizeof(errbuf)) == NULL);
    VG_CHECK_STR(errbuf, "nothing to backtest: give rules or a model");

    opts.rules_path[VG_BT_CANDIDATE] = cand_rules;
    vg_backtest_t *bt = vg_backtest_new(&opts, errbuf, sizeof(errbuf));
    VG_CHECK(bt != NULL);
    static const struct {
        const char *line, *error;
    } bad[] = {
        {"[1]", "not a JSON object"},
        {"{\"features\":{\"amount\":1,\"card_count_1h\":0}", "malformed JSON"},
        {"{\"txn\":{}}", "missing field features"},
        {"{\"features\":{\"amount\":1,\"card_count_1h\":0}}", "missing field txn"},
        {"{\"features\":{\"amount\":1,\"card_count_1h\":0},\"txn\":{\"ts\":1}}",
         "txn: missing field txn_id"},
        {"{\"features\":{\"card_count_1h\":0,\"amount\":1},\"txn\":{\"txn_id\":\"a\",\"ts\":1,"
         "\"card_id\":\"c\",\"amount\":1}}",
         "feature 1 is card_count_1h, the catalogue's is amount"},
        {"{\"features\":{\"amount\":1},\"txn\":{\"txn_id\":\"a\",\"ts\":1,\"card_id\":\"c\","
         "\"amount\":1}}",
         "1 features, the catalogue has 2"},
        {"{\"features\":{\"amount\":\"1\",\"card_count_1h\":0},\"txn\":{\"txn_id\":\"a\",\"ts\":1,"
         "\"card_id\":\"c\",\"amount\":1}}",
         "feature amount: not a number"},
        {"{\"catalog\":\"0123456789abcdef\",\"features\":{}}", NULL /* checked by prefix below */},
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(bad); i++) {
        VG_CHECK_INT(
            vg_backtest_add_decision(bt, bad[i].line, strlen(bad[i].line), errbuf, sizeof(errbuf)),
            VG_ERR_INPUT);
        if (bad[i].error)
            VG_CHECK_STR(errbuf, bad[i].error);
        else {
            const char *want = "decision made with catalogue \"0123456789abcdef\", the "
                               "backtest's is ";
            VG_CHECK(strncmp(errbuf, want, strlen(want)) == 0);
        }
    }
    VG_CHECK_INT(vg_backtest_add_label(bt, "{\"txn_id\":\"a\"}", 14, errbuf, sizeof(errbuf)),
                 VG_ERR_INPUT);
    VG_CHECK_INT(vg_backtest_judged(bt), 0);
    vg_backtest_free(bt);
    vg_backtest_free(NULL);
}

/* Every cut of a record, and every byte of it flipped to a quote or bracket, is rejected or
 * judged, never read out of bounds (the sanitizer build checks the reads). */
static void test_cut_records(void)
{
    vg_backtest_opts_t opts;
    vg_backtest_opts_default(&opts);
    opts.catalog_path = catalog;
    opts.rules_path[VG_BT_CANDIDATE] = cand_rules;
    char errbuf[VG_ERRLEN];
    vg_backtest_t *bt = vg_backtest_new(&opts, errbuf, sizeof(errbuf));
    const char *line = decisions[1];
    size_t len = strlen(line), rejected = 0, judged = 0;
    for (size_t cut = 0; cut < len; cut++) {
        char *copy = malloc(cut ? cut : 1); /* exactly cut bytes: no terminator to lean on */
        memcpy(copy, line, cut);
        vg_err_t err = vg_backtest_add_decision(bt, copy, cut, errbuf, sizeof(errbuf));
        rejected += err == VG_ERR_INPUT;
        free(copy);
    }
    VG_CHECK_INT(rejected, len); /* no proper prefix of a record is a record */
    static const char flips[] = "\"{}[],:\\";
    for (size_t i = 0; i < len; i++)
        for (const char *c = flips; *c; c++) {
            char *copy = malloc(len);
            memcpy(copy, line, len);
            copy[i] = *c;
            judged += vg_backtest_add_decision(bt, copy, len, errbuf, sizeof(errbuf)) == VG_OK;
            free(copy);
        }
    VG_CHECK_INT(vg_backtest_finish(bt, errbuf, sizeof(errbuf)), VG_OK);
    VG_CHECK_INT(vg_backtest_judged(bt), judged);
    vg_backtest_free(bt);
}

int main(void)
{
    dir = vg_test_tmpdir();
    write_file(catalog, "cat.conf", "amount = amount\ncard_count_1h = count by card_id over 1h\n");
    write_file(base_rules, "base.rules",
               "block  big  if amount > 100\nreview fast if card_count_1h >= 3\n");
    write_file(cand_rules, "cand.rules",
               "block  big  if amount > 200\nreview fast if card_count_1h >= 2\n"
               "review ecom shadow if channel == \"ecom\"\n");
    VG_RUN(test_figures);
    VG_RUN(test_window_and_one_side);
    VG_RUN(test_errors);
    VG_RUN(test_cut_records);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
    return vg_test_done();
}
