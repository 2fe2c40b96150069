/*
 * test_review.c - the analyst case store and its authentication:
 *  - SHA-256 (FIPS 180-2 examples), HMAC-SHA256 (RFC 4231 case 2), PBKDF2-HMAC-SHA256
 *    (RFC 7914 section 11 vectors), and the users file (password and token lines, errors);
 *  - cases: add, re-delivery ignored, malformed records counted, listing against a
 *    brute-force reference (filters, priority order, paging, counts), claim / release /
 *    label conflicts and claim expiry, pending labels surviving a reopen, mark_sent, card
 *    history and usual feature values, and HTML-safe JSON output.
 */
#include "engine/review/auth.h"
#include "engine/review/store.h"
#include "tests/unit/vg_test.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <unistd.h>

static void hex_of(const uint8_t *b, size_t n, char *out)
{
    vg_hex(b, n, out);
}

static void test_sha256(void)
{
    uint8_t h[32];
    char hex[65];
    vg_sha256("abc", 3, h);
    hex_of(h, 32, hex);
    VG_CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    vg_sha256("", 0, h);
    hex_of(h, 32, hex);
    VG_CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    vg_sha256(m, strlen(m), h);
    hex_of(h, 32, hex);
    VG_CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a': crosses many blocks through the streaming path */
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    vg_sha256(a, 1000000, h);
    free(a);
    hex_of(h, 32, hex);
    VG_CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_hmac_pbkdf2(void)
{
    uint8_t h[64];
    char hex[129];
    const char *msg = "what do ya want for nothing?";
    vg_hmac_sha256("Jefe", 4, msg, strlen(msg), h);
    hex_of(h, 32, hex);
    VG_CHECK_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    vg_pbkdf2_sha256("passwd", 6, "salt", 4, 1, h, 64);
    hex_of(h, 64, hex);
    VG_CHECK_STR(hex, "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
                      "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
    vg_pbkdf2_sha256("Password", 8, "NaCl", 4, 80000, h, 64);
    hex_of(h, 64, hex);
    VG_CHECK_STR(hex, "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
                      "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d");
}

static char *write_tmp(const char *dir, const char *name, const char *text)
{
    char *path = malloc(4096);
    snprintf(path, 4096, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_users(void)
{
    char *dir = vg_test_tmpdir(), errbuf[VG_ERRLEN];
    char *pl = vg_users_password_line("ana", "correct horse", errbuf, sizeof(errbuf));
    char tok[65];
    VG_CHECK_INT(vg_random_token(tok, errbuf, sizeof(errbuf)), VG_OK);
    VG_CHECK_INT(strlen(tok), 64);
    char *tl = vg_users_token_line("bot", tok);
    VG_CHECK_INT(strlen(pl), strlen("ana:") + 32 + 1 + 64 + 1);
    char text[1024];
    snprintf(text, sizeof(text), "# analysts\n%s\n%s", pl, tl);
    char *path = write_tmp(dir, "users", text);
    vg_users_t *u = vg_users_load(path, errbuf, sizeof(errbuf));
    VG_CHECK(u != NULL);
    if (u) {
        VG_CHECK_INT(vg_users_count(u), 2);
        VG_CHECK_INT(vg_users_check_password(u, "ana", "correct horse"), 1);
        VG_CHECK_INT(vg_users_check_password(u, "ana", "correct horsE"), 0);
        VG_CHECK_INT(vg_users_check_password(u, "bob", "correct horse"), 0);
        VG_CHECK_INT(vg_users_check_password(u, "bot", tok), 0); /* a token is no password */
        VG_CHECK_STR(vg_users_check_token(u, tok), "bot");
        tok[0] = tok[0] == 'a' ? 'b' : 'a';
        VG_CHECK(vg_users_check_token(u, tok) == NULL);
    }
    vg_users_free(u);
    free(path);
    path = write_tmp(dir, "bad", "ana:abc:def\n");
    VG_CHECK(vg_users_load(path, errbuf, sizeof(errbuf)) == NULL);
    char want[4200];
    snprintf(want, sizeof(want), "%s:1: salt must be 32 lowercase hex digits (or * for a token)",
             path);
    VG_CHECK_STR(errbuf, want);
    free(path);
    path = write_tmp(dir, "bad2", "\n<b>:*:00\n");
    VG_CHECK(vg_users_load(path, errbuf, sizeof(errbuf)) == NULL);
    snprintf(want, sizeof(want), "%s:2: name must be 1-64 characters of A-Z a-z 0-9 . _ -", path);
    VG_CHECK_STR(errbuf, want);
    free(path);
    free(pl);
    free(tl);
    free(dir);
}

/* ---- the store ---- */

#define NCASES 40
static const char *const rule_ids[] = {"big_jump", "card_testing", "model_high"};

typedef struct ref {
    char id[16];
    int64_t ts;
    double amount, score; /* score < 0: null */
    int rules;            /* bit i: rule_ids[i] fired */
} ref_t;

static ref_t refs[NCASES];

static char *record_json(const ref_t *r, const char *card, const char *merchant)
{
    char ts[32], score[32];
    vg_time_format(r->ts, ts);
    if (r->score < 0)
        snprintf(score, sizeof(score), "null");
    else
        snprintf(score, sizeof(score), "%.17g", r->score);
    vg_buf_t b;
    vg_buf_init(&b);
    vg_buf_printf(&b,
                  "{\"txn_id\":\"%s\",\"ts\":\"%s\",\"card_id\":\"%s\",\"amount\":%.17g,"
                  "\"decision\":\"review\",\"score\":%s,\"rules\":[",
                  r->id, ts, card, r->amount, score);
    int first = 1;
    for (int i = 0; i < 3; i++)
        if (r->rules & (1 << i)) {
            vg_buf_printf(&b, "%s{\"id\":\"%s\",\"action\":\"review\"}", first ? "" : ",",
                          rule_ids[i]);
            first = 0;
        }
    vg_buf_printf(&b,
                  "],\"reasons\":[],\"features\":{\"amount\":%.17g,\"n\":%d},"
                  "\"txn\":{\"txn_id\":\"%s\",\"merchant_id\":",
                  r->amount, r->rules, r->id);
    vg_buf_json_str(&b, merchant, strlen(merchant));
    vg_buf_puts(&b, "}}");
    return b.data;
}

/* The reference order: score desc (null last), amount desc, ts desc, id. */
static int ref_cmp(const void *pa, const void *pb)
{
    const ref_t *a = pa, *b = pb;
    double sa = a->score < 0 ? -1 : a->score, sb = b->score < 0 ? -1 : b->score;
    if (sa != sb)
        return sa > sb ? -1 : 1;
    if (a->amount != b->amount)
        return a->amount > b->amount ? -1 : 1;
    if (a->ts != b->ts)
        return a->ts > b->ts ? -1 : 1;
    return strcmp(a->id, b->id);
}

static cJSON *list(vg_rstore_t *s, const vg_rquery_t *q, int64_t now)
{
    vg_buf_t b;
    vg_buf_init(&b);
    vg_rstore_list(s, q, now, &b);
    cJSON *j = cJSON_Parse(b.data);
    vg_buf_free(&b);
    return j;
}

static double num(const cJSON *o, const char *k)
{
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static const char *str(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void fill_refs(void)
{
    uint64_t x = 12345;
    int64_t t0 = 1522540800000; /* 2018-04-01 */
    for (int i = 0; i < NCASES; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        snprintf(refs[i].id, sizeof(refs[i].id), "t%02d", i);
        refs[i].ts = t0 + (int64_t)(i % 4) * 86400000 + i * 1000;
        refs[i].amount = (double)((x >> 20) % 500) + 0.5;
        refs[i].score = i % 7 == 0 ? -1 : (double)((x >> 40) % 5) / 4.0; /* ties on purpose */
        refs[i].rules = (int)((x >> 50) % 8);
    }
}

static void count_pending(void *ctx, const char *txn_id, const char *msg, size_t len)
{
    (void)ctx;
    VG_CHECK(strstr(msg, txn_id) != NULL && len > 0);
}

static void test_store_list(void)
{
    char *dir = vg_test_tmpdir(), errbuf[VG_ERRLEN];
    vg_rstore_t *s = vg_rstore_open(dir, errbuf, sizeof(errbuf));
    VG_CHECK(s != NULL);
    if (!s)
        return;
    fill_refs();
    vg_rrecord_t recs[NCASES + 3];
    char *texts[NCASES + 3];
    for (int i = 0; i < NCASES; i++) {
        texts[i] = record_json(&refs[i], i % 2 ? "card-a" : "card-b", "m");
        recs[i] = (vg_rrecord_t){texts[i], strlen(texts[i])};
    }
    size_t added, dups, bad;
    /* first half, then everything again plus a repeat and two malformed records */
    VG_CHECK_INT(
        vg_rstore_add(s, recs, NCASES / 2, 1000, &added, &dups, &bad, errbuf, sizeof(errbuf)),
        VG_OK);
    VG_CHECK_INT(added, NCASES / 2);
    texts[NCASES] = vg_xstrdup("[1,2]");
    texts[NCASES + 1] = vg_xstrdup("{\"txn_id\":\"zz\",\"card_id\":\"c\",\"ts\":\"yesterday\"}");
    texts[NCASES + 2] = vg_xstrdup(texts[NCASES - 1]);
    for (int i = NCASES; i < NCASES + 3; i++)
        recs[i] = (vg_rrecord_t){texts[i], strlen(texts[i])};
    VG_CHECK_INT(
        vg_rstore_add(s, recs, NCASES + 3, 2000, &added, &dups, &bad, errbuf, sizeof(errbuf)),
        VG_OK);
    VG_CHECK_INT(added, NCASES - NCASES / 2);
    VG_CHECK_INT(dups, NCASES / 2 + 1);
    VG_CHECK_INT(bad, 2);
    VG_CHECK_STR(errbuf, "not a JSON object");
    VG_CHECK_INT(vg_rstore_count(s), NCASES);

    /* priority order and paging against the reference */
    ref_t sorted[NCASES];
    memcpy(sorted, refs, sizeof(refs));
    qsort(sorted, NCASES, sizeof(ref_t), ref_cmp);
    vg_rquery_t q = {.from_ms = INT64_MIN, .to_ms = INT64_MAX, .limit = 7, .offset = 7};
    cJSON *j = list(s, &q, 5000);
    VG_CHECK_INT(num(j, "total"), NCASES);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(j, "cases");
    VG_CHECK_INT(cJSON_GetArraySize(cases), 7);
    for (int i = 0; i < 7; i++)
        VG_CHECK_STR(str(cJSON_GetArrayItem(cases, i), "txn_id"), sorted[7 + i].id);
    cJSON_Delete(j);

    /* rule and date filters against a brute-force count */
    for (int r = 0; r < 3; r++) {
        int64_t from = 1522540800000 + 86400000, to = from + 2 * 86400000;
        size_t want = 0, want_rule_any = 0;
        for (int i = 0; i < NCASES; i++) {
            int in_range = refs[i].ts >= from && refs[i].ts < to;
            want += in_range && (refs[i].rules & (1 << r));
            want_rule_any += (refs[i].rules & (1 << r)) != 0;
        }
        q = (vg_rquery_t){.rule = rule_ids[r], .from_ms = from, .to_ms = to, .limit = 1000};
        j = list(s, &q, 5000);
        VG_CHECK_INT(num(j, "total"), want);
        VG_CHECK_INT(num(cJSON_GetObjectItemCaseSensitive(j, "counts"), "open"), want);
        cJSON_Delete(j);
        q = (vg_rquery_t){.from_ms = INT64_MIN, .to_ms = INT64_MAX, .limit = 1};
        j = list(s, &q, 5000);
        VG_CHECK_INT(num(cJSON_GetObjectItemCaseSensitive(j, "rules"), rule_ids[r]), want_rule_any);
        cJSON_Delete(j);
    }

    /* claim, conflicts, expiry, release, label */
    const char *id = sorted[0].id;
    VG_CHECK_INT(vg_rstore_claim(s, id, "ana", 10000, 60000, errbuf, sizeof(errbuf)), VG_OK);
    VG_CHECK_INT(vg_rstore_claim(s, id, "bob", 20000, 60000, errbuf, sizeof(errbuf)),
                 VG_ERR_CONFLICT);
    char want[256];
    snprintf(want, sizeof(want), "case %s is claimed by ana until 1970-01-01T00:01:10.000Z", id);
    VG_CHECK_STR(errbuf, want);
    VG_CHECK_INT(vg_rstore_label(s, id, "bob", "fraud", NULL, 20000, errbuf, sizeof(errbuf)),
                 VG_ERR_CONFLICT);
    q = (vg_rquery_t){.status = "claimed", .from_ms = INT64_MIN, .to_ms = INT64_MAX, .limit = 5};
    j = list(s, &q, 20000);
    VG_CHECK_INT(num(j, "total"), 1);
    cJSON_Delete(j);
    j = list(s, &q, 70000); /* the claim has expired: the case is open again */
    VG_CHECK_INT(num(j, "total"), 0);
    cJSON_Delete(j);
    VG_CHECK_INT(vg_rstore_claim(s, id, "bob", 70000, 60000, errbuf, sizeof(errbuf)), VG_OK);
    VG_CHECK_INT(vg_rstore_release(s, id, "ana", 71000, errbuf, sizeof(errbuf)), VG_ERR_CONFLICT);
    VG_CHECK_INT(vg_rstore_release(s, id, "bob", 71000, errbuf, sizeof(errbuf)), VG_OK);
    VG_CHECK_INT(vg_rstore_label(s, id, "ana", "maybe", NULL, 72000, errbuf, sizeof(errbuf)),
                 VG_ERR_INPUT);
    VG_CHECK_STR(errbuf, "label must be \"fraud\" or \"legit\"");
    VG_CHECK_INT(vg_rstore_label(s, id, "ana", "fraud", "<b>x</b>", 72000, errbuf, sizeof(errbuf)),
                 VG_OK);
    VG_CHECK_INT(vg_rstore_label(s, id, "ana", "legit", NULL, 73000, errbuf, sizeof(errbuf)),
                 VG_ERR_CONFLICT);
    snprintf(want, sizeof(want), "case %s is already closed (fraud by ana)", id);
    VG_CHECK_STR(errbuf, want);
    VG_CHECK_INT(vg_rstore_claim(s, "nope", "ana", 73000, 1000, errbuf, sizeof(errbuf)),
                 VG_ERR_NOTFOUND);
    VG_CHECK_STR(errbuf, "no case nope");
    VG_CHECK_INT(
        vg_rstore_label(s, sorted[1].id, "ana", "legit", NULL, 74000, errbuf, sizeof(errbuf)),
        VG_OK);
    vg_rstore_close(s);

    /* reopen: cases, verdicts and both pending labels are still there */
    s = vg_rstore_open(dir, errbuf, sizeof(errbuf));
    VG_CHECK(s != NULL);
    if (!s)
        return;
    VG_CHECK_INT(vg_rstore_count(s), NCASES);
    q = (vg_rquery_t){.status = "closed", .from_ms = INT64_MIN, .to_ms = INT64_MAX, .limit = 5};
    j = list(s, &q, 80000);
    VG_CHECK_INT(num(j, "total"), 2);
    VG_CHECK_STR(
        str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "cases"), 0), "verdict"),
        "fraud");
    cJSON_Delete(j);
    VG_CHECK_INT(vg_rstore_pending(s, count_pending, NULL), 2);
    for (int i = 0; i < NCASES + 3; i++)
        free(texts[i]);
    vg_rstore_close(s);
    free(dir);
}

typedef struct seen {
    char ids[8][16];
    char msgs[8][512];
    size_t n;
} seen_t;

static void collect(void *ctx, const char *txn_id, const char *msg, size_t len)
{
    seen_t *s = ctx;
    if (s->n < 8) {
        snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", txn_id);
        snprintf(s->msgs[s->n], sizeof(s->msgs[0]), "%.*s", (int)len, msg);
    }
    s->n++;
}

static void test_store_pending_history(void)
{
    char *dir = vg_test_tmpdir(), errbuf[VG_ERRLEN];
    vg_rstore_t *s = vg_rstore_open(dir, errbuf, sizeof(errbuf));
    VG_CHECK(s != NULL);
    if (!s)
        return;
    /* one card, five transactions a day apart; t4 is the newest */
    ref_t r[5];
    char *texts[5];
    vg_rrecord_t recs[5];
    for (int i = 0; i < 5; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        snprintf(r[i].id, sizeof(r[i].id), "t%d", i);
        r[i].ts = 1522540800000 + i * 86400000LL;
        r[i].amount = 10.0 * (i + 1);
        r[i].score = 0.5;
        r[i].rules = i;
        texts[i] = record_json(&r[i], "card-1", "<script>alert(1)</script>");
        recs[i] = (vg_rrecord_t){texts[i], strlen(texts[i])};
    }
    size_t added, dups, bad;
    VG_CHECK_INT(vg_rstore_add(s, recs, 3, 1000, &added, &dups, &bad, errbuf, sizeof(errbuf)),
                 VG_OK);
    VG_CHECK_INT(vg_rstore_add_history(s, recs + 3, 2, errbuf, sizeof(errbuf)), VG_OK);
    vg_buf_t b;
    vg_buf_init(&b);
    VG_CHECK_INT(vg_rstore_get(s, "t1", 2000, &b, errbuf, sizeof(errbuf)), VG_OK);
    /* the hostile merchant is escaped for HTML in the raw JSON, and intact once parsed */
    VG_CHECK(strstr(b.data, "<") == NULL && strstr(b.data, ">") == NULL);
    VG_CHECK(strstr(b.data, "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e") != NULL);
    cJSON *j = cJSON_Parse(b.data);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "case");
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(c, "record");
    VG_CHECK_STR(str(cJSON_GetObjectItemCaseSensitive(rec, "txn"), "merchant_id"),
                 "<script>alert(1)</script>");
    /* history: the card's other four transactions, newest first */
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "history");
    VG_CHECK_INT(cJSON_GetArraySize(h), 4);
    const char *order[] = {"t4", "t3", "t2", "t0"};
    for (int i = 0; i < 4; i++)
        VG_CHECK_STR(str(cJSON_GetArrayItem(h, i), "txn_id"), order[i]);
    VG_CHECK(
        cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(h, 0), "case_status")));
    VG_CHECK(
        cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(h, 1), "case_status")));
    VG_CHECK_STR(str(cJSON_GetArrayItem(h, 2), "case_status"), "open");
    /* usual: mean over the other four (amounts 10, 30, 40, 50; n = 0, 2, 3, 4) */
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usual");
    VG_CHECK_NEAR(num(cJSON_GetObjectItemCaseSensitive(u, "amount"), "mean"), 32.5, 1e-12);
    VG_CHECK_INT(num(cJSON_GetObjectItemCaseSensitive(u, "amount"), "n"), 4);
    VG_CHECK_NEAR(num(cJSON_GetObjectItemCaseSensitive(u, "n"), "mean"), 2.25, 1e-12);
    cJSON_Delete(j);

    /* a pending label: exact message, survives a reopen, gone after mark_sent */
    VG_CHECK_INT(vg_rstore_label(s, "t2", "ana", "legit", "\"><img src=x onerror=alert(1)>",
                                 1522540800000, errbuf, sizeof(errbuf)),
                 VG_OK);
    vg_rstore_close(s);
    s = vg_rstore_open(dir, errbuf, sizeof(errbuf));
    seen_t seen = {0};
    VG_CHECK_INT(vg_rstore_pending(s, collect, &seen), 1);
    VG_CHECK_STR(seen.ids[0], "t2");
    VG_CHECK_STR(seen.msgs[0],
                 "{\"txn_id\":\"t2\",\"label\":\"legit\",\"ts\":\"2018-04-01T00:00:00.000Z\","
                 "\"source\":\"analyst\",\"analyst\":\"ana\",\"note\":\"\\\"><img src=x "
                 "onerror=alert(1)>\"}");
    char *ids[] = {"t2"};
    VG_CHECK_INT(vg_rstore_mark_sent(s, ids, 1, 5000, errbuf, sizeof(errbuf)), VG_OK);
    seen.n = 0;
    VG_CHECK_INT(vg_rstore_pending(s, collect, &seen), 0);
    vg_buf_reset(&b);
    VG_CHECK_INT(vg_rstore_get(s, "t2", 6000, &b, errbuf, sizeof(errbuf)), VG_OK);
    j = cJSON_Parse(b.data);
    c = cJSON_GetObjectItemCaseSensitive(j, "case");
    VG_CHECK_STR(str(c, "label_state"), "sent");
    VG_CHECK_STR(str(c, "note"), "\"><img src=x onerror=alert(1)>");
    const cJSON *audit = cJSON_GetObjectItemCaseSensitive(c, "audit");
    VG_CHECK_INT(cJSON_GetArraySize(audit), 3);
    VG_CHECK_STR(str(cJSON_GetArrayItem(audit, 0), "action"), "received");
    VG_CHECK_STR(str(cJSON_GetArrayItem(audit, 1), "action"), "legit");
    VG_CHECK_STR(str(cJSON_GetArrayItem(audit, 2), "action"), "label_sent");
    cJSON_Delete(j);
    VG_CHECK_INT(vg_rstore_get(s, "t9", 6000, &b, errbuf, sizeof(errbuf)), VG_ERR_NOTFOUND);
    vg_buf_free(&b);
    for (int i = 0; i < 5; i++)
        free(texts[i]);
    vg_rstore_close(s);
    free(dir);
}

static void test_json_safe(void)
{
    vg_buf_t b;
    vg_buf_init(&b);
    const char *in = "{\"a\":\"<&>\",\"b\":1}";
    vg_review_json_safe(&b, in, strlen(in));
    VG_CHECK_STR(b.data, "{\"a\":\"\\u003c\\u0026\\u003e\",\"b\":1}");
    vg_buf_free(&b);
}

int main(void)
{
    VG_RUN(test_sha256);
    VG_RUN(test_hmac_pbkdf2);
    VG_RUN(test_users);
    VG_RUN(test_store_list);
    VG_RUN(test_store_pending_history);
    VG_RUN(test_json_safe);
    return vg_test_done();
}
