/*
 * store.c - the analyst case store; see store.h for the layout and invariants.
 *
 * Cases are JSON documents (cJSON) read, changed and rewritten whole: a case is a few
 * kilobytes and changes a handful of times in its life, so this is simpler than a binary
 * encoding and costs nothing that matters. The queue index (one small struct per case)
 * lives in memory so that listing, filtering and counting never touch RocksDB; it is
 * rebuilt by a full scan at open (about a second per 100k cases).
 */
#include "engine/review/store.h"

#include "features/kv.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { CF_CASES = 0, CF_CARDS = 1, CF_PENDING = 2 };
enum { ST_OPEN = 0, ST_CLAIMED = 1, ST_CLOSED = 2 };
static const char *const status_names[] = {"open", "claimed", "closed"};

#define HISTORY_SHOW  20
#define HISTORY_USUAL 50

/* What the queue needs of a case, in memory. */
typedef struct rcase {
    char *txn_id, *card_id, *merchant_id, *decision, *review_reason, *verdict, *claimed_by;
    char *ts; /* the record's ts text, as received */
    int64_t ts_ms;
    double amount, score; /* score NAN when null */
    int status;
    int64_t claim_until;
    char **rules; /* rule ids fired, shadow included */
    int *shadow;
    size_t nrules;
} rcase_t;

struct vg_rstore {
    pthread_mutex_t lock;
    vg_kv_t *kv;
    rcase_t *cases;
    size_t n, cap;
    size_t *slots; /* open addressing over cases by txn_id: index + 1, 0 = empty */
    size_t nslots;
};

/* ---- small helpers ---- */

static char *dup_or_null(const char *s)
{
    return s ? vg_xstrdup(s) : NULL;
}

static const char *jstr(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void set_str(cJSON *obj, const char *key, const char *val)
{
    cJSON *v = val ? cJSON_CreateString(val) : cJSON_CreateNull();
    if (cJSON_HasObjectItem(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
    else
        cJSON_AddItemToObject(obj, key, v);
}

static void set_time(cJSON *obj, const char *key, int64_t ms)
{
    char t[32];
    vg_time_format(ms, t);
    set_str(obj, key, ms ? t : NULL);
}

void vg_review_json_safe(vg_buf_t *out, const char *json, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep = json[i] == '<'   ? "\\u003c"
                          : json[i] == '>' ? "\\u003e"
                          : json[i] == '&' ? "\\u0026"
                                           : NULL;
        if (!rep)
            continue;
        vg_buf_append(out, json + start, i - start);
        vg_buf_puts(out, rep);
        start = i + 1;
    }
    vg_buf_append(out, json + start, len - start);
}

static void put_json(vg_buf_t *out, const cJSON *item)
{
    char *s = cJSON_PrintUnformatted(item);
    if (!s)
        abort(); /* cJSON fails only on out-of-memory */
    vg_review_json_safe(out, s, strlen(s));
    cJSON_free(s);
}

/* ---- the in-memory index ---- */

static void rcase_clear(rcase_t *c)
{
    free(c->txn_id);
    free(c->card_id);
    free(c->merchant_id);
    free(c->decision);
    free(c->review_reason);
    free(c->verdict);
    free(c->claimed_by);
    free(c->ts);
    for (size_t i = 0; i < c->nrules; i++)
        free(c->rules[i]);
    free(c->rules);
    free(c->shadow);
    memset(c, 0, sizeof(*c));
}

/* Fills the volatile part (status, claim, verdict) from a case document. */
static void rcase_set_state(rcase_t *c, const cJSON *doc)
{
    const char *st = jstr(doc, "status");
    c->status = st && strcmp(st, "closed") == 0    ? ST_CLOSED
                : st && strcmp(st, "claimed") == 0 ? ST_CLAIMED
                                                   : ST_OPEN;
    free(c->claimed_by);
    free(c->verdict);
    c->claimed_by = dup_or_null(jstr(doc, "claimed_by"));
    c->verdict = dup_or_null(jstr(doc, "verdict"));
    double cu = jnum(doc, "claim_until_ms");
    c->claim_until = isnan(cu) ? 0 : (int64_t)cu;
}

/* Fills a summary from a case document; returns -1 if the document lacks what a case has. */
static int rcase_from_doc(rcase_t *c, const cJSON *doc)
{
    memset(c, 0, sizeof(*c));
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(doc, "record");
    const char *id = jstr(rec, "txn_id"), *card = jstr(rec, "card_id"), *ts = jstr(rec, "ts");
    if (!id || !card)
        return -1;
    c->txn_id = vg_xstrdup(id);
    c->card_id = vg_xstrdup(card);
    c->ts = dup_or_null(ts);
    if (!ts || vg_time_parse(ts, strlen(ts), &c->ts_ms))
        c->ts_ms = 0;
    c->amount = jnum(rec, "amount");
    if (isnan(c->amount))
        c->amount = 0;
    c->score = jnum(rec, "score");
    c->decision = dup_or_null(jstr(rec, "decision"));
    c->review_reason = dup_or_null(jstr(rec, "review_reason"));
    const cJSON *txn = cJSON_GetObjectItemCaseSensitive(rec, "txn");
    c->merchant_id = dup_or_null(jstr(txn, "merchant_id"));
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(rec, "rules"), *r;
    size_t nr = cJSON_IsArray(rules) ? (size_t)cJSON_GetArraySize(rules) : 0;
    c->rules = vg_xcalloc(nr + 1, sizeof(char *));
    c->shadow = vg_xcalloc(nr + 1, sizeof(int));
    cJSON_ArrayForEach(r, rules)
    {
        const char *rid = jstr(r, "id");
        if (!rid)
            continue;
        c->shadow[c->nrules] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "shadow"));
        c->rules[c->nrules++] = vg_xstrdup(rid);
    }
    rcase_set_state(c, doc);
    return 0;
}

static size_t find_slot(const vg_rstore_t *s, const char *id)
{
    size_t mask = s->nslots - 1, i = vg_hash64(id, strlen(id), VG_HASH_SEED) & mask;
    while (s->slots[i] && strcmp(s->cases[s->slots[i] - 1].txn_id, id) != 0)
        i = (i + 1) & mask;
    return i;
}

static rcase_t *find_case(const vg_rstore_t *s, const char *id)
{
    size_t i = find_slot(s, id);
    return s->slots[i] ? &s->cases[s->slots[i] - 1] : NULL;
}

static void index_add(vg_rstore_t *s, rcase_t *c)
{
    if (2 * (s->n + 1) > s->nslots) {
        free(s->slots);
        s->nslots = s->nslots ? 2 * s->nslots : 1024;
        s->slots = vg_xcalloc(s->nslots, sizeof(size_t));
        for (size_t k = 0; k < s->n; k++)
            s->slots[find_slot(s, s->cases[k].txn_id)] = k + 1;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->cases = vg_xrealloc(s->cases, s->cap * sizeof(rcase_t));
    }
    s->cases[s->n] = *c;
    s->slots[find_slot(s, c->txn_id)] = s->n + 1;
    s->n++;
}

static int effective_status(const rcase_t *c, int64_t now_ms)
{
    if (c->status == ST_CLAIMED && c->claim_until <= now_ms)
        return ST_OPEN;
    return c->status;
}

/* ---- open / close ---- */

vg_rstore_t *vg_rstore_open(const char *dir, char *errbuf, size_t errlen)
{
    static const vg_kv_family_t families[] = {
        {.name = "cases"}, {.name = "cards"}, {.name = "pending"}};
    vg_kv_opts_t opts = {.block_cache_bytes = 16u << 20, .write_buffer_bytes = 8u << 20};
    vg_kv_t *kv = vg_kv_open(dir, families, VG_ARRAY_LEN(families), &opts, errbuf, errlen);
    if (!kv)
        return NULL;
    vg_rstore_t *s = vg_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->kv = kv;
    s->nslots = 1024;
    s->slots = vg_xcalloc(s->nslots, sizeof(size_t));
    vg_kv_iter_t *it = vg_kv_iter_new(kv, CF_CASES);
    for (vg_kv_iter_seek(it, NULL, 0); vg_kv_iter_valid(it); vg_kv_iter_next(it)) {
        size_t vlen;
        const char *v = vg_kv_iter_value(it, &vlen);
        cJSON *doc = cJSON_ParseWithLength(v, vlen);
        rcase_t c;
        if (doc && rcase_from_doc(&c, doc) == 0)
            index_add(s, &c);
        else
            vg_warn("review", "store: skipping an unreadable case document");
        cJSON_Delete(doc);
    }
    vg_err_t err = vg_kv_iter_status(it, errbuf, errlen);
    vg_kv_iter_free(it);
    if (err) {
        vg_rstore_close(s);
        return NULL;
    }
    return s;
}

void vg_rstore_close(vg_rstore_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        rcase_clear(&s->cases[i]);
    free(s->cases);
    free(s->slots);
    vg_kv_close(s->kv);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

size_t vg_rstore_count(vg_rstore_t *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->n;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- adding cases ---- */

/* card_id NUL (INT64_MAX - ts) big-endian txn_id: newest first under the card prefix. */
static void card_key(vg_buf_t *k, const char *card, int64_t ts_ms, const char *txn_id)
{
    vg_buf_reset(k);
    vg_buf_append(k, card, strlen(card) + 1);
    uint64_t inv = (uint64_t)(INT64_MAX - ts_ms);
    for (int i = 7; i >= 0; i--)
        vg_buf_putc(k, (char)(inv >> (8 * i)));
    vg_buf_puts(k, txn_id);
}

/* The short history entry of a record: what the case page shows of the card's other
 * transactions, and the features for the card's usual values. */
static void history_put(vg_kv_batch_t *b, vg_kv_t *kv, const cJSON *rec, int64_t ts_ms, vg_buf_t *k)
{
    cJSON *h = cJSON_CreateObject();
    static const char *const copy[] = {"txn_id", "ts", "amount", "decision", "score", "features"};
    for (size_t i = 0; i < VG_ARRAY_LEN(copy); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, copy[i]);
        if (v)
            cJSON_AddItemToObject(h, copy[i], cJSON_Duplicate(v, 1));
    }
    const cJSON *txn = cJSON_GetObjectItemCaseSensitive(rec, "txn");
    static const char *const tcopy[] = {"merchant_id", "terminal_id", "channel", "country"};
    for (size_t i = 0; i < VG_ARRAY_LEN(tcopy); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(txn, tcopy[i]);
        if (v)
            cJSON_AddItemToObject(h, tcopy[i], cJSON_Duplicate(v, 1));
    }
    char *text = cJSON_PrintUnformatted(h);
    card_key(k, jstr(rec, "card_id"), ts_ms, jstr(rec, "txn_id"));
    vg_kv_batch_put(b, kv, CF_CARDS, k->data, k->len, text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(h);
}

/* Parses and checks one record; NULL with a reason when it cannot be a case. */
static cJSON *parse_record(const vg_rrecord_t *r, int64_t *ts_ms, char *why, size_t whylen)
{
    cJSON *rec = cJSON_ParseWithLength(r->json, r->len);
    const char *id = jstr(rec, "txn_id"), *card = jstr(rec, "card_id"), *ts = jstr(rec, "ts");
    if (!cJSON_IsObject(rec))
        vg_errf(why, whylen, VG_ERR_INPUT, "not a JSON object");
    else if (!id || !*id || strlen(id) > 256)
        vg_errf(why, whylen, VG_ERR_INPUT, "no txn_id string (1-256 bytes)");
    else if (!card || !*card)
        vg_errf(why, whylen, VG_ERR_INPUT, "txn %s: no card_id string", id);
    else if (!ts || vg_time_parse(ts, strlen(ts), ts_ms))
        vg_errf(why, whylen, VG_ERR_INPUT, "txn %s: ts is not an RFC 3339 time", id);
    else
        return rec;
    cJSON_Delete(rec);
    return NULL;
}

vg_err_t vg_rstore_add(vg_rstore_t *s, const vg_rrecord_t *recs, size_t n, int64_t now_ms,
                       size_t *added, size_t *dups, size_t *bad, char *errbuf, size_t errlen)
{
    *added = *dups = *bad = 0;
    vg_kv_batch_t *b = vg_kv_batch_new();
    vg_buf_t k;
    vg_buf_init(&k);
    rcase_t *fresh = vg_xcalloc(n + 1, sizeof(rcase_t));
    size_t nfresh = 0;
    char why[VG_ERRLEN];
    vg_err_t err = VG_OK;
    if (errbuf && errlen)
        errbuf[0] = '\0';

    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        int64_t ts_ms;
        cJSON *rec = parse_record(&recs[i], &ts_ms, why, sizeof(why));
        if (!rec) {
            if ((*bad)++ == 0 && errbuf)
                snprintf(errbuf, errlen, "%s", why);
            continue;
        }
        const char *id = jstr(rec, "txn_id");
        int seen = find_case(s, id) != NULL;
        for (size_t j = 0; j < nfresh && !seen; j++)
            seen = strcmp(fresh[j].txn_id, id) == 0;
        if (seen) {
            (*dups)++;
            cJSON_Delete(rec);
            continue;
        }
        cJSON *doc = cJSON_CreateObject();
        set_str(doc, "txn_id", id);
        set_str(doc, "status", "open");
        set_str(doc, "claimed_by", NULL);
        cJSON_AddNullToObject(doc, "claim_until_ms");
        set_str(doc, "claim_until", NULL);
        set_str(doc, "verdict", NULL);
        set_str(doc, "analyst", NULL);
        set_str(doc, "note", NULL);
        set_str(doc, "label_state", NULL);
        set_time(doc, "received", now_ms);
        set_str(doc, "closed_at", NULL);
        cJSON *audit = cJSON_AddArrayToObject(doc, "audit");
        cJSON *a = cJSON_CreateObject();
        set_time(a, "ts", now_ms);
        set_str(a, "analyst", NULL);
        set_str(a, "action", "received");
        set_str(a, "detail", jstr(rec, "review_reason") ? jstr(rec, "review_reason") : "flagged");
        cJSON_AddItemToArray(audit, a);
        cJSON_AddItemToObject(doc, "record", rec);
        char *text = cJSON_PrintUnformatted(doc);
        vg_kv_batch_put(b, s->kv, CF_CASES, id, strlen(id), text, strlen(text));
        cJSON_free(text);
        history_put(b, s->kv, rec, ts_ms, &k);
        if (rcase_from_doc(&fresh[nfresh], doc) == 0)
            nfresh++;
        cJSON_Delete(doc);
    }
    if (vg_kv_batch_count(b) > 0)
        err = vg_kv_write(s->kv, b, 1, errbuf, errlen);
    if (err) {
        for (size_t j = 0; j < nfresh; j++)
            rcase_clear(&fresh[j]);
    } else {
        for (size_t j = 0; j < nfresh; j++)
            index_add(s, &fresh[j]);
        *added = nfresh;
    }
    pthread_mutex_unlock(&s->lock);
    free(fresh);
    vg_buf_free(&k);
    vg_kv_batch_free(b);
    return err;
}

vg_err_t vg_rstore_add_history(vg_rstore_t *s, const vg_rrecord_t *recs, size_t n, char *errbuf,
                               size_t errlen)
{
    vg_kv_batch_t *b = vg_kv_batch_new();
    vg_buf_t k;
    vg_buf_init(&k);
    char why[VG_ERRLEN];
    for (size_t i = 0; i < n; i++) {
        int64_t ts_ms;
        cJSON *rec = parse_record(&recs[i], &ts_ms, why, sizeof(why));
        if (rec)
            history_put(b, s->kv, rec, ts_ms, &k);
        cJSON_Delete(rec);
    }
    vg_err_t err = VG_OK;
    pthread_mutex_lock(&s->lock);
    if (vg_kv_batch_count(b) > 0)
        err = vg_kv_write(s->kv, b, 1, errbuf, errlen);
    pthread_mutex_unlock(&s->lock);
    vg_buf_free(&k);
    vg_kv_batch_free(b);
    return err;
}

/* ---- listing ---- */

/* A rule filter matches a rule that fired, or "sample:REASON" for a sampled case. */
static int has_rule(const rcase_t *c, const char *rule)
{
    for (size_t i = 0; i < c->nrules; i++)
        if (strcmp(c->rules[i], rule) == 0)
            return 1;
    return c->review_reason && strncmp(rule, "sample:", 7) == 0 &&
           strcmp(rule + 7, c->review_reason) == 0;
}

static void count_rule(cJSON *rules, const char *id)
{
    cJSON *cnt = cJSON_GetObjectItemCaseSensitive(rules, id);
    if (cnt)
        cJSON_SetNumberValue(cnt, cnt->valuedouble + 1);
    else
        cJSON_AddNumberToObject(rules, id, 1);
}

static vg_rsort_t sort_mode; /* qsort has no context argument: only used under the lock */

static int cmp_cases(const void *pa, const void *pb)
{
    const rcase_t *a = *(rcase_t *const *)pa, *b = *(rcase_t *const *)pb;
    if (sort_mode == VG_RSORT_PRIORITY) {
        double sa = isnan(a->score) ? -1 : a->score, sb = isnan(b->score) ? -1 : b->score;
        if (sa != sb)
            return sa > sb ? -1 : 1;
        if (a->amount != b->amount)
            return a->amount > b->amount ? -1 : 1;
    }
    if (a->ts_ms != b->ts_ms)
        return (a->ts_ms > b->ts_ms) == (sort_mode != VG_RSORT_OLDEST) ? -1 : 1;
    return strcmp(a->txn_id, b->txn_id);
}

static void put_row(vg_buf_t *out, const rcase_t *c, int64_t now_ms)
{
    cJSON *row = cJSON_CreateObject();
    set_str(row, "txn_id", c->txn_id);
    set_str(row, "ts", c->ts);
    set_str(row, "card_id", c->card_id);
    set_str(row, "merchant_id", c->merchant_id);
    cJSON_AddNumberToObject(row, "amount", c->amount);
    if (isnan(c->score))
        cJSON_AddNullToObject(row, "score");
    else
        cJSON_AddNumberToObject(row, "score", c->score);
    set_str(row, "decision", c->decision);
    set_str(row, "review_reason", c->review_reason);
    int st = effective_status(c, now_ms);
    set_str(row, "status", status_names[st]);
    set_str(row, "claimed_by", st == ST_CLAIMED ? c->claimed_by : NULL);
    set_str(row, "verdict", c->verdict);
    cJSON *rules = cJSON_AddArrayToObject(row, "rules");
    for (size_t i = 0; i < c->nrules; i++) {
        cJSON *r = cJSON_CreateObject();
        set_str(r, "id", c->rules[i]);
        if (c->shadow[i])
            cJSON_AddTrueToObject(r, "shadow");
        cJSON_AddItemToArray(rules, r);
    }
    put_json(out, row);
    cJSON_Delete(row);
}

void vg_rstore_list(vg_rstore_t *s, const vg_rquery_t *q, int64_t now_ms, vg_buf_t *out)
{
    pthread_mutex_lock(&s->lock);
    rcase_t **match = vg_xmalloc((s->n + 1) * sizeof(rcase_t *));
    size_t nmatch = 0, counts[3] = {0, 0, 0};
    cJSON *rules = cJSON_CreateObject();
    for (size_t i = 0; i < s->n; i++) {
        rcase_t *c = &s->cases[i];
        if (c->ts_ms < q->from_ms || c->ts_ms >= q->to_ms)
            continue;
        int st = effective_status(c, now_ms);
        int st_ok = !q->status || strcmp(q->status, status_names[st]) == 0;
        int rule_ok = !q->rule || has_rule(c, q->rule);
        if (rule_ok)
            counts[st]++;
        if (st_ok) {
            for (size_t r = 0; r < c->nrules; r++) {
                int dup = 0; /* a rule listed twice on one case counts once */
                for (size_t r2 = 0; r2 < r && !dup; r2++)
                    dup = strcmp(c->rules[r], c->rules[r2]) == 0;
                if (!dup)
                    count_rule(rules, c->rules[r]);
            }
            if (c->review_reason) {
                char id[128];
                snprintf(id, sizeof(id), "sample:%s", c->review_reason);
                count_rule(rules, id);
            }
        }
        if (st_ok && rule_ok)
            match[nmatch++] = c;
    }
    sort_mode = q->sort;
    qsort(match, nmatch, sizeof(*match), cmp_cases);
    vg_buf_printf(out,
                  "{\"total\":%zu,\"offset\":%zu,\"limit\":%zu,\"counts\":{\"open\":%zu,"
                  "\"claimed\":%zu,\"closed\":%zu},\"rules\":",
                  nmatch, q->offset, q->limit, counts[0], counts[1], counts[2]);
    put_json(out, rules);
    vg_buf_puts(out, ",\"cases\":[");
    for (size_t i = q->offset; i < nmatch && i - q->offset < q->limit; i++) {
        if (i > q->offset)
            vg_buf_putc(out, ',');
        put_row(out, match[i], now_ms);
    }
    vg_buf_puts(out, "]}");
    pthread_mutex_unlock(&s->lock);
    cJSON_Delete(rules);
    free(match);
}

/* ---- one case ---- */

/* Reads a case document; NULL with VG_ERR_NOTFOUND / VG_ERR_STATE in *err. Lock held. */
static cJSON *load_doc(vg_rstore_t *s, const char *id, vg_err_t *err, char *errbuf, size_t errlen)
{
    vg_buf_t v;
    vg_buf_init(&v);
    int found = 0;
    cJSON *doc = NULL;
    *err = vg_kv_get(s->kv, CF_CASES, id, strlen(id), &v, &found, errbuf, errlen);
    if (!*err && !found)
        *err = vg_errf(errbuf, errlen, VG_ERR_NOTFOUND, "no case %s", id);
    if (!*err) {
        doc = cJSON_ParseWithLength(v.data, v.len);
        if (!doc)
            *err = vg_errf(errbuf, errlen, VG_ERR_STATE, "case %s: unreadable document", id);
    }
    vg_buf_free(&v);
    return doc;
}

vg_err_t vg_rstore_get(vg_rstore_t *s, const char *id, int64_t now_ms, vg_buf_t *out, char *errbuf,
                       size_t errlen)
{
    vg_err_t err;
    pthread_mutex_lock(&s->lock);
    rcase_t *c = find_case(s, id);
    if (!c) {
        pthread_mutex_unlock(&s->lock);
        return vg_errf(errbuf, errlen, VG_ERR_NOTFOUND, "no case %s", id);
    }
    cJSON *doc = load_doc(s, id, &err, errbuf, errlen);
    if (err) {
        pthread_mutex_unlock(&s->lock);
        return err;
    }
    int st = effective_status(c, now_ms);
    set_str(doc, "status", status_names[st]);
    if (st != ST_CLAIMED) {
        set_str(doc, "claimed_by", NULL);
        set_str(doc, "claim_until", NULL);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(doc, "claim_until_ms");

    /* the card's other transactions, newest first, and its usual feature values */
    const cJSON *features = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "record"), "features");
    int nf = cJSON_IsObject(features) ? cJSON_GetArraySize(features) : 0;
    double *sum = vg_xcalloc((size_t)nf + 1, sizeof(double));
    int *cnt = vg_xcalloc((size_t)nf + 1, sizeof(int));
    cJSON *history = cJSON_CreateArray();
    size_t seen = 0;
    vg_kv_iter_t *it = vg_kv_iter_new(s->kv, CF_CARDS);
    vg_kv_iter_seek_prefix(it, c->card_id, strlen(c->card_id) + 1);
    for (; vg_kv_iter_valid(it) && seen < HISTORY_USUAL; vg_kv_iter_next(it)) {
        size_t vlen;
        const char *v = vg_kv_iter_value(it, &vlen);
        cJSON *h = cJSON_ParseWithLength(v, vlen);
        const char *hid = jstr(h, "txn_id");
        if (!h || !hid || strcmp(hid, id) == 0) {
            cJSON_Delete(h);
            continue;
        }
        seen++;
        const cJSON *hf = cJSON_GetObjectItemCaseSensitive(h, "features"), *f;
        int i = 0;
        cJSON_ArrayForEach(f, features)
        {
            const cJSON *hv = cJSON_GetObjectItemCaseSensitive(hf, f->string);
            if (cJSON_IsNumber(hv)) {
                sum[i] += hv->valuedouble;
                cnt[i]++;
            }
            i++;
        }
        if (seen <= HISTORY_SHOW) {
            cJSON_DeleteItemFromObjectCaseSensitive(h, "features");
            const rcase_t *hc = find_case(s, hid);
            set_str(h, "case_status", hc ? status_names[effective_status(hc, now_ms)] : NULL);
            set_str(h, "verdict", hc ? hc->verdict : NULL);
            cJSON_AddItemToArray(history, h);
        } else {
            cJSON_Delete(h);
        }
    }
    vg_kv_iter_free(it);
    cJSON *usual = cJSON_CreateObject();
    const cJSON *f;
    int i = 0;
    cJSON_ArrayForEach(f, features)
    {
        cJSON *u = cJSON_CreateObject();
        if (cnt[i])
            cJSON_AddNumberToObject(u, "mean", sum[i] / cnt[i]);
        else
            cJSON_AddNullToObject(u, "mean");
        cJSON_AddNumberToObject(u, "n", cnt[i]);
        cJSON_AddItemToObject(usual, f->string, u);
        i++;
    }
    pthread_mutex_unlock(&s->lock);
    free(sum);
    free(cnt);

    vg_buf_puts(out, "{\"case\":");
    put_json(out, doc);
    vg_buf_puts(out, ",\"history\":");
    put_json(out, history);
    vg_buf_puts(out, ",\"usual\":");
    put_json(out, usual);
    vg_buf_putc(out, '}');
    cJSON_Delete(doc);
    cJSON_Delete(history);
    cJSON_Delete(usual);
    return VG_OK;
}

static void audit_add(cJSON *doc, int64_t now_ms, const char *analyst, const char *action,
                      const char *detail)
{
    cJSON *audit = cJSON_GetObjectItemCaseSensitive(doc, "audit");
    if (!cJSON_IsArray(audit)) {
        audit = cJSON_CreateArray();
        cJSON_AddItemToObject(doc, "audit", audit);
    }
    cJSON *a = cJSON_CreateObject();
    set_time(a, "ts", now_ms);
    set_str(a, "analyst", analyst);
    set_str(a, "action", action);
    set_str(a, "detail", detail);
    cJSON_AddItemToArray(audit, a);
}

/* The conflict a state change runs into, if any (lock held). */
static vg_err_t check_open_to(const rcase_t *c, const char *analyst, int64_t now_ms, char *errbuf,
                              size_t errlen)
{
    if (c->status == ST_CLOSED)
        return vg_errf(errbuf, errlen, VG_ERR_CONFLICT, "case %s is already closed (%s by %s)",
                       c->txn_id, c->verdict ? c->verdict : "?",
                       c->claimed_by ? c->claimed_by : "?");
    if (effective_status(c, now_ms) == ST_CLAIMED && strcmp(c->claimed_by, analyst) != 0) {
        char t[32];
        vg_time_format(c->claim_until, t);
        return vg_errf(errbuf, errlen, VG_ERR_CONFLICT, "case %s is claimed by %s until %s",
                       c->txn_id, c->claimed_by, t);
    }
    return VG_OK;
}

/* Writes doc (and optionally a pending label) in one synced batch, then refreshes the
 * index entry. Lock held. */
static vg_err_t save_doc(vg_rstore_t *s, rcase_t *c, cJSON *doc, const char *pending, char *errbuf,
                         size_t errlen)
{
    vg_kv_batch_t *b = vg_kv_batch_new();
    char *text = cJSON_PrintUnformatted(doc);
    vg_kv_batch_put(b, s->kv, CF_CASES, c->txn_id, strlen(c->txn_id), text, strlen(text));
    if (pending)
        vg_kv_batch_put(b, s->kv, CF_PENDING, c->txn_id, strlen(c->txn_id), pending,
                        strlen(pending));
    vg_err_t err = vg_kv_write(s->kv, b, 1, errbuf, errlen);
    if (!err)
        rcase_set_state(c, doc);
    cJSON_free(text);
    vg_kv_batch_free(b);
    return err;
}

/* Looks a case up for a change: its index entry and document (lock held). */
static vg_err_t begin_change(vg_rstore_t *s, const char *id, const char *analyst, int64_t now_ms,
                             rcase_t **c, cJSON **doc, char *errbuf, size_t errlen)
{
    vg_err_t err;
    *c = find_case(s, id);
    *doc = NULL;
    if (!*c)
        return vg_errf(errbuf, errlen, VG_ERR_NOTFOUND, "no case %s", id);
    if ((err = check_open_to(*c, analyst, now_ms, errbuf, errlen)))
        return err;
    *doc = load_doc(s, id, &err, errbuf, errlen);
    return err;
}

vg_err_t vg_rstore_claim(vg_rstore_t *s, const char *id, const char *analyst, int64_t now_ms,
                         int64_t ttl_ms, char *errbuf, size_t errlen)
{
    rcase_t *c;
    cJSON *doc;
    pthread_mutex_lock(&s->lock);
    vg_err_t err = begin_change(s, id, analyst, now_ms, &c, &doc, errbuf, errlen);
    if (!err) {
        int renew = effective_status(c, now_ms) == ST_CLAIMED;
        set_str(doc, "status", "claimed");
        set_str(doc, "claimed_by", analyst);
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "claim_until_ms");
        cJSON_AddNumberToObject(doc, "claim_until_ms", (double)(now_ms + ttl_ms));
        set_time(doc, "claim_until", now_ms + ttl_ms);
        if (!renew)
            audit_add(doc, now_ms, analyst, "claim", NULL);
        err = save_doc(s, c, doc, NULL, errbuf, errlen);
    }
    pthread_mutex_unlock(&s->lock);
    cJSON_Delete(doc);
    return err;
}

vg_err_t vg_rstore_release(vg_rstore_t *s, const char *id, const char *analyst, int64_t now_ms,
                           char *errbuf, size_t errlen)
{
    rcase_t *c;
    cJSON *doc;
    pthread_mutex_lock(&s->lock);
    vg_err_t err = begin_change(s, id, analyst, now_ms, &c, &doc, errbuf, errlen);
    if (!err && effective_status(c, now_ms) == ST_CLAIMED) {
        set_str(doc, "status", "open");
        set_str(doc, "claimed_by", NULL);
        set_str(doc, "claim_until", NULL);
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "claim_until_ms");
        cJSON_AddNullToObject(doc, "claim_until_ms");
        audit_add(doc, now_ms, analyst, "release", NULL);
        err = save_doc(s, c, doc, NULL, errbuf, errlen);
    }
    pthread_mutex_unlock(&s->lock);
    cJSON_Delete(doc);
    return err;
}

vg_err_t vg_rstore_label(vg_rstore_t *s, const char *id, const char *analyst, const char *label,
                         const char *note, int64_t now_ms, char *errbuf, size_t errlen)
{
    if (strcmp(label, "fraud") != 0 && strcmp(label, "legit") != 0)
        return vg_errf(errbuf, errlen, VG_ERR_INPUT, "label must be \"fraud\" or \"legit\"");
    rcase_t *c;
    cJSON *doc;
    pthread_mutex_lock(&s->lock);
    vg_err_t err = begin_change(s, id, analyst, now_ms, &c, &doc, errbuf, errlen);
    if (!err) {
        if (note && !*note)
            note = NULL;
        set_str(doc, "status", "closed");
        set_str(doc, "claimed_by", analyst);
        set_str(doc, "verdict", label);
        set_str(doc, "analyst", analyst);
        set_str(doc, "note", note);
        set_str(doc, "label_state", "pending");
        set_time(doc, "closed_at", now_ms);
        audit_add(doc, now_ms, analyst, label, note);
        cJSON *msg = cJSON_CreateObject();
        set_str(msg, "txn_id", id);
        set_str(msg, "label", label);
        set_time(msg, "ts", now_ms);
        set_str(msg, "source", "analyst");
        set_str(msg, "analyst", analyst);
        if (note)
            set_str(msg, "note", note);
        char *text = cJSON_PrintUnformatted(msg);
        err = save_doc(s, c, doc, text, errbuf, errlen);
        cJSON_free(text);
        cJSON_Delete(msg);
    }
    pthread_mutex_unlock(&s->lock);
    cJSON_Delete(doc);
    return err;
}

size_t vg_rstore_pending(vg_rstore_t *s, vg_rstore_pending_fn fn, void *ctx)
{
    size_t n = 0;
    vg_buf_t id;
    vg_buf_init(&id);
    pthread_mutex_lock(&s->lock);
    vg_kv_iter_t *it = vg_kv_iter_new(s->kv, CF_PENDING);
    for (vg_kv_iter_seek(it, NULL, 0); vg_kv_iter_valid(it); vg_kv_iter_next(it)) {
        size_t klen, vlen;
        const char *k = vg_kv_iter_key(it, &klen), *v = vg_kv_iter_value(it, &vlen);
        vg_buf_reset(&id);
        vg_buf_append(&id, k, klen);
        fn(ctx, id.data, v, vlen);
        n++;
    }
    vg_kv_iter_free(it);
    pthread_mutex_unlock(&s->lock);
    vg_buf_free(&id);
    return n;
}

vg_err_t vg_rstore_mark_sent(vg_rstore_t *s, char *const *ids, size_t n, int64_t now_ms,
                             char *errbuf, size_t errlen)
{
    vg_kv_batch_t *b = vg_kv_batch_new();
    vg_err_t err = VG_OK;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n && !err; i++) {
        vg_kv_batch_delete(b, s->kv, CF_PENDING, ids[i], strlen(ids[i]));
        cJSON *doc = load_doc(s, ids[i], &err, errbuf, errlen);
        if (err == VG_ERR_NOTFOUND) { /* defensive: a pending label without its case */
            err = VG_OK;
            continue;
        }
        if (err)
            break;
        set_str(doc, "label_state", "sent");
        audit_add(doc, now_ms, NULL, "label_sent", "acknowledged by Kafka");
        char *text = cJSON_PrintUnformatted(doc);
        vg_kv_batch_put(b, s->kv, CF_CASES, ids[i], strlen(ids[i]), text, strlen(text));
        cJSON_free(text);
        cJSON_Delete(doc);
    }
    if (!err && vg_kv_batch_count(b) > 0)
        err = vg_kv_write(s->kv, b, 1, errbuf, errlen);
    pthread_mutex_unlock(&s->lock);
    vg_kv_batch_free(b);
    return err;
}
