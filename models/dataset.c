/*
 * dataset.c - joins served decisions with labels into training or evaluation rows.
 *
 * Labels are read first into a map txn_id -> the newest label known at as_of; decisions are
 * then streamed, one JSON line at a time, keeping those in the window (a later decision for
 * the same txn_id replaces the earlier one: replays and retries must not double a row).
 * Finally each row gets its label, or legit if mature, or is dropped as immature (or, for
 * the handbook's test set, as a card already known compromised).
 * Decisions outside the window are recognised from their top-level ts alone (peek_ts), which
 * keeps loading one week out of a six-month history to a fraction of a full JSON parse.
 * Invariant: every array in vg_dataset_t has nrows (or nrows * nfeatures) entries.
 */
#include "models/dataset.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- a string-keyed open-addressing map to an int64 payload pair ---- */

typedef struct smap_entry {
    char *key; /* NULL = empty */
    int64_t a, b;
} smap_entry_t;

typedef struct smap {
    smap_entry_t *slots;
    size_t cap, n; /* cap is a power of two, n < cap * 0.7 */
} smap_t;

static void smap_init(smap_t *m)
{
    m->cap = 1024;
    m->n = 0;
    m->slots = vg_xcalloc(m->cap, sizeof(*m->slots));
}

static void smap_free(smap_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
}

static smap_entry_t *smap_find(smap_t *m, const char *key, int *found)
{
    size_t i = vg_hash64(key, strlen(key), VG_HASH_SEED) & (m->cap - 1);
    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & (m->cap - 1);
    *found = m->slots[i].key != NULL;
    return &m->slots[i];
}

/* The entry for key, inserted (a = b = 0) if absent; *found says which. */
static smap_entry_t *smap_upsert(smap_t *m, const char *key, int *found)
{
    if ((m->n + 1) * 10 >= m->cap * 7) {
        smap_t bigger = {vg_xcalloc(m->cap * 2, sizeof(smap_entry_t)), m->cap * 2, m->n};
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i].key)
                continue;
            int f;
            *smap_find(&bigger, m->slots[i].key, &f) = m->slots[i];
        }
        free(m->slots);
        *m = bigger;
    }
    smap_entry_t *e = smap_find(m, key, found);
    if (!*found) {
        e->key = vg_xstrdup(key);
        e->a = e->b = 0;
        m->n++;
    }
    return e;
}

/* ---- parsing ---- */

static int parse_ts(json_t *v, int64_t *ms)
{
    if (json_is_integer(v)) {
        *ms = json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    return s && vg_time_parse(s, strlen(s), ms) == VG_OK ? 0 : -1;
}

/*
 * The top-level "ts" of the JSON object in s[0..n), read without parsing the rest of the
 * object: strings are skipped with their escapes and nesting is tracked, so a "ts" inside a
 * nested object or inside a string never matches. Returns 0 with *ms, or -1 when no
 * top-level ts was found or it is not a plain RFC 3339 string or integer; the caller then
 * parses the line fully, so a bad line is still reported.
 */
static int peek_ts(const char *s, size_t n, int64_t *ms)
{
    size_t i = 0;
    int depth = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    while (i < n) {
        char c = s[i++];
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth <= 0)
                return -1;
        } else if (c == '"') {
            size_t start = i;
            int escaped = 0;
            while (i < n && s[i] != '"') {
                if (s[i] == '\\') {
                    escaped = 1;
                    i++;
                }
                i++;
            }
            if (i >= n)
                return -1;
            size_t len = i - start;
            i++; /* the closing quote */
            if (depth != 1 || escaped || len != 2 || memcmp(s + start, "ts", 2) != 0)
                continue;
            while (i < n && (s[i] == ' ' || s[i] == '\t'))
                i++;
            if (i >= n || s[i] != ':')
                continue; /* a string value "ts", not the key */
            i++;
            while (i < n && (s[i] == ' ' || s[i] == '\t'))
                i++;
            if (i < n && s[i] == '"') {
                size_t v = ++i;
                while (i < n && s[i] != '"' && s[i] != '\\')
                    i++;
                if (i >= n || s[i] != '"')
                    return -1;
                return vg_time_parse(s + v, i - v, ms) == VG_OK ? 0 : -1;
            }
            char num[24];
            size_t k = 0;
            while (i < n && k + 1 < sizeof(num) && (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')))
                num[k++] = s[i++];
            num[k] = '\0';
            if (k == 0 || (i < n && s[i] != ',' && s[i] != '}' && s[i] != ' '))
                return -1;
            char *end = NULL;
            errno = 0;
            long long v = strtoll(num, &end, 10);
            if (errno || *end)
                return -1;
            *ms = v;
            return 0;
        }
    }
    return -1;
}

static int64_t day_start(int64_t ms)
{
    int64_t day = ms / 86400000;
    if (ms < 0 && ms % 86400000)
        day--;
    return day * 86400000;
}

/* The key of a card in the known-compromised map: its hash, as the rows keep it. */
static void card_key(uint64_t card, char key[17])
{
    snprintf(key, 17, "%016llx", (unsigned long long)card);
}

vg_err_t vg_parse_window(const char *s, int64_t *from_ms, int64_t *to_ms, char *errbuf,
                         size_t errlen)
{
    const char *dots = strstr(s, "..");
    char part[64];
    int64_t *out[2] = {from_ms, to_ms};
    const char *start[2] = {s, dots ? dots + 2 : NULL};
    size_t len[2] = {dots ? (size_t)(dots - s) : 0, dots ? strlen(dots + 2) : 0};
    for (int i = 0; i < 2 && dots; i++) {
        if (len[i] == 0 || len[i] >= 40)
            break;
        memcpy(part, start[i], len[i]);
        part[len[i]] = '\0';
        if (len[i] == 10)
            strcat(part, "T00:00:00Z");
        if (vg_time_parse(part, strlen(part), out[i]) != VG_OK)
            break;
        if (i == 1 && *to_ms > *from_ms)
            return VG_OK;
    }
    return vg_errf(errbuf, errlen, VG_ERR_INPUT,
                   "window '%s': expected FROM..TO with FROM before TO, e.g. "
                   "2018-04-01..2018-04-08",
                   s);
}

/* Reads the labels file into map: a = label (1 fraud, 0 legit), b = label ts. */
static vg_err_t read_labels(const char *path, int64_t as_of, smap_t *map, char *errbuf,
                            size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    vg_err_t err = VG_OK;
    while (!err && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (n == 0 || line[0] == '\n')
            continue;
        json_error_t jerr;
        json_t *obj = json_loadb(line, (size_t)n, 0, &jerr);
        const char *txn = json_string_value(json_object_get(obj, "txn_id"));
        const char *label = json_string_value(json_object_get(obj, "label"));
        int64_t ts = 0;
        if (!txn || !label || (strcmp(label, "fraud") != 0 && strcmp(label, "legit") != 0) ||
            parse_ts(json_object_get(obj, "ts"), &ts) != 0) {
            err =
                vg_errf(errbuf, errlen, VG_ERR_INPUT,
                        "%s:%zu: not a label (needs txn_id, label fraud|legit, ts)", path, lineno);
        } else if (ts <= as_of) {
            int found;
            smap_entry_t *e = smap_upsert(map, txn, &found);
            /* The newest known label wins: an analyst's legit can be overturned by a
             * chargeback. */
            if (!found || ts >= e->b) {
                e->a = strcmp(label, "fraud") == 0;
                e->b = ts;
            }
        }
        json_decref(obj);
    }
    free(line);
    fclose(f);
    return err;
}

void vg_dataset_free(vg_dataset_t *ds)
{
    if (!ds)
        return;
    for (size_t i = 0; i < ds->nfeatures; i++)
        free(ds->features[i]);
    free(ds->features);
    free(ds->rows);
    free(ds->labels);
    free(ds->ts);
    free(ds->card);
    free(ds->catalog);
    memset(ds, 0, sizeof(*ds));
}

/* Grows the per-row arrays to hold at least n rows. */
static void reserve_rows(vg_dataset_t *ds, size_t n, size_t *cap, char ***txn)
{
    if (n <= *cap)
        return;
    *cap = *cap ? *cap * 2 : 4096;
    ds->rows = vg_xrealloc(ds->rows, *cap * (ds->nfeatures ? ds->nfeatures : 1) * sizeof(float));
    ds->ts = vg_xrealloc(ds->ts, *cap * sizeof(int64_t));
    ds->card = vg_xrealloc(ds->card, *cap * sizeof(uint64_t));
    *txn = vg_xrealloc(*txn, *cap * sizeof(char *));
}

vg_err_t vg_dataset_load(const char *decisions_path, const char *labels_path,
                         const vg_dataset_opts_t *opts, vg_dataset_t *ds, char *errbuf,
                         size_t errlen)
{
    memset(ds, 0, sizeof(*ds));
    smap_t labels, seen, known; /* known: card key -> earliest time a fraud of it was known */
    smap_init(&labels);
    smap_init(&seen);
    smap_init(&known);
    /* Decisions before from are read only to learn which cards were known compromised. */
    int64_t lo = opts->from_ms;
    if (opts->drop_known_frauds && opts->known_from_ms < lo)
        lo = opts->known_from_ms;
    char **txn = NULL; /* borrowed from seen's keys */
    size_t cap = 0, lineno = 0;
    char *line = NULL;
    size_t linecap = 0;
    FILE *f = NULL;
    vg_err_t err =
        labels_path ? read_labels(labels_path, opts->as_of_ms, &labels, errbuf, errlen) : VG_OK;
    if (err)
        goto out;
    if (!(f = fopen(decisions_path, "rb"))) {
        err = vg_errf(errbuf, errlen, VG_ERR_IO, "%s: %s", decisions_path, strerror(errno));
        goto out;
    }
    if (opts->features) {
        ds->nfeatures = opts->nfeatures;
        ds->features = vg_xcalloc(opts->nfeatures ? opts->nfeatures : 1, sizeof(char *));
        for (size_t i = 0; i < opts->nfeatures; i++)
            ds->features[i] = vg_xstrdup(opts->features[i]);
    }
    ssize_t n;
    while (!err && (n = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        if (n == 0 || line[0] == '\n')
            continue;
        int64_t ts = 0;
        if (peek_ts(line, (size_t)n, &ts) == 0 && (ts < lo || ts >= opts->to_ms))
            continue;
        json_error_t jerr;
        json_t *obj = json_loadb(line, (size_t)n, 0, &jerr);
        const char *id = json_string_value(json_object_get(obj, "txn_id"));
        const char *card = json_string_value(json_object_get(obj, "card_id"));
        json_t *features = json_object_get(obj, "features");
        if (!id || !card || !json_is_object(features) ||
            parse_ts(json_object_get(obj, "ts"), &ts) != 0) {
            err = vg_errf(errbuf, errlen, VG_ERR_INPUT,
                          "%s:%zu: not a decision (needs txn_id, ts, card_id, features)",
                          decisions_path, lineno);
            json_decref(obj);
            break;
        }
        if (!ds->features) {
            ds->nfeatures = json_object_size(features);
            ds->features = vg_xcalloc(ds->nfeatures ? ds->nfeatures : 1, sizeof(char *));
            const char *key;
            json_t *v;
            size_t i = 0;
            json_object_foreach(features, key, v) ds->features[i++] = vg_xstrdup(key);
        }
        if (!ds->catalog) {
            const char *cat = json_string_value(json_object_get(obj, "catalog"));
            ds->catalog = vg_xstrdup(cat ? cat : "");
        }
        if (opts->drop_known_frauds && ts >= opts->known_from_ms && ts < opts->to_ms) {
            int found;
            smap_entry_t *l = smap_find(&labels, id, &found);
            if (found && l->a) {
                char key[17];
                card_key(vg_hash64(card, strlen(card), VG_HASH_SEED), key);
                smap_entry_t *k = smap_upsert(&known, key, &found);
                if (!found || l->b < k->a)
                    k->a = l->b;
            }
        }
        if (ts < opts->from_ms || ts >= opts->to_ms) {
            json_decref(obj);
            continue;
        }
        int found;
        smap_entry_t *e = smap_upsert(&seen, id, &found);
        size_t row = found ? (size_t)e->a : ds->nrows;
        if (found) {
            ds->duplicates++;
        } else {
            reserve_rows(ds, ds->nrows + 1, &cap, &txn);
            e->a = (int64_t)row;
            txn[row] = e->key;
            ds->nrows++;
        }
        float *x = ds->rows + row * ds->nfeatures;
        for (size_t i = 0; i < ds->nfeatures && !err; i++) {
            json_t *v = json_object_get(features, ds->features[i]);
            if (!v || json_is_null(v))
                x[i] = NAN;
            else if (json_is_number(v))
                x[i] = (float)json_number_value(v);
            else if (json_is_boolean(v))
                x[i] = json_is_true(v) ? 1.0f : 0.0f;
            else
                err = vg_errf(errbuf, errlen, VG_ERR_INPUT, "%s:%zu: feature %s is not a number",
                              decisions_path, lineno, ds->features[i]);
        }
        ds->ts[row] = ts;
        ds->card[row] = vg_hash64(card, strlen(card), VG_HASH_SEED);
        json_decref(obj);
    }
    if (err)
        goto out;
    ds->decisions_read = ds->nrows;
    /* Labels, then drop the immature rows in place. */
    ds->labels = vg_xmalloc((ds->nrows ? ds->nrows : 1) * sizeof(float));
    size_t kept = 0;
    for (size_t r = 0; r < ds->nrows; r++) {
        int found;
        if (opts->drop_known_frauds) {
            char key[17];
            card_key(ds->card[r], key);
            smap_entry_t *k = smap_find(&known, key, &found);
            if (found && k->a <= day_start(ds->ts[r])) {
                ds->known_dropped++;
                continue;
            }
        }
        smap_entry_t *e = smap_find(&labels, txn[r], &found);
        float label;
        if (found) {
            label = (float)e->a;
            if (e->a)
                ds->labelled_fraud++;
            else
                ds->labelled_legit++;
        } else if (opts->as_of_ms - ds->ts[r] >= opts->maturity_ms) {
            label = 0.0f;
            ds->matured_legit++;
        } else {
            ds->immature++;
            continue;
        }
        if (kept != r) {
            memmove(ds->rows + kept * ds->nfeatures, ds->rows + r * ds->nfeatures,
                    ds->nfeatures * sizeof(float));
            ds->ts[kept] = ds->ts[r];
            ds->card[kept] = ds->card[r];
        }
        ds->labels[kept++] = label;
    }
    ds->nrows = kept;
    if (!ds->features) {
        ds->features = vg_xcalloc(1, sizeof(char *));
        ds->nfeatures = 0;
    }
    if (!ds->catalog)
        ds->catalog = vg_xstrdup("");
out:
    if (f)
        fclose(f);
    free(line);
    free(txn);
    smap_free(&labels);
    smap_free(&seen);
    smap_free(&known);
    if (err)
        vg_dataset_free(ds);
    return err;
}
