/*
 * catalog.c - parses a feature catalogue (syntax in docs/features.md) and compiles it:
 * every name (entity fields, counted fields, filter fields) is resolved to a schema index
 * here, once, and features sharing an entity, bucket width and filter share one ring.
 *
 * Invariants of a loaded catalogue: every windowed feature's window and delay are whole
 * multiples of its bucket width; a type's rings are contiguous in rings[] (ordered by type,
 * then by first use); ring spans cover every feature reading them.
 */
#include "features/internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENS 32

typedef struct parser {
    const char *file;
    int line;
    char *errbuf;
    size_t errlen;
    char *tok[MAX_TOKENS];
    int ntok;
    int pos;
} parser_t;

static const struct {
    const char *name;
    vg_agg_t agg;
} aggs[] = {
    {"amount", VG_AGG_AMOUNT},
    {"log_amount", VG_AGG_LOG_AMOUNT},
    {"hour", VG_AGG_HOUR},
    {"day_of_week", VG_AGG_DAY_OF_WEEK},
    {"weekend", VG_AGG_WEEKEND},
    {"night", VG_AGG_NIGHT},
    {"count", VG_AGG_COUNT},
    {"sum", VG_AGG_SUM},
    {"mean", VG_AGG_MEAN},
    {"min", VG_AGG_MIN},
    {"max", VG_AGG_MAX},
    {"std", VG_AGG_STD},
    {"zscore", VG_AGG_ZSCORE},
    {"fraud_count", VG_AGG_FRAUD_COUNT},
    {"fraud_share", VG_AGG_FRAUD_SHARE},
    {"distinct", VG_AGG_DISTINCT},
    {"new", VG_AGG_NEW},
    {"since_last", VG_AGG_SINCE_LAST},
    {"geo_velocity", VG_AGG_GEO_VELOCITY},
};

static int is_per_txn(vg_agg_t agg)
{
    return agg <= VG_AGG_NIGHT;
}

static int is_stats(vg_agg_t agg)
{
    return agg >= VG_AGG_COUNT && agg <= VG_AGG_FRAUD_SHARE;
}

static vg_err_t perr(parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static vg_err_t perr(parser_t *p, const char *fmt, ...)
{
    char msg[VG_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return vg_errf(p->errbuf, p->errlen, VG_ERR_CONFIG, "%s:%d: %s", p->file, p->line, msg);
}

/* "'tok'" or "end of line", for "got ..." */
static const char *got(parser_t *p, char *buf, size_t n)
{
    if (p->pos >= p->ntok)
        return "end of line";
    snprintf(buf, n, "'%s'", p->tok[p->pos]);
    return buf;
}

static vg_err_t expect_word(parser_t *p, const char *word)
{
    char g[128];
    if (p->pos >= p->ntok || strcmp(p->tok[p->pos], word) != 0)
        return perr(p, "expected '%s', got %s", word, got(p, g, sizeof(g)));
    p->pos++;
    return VG_OK;
}

static int is_name(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '-'))
            return 0;
    return 1;
}

/* Splits a line (modified in place) into tokens; '=' and '!=' are tokens of their own. */
static vg_err_t tokenize(parser_t *p, char *s, char *store, size_t storelen)
{
    size_t used = 0;
    p->ntok = 0;
    p->pos = 0;
    while (*s) {
        if (*s == '#')
            break;
        if (isspace((unsigned char)*s)) {
            s++;
            continue;
        }
        size_t n;
        if (*s == '=')
            n = 1;
        else if (s[0] == '!' && s[1] == '=')
            n = 2;
        else {
            n = 0;
            while (s[n] && !isspace((unsigned char)s[n]) && s[n] != '=' && s[n] != '#' &&
                   !(s[n] == '!' && s[n + 1] == '='))
                n++;
        }
        if (p->ntok == MAX_TOKENS || used + n + 1 > storelen)
            return perr(p, "line too long");
        memcpy(store + used, s, n);
        store[used + n] = '\0';
        p->tok[p->ntok++] = store + used;
        used += n + 1;
        s += n;
    }
    return VG_OK;
}

static vg_err_t parse_duration(parser_t *p, const char *what, int64_t *ms)
{
    char g[128];
    if (p->pos >= p->ntok)
        return perr(p, "expected %s duration (e.g. 10m, 1h, 7d), got end of line", what);
    if (vg_duration_parse(p->tok[p->pos], ms) != VG_OK || *ms == 0)
        return perr(p, "expected %s duration (e.g. 10m, 1h, 7d), got %s", what,
                    got(p, g, sizeof(g)));
    p->pos++;
    return VG_OK;
}

/* A string field for `by`, `distinct`, `new` or `where`, registered in the schema. */
static vg_err_t parse_field(parser_t *p, vg_schema_t *schema, const char *after, int *field)
{
    char g[128];
    static const char *const keywords[] = {"by",    "over",      "delay",  "bucket",
                                           "where", "including", "current"};
    int keyword = 0;
    for (size_t i = 0; p->pos < p->ntok && i < VG_ARRAY_LEN(keywords); i++)
        keyword |= strcmp(p->tok[p->pos], keywords[i]) == 0;
    if (p->pos >= p->ntok || !is_name(p->tok[p->pos]) || keyword)
        return perr(p, "expected field name after '%s', got %s", after, got(p, g, sizeof(g)));
    const char *name = p->tok[p->pos];
    int idx = vg_schema_add(schema, name);
    if (idx < 0) {
        if (vg_schema_field(schema, name) < 0 && schema->nfields >= VG_TXN_MAX_FIELDS)
            return perr(p, "too many transaction fields (at most %d)", VG_TXN_MAX_FIELDS);
        return perr(p, "field '%s' cannot be used after '%s' (it is numeric)", name, after);
    }
    p->pos++;
    *field = idx;
    return VG_OK;
}

/* The bucket width a window gets unless the catalogue says: see docs/features.md. */
static int64_t default_bucket(int64_t window, int64_t delay)
{
    static const int64_t widths[] = {86400000, 3600000, 300000, 60000, 1000, 1};
    int64_t limit = window <= 600000     ? 60000
                    : window <= 3600000  ? 300000
                    : window <= 86400000 ? 3600000
                                         : 86400000;
    for (size_t i = 0; i < VG_ARRAY_LEN(widths); i++)
        if (widths[i] <= limit && window % widths[i] == 0 && delay % widths[i] == 0)
            return widths[i];
    return 1;
}

static int find_filter(vg_catalog_t *c, const vg_filter_t *f)
{
    for (size_t i = 0; i < c->nfilters; i++) {
        vg_filter_t *g = &c->filters[i];
        if (g->field == f->field && g->negate == f->negate && g->len == f->len &&
            memcmp(g->value, f->value, f->len) == 0)
            return (int)i;
    }
    return -1;
}

static int find_type(vg_catalog_t *c, int field)
{
    for (size_t i = 0; i < c->ntypes; i++)
        if (c->types[i].field == field)
            return (int)i;
    return -1;
}

static vg_err_t parse_line(parser_t *p, vg_catalog_t *c, vg_schema_t *schema, int *lines)
{
    char g[128];
    vg_err_t err;
    vg_feature_t f;
    memset(&f, 0, sizeof(f));
    f.type = -1;
    f.ring = -1;
    f.field = -1;
    int entity_field = -1;
    vg_filter_t filter = {-1, 0, NULL, 0};
    int has_bucket = 0;

    if (!is_name(p->tok[0]))
        return perr(p, "expected feature name, got '%s'", p->tok[0]);
    for (size_t i = 0; i < c->nfeatures; i++)
        if (strcmp(c->features[i].name, p->tok[0]) == 0)
            return perr(p, "duplicate feature '%s' (first defined at line %d)", p->tok[0],
                        lines[i]);
    p->pos = 1;
    if ((err = expect_word(p, "=")))
        return err;
    if (p->pos >= p->ntok)
        return perr(p, "expected aggregation, got end of line");
    const char *aggname = p->tok[p->pos];
    size_t ai;
    for (ai = 0; ai < VG_ARRAY_LEN(aggs); ai++)
        if (strcmp(aggs[ai].name, aggname) == 0)
            break;
    if (ai == VG_ARRAY_LEN(aggs))
        return perr(p, "unknown aggregation '%s'", aggname);
    f.agg = aggs[ai].agg;
    p->pos++;

    if (!is_per_txn(f.agg)) {
        if (f.agg == VG_AGG_DISTINCT || f.agg == VG_AGG_NEW)
            if ((err = parse_field(p, schema, aggname, &f.field)))
                return err;
        if ((err = expect_word(p, "by")) || (err = parse_field(p, schema, "by", &entity_field)))
            return err;
        if ((err = expect_word(p, "over")))
            return err;
        const char *wtext = p->pos < p->ntok ? p->tok[p->pos] : "";
        if ((err = parse_duration(p, "window", &f.window)))
            return err;
        int simple = f.agg == VG_AGG_SINCE_LAST || f.agg == VG_AGG_GEO_VELOCITY;
        while (p->pos < p->ntok) {
            const char *kw = p->tok[p->pos];
            if (simple)
                return perr(p, "expected end of line, got '%s' (%s takes no options)", kw, aggname);
            p->pos++;
            if (strcmp(kw, "delay") == 0) {
                if ((err = parse_duration(p, "delay", &f.delay)))
                    return err;
            } else if (strcmp(kw, "bucket") == 0) {
                if ((err = parse_duration(p, "bucket", &f.bucket)))
                    return err;
                has_bucket = 1;
            } else if (strcmp(kw, "where") == 0) {
                if (filter.field >= 0)
                    return perr(p, "only one 'where' per feature");
                if ((err = parse_field(p, schema, "where", &filter.field)))
                    return err;
                if (p->pos < p->ntok && strcmp(p->tok[p->pos], "!=") == 0)
                    filter.negate = 1;
                else if (p->pos >= p->ntok || strcmp(p->tok[p->pos], "=") != 0)
                    return perr(p, "expected '=' or '!=', got %s", got(p, g, sizeof(g)));
                p->pos++;
                if (p->pos >= p->ntok)
                    return perr(p, "expected value, got end of line");
                filter.value = p->tok[p->pos++];
                filter.len = (uint32_t)strlen(filter.value);
            } else if (strcmp(kw, "including") == 0) {
                if ((err = expect_word(p, "current")))
                    return err;
                if (f.agg == VG_AGG_NEW)
                    return perr(p, "'including current' makes no sense for 'new'");
                f.current = 1;
            } else {
                p->pos--;
                return perr(p, "expected delay, bucket, where, including or end of line, got '%s'",
                            kw);
            }
        }
        if (f.delay && !is_stats(f.agg))
            return perr(p, "'delay' applies to count, sum, mean, min, max, std, zscore and "
                           "fraud features only");
        if (!has_bucket)
            f.bucket = default_bucket(f.window, f.delay);
        if (f.window % f.bucket != 0)
            return perr(p, "window %s is not a multiple of its bucket (%lld ms)", wtext,
                        (long long)f.bucket);
        if (f.delay % f.bucket != 0)
            return perr(p, "delay is not a multiple of the bucket (%lld ms)", (long long)f.bucket);
        f.nwin = f.window / f.bucket;
        f.ndelay = f.delay / f.bucket;
        if (f.nwin + f.ndelay > 100000000)
            return perr(p, "window + delay spans more than 100000000 buckets; give a wider bucket");
    } else if (p->pos < p->ntok) {
        return perr(p, "expected end of line, got %s (%s is a per-transaction feature)",
                    got(p, g, sizeof(g)), aggname);
    }

    /* Compile: entity type, filter, ring. */
    if (entity_field >= 0) {
        int t = find_type(c, entity_field);
        if (t < 0) {
            if (c->ntypes == VG_STATE_MAX_TYPES)
                return perr(p, "too many entity types (at most %d)", VG_STATE_MAX_TYPES);
            t = (int)c->ntypes++;
            c->types[t].field = entity_field;
            c->types[t].name = vg_xstrdup(schema->names[entity_field]);
            c->types[t].label_slot = -1;
        }
        f.type = t;
        if (f.window + f.delay > c->types[t].retention)
            c->types[t].retention = f.window + f.delay;
    }
    int fi = -1;
    if (filter.field >= 0) {
        fi = find_filter(c, &filter);
        if (fi < 0) {
            c->filters = vg_xrealloc(c->filters, (c->nfilters + 1) * sizeof(*c->filters));
            filter.value = vg_xstrdup(filter.value);
            c->filters[c->nfilters] = filter;
            fi = (int)c->nfilters++;
        }
    }
    if (is_stats(f.agg) || f.agg == VG_AGG_DISTINCT || f.agg == VG_AGG_NEW) {
        int set_field = is_stats(f.agg) ? -1 : f.field;
        size_t r;
        for (r = 0; r < c->nrings; r++) {
            vg_ring_def_t *rd = &c->rings[r];
            if (rd->type == f.type && rd->bucket == f.bucket && rd->filter == fi &&
                rd->set_field == set_field)
                break;
        }
        if (r == c->nrings) {
            if (c->nrings == VG_MAX_RINGS)
                return perr(p,
                            "too many distinct (entity, bucket, filter) combinations (at "
                            "most %d)",
                            VG_MAX_RINGS);
            vg_ring_def_t *rd = &c->rings[c->nrings++];
            memset(rd, 0, sizeof(*rd));
            rd->type = f.type;
            rd->bucket = f.bucket;
            rd->filter = fi;
            rd->set_field = set_field;
        }
        vg_ring_def_t *rd = &c->rings[r];
        if (f.nwin + f.ndelay > rd->span)
            rd->span = f.nwin + f.ndelay;
        switch (f.agg) {
        case VG_AGG_SUM:
        case VG_AGG_MEAN:
            rd->stats |= VG_STAT_SUM;
            break;
        case VG_AGG_STD:
        case VG_AGG_ZSCORE:
            rd->stats |= VG_STAT_SUM | VG_STAT_M2;
            break;
        case VG_AGG_MIN:
            rd->stats |= VG_STAT_MIN;
            break;
        case VG_AGG_MAX:
            rd->stats |= VG_STAT_MAX;
            break;
        case VG_AGG_FRAUD_COUNT:
        case VG_AGG_FRAUD_SHARE:
            rd->labels = 1;
            c->uses_labels = 1;
            if (f.window + f.delay > c->label_retention)
                c->label_retention = f.window + f.delay;
            break;
        default:
            break;
        }
        f.ring = (int)r;
    }
    f.name = vg_xstrdup(p->tok[0]);
    c->features = vg_xrealloc(c->features, (c->nfeatures + 1) * sizeof(*c->features));
    c->features[c->nfeatures++] = f;
    return VG_OK;
}

/* Orders rings by entity type (stable), so each type's rings are contiguous, and fixes
 * every feature's ring index; fills the derived fields. */
static void finish(vg_catalog_t *c)
{
    int map[VG_MAX_RINGS];
    vg_ring_def_t sorted[VG_MAX_RINGS];
    size_t n = 0;
    for (size_t t = 0; t < c->ntypes; t++) {
        c->types[t].first_ring = (int)n;
        c->types[t].nrings = 0;
        for (size_t r = 0; r < c->nrings; r++) {
            if (c->rings[r].type != (int)t)
                continue;
            map[r] = (int)n;
            sorted[n] = c->rings[r];
            sorted[n].local = c->types[t].nrings++;
            n++;
        }
    }
    memcpy(c->rings, sorted, n * sizeof(*sorted));
    for (size_t i = 0; i < c->nfeatures; i++)
        if (c->features[i].ring >= 0)
            c->features[i].ring = map[c->features[i].ring];
    for (size_t r = 0; r < c->nrings; r++) {
        vg_ring_def_t *rd = &c->rings[r];
        rd->reclen = 16 + 8 * (uint32_t)__builtin_popcount(rd->stats);
        if (rd->labels && c->types[rd->type].label_slot < 0)
            c->types[rd->type].label_slot = c->nlabel_types++;
    }
}

/* 1 if the tokenized line is a windowed feature over an entity type not in types[] (the
 * first `by` names its entity: `where` values come after it). */
static int other_type(const parser_t *p, const char *const *types, size_t ntypes)
{
    for (int i = 2; i + 1 < p->ntok; i++) {
        if (strcmp(p->tok[i], "by") != 0)
            continue;
        for (size_t t = 0; t < ntypes; t++)
            if (strcmp(p->tok[i + 1], types[t]) == 0)
                return 0;
        return 1;
    }
    return 0;
}

static vg_catalog_t *parse_text(const char *name, const char *text, size_t len, vg_schema_t *schema,
                                const char *const *types, size_t ntypes, char *errbuf,
                                size_t errlen)
{
    vg_catalog_t *c = vg_xcalloc(1, sizeof(*c));
    vg_version_of(text, len, c->version);
    if (types) { /* the subset's layout differs: so must its version */
        vg_buf_t b;
        vg_buf_init(&b);
        vg_buf_puts(&b, c->version);
        for (size_t t = 0; t < ntypes; t++)
            vg_buf_printf(&b, " %s", types[t]);
        vg_version_of(b.data, b.len, c->version);
        vg_buf_free(&b);
    }
    parser_t p = {.file = name, .line = 0, .errbuf = errbuf, .errlen = errlen};
    int *lines = NULL;
    char *linebuf = vg_xmalloc(len + 1);
    char *store = vg_xmalloc(2 * len + 64);
    size_t off = 0;
    vg_err_t err = VG_OK;
    while (off < len && !err) {
        size_t end = off;
        while (end < len && text[end] != '\n')
            end++;
        p.line++;
        memcpy(linebuf, text + off, end - off);
        linebuf[end - off] = '\0';
        if (memchr(text + off, '\0', end - off) != NULL)
            err = perr(&p, "NUL byte in line");
        off = end + 1;
        if (!err)
            err = tokenize(&p, linebuf, store, 2 * len + 64);
        if (err || p.ntok == 0 || (types && other_type(&p, types, ntypes)))
            continue;
        lines = vg_xrealloc(lines, (c->nfeatures + 1) * sizeof(*lines));
        lines[c->nfeatures] = p.line;
        err = parse_line(&p, c, schema, lines);
    }
    if (!err && c->nfeatures == 0)
        err = vg_errf(errbuf, errlen, VG_ERR_CONFIG, "%s:%d: no features defined", name, p.line);
    free(lines);
    free(linebuf);
    free(store);
    if (err) {
        vg_catalog_free(c);
        return NULL;
    }
    finish(c);
    return c;
}

vg_catalog_t *vg_catalog_parse(const char *name, const char *text, size_t len, vg_schema_t *schema,
                               char *errbuf, size_t errlen)
{
    return parse_text(name, text, len, schema, NULL, 0, errbuf, errlen);
}

vg_catalog_t *vg_catalog_load_types(const char *path, vg_schema_t *schema, const char *const *types,
                                    size_t ntypes, char *errbuf, size_t errlen)
{
    char *text;
    size_t len;
    if (vg_read_file(path, &text, &len, errbuf, errlen) != VG_OK)
        return NULL;
    const char *base = strrchr(path, '/');
    vg_catalog_t *c =
        parse_text(base ? base + 1 : path, text, len, schema, types, ntypes, errbuf, errlen);
    free(text);
    return c;
}

vg_catalog_t *vg_catalog_load(const char *path, vg_schema_t *schema, char *errbuf, size_t errlen)
{
    return vg_catalog_load_types(path, schema, NULL, 0, errbuf, errlen);
}

size_t vg_catalog_size(const vg_catalog_t *catalog)
{
    return catalog->nfeatures;
}

const char *vg_catalog_feature_name(const vg_catalog_t *catalog, size_t i)
{
    return i < catalog->nfeatures ? catalog->features[i].name : NULL;
}

int vg_catalog_feature_index(const vg_catalog_t *catalog, const char *name)
{
    for (size_t i = 0; i < catalog->nfeatures; i++)
        if (strcmp(catalog->features[i].name, name) == 0)
            return (int)i;
    return -1;
}

const char *vg_catalog_version(const vg_catalog_t *catalog)
{
    return catalog->version;
}

size_t vg_catalog_entity_types(const vg_catalog_t *catalog)
{
    return catalog->ntypes;
}

const char *vg_catalog_entity_name(const vg_catalog_t *catalog, size_t i)
{
    return i < catalog->ntypes ? catalog->types[i].name : NULL;
}

int vg_catalog_uses_labels(const vg_catalog_t *catalog)
{
    return catalog->uses_labels;
}

void vg_catalog_free(vg_catalog_t *catalog)
{
    if (!catalog)
        return;
    for (size_t i = 0; i < catalog->nfeatures; i++)
        free(catalog->features[i].name);
    free(catalog->features);
    for (size_t i = 0; i < catalog->ntypes; i++)
        free(catalog->types[i].name);
    for (size_t i = 0; i < catalog->nfilters; i++)
        free(catalog->filters[i].value);
    free(catalog->filters);
    free(catalog);
}
