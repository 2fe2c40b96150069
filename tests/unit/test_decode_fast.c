/*
 * test_decode_fast.c - vg_txn_decode() (fast path first) agrees with
 * vg_txn_decode_reference() (every message through cJSON) on every message: the same error
 * code; on success the same record (strings byte-equal, doubles bit-equal or both NaN, the
 * same ts and raw bytes); on failure the same reason text.
 *
 * The messages are simulator lines (a few verbatim, most generated in the same shape) and
 * random mutations of them: members dropped, duplicated, swapped, renamed (also to an
 * escaped spelling of a contract key), values replaced by strings with escapes, unicode,
 * control or invalid bytes, numbers in every JSON form and many non-JSON ones, literals,
 * nested values; whitespace (JSON and not) between tokens, truncation, junk bytes, trailing
 * bytes. A fixed seed makes a failure reproducible; VG_SEED overrides it.
 *
 * The test also asserts that the fast path is taken where it must be (every unmutated line)
 * and that when it declines it leaves the record untouched.
 */
#include "engine/contract.h"
#include "tests/unit/vg_test.h"

#include <math.h>
#include <stdarg.h>

static vg_schema_t schema;
static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
    return (size_t)(rnd() % n);
}

/* ---- messages as member lists, so that mutations can work on members ---- */

#define MAX_MEMBERS 40
#define TEXT_CAP    200

typedef struct member {
    char key[TEXT_CAP];
    char val[TEXT_CAP];
} member_t;

typedef struct msg {
    member_t m[MAX_MEMBERS];
    size_t n;
} msg_t;

static void add(msg_t *msg, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add(msg_t *msg, const char *key, const char *fmt, ...)
{
    if (msg->n == MAX_MEMBERS)
        return;
    member_t *m = &msg->m[msg->n++];
    snprintf(m->key, sizeof(m->key), "\"%s\"", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->val, sizeof(m->val), fmt, ap);
    va_end(ap);
}

/* Whitespace between tokens: mostly none (as the simulator writes), sometimes JSON
 * whitespace, rarely bytes cJSON skips but JSON does not allow. */
static const char *ws(int mutate)
{
    static const char *const json[] = {" ", "\t", "\n", "\r\n", "  \t "};
    static const char *const odd[] = {"\f", "\v", "\x01", "\x1f"};
    if (!mutate)
        return "";
    size_t r = rnd_below(100);
    if (r < 80)
        return "";
    if (r < 98)
        return json[rnd_below(VG_ARRAY_LEN(json))];
    return odd[rnd_below(VG_ARRAY_LEN(odd))];
}

static size_t render(const msg_t *msg, int spaced, char *out, size_t cap)
{
    vg_buf_t b;
    vg_buf_init(&b);
    vg_buf_puts(&b, ws(spaced));
    vg_buf_puts(&b, "{");
    for (size_t i = 0; i < msg->n; i++) {
        vg_buf_puts(&b, ws(spaced));
        vg_buf_puts(&b, msg->m[i].key);
        vg_buf_puts(&b, ws(spaced));
        vg_buf_puts(&b, ":");
        vg_buf_puts(&b, ws(spaced));
        vg_buf_puts(&b, msg->m[i].val);
        vg_buf_puts(&b, ws(spaced));
        if (i + 1 < msg->n)
            vg_buf_puts(&b, ",");
    }
    vg_buf_puts(&b, "}");
    vg_buf_puts(&b, ws(spaced));
    size_t n = b.len < cap ? b.len : cap;
    memcpy(out, b.data, n);
    vg_buf_free(&b);
    return n;
}

/* A simulator-shaped transaction: the simulator's member order, values of its forms. */
static void sim_line(msg_t *msg)
{
    msg->n = 0;
    int day = 1 + (int)rnd_below(28), sod = (int)rnd_below(86400), ms = (int)rnd_below(1000);
    int cust = (int)rnd_below(5000);
    add(msg, "txn_id", "\"t%010llu\"", (unsigned long long)rnd_below(10000000000ULL));
    add(msg, "ts", "\"2018-04-%02dT%02d:%02d:%02d.%03dZ\"", day, sod / 3600, sod / 60 % 60,
        sod % 60, ms);
    add(msg, "card_id", "\"card-%07d\"", cust);
    add(msg, "customer_id", "\"cust-%07d\"", cust);
    add(msg, "amount", "%d.%02d", (int)rnd_below(2000), (int)rnd_below(100));
    add(msg, "currency", "\"EUR\"");
    static const char *const channels[] = {"pos", "atm", "ecom"};
    size_t ch = rnd_below(3);
    add(msg, "channel", "\"%s\"", channels[ch]);
    if (ch == 2) {
        add(msg, "device_id", "\"dev-%016llx\"", (unsigned long long)rnd());
        add(msg, "ip", "\"10.0.%d.%d\"", (int)rnd_below(256), (int)rnd_below(256));
    }
    add(msg, "terminal_id", "\"term-%07d\"", (int)rnd_below(10000));
    add(msg, "merchant_id", "\"merch-%06d\"", (int)rnd_below(1000));
    add(msg, "mcc", "\"%d\"", 4000 + (int)rnd_below(2000));
    add(msg, "country", "\"FR\"");
    /* the simulator prints coordinates with up to 5 decimals, trailing zeros cut */
    char lat[32], lon[32];
    snprintf(lat, sizeof(lat), "%.*f", 1 + (int)rnd_below(5),
             42.0 + (double)rnd_below(900000) / 1e5);
    snprintf(lon, sizeof(lon), "%.*f", 1 + (int)rnd_below(5),
             -5.0 + (double)rnd_below(1300000) / 1e5);
    add(msg, "lat", "%s", lat);
    add(msg, "lon", "%s", lon);
}

/* ---- random values ---- */

static void digits(char *out, size_t n, int nonzero_first)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (char)('0' + (i == 0 && nonzero_first ? 1 + rnd_below(9) : rnd_below(10)));
    out[n] = '\0';
}

/* A number in JSON form: sign, integer part, fraction, exponent, each part random in
 * length, so that mantissas cross 2^53 and 19 digits and exponents cross +-22 and the
 * double range. */
static void json_number(char *out, size_t cap)
{
    char ip[40], fp[40], ep[8];
    size_t r = rnd_below(10);
    if (r == 0)
        snprintf(ip, sizeof(ip), "0");
    else
        digits(ip, r < 7 ? 1 + rnd_below(6) : 1 + rnd_below(24), 1);
    digits(fp, rnd_below(3) ? 1 + rnd_below(r < 7 ? 6 : 24) : 0, 0);
    int e = (int)rnd_below(3) == 0;
    if (e)
        snprintf(ep, sizeof(ep), "%d", (int)(rnd_below(2) ? rnd_below(30) : rnd_below(400)));
    snprintf(out, cap, "%s%s%s%s%s%s%s", rnd_below(4) == 0 ? "-" : "", ip, fp[0] ? "." : "", fp,
             e ? (rnd_below(2) ? "e" : "E") : "",
             e ? (const char *[]){"", "+", "-"}[rnd_below(3)] : "", e ? ep : "");
}

static const char *const special_numbers[] = {
    "0", "-0", "-0.0", "0.0", "0e0", "-0E-0", "0e400", "1e400", "-1e400", "1e-400", "4.9e-324",
    "2.2250738585072014e-308", "1.7976931348623157e308", "1.7976931348623159e308",
    "9007199254740992", "9007199254740993", "9007199254740993.0", "9007199254740991e3",
    "18446744073709551615", "18446744073709551616", "1e22", "1e23", "1e-22", "1e-23",
    "123456789012345678901234567890", "0.1", "0.30000000000000004", "89.99999999999999999", "90",
    "90.0000000001", "-90", "-180", "180", "180.00000000000001", "1522567145123", "1522567145123.0",
    "1.522567145123e12", "1522567145123.5", "253402300799999", "253402300800000", "-1", "12.5",
    /* 63 and 64 bytes: upstream cJSON 1.7.15 parses at most 63 of them, Debian's all */
    "0.0000000000000000000000000000000000000000000000000000000000001",
    "0.00000000000000000000000000000000000000000000000000000000000001",
    /* not JSON, yet some of them strtod or cJSON would take */
    "01", "-01", "+1", ".5", "1.", "1e", "1e+", "-", "--1", "0x10", "1.5.2", "1e5e5", "NaN",
    "Infinity", "-Infinity", "1_000", "1,5"};

static const char *const special_values[] = {"null",
                                             "true",
                                             "false",
                                             "nul",
                                             "truex",
                                             "{}",
                                             "[]",
                                             "[1,2]",
                                             "{\"a\":[1,{\"b\":null}]}",
                                             "\"\"",
                                             "\"x\"",
                                             "\"a\\\"b\"",
                                             "\"a\\\\b\"",
                                             "\"a\\/b\"",
                                             "\"tab\\there\"",
                                             "\"\\u00e9\"",
                                             "\"\\u0000\"",
                                             "\"\\ud83d\\ude00\"",
                                             "\"\\ud800\"",
                                             "\"caf\xc3\xa9\"",
                                             "\"\xc3\x28\"",
                                             "\"\xed\xa0\x80\"",
                                             "\"\xf4\x90\x80\x80\"",
                                             "\"ctl\x01\"",
                                             "\"raw\ttab\"",
                                             "\"del\x7f\"",
                                             "\"12,5\"",
                                             "\"5411\"",
                                             "\"2018-04-01T07:19:05.123Z\"",
                                             "\"2018-04-01T07:19:05Z\"",
                                             "\"2018-04-01t07:19:05.1z\"",
                                             "\"2018-04-01 07:19:05+02:00\"",
                                             "\"2018-02-30T00:00:00Z\"",
                                             "\"2018-04-01T24:00:00Z\"",
                                             "\"2018-04-01T07:19:05\"",
                                             "\"2018-04-01T07:19:05.Z\"",
                                             "\"not a time\"",
                                             "'single'"};

static void random_value(char *out, size_t cap)
{
    size_t r = rnd_below(10);
    if (r < 4)
        json_number(out, cap);
    else if (r < 6)
        snprintf(out, cap, "%s", special_numbers[rnd_below(VG_ARRAY_LEN(special_numbers))]);
    else
        snprintf(out, cap, "%s", special_values[rnd_below(VG_ARRAY_LEN(special_values))]);
}

static const char *const keys[] = {"txn_id",
                                   "card_id",
                                   "customer_id",
                                   "merchant_id",
                                   "terminal_id",
                                   "currency",
                                   "mcc",
                                   "country",
                                   "channel",
                                   "device_id",
                                   "ip",
                                   "ts",
                                   "amount",
                                   "lat",
                                   "lon",
                                   "email",
                                   "extra",
                                   "",
                                   "TS",
                                   "amount ",
                                   "card_i",
                                   "card_idx",
                                   "card\\u005fid",
                                   "t\\u0073",
                                   "caf\xc3\xa9",
                                   "a\\\"b",
                                   "scenario"};

/* One random change to the member list. */
static void mutate_members(msg_t *msg)
{
    size_t i = msg->n ? rnd_below(msg->n) : 0;
    switch (rnd_below(7)) {
    case 0: /* drop */
        if (msg->n) {
            memmove(&msg->m[i], &msg->m[i + 1], (msg->n - i - 1) * sizeof(member_t));
            msg->n--;
        }
        break;
    case 1: /* duplicate, same value or another */
        if (msg->n && msg->n < MAX_MEMBERS) {
            msg->m[msg->n] = msg->m[i];
            if (rnd_below(2))
                random_value(msg->m[msg->n].val, TEXT_CAP);
            msg->n++;
        }
        break;
    case 2: /* swap */
        if (msg->n) {
            size_t j = rnd_below(msg->n);
            member_t t = msg->m[i];
            msg->m[i] = msg->m[j];
            msg->m[j] = t;
        }
        break;
    case 3: /* another value */
    case 4:
        if (msg->n)
            random_value(msg->m[i].val, TEXT_CAP);
        break;
    case 5: /* an unknown key twice, anywhere */
        for (int twice = 0; twice < 2 && msg->n < MAX_MEMBERS; twice++) {
            size_t at = rnd_below(msg->n + 1);
            memmove(&msg->m[at + 1], &msg->m[at], (msg->n - at) * sizeof(member_t));
            snprintf(msg->m[at].key, TEXT_CAP, "\"%s\"", rnd_below(2) ? "extra" : "");
            snprintf(msg->m[at].val, TEXT_CAP, "%s", rnd_below(2) ? "\"x\"" : "1");
            msg->n++;
        }
        break;
    default: /* another key, or a new member */
        if (msg->n && rnd_below(2)) {
            snprintf(msg->m[i].key, TEXT_CAP, "\"%s\"", keys[rnd_below(VG_ARRAY_LEN(keys))]);
        } else if (msg->n < MAX_MEMBERS) {
            snprintf(msg->m[msg->n].key, TEXT_CAP, "\"%s\"", keys[rnd_below(VG_ARRAY_LEN(keys))]);
            random_value(msg->m[msg->n].val, TEXT_CAP);
            msg->n++;
        }
        break;
    }
}

/* One random change to the bytes. */
static size_t mutate_bytes(char *buf, size_t len, size_t cap)
{
    size_t at = rnd_below(len + 1);
    switch (rnd_below(4)) {
    case 0: /* truncate */
        return at;
    case 1: /* overwrite a byte */
        if (at < len)
            buf[at] = (char)rnd_below(256);
        return len;
    case 2: /* insert a byte: often one JSON uses */
        if (len < cap) {
            static const char likely[] = "{}[]\":, \t\n\\0-.eE+";
            memmove(buf + at + 1, buf + at, len - at);
            buf[at] = rnd_below(2) ? likely[rnd_below(sizeof(likely) - 1)] : (char)rnd_below(256);
            return len + 1;
        }
        return len;
    default: { /* trailing bytes */
        static const char *const tails[] = {" ", "\r\n", "\n\n", "x", "}", ",", "\f", "{}"};
        const char *t = tails[rnd_below(VG_ARRAY_LEN(tails))];
        size_t n = strlen(t);
        if (len + n > cap)
            return len;
        memcpy(buf + len, t, n);
        return len + n;
    }
    }
}

/* ---- comparing the two decoders ---- */

static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof(a)) == 0;
}

/* Where two results differ, or NULL when they agree. */
static const char *difference(vg_err_t e1, const vg_txn_t *t1, const char *r1, vg_err_t e2,
                              const vg_txn_t *t2, const char *r2)
{
    if (e1 != e2)
        return "error code";
    if (e1 != VG_OK)
        return strcmp(r1, r2) == 0 ? NULL : "reason";
    for (size_t f = 0; f < schema.nfields; f++) {
        if (!t1->str[f] != !t2->str[f] || t1->len[f] != t2->len[f])
            return schema.names[f];
        if (t1->str[f] && (memcmp(t1->str[f], t2->str[f], t1->len[f] + 1) != 0 ||
                           strlen(t1->str[f]) != t1->len[f]))
            return schema.names[f];
    }
    if (t1->ts_ms != t2->ts_ms)
        return "ts";
    if (!same_double(t1->amount, t2->amount))
        return "amount";
    if (!same_double(t1->lat, t2->lat))
        return "lat";
    if (!same_double(t1->lon, t2->lon))
        return "lon";
    if (t1->raw_len != t2->raw_len || memcmp(t1->raw, t2->raw, t1->raw_len) != 0 ||
        t1->raw[t1->raw_len] != '\0')
        return "raw";
    return NULL;
}

static struct {
    size_t messages, ok, fast, failures;
} stats;

/* Decodes data both ways and checks they agree; returns whether the fast path took it. */
static int check_message(const char *data, size_t len)
{
    static vg_arena_t a1, a2, a3;
    static int ready;
    if (!ready) {
        vg_arena_init(&a1, 1 << 16);
        vg_arena_init(&a2, 1 << 16);
        vg_arena_init(&a3, 1 << 16);
        ready = 1;
    }
    if (data == NULL) { /* the end */
        vg_arena_free(&a1);
        vg_arena_free(&a2);
        vg_arena_free(&a3);
        ready = 0;
        return 0;
    }
    /* the message in its own allocation, so ASan sees a read past its end */
    char *copy = vg_xmalloc(len ? len : 1);
    memcpy(copy, data, len);
    vg_txn_t t1, t2, t3;
    char r1[VG_ERRLEN] = "", r2[VG_ERRLEN] = "";
    vg_err_t e1 = vg_txn_decode(&schema, copy, len, &a1, &t1, r1, sizeof(r1));
    vg_err_t e2 = vg_txn_decode_reference(&schema, copy, len, &a2, &t2, r2, sizeof(r2));
    const char *diff = difference(e1, &t1, r1, e2, &t2, r2);

    /* the fast path alone: when it declines, the record is untouched */
    memset(&t3, 0xa5, sizeof(t3));
    vg_txn_t untouched;
    memset(&untouched, 0xa5, sizeof(untouched));
    int fast = vg_txn_decode_fast(&schema, copy, len, &a3, &t3);
    if (!diff && fast && e2 != VG_OK)
        diff = "fast path accepted what the reference rejects";
    if (!diff && fast)
        diff = difference(VG_OK, &t3, "", e2, &t2, r2);
    if (!diff && !fast && memcmp(&t3, &untouched, sizeof(t3)) != 0)
        diff = "fast path declined but wrote the record";

    stats.messages++;
    stats.ok += e2 == VG_OK;
    stats.fast += fast;
    VG_CHECK(diff == NULL);
    if (diff && stats.failures++ < 10)
        fprintf(stderr, "  differ in %s on %zu bytes: '%.*s'\n    decode: %s\n    reference: %s\n",
                diff, len, (int)len, copy, e1 ? r1 : "ok", e2 ? r2 : "ok");
    free(copy);
    vg_arena_reset(&a1);
    vg_arena_reset(&a2);
    vg_arena_reset(&a3);
    return fast;
}

/* Verbatim lines of `vigil simulate --scenarios all` (pos, atm, ecom with device and ip, a
 * coordinate with trailing zeros cut). */
static const char *const sim_lines[] = {
    "{\"txn_id\":\"t0000000000\",\"ts\":\"2018-04-01T00:48:55.298Z\",\"card_id\":\"card-0000070\","
    "\"customer_id\":\"cust-0000070\",\"amount\":25.15,\"currency\":\"EUR\",\"channel\":\"atm\","
    "\"terminal_id\":\"term-0000063\",\"merchant_id\":\"merch-000015\",\"mcc\":\"5812\","
    "\"country\":\"FR\",\"lat\":50.89124,\"lon\":1.34374}",
    "{\"txn_id\":\"t0000000002\",\"ts\":\"2018-04-01T00:56:44.040Z\",\"card_id\":\"card-0000091\","
    "\"customer_id\":\"cust-0000091\",\"amount\":70.90,\"currency\":\"EUR\",\"channel\":\"pos\","
    "\"terminal_id\":\"term-0000365\",\"merchant_id\":\"merch-000091\",\"mcc\":\"5814\","
    "\"country\":\"FR\",\"lat\":42.45117,\"lon\":0.0515}",
    "{\"txn_id\":\"t0000000399\",\"ts\":\"2018-04-01T21:36:06.376Z\",\"card_id\":\"card-0000113\","
    "\"customer_id\":\"cust-0000113\",\"amount\":179.64,\"currency\":\"EUR\",\"channel\":\"ecom\","
    "\"device_id\":\"dev-04d3051417226fcc\",\"ip\":\"10.0.0.114\",\"terminal_id\":\"term-0000381\","
    "\"merchant_id\":\"merch-000095\",\"mcc\":\"5912\",\"country\":\"FR\",\"lat\":45.11078,"
    "\"lon\":-1.04731}",
};

static void test_simulator_lines_take_the_fast_path(void)
{
    for (size_t i = 0; i < VG_ARRAY_LEN(sim_lines); i++)
        VG_CHECK(check_message(sim_lines[i], strlen(sim_lines[i])));
    char buf[4096];
    msg_t msg;
    size_t fast = 0, n = 2000;
    for (size_t i = 0; i < n; i++) {
        sim_line(&msg);
        fast += check_message(buf, render(&msg, 0, buf, sizeof(buf)));
    }
    VG_CHECK_INT(fast, n);
    /* JSON whitespace anywhere, and the optional forms, still take it */
    fast = 0;
    for (size_t i = 0; i < n; i++) {
        sim_line(&msg);
        for (size_t j = 0; j < msg.n; j++) {
            if (strcmp(msg.m[j].key, "\"ts\"") == 0 && rnd_below(2))
                snprintf(msg.m[j].val, TEXT_CAP, "%llu",
                         1522540800000ULL + (unsigned long long)rnd_below(1000000000));
            if (strcmp(msg.m[j].key, "\"country\"") == 0 && rnd_below(2))
                snprintf(msg.m[j].val, TEXT_CAP, "null");
        }
        add(&msg, "email", "\"a%d@example.com\"", (int)rnd_below(100));
        add(&msg, "note", "\"unknown keys are ignored\"");
        char line[4096];
        size_t len = render(&msg, 0, line, sizeof(line));
        /* JSON whitespace only (no odd bytes) between every token */
        size_t k = 0;
        int in_string = 0;
        for (size_t b = 0; b < len && k + 3 < sizeof(buf); b++) {
            buf[k++] = line[b];
            in_string ^= line[b] == '"';
            if (!in_string && strchr(",:{", line[b]) && rnd_below(2))
                buf[k++] = " \t\n\r"[rnd_below(4)];
        }
        fast += check_message(buf, k);
    }
    VG_CHECK_INT(fast, n);
}

static void test_mutations_agree(void)
{
    char buf[8192];
    msg_t msg;
    size_t n = 30000, fast_mutated = 0;
    for (size_t i = 0; i < n; i++) {
        sim_line(&msg);
        size_t k = 1 + rnd_below(3);
        for (size_t j = 0; j < k; j++)
            mutate_members(&msg);
        int spaced = rnd_below(3) == 0;
        size_t len = render(&msg, spaced, buf, sizeof(buf) - 16);
        if (rnd_below(4) == 0)
            len = mutate_bytes(buf, len, sizeof(buf));
        fast_mutated += check_message(buf, len);
    }
    /* both branches were exercised on mutated input */
    VG_CHECK(fast_mutated > n / 10);
    VG_CHECK(stats.ok - stats.fast > 0); /* some valid messages only the reference decodes */
    VG_CHECK(stats.messages - stats.ok > n / 4);
}

/* Amounts and coordinates in every number form, bit for bit. */
static void test_numbers_agree(void)
{
    char buf[512], num[TEXT_CAP];
    size_t fast = 0, n = 20000;
    for (size_t i = 0; i < n; i++) {
        json_number(num, sizeof(num));
        const char *field = (const char *[]){"amount", "lat", "lon", "ts"}[rnd_below(4)];
        msg_t msg = {.n = 0};
        add(&msg, "txn_id", "\"t\"");
        add(&msg, "card_id", "\"c\"");
        add(&msg, "ts", "%s", strcmp(field, "ts") == 0 ? num : "1522540800000");
        add(&msg, "amount", "%s", strcmp(field, "amount") == 0 ? num : "1");
        add(&msg, "lat", "%s", strcmp(field, "lat") == 0 ? num : "1");
        add(&msg, "lon", "%s", strcmp(field, "lon") == 0 ? num : "2");
        fast += check_message(buf, render(&msg, 0, buf, sizeof(buf)));
    }
    /* mantissas of 15 to 19 digits around 2^53 with powers of ten around +-22: the edges of
     * the exact multiply or divide */
    for (size_t i = 0; i < n; i++) {
        uint64_t m = (UINT64_C(1) << 52) + rnd_below(UINT64_C(1) << 54);
        if (rnd_below(4) == 0)
            m = rnd() % 10000000000000000000ULL;
        char d[32];
        int nd = snprintf(d, sizeof(d), "%llu", (unsigned long long)m);
        int point = (int)rnd_below((size_t)nd + 1), e = (int)rnd_below(60) - 30;
        if (point == 0)
            snprintf(num, sizeof(num), "0.%se%d", d, e);
        else if (point == nd)
            snprintf(num, sizeof(num), "%se%d", d, e);
        else
            snprintf(num, sizeof(num), "%.*s.%se%d", point, d, d + point, e);
        snprintf(buf, sizeof(buf), "{\"txn_id\":\"t\",\"card_id\":\"c\",\"ts\":0,\"amount\":%s}",
                 num);
        fast += check_message(buf, strlen(buf));
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(special_numbers); i++) {
        snprintf(buf, sizeof(buf), "{\"txn_id\":\"t\",\"card_id\":\"c\",\"ts\":0,\"amount\":%s}",
                 special_numbers[i]);
        check_message(buf, strlen(buf));
    }
    VG_CHECK(fast > n / 2);
}

int main(void)
{
    const char *seed = getenv("VG_SEED");
    rng_state = seed ? strtoull(seed, NULL, 0) : 20181001;
    fprintf(stderr, "seed %llu (set VG_SEED to change)\n", (unsigned long long)rng_state);
    vg_schema_init(&schema);
    vg_schema_add(&schema, "email");
    VG_RUN(test_simulator_lines_take_the_fast_path);
    VG_RUN(test_mutations_agree);
    VG_RUN(test_numbers_agree);
    fprintf(stderr, "%zu messages: %zu valid, %zu through the fast path, %zu differ\n",
            stats.messages, stats.ok, stats.fast, stats.failures);
    check_message(NULL, 0);
    vg_schema_free(&schema);
    return vg_test_done();
}
