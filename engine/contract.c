/*
 * contract.c - JSON decoding of transactions and labels.
 *
 * The parser is cJSON (Debian's libcjson), chosen by measurement: tests/bench/bench_decode.c
 * parses the same messages with json-c, cJSON and Jansson side by side, and cJSON was about
 * 2x faster than json-c and 3x faster than Jansson on 290-byte transactions.
 * cJSON is lenient where a contract must not be, so this file adds, before parsing, one pass
 * over the bytes that rejects invalid UTF-8, NUL bytes, \u0000 escapes and nesting deeper
 * than VG_MAX_DEPTH; and after parsing, a check that the top-level object has no duplicate
 * keys (a message with two "amount" keys would be read one way here and another way by a
 * downstream consumer, so it is dead-lettered).
 *
 * That path costs ~3 us a message (a tree of mallocs, then strcmp walks), so vg_txn_decode()
 * first tries a single-pass, allocation-free parser for the common shape (see "The fast path"
 * below). The invariant: the fast path either gives exactly what vg_txn_decode_reference()
 * gives (same strings and arena copies, bit-equal doubles, same ts) or declines, and then the
 * reference decides; so every rejection and its reason come from the cJSON path alone.
 * tests/unit/test_decode_fast.c checks the agreement on thousands of mutated messages.
 */
#include "engine/contract.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Nesting deeper than this is rejected before parsing (cJSON's own limit is 1000). */
#define VG_MAX_DEPTH 64

static const char *const std_names[VG_F_NSTD] = {
    "txn_id", "card_id", "customer_id", "merchant_id", "terminal_id", "currency",
    "mcc",    "country", "channel",     "device_id",   "ip",
};

void vg_schema_init(vg_schema_t *schema)
{
    memset(schema, 0, sizeof(*schema));
    for (size_t i = 0; i < VG_F_NSTD; i++)
        schema->names[i] = vg_xstrdup(std_names[i]);
    schema->nfields = VG_F_NSTD;
}

void vg_schema_free(vg_schema_t *schema)
{
    for (size_t i = 0; i < schema->nfields; i++)
        free(schema->names[i]);
    schema->nfields = 0;
}

int vg_schema_field(const vg_schema_t *schema, const char *name)
{
    for (size_t i = 0; i < schema->nfields; i++)
        if (strcmp(schema->names[i], name) == 0)
            return (int)i;
    return -1;
}

int vg_schema_add(vg_schema_t *schema, const char *name)
{
    static const char *const numeric[] = {"ts", "amount", "lat", "lon"};
    for (size_t i = 0; i < VG_ARRAY_LEN(numeric); i++)
        if (strcmp(name, numeric[i]) == 0)
            return -1;
    int idx = vg_schema_field(schema, name);
    if (idx >= 0)
        return idx;
    if (schema->nfields >= VG_TXN_MAX_FIELDS)
        return -1;
    schema->names[schema->nfields] = vg_xstrdup(name);
    return (int)schema->nfields++;
}

/* Line and column (both from 1) of byte offset off. */
static void line_col(const char *data, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (data[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/*
 * One pass over the raw bytes: valid UTF-8 (no overlongs, no surrogates, nothing above
 * U+10FFFF), no NUL byte, no \u0000 escape, nesting within VG_MAX_DEPTH.
 */
static vg_err_t prescan(const char *data, size_t len, char *reason, size_t reasonlen)
{
    const unsigned char *p = (const unsigned char *)data;
    int depth = 0, in_string = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c == 0)
                return vg_errf(reason, reasonlen, VG_ERR_INPUT,
                               "message contains a NUL byte at offset %zu", i);
            if (in_string) {
                if (c == '\\') {
                    if (i + 5 < len && memcmp(p + i + 1, "u0000", 5) == 0)
                        return vg_errf(reason, reasonlen, VG_ERR_INPUT,
                                       "message contains \\u0000 at offset %zu", i);
                    i += 2;
                    continue;
                }
                if (c == '"')
                    in_string = 0;
            } else if (c == '"') {
                in_string = 1;
            } else if (c == '{' || c == '[') {
                if (++depth > VG_MAX_DEPTH)
                    return vg_errf(reason, reasonlen, VG_ERR_INPUT,
                                   "message nests deeper than %d levels", VG_MAX_DEPTH);
            } else if (c == '}' || c == ']') {
                depth--;
            }
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            cp = c & 0x07;
        } else {
            goto bad;
        }
        if (i + n > len)
            goto bad;
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                goto bad;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            goto bad;
        i += n;
        continue;
    bad:
        return vg_errf(reason, reasonlen, VG_ERR_INPUT,
                       "message is not valid UTF-8 (byte 0x%02x at offset %zu)", c, i);
    }
    return VG_OK;
}

static vg_err_t parse(const char *data, size_t len, cJSON **root, char *reason, size_t reasonlen)
{
    *root = NULL;
    if (len > VG_MAX_MESSAGE)
        return vg_errf(reason, reasonlen, VG_ERR_INPUT, "message too large: %zu bytes > %d", len,
                       VG_MAX_MESSAGE);
    vg_err_t err = prescan(data, len, reason, reasonlen);
    if (err)
        return err;
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    size_t off = end ? (size_t)(end - data) : 0;
    if (v) {
        while (off < len &&
               (data[off] == ' ' || data[off] == '\t' || data[off] == '\n' || data[off] == '\r'))
            off++;
    }
    if (!v || off < len) {
        int line, col;
        if (off > len)
            off = len;
        line_col(data, off, &line, &col);
        if (off >= len)
            err =
                vg_errf(reason, reasonlen, VG_ERR_INPUT,
                        "invalid JSON at line %d column %d: unexpected end of message", line, col);
        else
            err = vg_errf(reason, reasonlen, VG_ERR_INPUT,
                          "invalid JSON at line %d column %d, near '%.*s'", line, col,
                          (int)(len - off < 12 ? len - off : 12), data + off);
        cJSON_Delete(v);
        return err;
    }
    if (!cJSON_IsObject(v)) {
        static const char *const kinds[] = {"boolean", "boolean", "null",  "number",
                                            "string",  "array",   "object"};
        const char *kind = "value";
        for (int b = 0; b < 7; b++)
            if (v->type & (1 << b))
                kind = kinds[b];
        cJSON_Delete(v);
        return vg_errf(reason, reasonlen, VG_ERR_INPUT, "message must be a JSON object, got %s",
                       kind);
    }
    /* Duplicate top-level keys: n is small (a transaction has ~15), so compare pairs. */
    for (cJSON *a = v->child; a; a = a->next)
        for (cJSON *b = a->next; b; b = b->next)
            if (a->string[0] == b->string[0] && strcmp(a->string, b->string) == 0) {
                err =
                    vg_errf(reason, reasonlen, VG_ERR_INPUT, "duplicate key \"%.40s\"", a->string);
                cJSON_Delete(v);
                return err;
            }
    *root = v;
    return VG_OK;
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsObject(v))
        return "object";
    if (cJSON_IsArray(v))
        return "array";
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsNumber(v))
        return "number";
    if (cJSON_IsBool(v))
        return "boolean";
    return "null";
}

/* The JSON text of a value, cut to fit a reason: `"12,5"`, `-3`, `null`, `["pos"]`. */
static void value_text(const cJSON *v, char *out, size_t outlen)
{
    if (cJSON_IsNumber(v) && !isfinite(v->valuedouble)) {
        snprintf(out, outlen, "an out-of-range number");
        return;
    }
    vg_buf_t b;
    vg_buf_init(&b);
    if (cJSON_IsNumber(v)) {
        vg_buf_json_num(&b, v->valuedouble);
    } else {
        char *s = cJSON_PrintUnformatted(v);
        vg_buf_puts(&b, s ? s : "?");
        cJSON_free(s);
    }
    if (b.len > 40)
        snprintf(out, outlen, "%.37s...", b.data);
    else
        snprintf(out, outlen, "%s", b.data);
    vg_buf_free(&b);
}

/* A string field. Required ones must be present, strings, and non-empty. Optional ones may
 * be absent or null; a number is accepted and kept as its JSON text (mcc 5411). */
static vg_err_t take_str(const cJSON *v, const char *name, int required, vg_arena_t *arena,
                         const char **out, uint32_t *outlen, char *reason, size_t reasonlen)
{
    *out = NULL;
    if (outlen)
        *outlen = 0;
    if (!v || (!required && cJSON_IsNull(v))) {
        if (required)
            return vg_errf(reason, reasonlen, VG_ERR_INPUT, "missing field %s", name);
        return VG_OK;
    }
    if (cJSON_IsString(v)) {
        size_t n = strlen(v->valuestring);
        if (required && n == 0)
            return vg_errf(reason, reasonlen, VG_ERR_INPUT, "field %s must not be empty", name);
        *out = vg_arena_strndup(arena, v->valuestring, n);
        if (outlen)
            *outlen = (uint32_t)n;
        return VG_OK;
    }
    if (!required && cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
        vg_buf_t b;
        vg_buf_init(&b);
        vg_buf_json_num(&b, v->valuedouble);
        *out = vg_arena_strndup(arena, b.data, b.len);
        if (outlen)
            *outlen = (uint32_t)b.len;
        vg_buf_free(&b);
        return VG_OK;
    }
    char text[48];
    value_text(v, text, sizeof(text));
    return vg_errf(reason, reasonlen, VG_ERR_INPUT, "field %s must be a string, got %s %s", name,
                   type_name(v), text);
}

/* ts: an RFC 3339 string or a whole number of epoch milliseconds. */
static vg_err_t take_ts(const cJSON *v, int64_t *ms, char *reason, size_t reasonlen)
{
    if (!v)
        return vg_errf(reason, reasonlen, VG_ERR_INPUT, "missing field ts");
    if (cJSON_IsString(v) && vg_time_parse(v->valuestring, strlen(v->valuestring), ms) == VG_OK)
        return VG_OK;
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d >= 0 && d < 253402300800000.0 /* year 10000 */ && d == floor(d)) {
            *ms = (int64_t)d;
            return VG_OK;
        }
    }
    char text[48];
    value_text(v, text, sizeof(text));
    return vg_errf(reason, reasonlen, VG_ERR_INPUT,
                   "ts must be an RFC 3339 string or integer epoch milliseconds, got %s", text);
}

static vg_err_t take_coord(const cJSON *v, const char *name, double limit, double *out,
                           char *reason, size_t reasonlen)
{
    *out = NAN;
    if (!v || cJSON_IsNull(v))
        return VG_OK;
    if (cJSON_IsNumber(v) && v->valuedouble >= -limit && v->valuedouble <= limit) {
        *out = v->valuedouble;
        return VG_OK;
    }
    char text[48];
    value_text(v, text, sizeof(text));
    return vg_errf(reason, reasonlen, VG_ERR_INPUT, "%s must be a number in [-%g, %g], got %s",
                   name, limit, limit, text);
}

vg_err_t vg_txn_decode_reference(const vg_schema_t *schema, const char *data, size_t len,
                                 vg_arena_t *arena, vg_txn_t *txn, char *reason, size_t reasonlen)
{
    cJSON *root;
    vg_err_t err = parse(data, len, &root, reason, reasonlen);
    if (err)
        return err;
    memset(txn, 0, sizeof(*txn));

    /* One walk over the members: each key is matched against the schema once. */
    const cJSON *found[VG_TXN_MAX_FIELDS] = {0};
    const cJSON *ts = NULL, *amount = NULL, *lat = NULL, *lon = NULL;
    for (const cJSON *m = root->child; m; m = m->next) {
        const char *k = m->string;
        if (strcmp(k, "ts") == 0)
            ts = m;
        else if (strcmp(k, "amount") == 0)
            amount = m;
        else if (strcmp(k, "lat") == 0)
            lat = m;
        else if (strcmp(k, "lon") == 0)
            lon = m;
        else
            for (size_t i = 0; i < schema->nfields; i++)
                if (schema->names[i][0] == k[0] && strcmp(schema->names[i], k) == 0) {
                    found[i] = m;
                    break;
                }
    }
    for (size_t i = 0; i < schema->nfields; i++) {
        int required = i == VG_F_TXN_ID || i == VG_F_CARD_ID;
        err = take_str(found[i], schema->names[i], required, arena, &txn->str[i], &txn->len[i],
                       reason, reasonlen);
        if (err)
            goto out;
    }
    if ((err = take_ts(ts, &txn->ts_ms, reason, reasonlen)))
        goto out;
    if (!amount) {
        err = vg_errf(reason, reasonlen, VG_ERR_INPUT, "missing field amount");
        goto out;
    }
    txn->amount = cJSON_IsNumber(amount) ? amount->valuedouble : NAN;
    if (!(txn->amount >= 0) || !isfinite(txn->amount)) {
        char text[48];
        value_text(amount, text, sizeof(text));
        err =
            vg_errf(reason, reasonlen, VG_ERR_INPUT, "amount must be a number >= 0, got %s", text);
        goto out;
    }
    if ((err = take_coord(lat, "lat", 90, &txn->lat, reason, reasonlen)) ||
        (err = take_coord(lon, "lon", 180, &txn->lon, reason, reasonlen)))
        goto out;
    if (isnan(txn->lat) != isnan(txn->lon)) {
        err = vg_errf(reason, reasonlen, VG_ERR_INPUT, "lat and lon must be given together");
        goto out;
    }
    txn->raw = vg_arena_strndup(arena, data, len);
    txn->raw_len = len;
out:
    cJSON_Delete(root);
    return err;
}

/*
 * ---- The fast path ----
 *
 * Nearly every message is a flat object of plain strings and numbers. For those, one pass
 * over the bytes, with no allocation until the record is known to be valid, gives the very
 * record vg_txn_decode_reference() gives, several times faster. It accepts a strict subset
 * of what cJSON accepts (JSON whitespace only, strings of printable ASCII without escapes,
 * numbers per the JSON grammar, no nesting) and only messages the reference decodes without
 * error. On anything else it declines before touching txn or the arena, and the reference
 * decides: every reason text still comes from one place.
 */

/* Members the fast path tracks: the schema's fields by index, then the numeric ones. */
enum { FAST_TS = VG_TXN_MAX_FIELDS, FAST_AMOUNT, FAST_LAT, FAST_LON, FAST_NSLOTS };
/* Unknown keys are remembered, for the duplicate check, up to this many; more, decline. */
#define FAST_MAX_UNKNOWN 16
/* Longer number tokens are declined: upstream cJSON 1.7.15 runs strtod on the first 63 bytes
 * and then fails on the rest, Debian's (CVE-2023-26819 patch) reads any length, so only the
 * reference knows. No real amount or coordinate is that long. Also bounds the strtod copy. */
#define FAST_MAX_NUMBER 63

typedef enum fast_kind { FAST_STR, FAST_NUM, FAST_NULL, FAST_BOOL } fast_kind_t;

typedef struct fast_val {
    fast_kind_t kind;
    uint32_t len;  /* FAST_STR: bytes between the quotes */
    const char *p; /* FAST_STR: the byte after the opening quote */
    double num;    /* FAST_NUM */
} fast_val_t;

/* 10^0 .. 10^22: every one is exact in a double. */
static const double fast_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static size_t fast_ws(const char *data, size_t len, size_t i)
{
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
        i++;
    return i;
}

/* A string at data[i] == '"' of printable ASCII without escapes: the index after its closing
 * quote, or 0 to decline (an escape, a control or non-ASCII byte, no closing quote). */
static size_t fast_string(const char *data, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == '"')
            return i + 1;
        if (c < 0x20 || c > 0x7e || c == '\\')
            return 0;
    }
    return 0;
}

/*
 * A number at data[*pos], strictly per the JSON grammar; *pos moves past it. Its value is
 * the one cJSON stores, strtod's: when the decimal mantissa fits in 53 bits and the power of
 * ten is within 10^±22, both operands of one multiply or divide are exact, so IEEE rounding
 * makes the result the correctly rounded value, which strtod returns too (Clinger's fast
 * path); otherwise strtod itself runs on the token, with the locale's decimal point as cJSON
 * gives it. Returns 0 to decline.
 */
static int fast_number(const char *data, size_t len, size_t *pos, double *out)
{
    size_t i = *pos, start = i;
    uint64_t m = 0;
    int neg = 0, exact = 1, e10 = 0;
    if (data[i] == '-') {
        neg = 1;
        i++;
    }
    if (i < len && data[i] == '0') {
        i++;
    } else if (i < len && data[i] >= '1' && data[i] <= '9') {
        for (; i < len && data[i] >= '0' && data[i] <= '9'; i++) {
            if (m > (UINT64_MAX - 9) / 10)
                exact = 0;
            else
                m = m * 10 + (uint64_t)(data[i] - '0');
        }
    } else {
        return 0;
    }
    if (i < len && data[i] == '.') {
        size_t digits = ++i;
        for (; i < len && data[i] >= '0' && data[i] <= '9'; i++, e10--) {
            if (m > (UINT64_MAX - 9) / 10)
                exact = 0;
            else
                m = m * 10 + (uint64_t)(data[i] - '0');
        }
        if (i == digits)
            return 0;
    }
    if (i < len && (data[i] == 'e' || data[i] == 'E')) {
        int eneg = 0, ex = 0;
        i++;
        if (i < len && (data[i] == '+' || data[i] == '-'))
            eneg = data[i++] == '-';
        size_t digits = i;
        for (; i < len && data[i] >= '0' && data[i] <= '9'; i++)
            if (ex < 100000) /* the token is at most 63 bytes anyway */
                ex = ex * 10 + (data[i] - '0');
        if (i == digits)
            return 0;
        e10 += eneg ? -ex : ex;
    }
    if (i - start > FAST_MAX_NUMBER)
        return 0;
    *pos = i;
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0 /* no excess precision, one rounding */
    if (exact && m <= (UINT64_C(1) << 53) && e10 >= -22 && e10 <= 22) {
        double d = (double)m;
        d = e10 >= 0 ? d * fast_pow10[e10] : d / fast_pow10[-e10];
        *out = neg ? -d : d;
        return 1;
    }
#endif
    char text[FAST_MAX_NUMBER + 1];
    char point = localeconv()->decimal_point[0];
    for (size_t k = 0; k < i - start; k++)
        text[k] = data[start + k] == '.' ? point : data[start + k];
    text[i - start] = '\0';
    *out = strtod(text, NULL);
    return 1;
}

/* The slot of a key: ts, amount, lat and lon first, then the schema's fields in order, as
 * the reference matches them; -1 for a key the contract does not use. */
static int fast_slot(const vg_schema_t *schema, const char *k, size_t klen)
{
    if (klen == 2 && k[0] == 't' && k[1] == 's')
        return FAST_TS;
    if (klen == 6 && memcmp(k, "amount", 6) == 0)
        return FAST_AMOUNT;
    if (klen == 3 && memcmp(k, "lat", 3) == 0)
        return FAST_LAT;
    if (klen == 3 && memcmp(k, "lon", 3) == 0)
        return FAST_LON;
    /* Compared inline: the names are short, and a strncmp call per name cost more than the
     * rest of the parse. A name shorter than the key stops the loop at its NUL (k has none). */
    for (size_t f = 0; f < schema->nfields; f++) {
        const char *name = schema->names[f];
        size_t j = 0;
        while (j < klen && name[j] == k[j])
            j++;
        if (j == klen && name[j] == '\0')
            return (int)f;
    }
    return -1;
}

/* A coordinate as take_coord() accepts it: absent or null is NaN; 0 when it would fail. */
static int fast_coord(const fast_val_t *v, int present, double limit, double *out)
{
    *out = NAN;
    if (!present || v->kind == FAST_NULL)
        return 1;
    if (v->kind != FAST_NUM || !(v->num >= -limit && v->num <= limit))
        return 0;
    *out = v->num;
    return 1;
}

int vg_txn_decode_fast(const vg_schema_t *schema, const char *data, size_t len, vg_arena_t *arena,
                       vg_txn_t *txn)
{
    fast_val_t val[FAST_NSLOTS]; /* val[s] is set only when bit s of seen is */
    uint64_t seen = 0;
    const char *unknown[FAST_MAX_UNKNOWN];
    size_t unknown_len[FAST_MAX_UNKNOWN], nunknown = 0;

    if (len > VG_MAX_MESSAGE)
        return 0;
    size_t i = fast_ws(data, len, 0);
    if (i >= len || data[i] != '{')
        return 0;
    i = fast_ws(data, len, i + 1);
    for (;;) {
        if (i >= len || data[i] != '"') /* also {}: the reference names the missing field */
            return 0;
        const char *k = data + i + 1;
        size_t end = fast_string(data, len, i);
        if (!end)
            return 0;
        size_t klen = end - i - 2;
        i = fast_ws(data, len, end);
        if (i >= len || data[i] != ':')
            return 0;
        i = fast_ws(data, len, i + 1);
        if (i >= len)
            return 0;
        fast_val_t v = {FAST_NULL, 0, NULL, 0};
        char c = data[i];
        if (c == '"') {
            if (!(end = fast_string(data, len, i)))
                return 0;
            v.kind = FAST_STR;
            v.p = data + i + 1;
            v.len = (uint32_t)(end - i - 2);
            i = end;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (!fast_number(data, len, &i, &v.num))
                return 0;
            v.kind = FAST_NUM;
        } else if (len - i >= 4 && memcmp(data + i, "null", 4) == 0) {
            i += 4;
        } else if (len - i >= 4 && memcmp(data + i, "true", 4) == 0) {
            v.kind = FAST_BOOL;
            i += 4;
        } else if (len - i >= 5 && memcmp(data + i, "false", 5) == 0) {
            v.kind = FAST_BOOL;
            i += 5;
        } else {
            return 0; /* nesting, or not JSON */
        }
        int slot = fast_slot(schema, k, klen);
        if (slot >= 0) {
            if (seen & (UINT64_C(1) << slot))
                return 0; /* duplicate key */
            seen |= UINT64_C(1) << slot;
            val[slot] = v;
        } else {
            for (size_t u = 0; u < nunknown; u++)
                if (unknown_len[u] == klen && memcmp(unknown[u], k, klen) == 0)
                    return 0; /* duplicate key */
            if (nunknown == FAST_MAX_UNKNOWN)
                return 0;
            unknown[nunknown] = k;
            unknown_len[nunknown++] = klen;
        }
        i = fast_ws(data, len, i);
        if (i < len && data[i] == ',') {
            i = fast_ws(data, len, i + 1);
            continue;
        }
        if (i >= len || data[i] != '}')
            return 0;
        break;
    }
    if (fast_ws(data, len, i + 1) != len)
        return 0;

    /* The contract, checked as the reference checks it; whatever it would reject, or turn
     * into text (a number in a string field), is left to it. */
    for (size_t f = 0; f < schema->nfields; f++) {
        int required = f == VG_F_TXN_ID || f == VG_F_CARD_ID;
        if (!(seen & (UINT64_C(1) << f)) || val[f].kind == FAST_NULL) {
            if (required)
                return 0;
            continue;
        }
        if (val[f].kind != FAST_STR || (required && val[f].len == 0))
            return 0;
    }
    int64_t ts_ms = 0;
    if (!(seen & (UINT64_C(1) << FAST_TS)))
        return 0;
    if (val[FAST_TS].kind == FAST_STR) {
        if (vg_time_parse(val[FAST_TS].p, val[FAST_TS].len, &ts_ms) != VG_OK)
            return 0;
    } else if (val[FAST_TS].kind == FAST_NUM) {
        double d = val[FAST_TS].num;
        if (!(d >= 0 && d < 253402300800000.0 && d == floor(d)))
            return 0;
        ts_ms = (int64_t)d;
    } else {
        return 0;
    }
    const fast_val_t *amount = &val[FAST_AMOUNT];
    if (!(seen & (UINT64_C(1) << FAST_AMOUNT)) || amount->kind != FAST_NUM || !(amount->num >= 0) ||
        !isfinite(amount->num))
        return 0;
    double lat, lon;
    if (!fast_coord(&val[FAST_LAT], (seen >> FAST_LAT) & 1, 90, &lat) ||
        !fast_coord(&val[FAST_LON], (seen >> FAST_LON) & 1, 180, &lon) || isnan(lat) != isnan(lon))
        return 0;

    /* Valid: fill the record, copying into the arena in the reference's order. */
    memset(txn, 0, sizeof(*txn));
    for (size_t f = 0; f < schema->nfields; f++) {
        if (!(seen & (UINT64_C(1) << f)) || val[f].kind != FAST_STR)
            continue;
        txn->str[f] = vg_arena_strndup(arena, val[f].p, val[f].len);
        txn->len[f] = val[f].len;
    }
    txn->ts_ms = ts_ms;
    txn->amount = amount->num;
    txn->lat = lat;
    txn->lon = lon;
    txn->raw = vg_arena_strndup(arena, data, len);
    txn->raw_len = len;
    return 1;
}

vg_err_t vg_txn_decode(const vg_schema_t *schema, const char *data, size_t len, vg_arena_t *arena,
                       vg_txn_t *txn, char *reason, size_t reasonlen)
{
    if (vg_txn_decode_fast(schema, data, len, arena, txn))
        return VG_OK;
    return vg_txn_decode_reference(schema, data, len, arena, txn, reason, reasonlen);
}

vg_err_t vg_label_decode(const char *data, size_t len, vg_arena_t *arena, vg_label_t *label,
                         char *reason, size_t reasonlen)
{
    cJSON *root;
    vg_err_t err = parse(data, len, &root, reason, reasonlen);
    if (err)
        return err;
    memset(label, 0, sizeof(*label));
    const char *verdict;
#define MEMBER(name) cJSON_GetObjectItemCaseSensitive(root, name)
    if ((err = take_str(MEMBER("txn_id"), "txn_id", 1, arena, &label->txn_id, NULL, reason,
                        reasonlen)) ||
        (err = take_str(MEMBER("label"), "label", 1, arena, &verdict, NULL, reason, reasonlen)))
        goto out;
    if (strcmp(verdict, "fraud") == 0) {
        label->fraud = 1;
    } else if (strcmp(verdict, "legit") == 0) {
        label->fraud = 0;
    } else {
        err = vg_errf(reason, reasonlen, VG_ERR_INPUT,
                      "label must be \"fraud\" or \"legit\", got \"%.40s\"", verdict);
        goto out;
    }
    if ((err = take_ts(MEMBER("ts"), &label->ts_ms, reason, reasonlen)) ||
        (err = take_str(MEMBER("source"), "source", 0, arena, &label->source, NULL, reason,
                        reasonlen)) ||
        (err = take_str(MEMBER("analyst"), "analyst", 0, arena, &label->analyst, NULL, reason,
                        reasonlen)) ||
        (err = take_str(MEMBER("note"), "note", 0, arena, &label->note, NULL, reason, reasonlen)))
        goto out;
#undef MEMBER
out:
    cJSON_Delete(root);
    return err;
}

/* Skips a JSON string starting at data[i] == '"'; returns the index after its closing quote. */
static size_t skip_string(const char *data, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (data[i] == '\\')
            i++;
        else if (data[i] == '"')
            return i + 1;
    }
    return len;
}

vg_err_t vg_peek_ts(const char *data, size_t len, int64_t *ms)
{
    int depth = 0;
    size_t i = 0;
    while (i < len) {
        char c = data[i];
        if (c == '"') {
            size_t start = i;
            i = skip_string(data, len, i);
            if (depth != 1 || i - start != 4 || memcmp(data + start, "\"ts\"", 4) != 0)
                continue;
            while (i < len &&
                   (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
                i++;
            if (i >= len || data[i] != ':')
                continue; /* "ts" as a value, not a key */
            i++;
            while (i < len && (data[i] == ' ' || data[i] == '\t'))
                i++;
            if (i < len && data[i] == '"') {
                size_t end = skip_string(data, len, i);
                return vg_time_parse(data + i + 1, end - i - 2, ms);
            }
            int64_t v = 0;
            size_t digits = 0;
            while (i < len && data[i] >= '0' && data[i] <= '9' && digits < 16) {
                v = v * 10 + (data[i++] - '0');
                digits++;
            }
            if (!digits)
                return VG_ERR_INPUT;
            *ms = v;
            return VG_OK;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        i++;
    }
    return VG_ERR_INPUT;
}
