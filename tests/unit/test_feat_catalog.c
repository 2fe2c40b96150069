/*
 * test_feat_catalog.c - the catalogue parser: the shipped catalogues load, names and
 * fields resolve, default bucket widths are the documented ones, the version is the
 * content hash, and every parse error carries file, line and the exact message.
 */
#include "features/internal.h"
#include "vg_test.h"

static vg_catalog_t *parse(const char *text, char *eb, vg_schema_t *schema)
{
    eb[0] = '\0';
    return vg_catalog_parse("t.conf", text, strlen(text), schema, eb, VG_ERRLEN);
}

static void check_error(const char *text, const char *want)
{
    vg_schema_t schema;
    vg_schema_init(&schema);
    char eb[VG_ERRLEN];
    vg_catalog_t *c = parse(text, eb, &schema);
    VG_CHECK(c == NULL);
    VG_CHECK_STR(eb, want);
    vg_catalog_free(c);
    vg_schema_free(&schema);
}

static void test_errors(void)
{
    check_error("a = cnt by card_id over 1h\n", "t.conf:1: unknown aggregation 'cnt'");
    check_error("# x\n\na = count for card_id over 1h\n", "t.conf:3: expected 'by', got 'for'");
    check_error("a = count by card_id\n", "t.conf:1: expected 'over', got end of line");
    check_error("a = count by card_id over 1y\n",
                "t.conf:1: expected window duration (e.g. 10m, 1h, 7d), got '1y'");
    check_error("a count by card_id over 1h\n", "t.conf:1: expected '=', got 'count'");
    check_error("a =\n", "t.conf:1: expected aggregation, got end of line");
    check_error("1a = amount\n", "t.conf:1: expected feature name, got '1a'");
    check_error("a = amount by card_id\n",
                "t.conf:1: expected end of line, got 'by' (amount is a per-transaction feature)");
    check_error("a = amount\nb = night\na = hour\n",
                "t.conf:3: duplicate feature 'a' (first defined at line 1)");
    check_error("a = count by amount over 1h\n",
                "t.conf:1: field 'amount' cannot be used after 'by' (it is numeric)");
    check_error("a = distinct by card_id over 1h\n",
                "t.conf:1: expected field name after 'distinct', got 'by'");
    check_error("a = count by card_id over 1h within 2h\n",
                "t.conf:1: expected delay, bucket, where, including or end of line, got 'within'");
    check_error("a = count by card_id over 1h where channel ecom\n",
                "t.conf:1: expected '=' or '!=', got 'ecom'");
    check_error("a = count by card_id over 90m bucket 1h\n",
                "t.conf:1: window 90m is not a multiple of its bucket (3600000 ms)");
    check_error("a = since_last by card_id over 1d delay 1h\n",
                "t.conf:1: expected end of line, got 'delay' (since_last takes no options)");
    check_error("a = distinct merchant_id by card_id over 1d delay 1h\n",
                "t.conf:1: 'delay' applies to count, sum, mean, min, max, std, zscore and fraud "
                "features only");
    check_error("a = count by card_id over 1h including\n",
                "t.conf:1: expected 'current', got end of line");
    check_error("# nothing\n", "t.conf:1: no features defined");
}

static void test_resolution(void)
{
    vg_schema_t schema;
    vg_schema_init(&schema);
    char eb[VG_ERRLEN];
    const char *text = "x = count by card_id over 10m\n"
                       "y = sum by card_id over 1h\n"
                       "z = mean by card_id over 1d\n"
                       "w = max by card_id over 7d\n"
                       "v = min by card_id over 90m\n"
                       "u = distinct shop_zone by loyalty_id over 45s where channel != pos\n"
                       "s = fraud_share by terminal_id over 7d delay 7d\n";
    vg_catalog_t *c = parse(text, eb, &schema);
    VG_CHECK_STR(eb, "");
    if (!c)
        return;
    VG_CHECK_INT(vg_catalog_size(c), 7);
    VG_CHECK_STR(vg_catalog_feature_name(c, 5), "u");
    VG_CHECK_INT(vg_catalog_feature_index(c, "s"), 6);
    VG_CHECK_INT(vg_catalog_feature_index(c, "nope"), -1);
    VG_CHECK(vg_schema_field(&schema, "shop_zone") >= VG_F_NSTD);
    VG_CHECK(vg_schema_field(&schema, "loyalty_id") >= VG_F_NSTD);
    VG_CHECK_INT(vg_catalog_entity_types(c), 3);
    VG_CHECK_STR(vg_catalog_entity_name(c, 1), "loyalty_id");
    VG_CHECK_INT(vg_catalog_uses_labels(c), 1);
    /* default bucket widths (docs/features.md) */
    VG_CHECK_INT(c->features[0].bucket, 60000);
    VG_CHECK_INT(c->features[1].bucket, 300000);
    VG_CHECK_INT(c->features[2].bucket, 3600000);
    VG_CHECK_INT(c->features[3].bucket, 86400000);
    VG_CHECK_INT(c->features[4].bucket, 300000); /* 1h does not divide 90m: 5m */
    VG_CHECK_INT(c->features[5].bucket, 1000);
    VG_CHECK_INT(c->features[6].bucket, 86400000);
    VG_CHECK_INT(c->features[6].ndelay, 7);
    VG_CHECK_INT(c->features[6].nwin, 7);
    /* retention: longest window + delay per entity type */
    VG_CHECK_INT(c->types[0].retention, 7 * 86400000LL);
    VG_CHECK_INT(c->types[2].retention, 14 * 86400000LL);
    char version[17];
    vg_version_of(text, strlen(text), version);
    VG_CHECK_STR(vg_catalog_version(c), version);
    vg_catalog_free(c);
    vg_schema_free(&schema);
}

static void test_shipped(void)
{
    const char *src = getenv("VG_SOURCE_DIR");
    if (!src)
        src = VG_SOURCE_DIR;
    char path[4096];
    vg_schema_t schema;
    vg_schema_init(&schema);
    char eb[VG_ERRLEN] = "";

    snprintf(path, sizeof(path), "%s/features/handbook.conf", src);
    vg_catalog_t *h = vg_catalog_load(path, &schema, eb, sizeof(eb));
    VG_CHECK_STR(eb, "");
    VG_CHECK(h != NULL);
    if (h) {
        VG_CHECK_INT(vg_catalog_size(h), 15);
        VG_CHECK_STR(vg_catalog_feature_name(h, 3), "customer_id_nb_tx_1day_window");
        VG_CHECK_STR(vg_catalog_feature_name(h, 14), "terminal_id_risk_30day_window");
        VG_CHECK_INT(strlen(vg_catalog_version(h)), 16);
    }
    snprintf(path, sizeof(path), "%s/features/default.conf", src);
    vg_catalog_t *d = vg_catalog_load(path, &schema, eb, sizeof(eb));
    VG_CHECK_STR(eb, "");
    VG_CHECK(d != NULL);
    if (d) {
        VG_CHECK_INT(vg_catalog_size(d), 47);
        /* the names the default rules (DESIGN.md) refer to */
        VG_CHECK(vg_catalog_feature_index(d, "card_count_10m") >= 0);
        VG_CHECK(vg_catalog_feature_index(d, "card_amount_mean_10m") >= 0);
        VG_CHECK(vg_catalog_feature_index(d, "card_amount_mean_30d") >= 0);
        VG_CHECK(vg_catalog_feature_index(d, "card_labelled_fraud_30d") >= 0);
        VG_CHECK(vg_catalog_feature_index(d, "terminal_fraud_share_7d_delay7d") >= 0);
        VG_CHECK(vg_catalog_feature_index(d, "terminal_fraud_share_30d_delay7d") >= 0);
        VG_CHECK(vg_schema_field(&schema, "ip") == VG_F_IP);
    }
    VG_CHECK(h && d && strcmp(vg_catalog_version(h), vg_catalog_version(d)) != 0);
    snprintf(path, sizeof(path), "%s/features/nope.conf", src);
    VG_CHECK(vg_catalog_load(path, &schema, eb, sizeof(eb)) == NULL);
    VG_CHECK(strstr(eb, "nope.conf") != NULL);
    vg_catalog_free(h);
    vg_catalog_free(d);
    vg_catalog_free(NULL);
    vg_schema_free(&schema);
}

int main(void)
{
    VG_RUN(test_errors);
    VG_RUN(test_resolution);
    VG_RUN(test_shipped);
    return vg_test_done();
}
