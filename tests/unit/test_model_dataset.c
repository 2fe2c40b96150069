/*
 * test_model_dataset.c - joining served decisions with labels: window, duplicates, labels
 * known only as of the training date, maturity, feature extraction by name, and the exact
 * messages for bad lines and windows.
 */
#include "models/dataset.h"
#include "vg_test.h"

#include <stdint.h>

static char *tmp;

static char *write_file(const char *name, const char *text)
{
    char *path = malloc(4200);
    snprintf(path, 4200, "%s/%s", tmp, name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    return path;
}

static int64_t at(const char *s)
{
    int64_t ms = 0;
    vg_time_parse(s, strlen(s), &ms);
    return ms;
}

static const char *decisions_text =
    "{\"txn_id\":\"t1\",\"ts\":\"2018-04-01T10:00:00Z\",\"card_id\":\"c1\",\"catalog\":\"cat-1\","
    "\"features\":{\"a\":1,\"b\":null}}\n"
    "{\"txn_id\":\"t2\",\"ts\":\"2018-04-02T10:00:00Z\",\"card_id\":\"c2\",\"features\":{\"a\":2,"
    "\"b\":3}}\n"
    "{\"txn_id\":\"t3\",\"ts\":\"2018-04-07T10:00:00Z\",\"card_id\":\"c1\",\"features\":{\"a\":3,"
    "\"b\":true}}\n"
    "\n"
    "{\"txn_id\":\"t4\",\"ts\":\"2018-04-09T00:00:00Z\",\"card_id\":\"c1\",\"features\":{\"a\":4,"
    "\"b\":4}}\n"
    "{\"txn_id\":\"t2\",\"ts\":\"2018-04-02T10:00:00Z\",\"card_id\":\"c2\",\"features\":{\"a\":5,"
    "\"b\":6}}\n"
    "{\"txn_id\":\"t5\",\"ts\":1522922400000,\"card_id\":\"c3\",\"features\":{\"a\":7}}\n";

static const char *labels_text =
    "{\"txn_id\":\"t1\",\"label\":\"fraud\",\"ts\":\"2018-04-03T00:00:00Z\",\"source\":\"analyst\"}"
    "\n"
    "{\"txn_id\":\"t2\",\"label\":\"legit\",\"ts\":\"2018-04-04T00:00:00Z\"}\n"
    "{\"txn_id\":\"t2\",\"label\":\"fraud\",\"ts\":\"2018-04-20T00:00:00Z\",\"source\":"
    "\"chargeback\"}\n"
    "{\"txn_id\":\"t5\",\"label\":\"fraud\",\"ts\":\"2018-04-30T00:00:00Z\"}\n";

static void test_training_join(void)
{
    char *dec = write_file("decisions.jsonl", decisions_text);
    char *lab = write_file("labels.jsonl", labels_text);
    char err[VG_ERRLEN] = "";
    vg_dataset_opts_t opts = {0};
    VG_CHECK_INT(
        vg_parse_window("2018-04-01..2018-04-08", &opts.from_ms, &opts.to_ms, err, sizeof(err)),
        VG_OK);
    VG_CHECK_INT(opts.from_ms, at("2018-04-01T00:00:00Z"));
    VG_CHECK_INT(opts.to_ms, at("2018-04-08T00:00:00Z"));
    opts.as_of_ms = at("2018-04-10T00:00:00Z");
    opts.maturity_ms = 3 * 86400000LL;
    vg_dataset_t ds;
    VG_CHECK_INT(vg_dataset_load(dec, lab, &opts, &ds, err, sizeof(err)), VG_OK);
    /* t4 is outside the window; t2's second decision replaces its first; t3 (2 days 14 h
     * before as_of, unlabelled) is immature; t5's label comes after as_of, so t5 (4 days 14 h
     * old) counts as matured legit; t2's chargeback comes after as_of, so its legit label
     * stands. Rows in first-seen order: t1, t2, t5. */
    VG_CHECK_INT(ds.nrows, 3);
    VG_CHECK_INT(ds.nfeatures, 2);
    VG_CHECK_STR(ds.features[0], "a");
    VG_CHECK_STR(ds.features[1], "b");
    VG_CHECK_STR(ds.catalog, "cat-1");
    VG_CHECK_INT(ds.decisions_read, 4);
    VG_CHECK_INT(ds.duplicates, 1);
    VG_CHECK_INT(ds.labelled_fraud, 1);
    VG_CHECK_INT(ds.labelled_legit, 1);
    VG_CHECK_INT(ds.matured_legit, 1);
    VG_CHECK_INT(ds.immature, 1);
    if (ds.nrows == 3) {
        const float want[3][2] = {{1, NAN}, {5, 6}, {7, NAN}};
        const float want_label[3] = {1, 0, 0};
        for (size_t r = 0; r < 3; r++) {
            VG_CHECK_NEAR(ds.rows[r * 2], want[r][0], 0);
            VG_CHECK_NEAR(ds.rows[r * 2 + 1], want[r][1], 0);
            VG_CHECK_NEAR(ds.labels[r], want_label[r], 0);
        }
        VG_CHECK(ds.card[0] != ds.card[1]);
        VG_CHECK_INT(ds.ts[2], at("2018-04-05T10:00:00Z"));
    }
    vg_dataset_free(&ds);

    /* Evaluation on ground truth: every label counts, the newest wins (t2's chargeback), and
     * nothing is immature. Columns chosen by name, in the caller's order. */
    const char *cols[3] = {"b", "a", "absent"};
    opts.as_of_ms = INT64_MAX;
    opts.features = cols;
    opts.nfeatures = 3;
    VG_CHECK_INT(vg_dataset_load(dec, lab, &opts, &ds, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(ds.nrows, 4);
    VG_CHECK_INT(ds.labelled_fraud, 3);
    VG_CHECK_INT(ds.matured_legit, 1);
    VG_CHECK_INT(ds.immature, 0);
    if (ds.nrows == 4) {
        VG_CHECK_NEAR(ds.labels[1], 1, 0);         /* t2 */
        VG_CHECK_NEAR(ds.rows[2 * 3 + 0], 1.0, 0); /* t3: b = true */
        VG_CHECK_NEAR(ds.rows[2 * 3 + 1], 3.0, 0); /* t3: a */
        VG_CHECK(isnan(ds.rows[2 * 3 + 2]));       /* absent */
    }
    vg_dataset_free(&ds);
    free(dec);
    free(lab);
}

static void test_bad_input(void)
{
    char err[VG_ERRLEN] = "", msg[9000];
    char *dec = write_file("bad.jsonl", "{\"txn_id\":\"t1\",\"ts\":\"2018-04-01T10:00:00Z\","
                                        "\"card_id\":\"c1\",\"features\":{\"a\":1}}\n"
                                        "{\"txn_id\":\"t2\",\"ts\":\"yesterday\"}\n");
    vg_dataset_opts_t opts = {.from_ms = 0, .to_ms = INT64_MAX, .as_of_ms = INT64_MAX};
    vg_dataset_t ds;
    VG_CHECK_INT(vg_dataset_load(dec, NULL, &opts, &ds, err, sizeof(err)), VG_ERR_INPUT);
    snprintf(msg, sizeof(msg), "%s:2: not a decision (needs txn_id, ts, card_id, features)", dec);
    VG_CHECK_STR(err, msg);
    char *lab = write_file("badlabels.jsonl", "{\"txn_id\":\"t1\",\"label\":\"maybe\",\"ts\":0}\n");
    VG_CHECK_INT(vg_dataset_load(dec, lab, &opts, &ds, err, sizeof(err)), VG_ERR_INPUT);
    snprintf(msg, sizeof(msg), "%s:1: not a label (needs txn_id, label fraud|legit, ts)", lab);
    VG_CHECK_STR(err, msg);
    int64_t from, to;
    VG_CHECK_INT(vg_parse_window("2018-04-08..2018-04-01", &from, &to, err, sizeof(err)),
                 VG_ERR_INPUT);
    VG_CHECK_STR(err, "window '2018-04-08..2018-04-01': expected FROM..TO with FROM before TO, "
                      "e.g. 2018-04-01..2018-04-08");
    VG_CHECK_INT(
        vg_parse_window("2018-04-01T06:00:00Z..2018-04-01T07:00:00Z", &from, &to, err, sizeof(err)),
        VG_OK);
    VG_CHECK_INT(to - from, 3600000);
    free(dec);
    free(lab);
}

/* The handbook's test set: cards already known compromised (a fraud since known_from whose
 * label was known by the start of the row's day) are left out; and decisions outside the
 * window are recognised by their top-level ts only. */
static void test_known_frauds_and_peek(void)
{
    char *dec = write_file(
        "known.jsonl",
        /* A: fraud on 04-01 10:00, label known 04-03 10:00. */
        "{\"txn_id\":\"k1\",\"ts\":\"2018-04-01T10:00:00Z\",\"card_id\":\"A\","
        "\"features\":{\"a\":1}}\n"
        /* A on 04-03: the label comes later that day, so the card is not known at 00:00. */
        "{\"txn_id\":\"k2\",\"ts\":\"2018-04-03T12:00:00Z\",\"card_id\":\"A\","
        "\"features\":{\"a\":2}}\n"
        /* A on 04-04: known since 04-03 10:00, before the day's start: left out. */
        "{\"txn_id\":\"k3\",\"ts\":\"2018-04-04T09:00:00Z\",\"card_id\":\"A\","
        "\"features\":{\"a\":3}}\n"
        /* B: a fraud before known_from does not count. */
        "{\"txn_id\":\"k4\",\"ts\":\"2018-03-25T10:00:00Z\",\"card_id\":\"B\","
        "\"features\":{\"a\":4}}\n"
        "{\"txn_id\":\"k5\",\"ts\":\"2018-04-04T10:00:00Z\",\"card_id\":\"B\","
        "\"features\":{\"a\":5}}\n"
        /* C: its own fraud, labelled the same day: kept, as fraud. */
        "{\"txn_id\":\"k6\",\"ts\":\"2018-04-05T08:00:00Z\",\"card_id\":\"C\","
        "\"features\":{\"a\":6}}\n"
        /* A nested ts out of the window before the top-level one: read fully, kept. */
        "{\"txn_id\":\"k7\",\"txn\":{\"ts\":\"2017-01-01T00:00:00Z\"},\"card_id\":\"D\","
        "\"ts\":\"2018-04-05T00:00:00Z\",\"features\":{\"a\":7}}\n"
        /* A string value \"ts\" and an escaped quote: not mistaken for the key. */
        "{\"txn_id\":\"ts\",\"note\":\"x\\\"ts\\\":1\",\"card_id\":\"E\","
        "\"ts\":1522886400000,\"features\":{\"a\":8}}\n"
        /* Outside the window: skipped on its ts alone, even though the rest is not JSON. */
        "{\"txn_id\":\"z\",\"ts\":\"2018-05-01T00:00:00Z\", this is not json\n");
    char *lab =
        write_file("known_labels.jsonl",
                   "{\"txn_id\":\"k1\",\"label\":\"fraud\",\"ts\":\"2018-04-03T10:00:00Z\"}\n"
                   "{\"txn_id\":\"k4\",\"label\":\"fraud\",\"ts\":\"2018-03-26T00:00:00Z\"}\n"
                   "{\"txn_id\":\"k6\",\"label\":\"fraud\",\"ts\":\"2018-04-05T09:00:00Z\"}\n");
    char err[VG_ERRLEN] = "";
    vg_dataset_opts_t opts = {.as_of_ms = INT64_MAX};
    VG_CHECK_INT(
        vg_parse_window("2018-04-03..2018-04-06", &opts.from_ms, &opts.to_ms, err, sizeof(err)),
        VG_OK);
    vg_dataset_t ds;
    /* Without the option: k2 k3 k5 k6 k7 ts. */
    VG_CHECK_INT(vg_dataset_load(dec, lab, &opts, &ds, err, sizeof(err)), VG_OK);
    VG_CHECK_STR(err, "");
    VG_CHECK_INT(ds.nrows, 6);
    VG_CHECK_INT(ds.known_dropped, 0);
    VG_CHECK_INT(ds.labelled_fraud, 1);
    vg_dataset_free(&ds);
    opts.drop_known_frauds = 1;
    opts.known_from_ms = at("2018-04-01T00:00:00Z");
    VG_CHECK_INT(vg_dataset_load(dec, lab, &opts, &ds, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(ds.nrows, 5);
    VG_CHECK_INT(ds.known_dropped, 1);
    VG_CHECK_INT(ds.labelled_fraud, 1);
    if (ds.nrows == 5) {
        const float want_a[5] = {2, 5, 6, 7, 8}, want_label[5] = {0, 0, 1, 0, 0};
        for (size_t r = 0; r < 5; r++) {
            VG_CHECK_NEAR(ds.rows[r], want_a[r], 0);
            VG_CHECK_NEAR(ds.labels[r], want_label[r], 0);
        }
    }
    vg_dataset_free(&ds);
    /* Counting frauds only from 04-02 on, A's fraud no longer counts. */
    opts.known_from_ms = at("2018-04-02T00:00:00Z");
    VG_CHECK_INT(vg_dataset_load(dec, lab, &opts, &ds, err, sizeof(err)), VG_OK);
    VG_CHECK_INT(ds.nrows, 6);
    VG_CHECK_INT(ds.known_dropped, 0);
    vg_dataset_free(&ds);
    free(dec);
    free(lab);
}

int main(void)
{
    tmp = vg_test_tmpdir();
    VG_RUN(test_training_join);
    VG_RUN(test_bad_input);
    VG_RUN(test_known_frauds_and_peek);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    free(tmp);
    return vg_test_done();
}
