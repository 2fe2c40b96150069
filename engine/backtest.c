/*
 * backtest.c - evaluates two sides (rules and/or model) over replayed decision records and
 * reports them against the labels: per rule, per decision, per day, and what changed.
 *
 * Records are parsed with a small span scanner (no allocation per record beyond the batch
 * arena): the decision's `features` object gives the served vector, its `txn` object is
 * decoded with the contract decoder (rules need its string fields). Records are buffered
 * in batches of BT_BATCH so that each side's model scores a batch in one call, as the
 * pipeline does; rules then run PRE and POST per row with that score.
 *
 * Invariants: every side array is indexed VG_BT_BASELINE / VG_BT_CANDIDATE; a judged record
 * is counted exactly once in each present side's confusion matrices, in its day, and (with
 * both sides) in one cell of the change matrix; the days array always covers [day0,
 * day0 + ndays) with no gap.
 */
#include "engine/backtest.h"
#include "engine/contract.h"
#include "features/features.h"
#include "models/models.h"
#include "rules/rules.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define BT_BATCH 4096
#define BT_HBINS 20
#define DAY_MS   86400000LL

typedef struct bt_label {
    char *txn_id; /* NULL: empty slot */
    int64_t ts_ms;
    int fraud;
} bt_label_t;

typedef struct bt_rule {
    uint64_t hits, fraud;
    double fraud_amount, legit_amount;
} bt_rule_t;

typedef struct bt_day {
    uint64_t txns, frauds;
    uint64_t flagged[VG_BT_SIDES], flagged_fraud[VG_BT_SIDES], blocked[VG_BT_SIDES];
} bt_day_t;

typedef struct bt_side {
    int present;
    char *rules_path, *model_dir;
    vg_rules_t *rules;
    vg_model_t *model;
    bt_rule_t *rule; /* per rule of the set */
    uint64_t actions[3];
    uint64_t flag[2][2], block[2][2]; /* [predicted positive][fraud] */
    double flag_amt[2][2], block_amt[2][2];
    uint64_t hist[2][BT_HBINS]; /* score histogram [fraud] */
    uint64_t truncated;         /* rows with more than VG_RULES_MAX_FIRED rules fired */
} bt_side_t;

typedef struct bt_example {
    char *txn_id, *ts, *card_id, *merchant_id;
    double amount;
    int fraud;
    vg_action_t action[VG_BT_SIDES];
    double score[VG_BT_SIDES];
    vg_rules_result_t res[VG_BT_SIDES];
} bt_example_t;

typedef struct bt_row {
    vg_txn_t txn;
    int fraud;
    int64_t day;
} bt_row_t;

struct vg_backtest {
    vg_backtest_opts_t opts;
    vg_catalog_t *catalog;
    vg_schema_t schema;
    char **names;
    size_t nfeat;
    bt_side_t side[VG_BT_SIDES];

    bt_label_t *labels;
    size_t labels_cap, labels_n;
    uint64_t labelled_fraud;

    vg_arena_t label_arena; /* scratch for decoding one label */

    /* batch */
    vg_arena_t arena; /* the batch's transactions; reset after each flush */
    bt_row_t *rows;
    double *feats;
    float *xrows;
    float *scores[VG_BT_SIDES];
    vg_rules_result_t *res[VG_BT_SIDES];
    size_t nrows;
    vg_buf_t line;

    /* totals */
    uint64_t judged, skipped, frauds;
    double amount, fraud_amount;
    int64_t first_ts, last_ts;
    int64_t day0;
    size_t ndays;
    bt_day_t *days;
    uint64_t change[3][3];
    bt_example_t *examples[3][3];
    size_t nexamples[3][3];
};

void vg_backtest_opts_default(vg_backtest_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->from_ms = INT64_MIN;
    opts->to_ms = INT64_MAX;
    opts->examples_per_change = 5;
}

/* ---- labels: open addressing on txn_id ---- */

static bt_label_t *label_slot(vg_backtest_t *bt, const char *id, size_t len)
{
    size_t mask = bt->labels_cap - 1;
    size_t i = (size_t)vg_hash64(id, len, VG_HASH_SEED) & mask;
    while (bt->labels[i].txn_id &&
           (strlen(bt->labels[i].txn_id) != len || memcmp(bt->labels[i].txn_id, id, len) != 0))
        i = (i + 1) & mask;
    return &bt->labels[i];
}

static void labels_grow(vg_backtest_t *bt)
{
    bt_label_t *old = bt->labels;
    size_t oldcap = bt->labels_cap;
    bt->labels_cap = oldcap ? oldcap * 2 : 1024;
    bt->labels = vg_xcalloc(bt->labels_cap, sizeof(*bt->labels));
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].txn_id)
            *label_slot(bt, old[i].txn_id, strlen(old[i].txn_id)) = old[i];
    free(old);
}

static int label_fraud(vg_backtest_t *bt, const char *id, size_t len)
{
    if (!bt->labels_n)
        return 0;
    bt_label_t *l = label_slot(bt, id, len);
    return l->txn_id && l->fraud;
}

vg_err_t vg_backtest_add_label(vg_backtest_t *bt, const char *line, size_t len, char *errbuf,
                               size_t errlen)
{
    vg_label_t label;
    char reason[VG_ERRLEN];
    vg_arena_reset(&bt->label_arena);
    if (vg_label_decode(line, len, &bt->label_arena, &label, reason, sizeof(reason)) != VG_OK)
        return vg_errf(errbuf, errlen, VG_ERR_INPUT, "%s", reason);
    if ((bt->labels_n + 1) * 2 > bt->labels_cap)
        labels_grow(bt);
    size_t idlen = strlen(label.txn_id);
    bt_label_t *l = label_slot(bt, label.txn_id, idlen);
    if (!l->txn_id) {
        l->txn_id = vg_xstrdup(label.txn_id);
        bt->labels_n++;
    } else if (label.ts_ms < l->ts_ms) {
        return VG_OK; /* an older verdict than the one we hold */
    }
    l->ts_ms = label.ts_ms;
    l->fraud = label.fraud;
    return VG_OK;
}

/* Reads one line at a time with gzgets into buf (grown as needed); 0 at the end. */
static int read_line(gzFile gz, vg_buf_t *buf)
{
    vg_buf_reset(buf);
    for (;;) {
        vg_buf_reserve(buf, 65536);
        char *at = buf->data + buf->len;
        if (!gzgets(gz, at, (int)(buf->cap - buf->len)))
            return buf->len > 0;
        size_t n = strlen(at);
        buf->len += n;
        if (n && at[n - 1] == '\n') {
            buf->data[--buf->len] = '\0';
            if (buf->len && buf->data[buf->len - 1] == '\r')
                buf->data[--buf->len] = '\0';
            return 1;
        }
    }
}

vg_err_t vg_backtest_load_labels(vg_backtest_t *bt, const char *path, char *errbuf, size_t errlen)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "cannot open %s", path);
    vg_buf_t line;
    vg_buf_init(&line);
    uint64_t lineno = 0;
    vg_err_t err = VG_OK;
    char reason[VG_ERRLEN];
    while (read_line(gz, &line)) {
        lineno++;
        if (line.len == 0)
            continue;
        if (vg_backtest_add_label(bt, line.data, line.len, reason, sizeof(reason)) != VG_OK) {
            err = vg_errf(errbuf, errlen, VG_ERR_INPUT, "%s:%llu: %s", path,
                          (unsigned long long)lineno, reason);
            break;
        }
    }
    vg_buf_free(&line);
    gzclose(gz);
    return err;
}

/* ---- construction ---- */

int vg_backtest_has_side(const vg_backtest_t *bt, int side)
{
    return side >= 0 && side < VG_BT_SIDES && bt->side[side].present;
}

vg_backtest_t *vg_backtest_new(const vg_backtest_opts_t *opts, char *errbuf, size_t errlen)
{
    vg_backtest_t *bt = vg_xcalloc(1, sizeof(*bt));
    bt->opts = *opts;
    if (!bt->opts.examples_per_change)
        bt->opts.examples_per_change = 5;
    vg_schema_init(&bt->schema);
    vg_arena_init(&bt->arena, 1 << 16);
    vg_arena_init(&bt->label_arena, 4096);
    vg_buf_init(&bt->line);
    bt->first_ts = INT64_MAX;
    bt->last_ts = INT64_MIN;
    if (!opts->catalog_path) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG, "a catalogue is required");
        goto fail;
    }
    bt->catalog = vg_catalog_load(opts->catalog_path, &bt->schema, errbuf, errlen);
    if (!bt->catalog)
        goto fail;
    bt->nfeat = vg_catalog_size(bt->catalog);
    bt->names = vg_xcalloc(bt->nfeat ? bt->nfeat : 1, sizeof(char *));
    for (size_t i = 0; i < bt->nfeat; i++)
        bt->names[i] = (char *)vg_catalog_feature_name(bt->catalog, i);
    int any = 0;
    for (int s = 0; s < VG_BT_SIDES; s++) {
        bt_side_t *side = &bt->side[s];
        const char *label = s == VG_BT_BASELINE ? "baseline" : "candidate";
        if (opts->model_dir[s]) {
            char err[VG_ERRLEN];
            side->model =
                vg_model_load(opts->model_dir[s], (const char *const *)bt->names, bt->nfeat,
                              vg_catalog_version(bt->catalog), err, sizeof(err));
            if (!side->model) {
                vg_errf(errbuf, errlen, VG_ERR_MODEL, "%s model: %s", label, err);
                goto fail;
            }
            side->model_dir = vg_xstrdup(opts->model_dir[s]);
        }
        if (opts->rules_path[s]) {
            vg_rules_env_t env = {(const char *const *)bt->names, bt->nfeat, &bt->schema,
                                  side->model != NULL, opts->lists_dir};
            side->rules = vg_rules_load(opts->rules_path[s], &env, errbuf, errlen);
            if (!side->rules)
                goto fail;
            side->rules_path = vg_xstrdup(opts->rules_path[s]);
            side->rule = vg_xcalloc(vg_rules_count(side->rules) + 1, sizeof(bt_rule_t));
        }
        side->present = side->rules || side->model;
        any |= side->present;
        bt->scores[s] = vg_xcalloc(BT_BATCH, sizeof(float));
        bt->res[s] = vg_xcalloc(BT_BATCH, sizeof(vg_rules_result_t));
    }
    if (!any) {
        vg_errf(errbuf, errlen, VG_ERR_CONFIG, "nothing to backtest: give rules or a model");
        goto fail;
    }
    bt->rows = vg_xcalloc(BT_BATCH, sizeof(bt_row_t));
    bt->feats = vg_xcalloc(BT_BATCH * (bt->nfeat ? bt->nfeat : 1), sizeof(double));
    bt->xrows = vg_xcalloc(BT_BATCH * (bt->nfeat ? bt->nfeat : 1), sizeof(float));
    return bt;
fail:
    vg_backtest_free(bt);
    return NULL;
}

static void example_free(bt_example_t *ex)
{
    free(ex->txn_id);
    free(ex->ts);
    free(ex->card_id);
    free(ex->merchant_id);
}

void vg_backtest_free(vg_backtest_t *bt)
{
    if (!bt)
        return;
    for (int s = 0; s < VG_BT_SIDES; s++) {
        vg_rules_free(bt->side[s].rules);
        vg_model_free(bt->side[s].model);
        free(bt->side[s].rule);
        free(bt->side[s].rules_path);
        free(bt->side[s].model_dir);
        free(bt->scores[s]);
        free(bt->res[s]);
    }
    for (size_t i = 0; i < bt->labels_cap; i++)
        free(bt->labels[i].txn_id);
    free(bt->labels);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            for (size_t i = 0; i < bt->nexamples[a][b]; i++)
                example_free(&bt->examples[a][b][i]);
            free(bt->examples[a][b]);
        }
    free(bt->days);
    free(bt->rows);
    free(bt->feats);
    free(bt->xrows);
    free(bt->names);
    vg_catalog_free(bt->catalog);
    vg_schema_free(&bt->schema);
    vg_arena_free(&bt->arena);
    vg_arena_free(&bt->label_arena);
    vg_buf_free(&bt->line);
    free(bt);
}

uint64_t vg_backtest_judged(const vg_backtest_t *bt)
{
    return bt->judged;
}

uint64_t vg_backtest_skipped(const vg_backtest_t *bt)
{
    return bt->skipped;
}

/* ---- a span scanner for one JSON object (the decision record) ---- */

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Past the value starting at p (after blanks), or NULL if it is cut or malformed. Nested
 * containers are matched by counting brackets, so depth costs no recursion. */
static const char *skip_value(const char *p, const char *e)
{
    p = skip_ws(p, e);
    if (p >= e)
        return NULL;
    if (*p == '"')
        return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        long depth = 0;
        while (p < e) {
            if (*p == '"') {
                if (!(p = skip_string(p, e)))
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' &&
           *p != '\r')
        p++;
    return p > s ? p : NULL;
}

typedef struct obj_iter {
    const char *p, *e;
    int first;
} obj_iter_t;

static int obj_open(obj_iter_t *it, const char *p, const char *e)
{
    p = skip_ws(p, e);
    if (p >= e || *p != '{')
        return -1;
    it->p = p + 1;
    it->e = e;
    it->first = 1;
    return 0;
}

/* Next member: key (without quotes, raw) and value span. 1 = member, 0 = end, -1 = error. */
static int obj_next(obj_iter_t *it, const char **key, size_t *klen, const char **val,
                    const char **vend)
{
    const char *p = skip_ws(it->p, it->e);
    if (p < it->e && *p == '}') {
        it->p = p + 1;
        return 0;
    }
    if (!it->first) {
        if (p >= it->e || *p != ',')
            return -1;
        p = skip_ws(p + 1, it->e);
    }
    it->first = 0;
    if (p >= it->e || *p != '"')
        return -1;
    const char *kend = skip_string(p, it->e);
    if (!kend)
        return -1;
    *key = p + 1;
    *klen = (size_t)(kend - 1 - (p + 1));
    p = skip_ws(kend, it->e);
    if (p >= it->e || *p != ':')
        return -1;
    *val = skip_ws(p + 1, it->e);
    if (!(*vend = skip_value(*val, it->e)))
        return -1;
    it->p = *vend;
    return 1;
}

static int key_is(const char *key, size_t klen, const char *name)
{
    return strlen(name) == klen && memcmp(key, name, klen) == 0;
}

/* ---- days ---- */

static int64_t day_of(int64_t ts_ms)
{
    return ts_ms >= 0 ? ts_ms / DAY_MS : -((-ts_ms + DAY_MS - 1) / DAY_MS);
}

static bt_day_t *day_slot(vg_backtest_t *bt, int64_t day)
{
    if (!bt->ndays) {
        bt->day0 = day;
        bt->ndays = 1;
        bt->days = vg_xcalloc(1, sizeof(bt_day_t));
    } else if (day < bt->day0) {
        size_t add = (size_t)(bt->day0 - day);
        bt->days = vg_xrealloc(bt->days, (bt->ndays + add) * sizeof(bt_day_t));
        memmove(bt->days + add, bt->days, bt->ndays * sizeof(bt_day_t));
        memset(bt->days, 0, add * sizeof(bt_day_t));
        bt->ndays += add;
        bt->day0 = day;
    } else if (day >= bt->day0 + (int64_t)bt->ndays) {
        size_t n = (size_t)(day - bt->day0) + 1;
        bt->days = vg_xrealloc(bt->days, n * sizeof(bt_day_t));
        memset(bt->days + bt->ndays, 0, (n - bt->ndays) * sizeof(bt_day_t));
        bt->ndays = n;
    }
    return &bt->days[day - bt->day0];
}

/* ---- evaluation ---- */

static void keep_example(vg_backtest_t *bt, const bt_row_t *row, size_t r)
{
    int a = (int)bt->res[VG_BT_BASELINE][r].action, b = (int)bt->res[VG_BT_CANDIDATE][r].action;
    if (bt->nexamples[a][b] >= bt->opts.examples_per_change)
        return;
    if (!bt->examples[a][b])
        bt->examples[a][b] = vg_xcalloc(bt->opts.examples_per_change, sizeof(bt_example_t));
    bt_example_t *ex = &bt->examples[a][b][bt->nexamples[a][b]++];
    const vg_txn_t *t = &row->txn;
    char ts[32];
    vg_time_format(t->ts_ms, ts);
    ex->txn_id = vg_xstrdup(t->str[VG_F_TXN_ID]);
    ex->ts = vg_xstrdup(ts);
    ex->card_id = vg_xstrdup(t->str[VG_F_CARD_ID]);
    ex->merchant_id = t->str[VG_F_MERCHANT_ID] ? vg_xstrdup(t->str[VG_F_MERCHANT_ID]) : NULL;
    ex->amount = t->amount;
    ex->fraud = row->fraud;
    for (int s = 0; s < VG_BT_SIDES; s++) {
        ex->action[s] = bt->res[s][r].action;
        ex->res[s] = bt->res[s][r];
        ex->score[s] = bt->side[s].model ? (double)bt->scores[s][r] : NAN;
    }
}

static vg_err_t flush(vg_backtest_t *bt, char *errbuf, size_t errlen)
{
    size_t n = bt->nrows;
    if (!n)
        return VG_OK;
    for (int s = 0; s < VG_BT_SIDES; s++) {
        bt_side_t *side = &bt->side[s];
        if (!side->present)
            continue;
        if (side->model) {
            char err[VG_ERRLEN];
            if (vg_model_score(side->model, bt->xrows, n, bt->scores[s], err, sizeof(err)) != VG_OK)
                return vg_errf(errbuf, errlen, VG_ERR_MODEL, "scoring: %s", err);
        }
        for (size_t r = 0; r < n; r++) {
            vg_rules_result_t *res = &bt->res[s][r];
            double score = side->model ? (double)bt->scores[s][r] : NAN;
            if (side->rules) {
                vg_rules_eval(side->rules, VG_RULES_PRE, &bt->rows[r].txn,
                              &bt->feats[r * bt->nfeat], score, res);
                vg_rules_eval(side->rules, VG_RULES_POST, &bt->rows[r].txn,
                              &bt->feats[r * bt->nfeat], score, res);
            } else {
                memset(res, 0, sizeof(*res));
                res->action = VG_ACTION_ALLOW;
            }
        }
    }
    for (size_t r = 0; r < n; r++) {
        const bt_row_t *row = &bt->rows[r];
        int fraud = row->fraud;
        double amount = row->txn.amount;
        bt_day_t *day = day_slot(bt, row->day);
        day->txns++;
        day->frauds += (uint64_t)fraud;
        for (int s = 0; s < VG_BT_SIDES; s++) {
            bt_side_t *side = &bt->side[s];
            if (!side->present)
                continue;
            const vg_rules_result_t *res = &bt->res[s][r];
            int flagged = res->action != VG_ACTION_ALLOW;
            int blocked = res->action == VG_ACTION_BLOCK;
            side->actions[res->action]++;
            side->flag[flagged][fraud]++;
            side->block[blocked][fraud]++;
            side->flag_amt[flagged][fraud] += amount;
            side->block_amt[blocked][fraud] += amount;
            side->truncated += res->truncated;
            day->flagged[s] += (uint64_t)flagged;
            day->flagged_fraud[s] += (uint64_t)(flagged && fraud);
            day->blocked[s] += (uint64_t)blocked;
            for (size_t i = 0; i < res->nfired; i++) {
                bt_rule_t *rule = &side->rule[res->fired[i]];
                rule->hits++;
                if (fraud) {
                    rule->fraud++;
                    rule->fraud_amount += amount;
                } else {
                    rule->legit_amount += amount;
                }
            }
            if (side->model && !isnan(bt->scores[s][r])) {
                int bin = (int)(bt->scores[s][r] * BT_HBINS);
                bin = bin < 0 ? 0 : bin >= BT_HBINS ? BT_HBINS - 1 : bin;
                side->hist[fraud][bin]++;
            }
        }
        if (bt->side[0].present && bt->side[1].present) {
            int a = (int)bt->res[0][r].action, b = (int)bt->res[1][r].action;
            bt->change[a][b]++;
            if (a != b)
                keep_example(bt, row, r);
        }
    }
    bt->nrows = 0;
    vg_arena_reset(&bt->arena);
    return VG_OK;
}

vg_err_t vg_backtest_add_decision(vg_backtest_t *bt, const char *line, size_t len, char *errbuf,
                                  size_t errlen)
{
    /* A NUL-terminated copy: numbers are read with strtod, which needs a terminator. */
    vg_buf_reset(&bt->line);
    vg_buf_append(&bt->line, line, len);
    vg_buf_putc(&bt->line, '\0');
    const char *p = bt->line.data, *e = p + len;
    obj_iter_t it;
    if (obj_open(&it, p, e))
        return vg_errf(errbuf, errlen, VG_ERR_INPUT, "not a JSON object");
    const char *feats = NULL, *feats_end = NULL, *txn = NULL, *txn_end = NULL;
    const char *key, *val, *vend;
    size_t klen;
    int rc;
    while ((rc = obj_next(&it, &key, &klen, &val, &vend)) == 1) {
        if (key_is(key, klen, "features")) {
            feats = val;
            feats_end = vend;
        } else if (key_is(key, klen, "txn")) {
            txn = val;
            txn_end = vend;
        } else if (key_is(key, klen, "catalog")) {
            const char *version = vg_catalog_version(bt->catalog);
            if (*val != '"' || (size_t)(vend - val - 2) != strlen(version) ||
                memcmp(val + 1, version, strlen(version)) != 0)
                return vg_errf(errbuf, errlen, VG_ERR_INPUT,
                               "decision made with catalogue %.*s, the backtest's is %s "
                               "(replay with the same --catalog)",
                               (int)(vend - val), val, version);
        }
    }
    if (rc < 0)
        return vg_errf(errbuf, errlen, VG_ERR_INPUT, "malformed JSON");
    if (!feats)
        return vg_errf(errbuf, errlen, VG_ERR_INPUT, "missing field features");
    if (!txn)
        return vg_errf(errbuf, errlen, VG_ERR_INPUT, "missing field txn");

    bt_row_t *row = &bt->rows[bt->nrows];
    char reason[VG_ERRLEN];
    if (vg_txn_decode(&bt->schema, txn, (size_t)(txn_end - txn), &bt->arena, &row->txn, reason,
                      sizeof(reason)) != VG_OK)
        return vg_errf(errbuf, errlen, VG_ERR_INPUT, "txn: %s", reason);
    if (row->txn.ts_ms < bt->opts.from_ms || row->txn.ts_ms >= bt->opts.to_ms) {
        bt->skipped++;
        return VG_OK;
    }
    double *x = &bt->feats[bt->nrows * bt->nfeat];
    float *xf = &bt->xrows[bt->nrows * bt->nfeat];
    obj_iter_t fit;
    if (obj_open(&fit, feats, feats_end))
        return vg_errf(errbuf, errlen, VG_ERR_INPUT, "features is not an object");
    size_t f = 0;
    while ((rc = obj_next(&fit, &key, &klen, &val, &vend)) == 1) {
        if (f >= bt->nfeat || !key_is(key, klen, bt->names[f]))
            return vg_errf(errbuf, errlen, VG_ERR_INPUT,
                           "feature %zu is %.*s, the catalogue's is %s", f + 1, (int)klen, key,
                           f < bt->nfeat ? bt->names[f] : "(none: too many features)");
        if (vend - val == 4 && memcmp(val, "null", 4) == 0) {
            x[f] = NAN;
        } else {
            char *end;
            x[f] = strtod(val, &end);
            if (end != vend || *val == '"')
                return vg_errf(errbuf, errlen, VG_ERR_INPUT, "feature %s: not a number",
                               bt->names[f]);
        }
        xf[f] = (float)x[f];
        f++;
    }
    if (rc < 0)
        return vg_errf(errbuf, errlen, VG_ERR_INPUT, "malformed features");
    if (f != bt->nfeat)
        return vg_errf(errbuf, errlen, VG_ERR_INPUT, "%zu features, the catalogue has %zu", f,
                       bt->nfeat);

    row->fraud = label_fraud(bt, row->txn.str[VG_F_TXN_ID], row->txn.len[VG_F_TXN_ID]);
    row->day = day_of(row->txn.ts_ms);
    bt->judged++;
    bt->frauds += (uint64_t)row->fraud;
    bt->amount += row->txn.amount;
    bt->fraud_amount += row->fraud ? row->txn.amount : 0;
    if (row->txn.ts_ms < bt->first_ts)
        bt->first_ts = row->txn.ts_ms;
    if (row->txn.ts_ms > bt->last_ts)
        bt->last_ts = row->txn.ts_ms;
    if (++bt->nrows == BT_BATCH)
        return flush(bt, errbuf, errlen);
    return VG_OK;
}

vg_err_t vg_backtest_finish(vg_backtest_t *bt, char *errbuf, size_t errlen)
{
    return flush(bt, errbuf, errlen);
}

/* ---- figures shared by the reports ---- */

static const char *side_name(int s)
{
    return s == VG_BT_BASELINE ? "baseline" : "candidate";
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : NAN;
}

static size_t days_spanned(const vg_backtest_t *bt)
{
    return bt->ndays ? bt->ndays : 1;
}

static void day_label(const vg_backtest_t *bt, size_t i, char out[16])
{
    int y;
    unsigned m, d;
    vg_civil_from_days(bt->day0 + (int64_t)i, &y, &m, &d);
    snprintf(out, 16, "%04d-%02u-%02u", y, m, d);
}

/* ---- JSON ---- */

static void json_kv_num(vg_buf_t *out, const char *key, double v, int comma)
{
    vg_buf_printf(out, "%s\"%s\":", comma ? "," : "", key);
    vg_buf_json_num(out, v);
}

static void json_str_or_null(vg_buf_t *out, const char *s)
{
    if (s)
        vg_buf_json_str(out, s, strlen(s));
    else
        vg_buf_puts(out, "null");
}

static void json_confusion(vg_buf_t *out, const uint64_t cm[2][2], const double amt[2][2])
{
    vg_buf_printf(out, "{\"tp\":%llu,\"fp\":%llu,\"fn\":%llu,\"tn\":%llu",
                  (unsigned long long)cm[1][1], (unsigned long long)cm[1][0],
                  (unsigned long long)cm[0][1], (unsigned long long)cm[0][0]);
    json_kv_num(out, "precision", ratio((double)cm[1][1], (double)(cm[1][1] + cm[1][0])), 1);
    json_kv_num(out, "recall", ratio((double)cm[1][1], (double)(cm[1][1] + cm[0][1])), 1);
    json_kv_num(out, "fraud_amount", amt[1][1], 1);
    json_kv_num(out, "legit_amount", amt[1][0], 1);
    vg_buf_putc(out, '}');
}

static void json_rules_fired(vg_buf_t *out, const bt_side_t *side, const vg_rules_result_t *res)
{
    vg_buf_putc(out, '[');
    for (size_t i = 0; side->rules && i < res->nfired; i++) {
        if (i)
            vg_buf_putc(out, ',');
        const char *id = vg_rules_id(side->rules, res->fired[i]);
        vg_buf_json_str(out, id, strlen(id));
    }
    vg_buf_putc(out, ']');
}

void vg_backtest_json(const vg_backtest_t *bt, vg_buf_t *out)
{
    double ndays = (double)days_spanned(bt);
    char t0[32] = "", t1[32] = "";
    if (bt->judged) {
        vg_time_format(bt->first_ts, t0);
        vg_time_format(bt->last_ts, t1);
    }
    vg_buf_puts(out, "{\"window\":{\"first\":");
    json_str_or_null(out, bt->judged ? t0 : NULL);
    vg_buf_puts(out, ",\"last\":");
    json_str_or_null(out, bt->judged ? t1 : NULL);
    vg_buf_printf(out, ",\"days\":%zu}", bt->ndays);
    vg_buf_printf(out, ",\"transactions\":%llu,\"skipped\":%llu,\"frauds\":%llu",
                  (unsigned long long)bt->judged, (unsigned long long)bt->skipped,
                  (unsigned long long)bt->frauds);
    json_kv_num(out, "amount", bt->amount, 1);
    json_kv_num(out, "fraud_amount", bt->fraud_amount, 1);
    vg_buf_puts(out, ",\"sides\":{");
    int comma = 0;
    for (int s = 0; s < VG_BT_SIDES; s++) {
        const bt_side_t *side = &bt->side[s];
        if (!side->present)
            continue;
        vg_buf_printf(out, "%s\"%s\":{\"rules_file\":", comma ? "," : "", side_name(s));
        comma = 1;
        json_str_or_null(out, side->rules_path);
        vg_buf_puts(out, ",\"rules_version\":");
        json_str_or_null(out, side->rules ? vg_rules_version(side->rules) : NULL);
        vg_buf_puts(out, ",\"model\":");
        json_str_or_null(out, side->model ? vg_model_version(side->model) : NULL);
        vg_buf_printf(out, ",\"decisions\":{\"allow\":%llu,\"review\":%llu,\"block\":%llu}",
                      (unsigned long long)side->actions[0], (unsigned long long)side->actions[1],
                      (unsigned long long)side->actions[2]);
        vg_buf_puts(out, ",\"flagged\":");
        json_confusion(out, side->flag, side->flag_amt);
        vg_buf_puts(out, ",\"blocked\":");
        json_confusion(out, side->block, side->block_amt);
        json_kv_num(out, "fraud_amount_caught", side->flag_amt[1][1], 1);
        json_kv_num(out, "legit_amount_blocked", side->block_amt[1][0], 1);
        json_kv_num(out, "reviews_per_day", (double)side->actions[VG_ACTION_REVIEW] / ndays, 1);
        json_kv_num(out, "blocks_per_day", (double)side->actions[VG_ACTION_BLOCK] / ndays, 1);
        vg_buf_puts(out, ",\"rules\":[");
        size_t nrules = side->rules ? vg_rules_count(side->rules) : 0;
        for (size_t i = 0; i < nrules; i++) {
            const bt_rule_t *r = &side->rule[i];
            const char *id = vg_rules_id(side->rules, i);
            vg_buf_puts(out, i ? ",{\"id\":" : "{\"id\":");
            vg_buf_json_str(out, id, strlen(id));
            vg_buf_printf(out,
                          ",\"action\":\"%s\",\"shadow\":%s,\"hits\":%llu,\"fraud\":%llu,"
                          "\"false_positives\":%llu",
                          vg_action_name(vg_rules_action(side->rules, i)),
                          vg_rules_shadow(side->rules, i) ? "true" : "false",
                          (unsigned long long)r->hits, (unsigned long long)r->fraud,
                          (unsigned long long)(r->hits - r->fraud));
            json_kv_num(out, "precision", ratio((double)r->fraud, (double)r->hits), 1);
            json_kv_num(out, "recall", ratio((double)r->fraud, (double)bt->frauds), 1);
            json_kv_num(out, "fraud_amount", r->fraud_amount, 1);
            json_kv_num(out, "legit_amount", r->legit_amount, 1);
            json_kv_num(out, "hits_per_day", (double)r->hits / ndays, 1);
            vg_buf_putc(out, '}');
        }
        vg_buf_puts(out, "],\"daily\":[");
        for (size_t d = 0; d < bt->ndays; d++) {
            const bt_day_t *day = &bt->days[d];
            char label[16];
            day_label(bt, d, label);
            vg_buf_printf(out,
                          "%s{\"day\":\"%s\",\"transactions\":%llu,\"frauds\":%llu,"
                          "\"flagged\":%llu,\"flagged_fraud\":%llu,\"blocked\":%llu",
                          d ? "," : "", label, (unsigned long long)day->txns,
                          (unsigned long long)day->frauds, (unsigned long long)day->flagged[s],
                          (unsigned long long)day->flagged_fraud[s],
                          (unsigned long long)day->blocked[s]);
            json_kv_num(out, "precision",
                        ratio((double)day->flagged_fraud[s], (double)day->flagged[s]), 1);
            vg_buf_putc(out, '}');
        }
        vg_buf_puts(out, "],\"score_histogram\":");
        if (side->model) {
            vg_buf_puts(out, "{\"bins\":20,\"fraud\":[");
            for (int i = 0; i < BT_HBINS; i++)
                vg_buf_printf(out, "%s%llu", i ? "," : "", (unsigned long long)side->hist[1][i]);
            vg_buf_puts(out, "],\"legit\":[");
            for (int i = 0; i < BT_HBINS; i++)
                vg_buf_printf(out, "%s%llu", i ? "," : "", (unsigned long long)side->hist[0][i]);
            vg_buf_puts(out, "]}");
        } else {
            vg_buf_puts(out, "null");
        }
        vg_buf_putc(out, '}');
    }
    vg_buf_puts(out, "},\"changed\":");
    if (!(bt->side[0].present && bt->side[1].present)) {
        vg_buf_puts(out, "null}");
        return;
    }
    uint64_t total = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            total += a != b ? bt->change[a][b] : 0;
    vg_buf_printf(out, "{\"total\":%llu,\"transitions\":[", (unsigned long long)total);
    comma = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            if (a == b)
                continue;
            vg_buf_printf(out, "%s{\"from\":\"%s\",\"to\":\"%s\",\"count\":%llu}", comma ? "," : "",
                          vg_action_name((vg_action_t)a), vg_action_name((vg_action_t)b),
                          (unsigned long long)bt->change[a][b]);
            comma = 1;
        }
    vg_buf_puts(out, "],\"examples\":[");
    comma = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (size_t i = 0; i < bt->nexamples[a][b]; i++) {
                const bt_example_t *ex = &bt->examples[a][b][i];
                vg_buf_puts(out, comma ? ",{\"txn_id\":" : "{\"txn_id\":");
                comma = 1;
                json_str_or_null(out, ex->txn_id);
                vg_buf_puts(out, ",\"ts\":");
                json_str_or_null(out, ex->ts);
                vg_buf_puts(out, ",\"card_id\":");
                json_str_or_null(out, ex->card_id);
                vg_buf_puts(out, ",\"merchant_id\":");
                json_str_or_null(out, ex->merchant_id);
                json_kv_num(out, "amount", ex->amount, 1);
                vg_buf_printf(out, ",\"fraud\":%s,\"from\":\"%s\",\"to\":\"%s\"",
                              ex->fraud ? "true" : "false", vg_action_name(ex->action[0]),
                              vg_action_name(ex->action[1]));
                for (int s = 0; s < VG_BT_SIDES; s++) {
                    vg_buf_printf(out, ",\"%s_rules\":", side_name(s));
                    json_rules_fired(out, &bt->side[s], &ex->res[s]);
                    vg_buf_printf(out, ",\"%s_score\":", side_name(s));
                    vg_buf_json_num(out, ex->score[s]);
                }
                vg_buf_putc(out, '}');
            }
    vg_buf_puts(out, "]}}");
}

/* ---- plain-text table ---- */

static void fmt_pct(char out[16], double v)
{
    if (isnan(v))
        snprintf(out, 16, "-");
    else
        snprintf(out, 16, "%.1f%%", v * 100);
}

void vg_backtest_table(const vg_backtest_t *bt, vg_buf_t *out)
{
    double ndays = (double)days_spanned(bt);
    char t0[32] = "-", t1[32] = "-", p1[16], p2[16], p3[16];
    if (bt->judged) {
        vg_time_format(bt->first_ts, t0);
        vg_time_format(bt->last_ts, t1);
    }
    vg_buf_printf(out,
                  "window %s .. %s (%zu days): %llu transactions (%llu outside the window), "
                  "%llu fraud (%.2f%%), fraud amount %.2f\n",
                  t0, t1, bt->ndays, (unsigned long long)bt->judged,
                  (unsigned long long)bt->skipped, (unsigned long long)bt->frauds,
                  bt->judged ? 100.0 * (double)bt->frauds / (double)bt->judged : 0.0,
                  bt->fraud_amount);
    for (int s = 0; s < VG_BT_SIDES; s++) {
        const bt_side_t *side = &bt->side[s];
        if (!side->present)
            continue;
        vg_buf_printf(out, "\n== %s: rules %s (%s), model %s\n", side_name(s),
                      side->rules_path ? side->rules_path : "none",
                      side->rules ? vg_rules_version(side->rules) : "-",
                      side->model ? vg_model_version(side->model) : "none");
        double n = (double)(bt->judged ? bt->judged : 1);
        vg_buf_printf(out,
                      "decisions: allow %llu, review %llu (%.2f%%, %.1f/day), block %llu "
                      "(%.2f%%, %.1f/day)\n",
                      (unsigned long long)side->actions[0], (unsigned long long)side->actions[1],
                      100.0 * (double)side->actions[1] / n, (double)side->actions[1] / ndays,
                      (unsigned long long)side->actions[2], 100.0 * (double)side->actions[2] / n,
                      (double)side->actions[2] / ndays);
        vg_buf_printf(out, "%-9s %9s %9s %9s %11s %9s %9s\n", "", "tp", "fp", "fn", "tn",
                      "precision", "recall");
        const uint64_t(*cms[2])[2] = {side->flag, side->block};
        const char *cmnames[2] = {"flagged", "blocked"};
        for (int c = 0; c < 2; c++) {
            const uint64_t(*cm)[2] = cms[c];
            fmt_pct(p1, ratio((double)cm[1][1], (double)(cm[1][1] + cm[1][0])));
            fmt_pct(p2, ratio((double)cm[1][1], (double)(cm[1][1] + cm[0][1])));
            vg_buf_printf(out, "%-9s %9llu %9llu %9llu %11llu %9s %9s\n", cmnames[c],
                          (unsigned long long)cm[1][1], (unsigned long long)cm[1][0],
                          (unsigned long long)cm[0][1], (unsigned long long)cm[0][0], p1, p2);
        }
        vg_buf_printf(out,
                      "fraud amount caught %.2f of %.2f (blocked %.2f); legit amount blocked "
                      "%.2f\n",
                      side->flag_amt[1][1], bt->fraud_amount, side->block_amt[1][1],
                      side->block_amt[1][0]);
        if (side->truncated)
            vg_buf_printf(out, "note: %llu transactions fired more than %d rules\n",
                          (unsigned long long)side->truncated, VG_RULES_MAX_FIRED);
        size_t nrules = side->rules ? vg_rules_count(side->rules) : 0;
        if (!nrules)
            continue;
        vg_buf_printf(out, "%-28s %-6s %8s %7s %7s %9s %7s %12s %8s\n", "rule", "action", "hits",
                      "fraud", "fp", "precision", "recall", "fraud amt", "hits/day");
        for (size_t i = 0; i < nrules; i++) {
            const bt_rule_t *r = &side->rule[i];
            char act[16];
            snprintf(act, sizeof(act), "%s%s", vg_action_name(vg_rules_action(side->rules, i)),
                     vg_rules_shadow(side->rules, i) ? "*" : "");
            fmt_pct(p1, ratio((double)r->fraud, (double)r->hits));
            fmt_pct(p3, ratio((double)r->fraud, (double)bt->frauds));
            vg_buf_printf(out, "%-28s %-6s %8llu %7llu %7llu %9s %7s %12.2f %8.1f\n",
                          vg_rules_id(side->rules, i), act, (unsigned long long)r->hits,
                          (unsigned long long)r->fraud, (unsigned long long)(r->hits - r->fraud),
                          p1, p3, r->fraud_amount, (double)r->hits / ndays);
        }
        vg_buf_puts(out, "(* shadow: recorded, not acted on)\n");
    }
    if (!(bt->side[0].present && bt->side[1].present))
        return;
    uint64_t total = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            total += a != b ? bt->change[a][b] : 0;
    vg_buf_printf(out, "\n== changed decisions: %llu\n", (unsigned long long)total);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            if (a != b && bt->change[a][b])
                vg_buf_printf(out, "  %-6s -> %-6s %llu\n", vg_action_name((vg_action_t)a),
                              vg_action_name((vg_action_t)b), (unsigned long long)bt->change[a][b]);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (size_t i = 0; i < bt->nexamples[a][b]; i++) {
                const bt_example_t *ex = &bt->examples[a][b][i];
                vg_buf_printf(out, "  %s %s %.2f %s %s->%s baseline [", ex->txn_id, ex->ts,
                              ex->amount, ex->fraud ? "fraud" : "legit",
                              vg_action_name(ex->action[0]), vg_action_name(ex->action[1]));
                for (int s = 0; s < VG_BT_SIDES; s++) {
                    const bt_side_t *side = &bt->side[s];
                    for (size_t k = 0; side->rules && k < ex->res[s].nfired; k++)
                        vg_buf_printf(out, "%s%s", k ? " " : "",
                                      vg_rules_id(side->rules, ex->res[s].fired[k]));
                    vg_buf_puts(out, s == 0 ? "] candidate [" : "]\n");
                }
            }
}

/* ---- HTML ---- */

/* Escapes text for HTML element content and attribute values. */
static void html_esc(vg_buf_t *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            vg_buf_puts(out, "&lt;");
            break;
        case '>':
            vg_buf_puts(out, "&gt;");
            break;
        case '&':
            vg_buf_puts(out, "&amp;");
            break;
        case '"':
            vg_buf_puts(out, "&quot;");
            break;
        case '\'':
            vg_buf_puts(out, "&#39;");
            break;
        default:
            vg_buf_putc(out, *s);
        }
    }
}

static const char *side_color[VG_BT_SIDES] = {"#7a7a7a", "#1f6fd1"};

typedef struct svg_series {
    const char *name;
    const char *color;
    const double *v; /* NaN: no point */
} svg_series_t;

/* Opens a W x H chart: the svg element, its accessible title, and the title drawn at x. */
static void svg_open(vg_buf_t *out, double w, double h, double x, const char *title)
{
    vg_buf_printf(out, "<svg width=\"%.0f\" height=\"%.0f\" role=\"img\"><title>", w, h);
    html_esc(out, title);
    vg_buf_printf(out, "</title><text x=\"%.0f\" y=\"18\" class=\"t\">", x);
    html_esc(out, title);
    vg_buf_puts(out, "</text>");
}

/* A line chart of n points per series, x = day index, y from 0 to ymax (0: the data's max). */
static void svg_lines(vg_buf_t *out, const vg_backtest_t *bt, const char *title,
                      const svg_series_t *series, size_t nseries, size_t n, double ymax,
                      int percent)
{
    const double W = 720, H = 240, L = 56, R = 12, T = 28, B = 36;
    if (ymax <= 0) {
        for (size_t s = 0; s < nseries; s++)
            for (size_t i = 0; i < n; i++)
                if (!isnan(series[s].v[i]) && series[s].v[i] > ymax)
                    ymax = series[s].v[i];
        if (ymax <= 0)
            ymax = 1;
    }
    svg_open(out, W, H, L, title);
    for (int g = 0; g <= 4; g++) {
        double y = T + (H - T - B) * (1 - g / 4.0);
        vg_buf_printf(out,
                      "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" class=\"g\"/>"
                      "<text x=\"%.0f\" y=\"%.1f\" class=\"a\" text-anchor=\"end\">",
                      L, W - R, y, y, L - 4, y + 4);
        if (percent)
            vg_buf_printf(out, "%.0f%%", ymax * g / 4.0 * 100);
        else
            vg_buf_printf(out, "%.4g", ymax * g / 4.0);
        vg_buf_puts(out, "</text>");
    }
    double dx = n > 1 ? (W - L - R) / (double)(n - 1) : 0;
    if (n) {
        char first[16], last[16];
        day_label(bt, 0, first);
        day_label(bt, n - 1, last);
        vg_buf_printf(out,
                      "<text x=\"%.0f\" y=\"%.0f\" class=\"a\">%s</text>"
                      "<text x=\"%.0f\" y=\"%.0f\" class=\"a\" text-anchor=\"end\">%s</text>",
                      L, H - B + 16, first, W - R, H - B + 16, last);
    }
    for (size_t s = 0; s < nseries; s++) {
        vg_buf_printf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                      series[s].color);
        for (size_t i = 0; i < n; i++) {
            if (isnan(series[s].v[i]))
                continue;
            double x = L + dx * (double)i, y = T + (H - T - B) * (1 - series[s].v[i] / ymax);
            vg_buf_printf(out, "%.1f,%.1f ", x, y);
        }
        vg_buf_puts(out, "\"/>");
        vg_buf_printf(out,
                      "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                      "<text x=\"%.0f\" y=\"%.0f\" class=\"a\">",
                      L + 150 * (double)s, H - 12, series[s].color, L + 150 * (double)s + 14,
                      H - 3);
        html_esc(out, series[s].name);
        vg_buf_puts(out, "</text>");
    }
    vg_buf_puts(out, "</svg>\n");
}

/* Score histogram, fraud and legit bars side by side, each as a share of its class. */
static void svg_hist(vg_buf_t *out, const bt_side_t *side, const char *title)
{
    const double W = 720, H = 240, L = 56, R = 12, T = 28, B = 36;
    double tot[2] = {0, 0}, ymax = 0;
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < BT_HBINS; i++)
            tot[c] += (double)side->hist[c][i];
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < BT_HBINS; i++)
            if (tot[c] > 0 && (double)side->hist[c][i] / tot[c] > ymax)
                ymax = (double)side->hist[c][i] / tot[c];
    if (ymax <= 0)
        ymax = 1;
    svg_open(out, W, H, L, title);
    double bw = (W - L - R) / BT_HBINS;
    const char *colors[2] = {"#2a9d5c", "#d1361f"};
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < BT_HBINS; i++) {
            double share = tot[c] > 0 ? (double)side->hist[c][i] / tot[c] : 0;
            double h = (H - T - B) * share / ymax;
            vg_buf_printf(out,
                          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                          "fill=\"%s\"><title>%s %.2f-%.2f: %.1f%%</title></rect>",
                          L + bw * i + (c ? bw / 2 : 1), T + (H - T - B) - h, bw / 2 - 1, h,
                          colors[c], c ? "fraud" : "legit", i / (double)BT_HBINS,
                          (i + 1) / (double)BT_HBINS, share * 100);
        }
    for (int g = 0; g <= 4; g++)
        vg_buf_printf(out,
                      "<text x=\"%.1f\" y=\"%.0f\" class=\"a\" text-anchor=\"middle\">%.2f"
                      "</text>",
                      L + (W - L - R) * g / 4.0, H - B + 16, g / 4.0);
    vg_buf_printf(out,
                  "<text x=\"%.0f\" y=\"%.0f\" class=\"a\" text-anchor=\"end\">%.0f%%</text>"
                  "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                  "<text x=\"%.0f\" y=\"%.0f\" class=\"a\">legit (share of legit)</text>"
                  "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                  "<text x=\"%.0f\" y=\"%.0f\" class=\"a\">fraud (share of fraud)</text></svg>\n",
                  L - 4, T + 4, ymax * 100, L, H - 12, colors[0], L + 14, H - 3, L + 220, H - 12,
                  colors[1], L + 234, H - 3);
}

static void html_num(vg_buf_t *out, double v, int pct)
{
    if (isnan(v))
        vg_buf_puts(out, "<td>-</td>");
    else if (pct)
        vg_buf_printf(out, "<td>%.1f%%</td>", v * 100);
    else
        vg_buf_printf(out, "<td>%.2f</td>", v);
}

static void html_rules_fired(vg_buf_t *out, const bt_side_t *side, const vg_rules_result_t *res)
{
    vg_buf_puts(out, "<td>");
    for (size_t k = 0; side->rules && k < res->nfired; k++) {
        if (k)
            vg_buf_puts(out, ", ");
        html_esc(out, vg_rules_id(side->rules, res->fired[k]));
    }
    vg_buf_puts(out, "</td>");
}

void vg_backtest_html(const vg_backtest_t *bt, vg_buf_t *out)
{
    double ndays = (double)days_spanned(bt);
    char t0[32] = "-", t1[32] = "-";
    if (bt->judged) {
        vg_time_format(bt->first_ts, t0);
        vg_time_format(bt->last_ts, t1);
    }
    vg_buf_puts(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<title>vigil backtest</title><style>"
                     "body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}"
                     "table{border-collapse:collapse;margin:8px 0 20px}"
                     "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
                     "td:first-child,th:first-child{text-align:left}th{background:#f2f2f2}"
                     "h2{margin-top:32px}.t{font-size:14px;font-weight:600}.a{font-size:11px;"
                     "fill:#555}.g{stroke:#e4e4e4}svg{display:block;margin:8px 0}"
                     "</style></head><body>\n<h1>vigil backtest</h1>\n");
    vg_buf_printf(out,
                  "<p>Window %s .. %s (%zu days): %llu transactions (%llu outside the window), "
                  "%llu fraud (%.2f%%), fraud amount %.2f. Labels judge with hindsight: a "
                  "transaction is fraud if its label says so, whenever the label arrived.</p>\n",
                  t0, t1, bt->ndays, (unsigned long long)bt->judged,
                  (unsigned long long)bt->skipped, (unsigned long long)bt->frauds,
                  bt->judged ? 100.0 * (double)bt->frauds / (double)bt->judged : 0.0,
                  bt->fraud_amount);

    /* summary side by side */
    vg_buf_puts(out, "<h2>Decisions</h2><table><tr><th></th>");
    for (int s = 0; s < VG_BT_SIDES; s++)
        if (bt->side[s].present)
            vg_buf_printf(out, "<th>%s</th>", side_name(s));
    vg_buf_puts(out, "</tr>");
    static const char *rows[] = {"rules",
                                 "model",
                                 "allow",
                                 "review",
                                 "block",
                                 "reviews per day",
                                 "flagged: fraud (TP)",
                                 "flagged: legit (FP)",
                                 "missed fraud (FN)",
                                 "allowed legit (TN)",
                                 "precision (flagged)",
                                 "recall (flagged)",
                                 "blocked: fraud",
                                 "blocked: legit",
                                 "precision (blocked)",
                                 "recall (blocked)",
                                 "fraud amount caught",
                                 "legit amount blocked"};
    for (size_t r = 0; r < VG_ARRAY_LEN(rows); r++) {
        vg_buf_printf(out, "<tr><td>%s</td>", rows[r]);
        for (int s = 0; s < VG_BT_SIDES; s++) {
            const bt_side_t *side = &bt->side[s];
            if (!side->present)
                continue;
            switch (r) {
            case 0:
                vg_buf_puts(out, "<td>");
                html_esc(out, side->rules_path ? side->rules_path : "none");
                vg_buf_puts(out, "</td>");
                break;
            case 1:
                vg_buf_puts(out, "<td>");
                html_esc(out, side->model ? vg_model_version(side->model) : "none");
                vg_buf_puts(out, "</td>");
                break;
            case 2:
            case 3:
            case 4:
                vg_buf_printf(out, "<td>%llu</td>", (unsigned long long)side->actions[r - 2]);
                break;
            case 5:
                html_num(out, (double)side->actions[VG_ACTION_REVIEW] / ndays, 0);
                break;
            case 6:
            case 7:
            case 8:
            case 9: {
                static const int cell[4][2] = {{1, 1}, {1, 0}, {0, 1}, {0, 0}};
                vg_buf_printf(out, "<td>%llu</td>",
                              (unsigned long long)side->flag[cell[r - 6][0]][cell[r - 6][1]]);
                break;
            }
            case 10:
                html_num(
                    out,
                    ratio((double)side->flag[1][1], (double)(side->flag[1][1] + side->flag[1][0])),
                    1);
                break;
            case 11:
                html_num(out, ratio((double)side->flag[1][1], (double)bt->frauds), 1);
                break;
            case 12:
            case 13:
                vg_buf_printf(out, "<td>%llu</td>",
                              (unsigned long long)side->block[1][r == 12 ? 1 : 0]);
                break;
            case 14:
                html_num(out,
                         ratio((double)side->block[1][1],
                               (double)(side->block[1][1] + side->block[1][0])),
                         1);
                break;
            case 15:
                html_num(out, ratio((double)side->block[1][1], (double)bt->frauds), 1);
                break;
            case 16:
                html_num(out, side->flag_amt[1][1], 0);
                break;
            case 17:
                html_num(out, side->block_amt[1][0], 0);
                break;
            }
        }
        vg_buf_puts(out, "</tr>");
    }
    vg_buf_puts(out, "</table>\n");

    /* charts */
    size_t n = bt->ndays;
    double *flags[VG_BT_SIDES], *prec[VG_BT_SIDES], *frauds = vg_xcalloc(n + 1, sizeof(double));
    svg_series_t fs[VG_BT_SIDES + 1], ps[VG_BT_SIDES];
    size_t nf = 0, np = 0;
    for (size_t d = 0; d < n; d++)
        frauds[d] = (double)bt->days[d].frauds;
    for (int s = 0; s < VG_BT_SIDES; s++) {
        flags[s] = vg_xcalloc(n + 1, sizeof(double));
        prec[s] = vg_xcalloc(n + 1, sizeof(double));
        for (size_t d = 0; d < n; d++) {
            flags[s][d] = (double)bt->days[d].flagged[s];
            prec[s][d] =
                ratio((double)bt->days[d].flagged_fraud[s], (double)bt->days[d].flagged[s]);
        }
        if (bt->side[s].present) {
            fs[nf++] = (svg_series_t){side_name(s), side_color[s], flags[s]};
            ps[np++] = (svg_series_t){side_name(s), side_color[s], prec[s]};
        }
    }
    fs[nf++] = (svg_series_t){"labelled fraud", "#d1361f", frauds};
    vg_buf_puts(out, "<h2>Daily</h2>\n");
    svg_lines(out, bt, "Flagged (review + block) per day", fs, nf, n, 0, 0);
    svg_lines(out, bt, "Precision of flagged per day", ps, np, n, 1, 1);
    for (int s = 0; s < VG_BT_SIDES; s++) {
        free(flags[s]);
        free(prec[s]);
        if (bt->side[s].present && bt->side[s].model) {
            char title[64];
            snprintf(title, sizeof(title), "Score distribution, %s model", side_name(s));
            svg_hist(out, &bt->side[s], title);
        }
    }
    free(frauds);

    /* per-rule tables */
    for (int s = 0; s < VG_BT_SIDES; s++) {
        const bt_side_t *side = &bt->side[s];
        size_t nrules = side->rules ? vg_rules_count(side->rules) : 0;
        if (!side->present || !nrules)
            continue;
        vg_buf_printf(out,
                      "<h2>Rules, %s</h2><table><tr><th>rule</th><th>action</th><th>hits</th>"
                      "<th>fraud</th><th>false positives</th><th>precision</th><th>recall</th>"
                      "<th>fraud amount</th><th>hits per day</th></tr>",
                      side_name(s));
        for (size_t i = 0; i < nrules; i++) {
            const bt_rule_t *r = &side->rule[i];
            vg_buf_puts(out, "<tr><td>");
            html_esc(out, vg_rules_id(side->rules, i));
            vg_buf_printf(out, "</td><td>%s%s</td><td>%llu</td><td>%llu</td><td>%llu</td>",
                          vg_action_name(vg_rules_action(side->rules, i)),
                          vg_rules_shadow(side->rules, i) ? " (shadow)" : "",
                          (unsigned long long)r->hits, (unsigned long long)r->fraud,
                          (unsigned long long)(r->hits - r->fraud));
            html_num(out, ratio((double)r->fraud, (double)r->hits), 1);
            html_num(out, ratio((double)r->fraud, (double)bt->frauds), 1);
            html_num(out, r->fraud_amount, 0);
            html_num(out, (double)r->hits / ndays, 0);
            vg_buf_puts(out, "</tr>");
        }
        vg_buf_puts(out, "</table>\n");
    }

    if (bt->side[0].present && bt->side[1].present) {
        uint64_t total = 0;
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                total += a != b ? bt->change[a][b] : 0;
        vg_buf_printf(out,
                      "<h2>Changed decisions: %llu</h2><table><tr><th>baseline \\ candidate"
                      "</th><th>allow</th><th>review</th><th>block</th></tr>",
                      (unsigned long long)total);
        for (int a = 0; a < 3; a++) {
            vg_buf_printf(out, "<tr><td>%s</td>", vg_action_name((vg_action_t)a));
            for (int b = 0; b < 3; b++)
                vg_buf_printf(out, "<td>%llu</td>", (unsigned long long)bt->change[a][b]);
            vg_buf_puts(out, "</tr>");
        }
        vg_buf_puts(out, "</table><table><tr><th>txn</th><th>time</th><th>card</th>"
                         "<th>merchant</th><th>amount</th><th>label</th><th>change</th>"
                         "<th>baseline rules</th><th>candidate rules</th></tr>");
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                for (size_t i = 0; i < bt->nexamples[a][b]; i++) {
                    const bt_example_t *ex = &bt->examples[a][b][i];
                    vg_buf_puts(out, "<tr><td>");
                    html_esc(out, ex->txn_id);
                    vg_buf_puts(out, "</td><td>");
                    html_esc(out, ex->ts);
                    vg_buf_puts(out, "</td><td>");
                    html_esc(out, ex->card_id);
                    vg_buf_puts(out, "</td><td>");
                    html_esc(out, ex->merchant_id ? ex->merchant_id : "");
                    vg_buf_puts(out, "</td>");
                    html_num(out, ex->amount, 0);
                    vg_buf_printf(out, "<td>%s</td><td>%s &rarr; %s</td>",
                                  ex->fraud ? "fraud" : "legit", vg_action_name(ex->action[0]),
                                  vg_action_name(ex->action[1]));
                    html_rules_fired(out, &bt->side[0], &ex->res[0]);
                    html_rules_fired(out, &bt->side[1], &ex->res[1]);
                    vg_buf_puts(out, "</tr>");
                }
        vg_buf_puts(out, "</table>\n");
    }
    vg_buf_puts(out, "</body></html>\n");
}
