/*
 * test_contract.c - the data contracts: every way a transaction or label can be wrong maps
 * to the exact reason the dead-letter topic carries, and every valid form decodes exactly.
 */
#include "engine/contract.h"
#include "tests/unit/vg_test.h"

#include <math.h>

static vg_schema_t schema;
static vg_arena_t arena;

/* Decodes s as a transaction and returns the reason, or "ok". */
static const char *txn_reason(const char *s, vg_txn_t *txn)
{
    static char reason[VG_ERRLEN];
    vg_txn_t tmp;
    vg_err_t err =
        vg_txn_decode(&schema, s, strlen(s), &arena, txn ? txn : &tmp, reason, sizeof(reason));
    if (err == VG_OK)
        return "ok";
    if (err != VG_ERR_INPUT)
        return "wrong error code";
    return reason;
}

static const char *label_reason(const char *s, vg_label_t *label)
{
    static char reason[VG_ERRLEN];
    vg_label_t tmp;
    vg_err_t err =
        vg_label_decode(s, strlen(s), &arena, label ? label : &tmp, reason, sizeof(reason));
    return err == VG_OK ? "ok" : reason;
}

static void test_valid_transaction(void)
{
    vg_txn_t t;
    const char *msg = "{\"txn_id\":\"t1\",\"ts\":\"2018-04-01T07:19:05.123Z\",\"card_id\":\"c9\","
                      "\"amount\":12.5,\"customer_id\":\"C1\",\"merchant_id\":\"M2\","
                      "\"terminal_id\":\"T3\",\"currency\":\"EUR\",\"mcc\":5411,\"country\":\"BE\","
                      "\"channel\":\"pos\",\"device_id\":null,\"ip\":\"10.0.0.1\",\"lat\":50.8,"
                      "\"lon\":4.35,\"extra\":{\"nested\":[1,2]}}";
    VG_CHECK_STR(txn_reason(msg, &t), "ok");
    VG_CHECK_STR(t.str[VG_F_TXN_ID], "t1");
    VG_CHECK_STR(t.str[VG_F_CARD_ID], "c9");
    VG_CHECK_INT(t.len[VG_F_CARD_ID], 2);
    VG_CHECK_STR(t.str[VG_F_CUSTOMER_ID], "C1");
    VG_CHECK_STR(t.str[VG_F_MERCHANT_ID], "M2");
    VG_CHECK_STR(t.str[VG_F_TERMINAL_ID], "T3");
    VG_CHECK_STR(t.str[VG_F_MCC], "5411"); /* a number is kept as its text */
    VG_CHECK_STR(t.str[VG_F_CHANNEL], "pos");
    VG_CHECK(t.str[VG_F_DEVICE_ID] == NULL); /* null optional = absent */
    VG_CHECK_INT(t.ts_ms, 1522567145123LL);
    VG_CHECK_NEAR(t.amount, 12.5, 0);
    VG_CHECK_NEAR(t.lat, 50.8, 0);
    VG_CHECK_NEAR(t.lon, 4.35, 0);
    VG_CHECK_INT(t.raw_len, strlen(msg));
    VG_CHECK(memcmp(t.raw, msg, t.raw_len) == 0);

    /* minimal: only the required fields; epoch milliseconds */
    VG_CHECK_STR(txn_reason("{\"txn_id\":\"a\",\"ts\":1522567145123,\"card_id\":\"c\","
                            "\"amount\":0}",
                            &t),
                 "ok");
    VG_CHECK_INT(t.ts_ms, 1522567145123LL);
    VG_CHECK(isnan(t.lat) && isnan(t.lon));
    VG_CHECK(t.str[VG_F_MERCHANT_ID] == NULL);
    VG_CHECK_NEAR(t.amount, 0, 0);
}

static void test_timestamps(void)
{
    vg_txn_t t;
    const struct {
        const char *ts;
        long long ms;
    } ok[] = {
        {"\"2018-04-01T00:00:00Z\"", 1522540800000LL},
        {"\"2018-04-01 00:00:00Z\"", 1522540800000LL},
        {"\"2018-04-01T02:00:00+02:00\"", 1522540800000LL},
        {"\"2018-03-31T23:30:00-00:30\"", 1522540800000LL},
        {"\"2018-04-01T00:00:00.5Z\"", 1522540800500LL},
        {"\"2018-04-01T00:00:00.123456789Z\"", 1522540800123LL},
        {"\"2020-02-29T12:00:00Z\"", 1582977600000LL},
        {"0", 0},
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(ok); i++) {
        char msg[256];
        snprintf(msg, sizeof(msg), "{\"txn_id\":\"a\",\"card_id\":\"c\",\"amount\":1,\"ts\":%s}",
                 ok[i].ts);
        VG_CHECK_STR(txn_reason(msg, &t), "ok");
        VG_CHECK_INT(t.ts_ms, ok[i].ms);
    }
    const struct {
        const char *ts, *reason;
    } bad[] = {
        {"\"yesterday\"",
         "ts must be an RFC 3339 string or integer epoch milliseconds, got \"yesterday\""},
        {"\"2018-04-01T00:00:00\"", /* no zone: ambiguous */
         "ts must be an RFC 3339 string or integer epoch milliseconds, got "
         "\"2018-04-01T00:00:00\""},
        {"\"2019-02-29T00:00:00Z\"", "ts must be an RFC 3339 string or integer epoch "
                                     "milliseconds, got \"2019-02-29T00:00:00Z\""},
        {"\"2018-13-01T00:00:00Z\"", "ts must be an RFC 3339 string or integer epoch "
                                     "milliseconds, got \"2018-13-01T00:00:00Z\""},
        {"\"2018-04-01T24:00:00Z\"", "ts must be an RFC 3339 string or integer epoch "
                                     "milliseconds, got \"2018-04-01T24:00:00Z\""},
        {"-5", "ts must be an RFC 3339 string or integer epoch milliseconds, got -5"},
        {"1.5", "ts must be an RFC 3339 string or integer epoch milliseconds, got 1.5"},
        {"null", "ts must be an RFC 3339 string or integer epoch milliseconds, got null"},
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(bad); i++) {
        char msg[256];
        snprintf(msg, sizeof(msg), "{\"txn_id\":\"a\",\"card_id\":\"c\",\"amount\":1,\"ts\":%s}",
                 bad[i].ts);
        VG_CHECK_STR(txn_reason(msg, NULL), bad[i].reason);
    }
}

static void test_bad_transactions(void)
{
    const struct {
        const char *msg, *reason;
    } cases[] = {
        {"{\"ts\":0,\"card_id\":\"c\",\"amount\":1}", "missing field txn_id"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"amount\":1}", "missing field card_id"},
        {"{\"txn_id\":\"a\",\"card_id\":\"c\",\"amount\":1}", "missing field ts"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\"}", "missing field amount"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":null,\"amount\":1}",
         "field card_id must be a string, got null null"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":42,\"amount\":1}",
         "field card_id must be a string, got number 42"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"\",\"amount\":1}",
         "field card_id must not be empty"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":\"12,5\"}",
         "amount must be a number >= 0, got \"12,5\""},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":-0.01}",
         "amount must be a number >= 0, got -0.01"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":null}",
         "amount must be a number >= 0, got null"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":NaN}",
         "invalid JSON at line 1 column 45, near 'NaN}'"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":Infinity}",
         "invalid JSON at line 1 column 45, near 'Infinity}'"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":1e400}",
         "amount must be a number >= 0, got an out-of-range number"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":1,\"channel\":[\"pos\"]}",
         "field channel must be a string, got array [\"pos\"]"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":1,\"lat\":91,\"lon\":0}",
         "lat must be a number in [-90, 90], got 91"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":1,\"lat\":1}",
         "lat and lon must be given together"},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":1,\"card_id\":\"d\"}",
         "duplicate key \"card_id\""},
        {"{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":1",
         "invalid JSON at line 1 column 45, near '1'"},
        {"", "invalid JSON at line 1 column 1: unexpected end of message"},
        {"[1,2]", "message must be a JSON object, got array"},
        {"\"just a string\"", "message must be a JSON object, got string"},
        {"{\"txn_id\":\"a\\u0000b\",\"ts\":0,\"card_id\":\"c\",\"amount\":1}",
         "message contains \\u0000 at offset 12"},
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++)
        VG_CHECK_STR(txn_reason(cases[i].msg, NULL), cases[i].reason);
}

static void test_non_utf8_and_nesting(void)
{
    vg_txn_t t;
    char reason[VG_ERRLEN];
    /* 0xff is never valid UTF-8 */
    VG_CHECK_STR(txn_reason("{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\xff\",\"amount\":1}", NULL),
                 "message is not valid UTF-8 (byte 0xff at offset 33)");
    /* Deep nesting in an ignored field: rejected by the parser's depth limit, not a crash. */
    size_t depth = 5000;
    vg_buf_t b;
    vg_buf_init(&b);
    vg_buf_puts(&b, "{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":1,\"x\":");
    for (size_t i = 0; i < depth; i++)
        vg_buf_putc(&b, '[');
    for (size_t i = 0; i < depth; i++)
        vg_buf_putc(&b, ']');
    vg_buf_putc(&b, '}');
    const char *r = txn_reason(b.data, NULL);
    VG_CHECK_STR(r, "message nests deeper than 64 levels");
    /* a raw NUL byte, and an overlong encoding of '/' */
    VG_CHECK_INT(vg_txn_decode(&schema, "{\"a\":\"\0\"}", 9, &arena, &t, reason, sizeof(reason)),
                 VG_ERR_INPUT);
    VG_CHECK_STR(reason, "message contains a NUL byte at offset 6");
    VG_CHECK_STR(txn_reason("{\"txn_id\":\"\xc0\xaf\"}", NULL),
                 "message is not valid UTF-8 (byte 0xc0 at offset 11)");
    /* brackets inside strings do not count as nesting */
    VG_CHECK_STR(txn_reason("{\"txn_id\":\"[[[[\",\"ts\":0,\"card_id\":\"\u00e9\u20ac\","
                            "\"amount\":1}",
                            &t),
                 "ok");
    VG_CHECK_STR(t.str[VG_F_CARD_ID], "\xc3\xa9\xe2\x82\xac");
    /* Moderate nesting in an unknown field is kept, not an error. */
    VG_CHECK_STR(txn_reason("{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":1,"
                            "\"x\":[[[[{\"y\":[1]}]]]]}",
                            NULL),
                 "ok");
    vg_buf_free(&b);
}

static void test_large_messages(void)
{
    vg_buf_t b;
    vg_buf_init(&b);
    const char *head = "{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":1,\"pad\":\"";
    vg_buf_puts(&b, head);
    size_t pad = VG_MAX_MESSAGE - strlen(head) - 2;
    for (size_t i = 0; i < pad; i++)
        vg_buf_putc(&b, 'x');
    vg_buf_puts(&b, "\"}");
    VG_CHECK_INT(b.len, VG_MAX_MESSAGE);
    VG_CHECK_STR(txn_reason(b.data, NULL), "ok"); /* exactly 1 MiB is accepted */
    b.len -= 2;
    vg_buf_puts(&b, "x\"}");
    VG_CHECK_STR(txn_reason(b.data, NULL), "message too large: 1048577 bytes > 1048576");
    vg_buf_free(&b);
}

static void test_schema(void)
{
    vg_schema_t s;
    vg_schema_init(&s);
    VG_CHECK_INT(vg_schema_field(&s, "card_id"), VG_F_CARD_ID);
    VG_CHECK_INT(vg_schema_field(&s, "ip"), VG_F_IP);
    VG_CHECK_INT(vg_schema_field(&s, "email"), -1);
    int email = vg_schema_add(&s, "email");
    VG_CHECK_INT(email, VG_F_NSTD);
    VG_CHECK_INT(vg_schema_add(&s, "email"), email);
    VG_CHECK_INT(vg_schema_add(&s, "amount"), -1);
    vg_txn_t t;
    vg_arena_t a;
    vg_arena_init(&a, 0);
    char reason[VG_ERRLEN];
    const char *m = "{\"txn_id\":\"a\",\"ts\":0,\"card_id\":\"c\",\"amount\":1,\"email\":\"x@y\"}";
    VG_CHECK_INT(vg_txn_decode(&s, m, strlen(m), &a, &t, reason, sizeof(reason)), VG_OK);
    VG_CHECK_STR(t.str[email], "x@y");
    vg_arena_free(&a);
    vg_schema_free(&s);
}

static void test_labels(void)
{
    vg_label_t l;
    VG_CHECK_STR(label_reason("{\"txn_id\":\"t1\",\"label\":\"fraud\",\"ts\":"
                              "\"2018-04-08T00:00:00Z\",\"source\":\"analyst\",\"analyst\":\"ana\","
                              "\"note\":\"called the customer\"}",
                              &l),
                 "ok");
    VG_CHECK_STR(l.txn_id, "t1");
    VG_CHECK_INT(l.fraud, 1);
    VG_CHECK_INT(l.ts_ms, 1523145600000LL);
    VG_CHECK_STR(l.source, "analyst");
    VG_CHECK_STR(l.analyst, "ana");
    VG_CHECK_STR(l.note, "called the customer");
    VG_CHECK_STR(label_reason("{\"txn_id\":\"t1\",\"label\":\"legit\",\"ts\":5}", &l), "ok");
    VG_CHECK_INT(l.fraud, 0);
    VG_CHECK(l.source == NULL);
    VG_CHECK_STR(label_reason("{\"txn_id\":\"t1\",\"label\":\"maybe\",\"ts\":5}", NULL),
                 "label must be \"fraud\" or \"legit\", got \"maybe\"");
    VG_CHECK_STR(label_reason("{\"label\":\"fraud\",\"ts\":5}", NULL), "missing field txn_id");
    VG_CHECK_STR(label_reason("{\"txn_id\":\"t1\",\"ts\":5}", NULL), "missing field label");
    VG_CHECK_STR(label_reason("{\"txn_id\":\"t1\",\"label\":\"fraud\"}", NULL), "missing field ts");
}

static void test_time_helpers(void)
{
    char out[32];
    vg_time_format(1522567145123LL, out);
    VG_CHECK_STR(out, "2018-04-01T07:19:05.123Z");
    vg_time_format(0, out);
    VG_CHECK_STR(out, "1970-01-01T00:00:00.000Z");
    int64_t ms;
    VG_CHECK_INT(vg_duration_parse("10m", &ms), VG_OK);
    VG_CHECK_INT(ms, 600000);
    VG_CHECK_INT(vg_duration_parse("7d", &ms), VG_OK);
    VG_CHECK_INT(ms, 604800000);
    VG_CHECK_INT(vg_duration_parse("250ms", &ms), VG_OK);
    VG_CHECK_INT(ms, 250);
    VG_CHECK_INT(vg_duration_parse("1.5h", &ms), VG_OK);
    VG_CHECK_INT(ms, 5400000);
    VG_CHECK_INT(vg_duration_parse("5x", &ms), VG_ERR_INPUT);
    VG_CHECK_INT(vg_duration_parse("-1d", &ms), VG_ERR_INPUT);
    VG_CHECK_INT(vg_duration_parse("0", &ms), VG_OK);
    VG_CHECK_INT((int)ms, 0);
    VG_CHECK_INT(vg_duration_parse("0.1ms", &ms), VG_ERR_INPUT);
    /* every day from 1900 to 2200 round-trips through civil dates */
    int bad = 0;
    for (int64_t d = vg_days_from_civil(1900, 1, 1); d < vg_days_from_civil(2200, 1, 1); d++) {
        int y;
        unsigned m, dd;
        vg_civil_from_days(d, &y, &m, &dd);
        bad += vg_days_from_civil(y, m, dd) != d;
    }
    VG_CHECK_INT(bad, 0);
}

static void test_json_encoding(void)
{
    vg_buf_t b;
    vg_buf_init(&b);
    vg_buf_json_str(&b, "a\"b\\c\n<script>&\x01", 16);
    VG_CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u003cscript\\u003e\\u0026\\u0001\"");
    vg_buf_reset(&b);
    vg_buf_json_num(&b, 0.1);
    vg_buf_putc(&b, ',');
    vg_buf_json_num(&b, 42);
    vg_buf_putc(&b, ',');
    vg_buf_json_num(&b, NAN);
    vg_buf_putc(&b, ',');
    vg_buf_json_num(&b, 1.0 / 3.0);
    VG_CHECK_STR(b.data, "0.1,42,null,0.33333333333333331");
    vg_buf_free(&b);
}

/* Every finite double printed by vg_buf_json_num reads back to itself (strtod), over values
 * shaped like features: amounts in cents, logs, means, scores, tiny and huge magnitudes, raw
 * bits; and its digits are printf's: "%.15g", or "%.17g" when that does not read back (in
 * printf's notation, except plain decimals from 1e-5 to 1e-4, where printf has an exponent).
 */
static void test_json_numbers_round_trip(void)
{
    vg_buf_t b;
    vg_buf_init(&b);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    long bad = 0, unlike = 0, n = 280000;
    for (long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double u = (double)(x >> 11) / 9007199254740992.0, v;
        switch (i % 7) {
        case 0:
            v = (double)(x % 10000000) / 100.0;
            break;
        case 1:
            v = log(1.5 + u * 1e5);
            break;
        case 2:
            v = (u - 0.5) * pow(10, (double)(x % 40) - 18);
            break;
        case 3:
            v = (double)(x % 100000) / 7.0;
            break;
        case 4:
            v = u * 1e-6;
            break;
        case 5:
            v = u * pow(10, -(double)(x % 14));
            break;
        default:
            memcpy(&v, &x, sizeof(v));
            if (!isfinite(v))
                v = u;
        }
        vg_buf_reset(&b);
        vg_buf_json_num(&b, v);
        vg_buf_putc(&b, '\0');
        bad += strtod(b.data, NULL) != v;
        char ref[40];
        snprintf(ref, sizeof(ref), "%.15g", v);
        if (strtod(ref, NULL) != v)
            snprintf(ref, sizeof(ref), "%.17g", v);
        double a = fabs(v);
        if (a < 1e-5 || a >= 1e-4 || !strchr(ref, 'e'))
            unlike += strcmp(b.data, ref) != 0;
    }
    VG_CHECK_INT(bad, 0);
    VG_CHECK_INT(unlike, 0);
    vg_buf_free(&b);
}

static void test_peek_ts(void)
{
    int64_t ms = 0;
    const char *a = "{\"x\":{\"ts\":5},\"note\":\"\\\"ts\\\":7\",\"ts\" : 1522540800000}";
    VG_CHECK_INT(vg_peek_ts(a, strlen(a), &ms), VG_OK);
    VG_CHECK_INT(ms, 1522540800000LL);
    const char *b = "{\"ts\":\"2018-04-01T00:00:01Z\",\"card_id\":\"c\"}";
    VG_CHECK_INT(vg_peek_ts(b, strlen(b), &ms), VG_OK);
    VG_CHECK_INT(ms, 1522540801000LL);
    const char *c = "{\"a\":\"ts\",\"b\":[\"ts\"]}";
    VG_CHECK_INT(vg_peek_ts(c, strlen(c), &ms), VG_ERR_INPUT);
    const char *d = "{\"ts\":\"soon\"}";
    VG_CHECK_INT(vg_peek_ts(d, strlen(d), &ms), VG_ERR_INPUT);
}

int main(void)
{
    vg_schema_init(&schema);
    vg_arena_init(&arena, 0);
    VG_RUN(test_valid_transaction);
    VG_RUN(test_timestamps);
    VG_RUN(test_bad_transactions);
    VG_RUN(test_non_utf8_and_nesting);
    VG_RUN(test_large_messages);
    VG_RUN(test_schema);
    VG_RUN(test_labels);
    VG_RUN(test_time_helpers);
    VG_RUN(test_json_encoding);
    VG_RUN(test_peek_ts);
    VG_RUN(test_json_numbers_round_trip);
    vg_arena_free(&arena);
    vg_schema_free(&schema);
    return vg_test_done();
}
