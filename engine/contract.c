/*
 * contract.c - JSON decoding of transactions and labels with Jansson.
 *
 * Jansson was chosen over json-c by measurement (tests/bench/bench_decode.c prints both
 * side by side) and because it rejects duplicate keys and invalid UTF-8 itself: a message
 * with two "amount" keys is ambiguous and goes to the dead-letter topic rather than being
 * read one way here and another way by a downstream consumer.
 */
#include "engine/contract.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

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

/* The JSON text of a value, cut to fit a reason: `"12,5"`, `-3`, `null`, `{...}`. */
static void value_text(const json_t *v, char *out, size_t outlen)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s) {
        snprintf(out, outlen, "?");
        return;
    }
    if (strlen(s) > 40)
        snprintf(out, outlen, "%.37s...", s);
    else
        snprintf(out, outlen, "%s", s);
    free(s);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "value";
}

static vg_err_t parse(const char *data, size_t len, json_t **root, char *reason, size_t reasonlen)
{
    if (len > VG_MAX_MESSAGE)
        return vg_errf(reason, reasonlen, VG_ERR_INPUT, "message too large: %zu bytes > %d", len,
                       VG_MAX_MESSAGE);
    json_error_t jerr;
    *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*root)
        return vg_errf(reason, reasonlen, VG_ERR_INPUT, "invalid JSON at line %d column %d: %s",
                       jerr.line, jerr.column, jerr.text);
    if (!json_is_object(*root)) {
        vg_err_t err = vg_errf(reason, reasonlen, VG_ERR_INPUT,
                               "message must be a JSON object, got %s", type_name(*root));
        json_decref(*root);
        *root = NULL;
        return err;
    }
    return VG_OK;
}

/* A string field: required ones must be present, strings, and non-empty. Optional ones may
 * be absent or null; a number is accepted and kept as its JSON text (mcc 5411). */
static vg_err_t get_str(json_t *root, const char *name, int required, vg_arena_t *arena,
                        const char **out, uint32_t *outlen, char *reason, size_t reasonlen)
{
    json_t *v = json_object_get(root, name);
    *out = NULL;
    if (outlen)
        *outlen = 0;
    if (!v || (!required && json_is_null(v))) {
        if (required)
            return vg_errf(reason, reasonlen, VG_ERR_INPUT, "missing field %s", name);
        return VG_OK;
    }
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if (required && n == 0)
            return vg_errf(reason, reasonlen, VG_ERR_INPUT, "field %s must not be empty", name);
        if (memchr(json_string_value(v), '\0', n))
            return vg_errf(reason, reasonlen, VG_ERR_INPUT, "field %s contains a NUL character",
                           name);
        *out = vg_arena_strndup(arena, json_string_value(v), n);
        if (outlen)
            *outlen = (uint32_t)n;
        return VG_OK;
    }
    if (!required && json_is_number(v)) {
        char tmp[64];
        int n = json_is_integer(v)
                    ? snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v))
                    : snprintf(tmp, sizeof(tmp), "%.17g", json_real_value(v));
        *out = vg_arena_strndup(arena, tmp, (size_t)n);
        if (outlen)
            *outlen = (uint32_t)n;
        return VG_OK;
    }
    char text[48];
    value_text(v, text, sizeof(text));
    return vg_errf(reason, reasonlen, VG_ERR_INPUT, "field %s must be a string, got %s %s", name,
                   type_name(v), text);
}

/* ts: an RFC 3339 string or an integer of epoch milliseconds. */
static vg_err_t get_ts(json_t *root, int64_t *ms, char *reason, size_t reasonlen)
{
    json_t *v = json_object_get(root, "ts");
    if (!v)
        return vg_errf(reason, reasonlen, VG_ERR_INPUT, "missing field ts");
    if (json_is_string(v) &&
        vg_time_parse(json_string_value(v), json_string_length(v), ms) == VG_OK)
        return VG_OK;
    if (json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) < 253402300800000LL /* year 10000 */) {
        *ms = json_integer_value(v);
        return VG_OK;
    }
    char text[48];
    value_text(v, text, sizeof(text));
    return vg_errf(reason, reasonlen, VG_ERR_INPUT,
                   "ts must be an RFC 3339 string or integer epoch milliseconds, got %s", text);
}

static vg_err_t get_coord(json_t *root, const char *name, double limit, double *out, char *reason,
                          size_t reasonlen)
{
    json_t *v = json_object_get(root, name);
    *out = NAN;
    if (!v || json_is_null(v))
        return VG_OK;
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (d >= -limit && d <= limit) {
            *out = d;
            return VG_OK;
        }
    }
    char text[48];
    value_text(v, text, sizeof(text));
    return vg_errf(reason, reasonlen, VG_ERR_INPUT, "%s must be a number in [-%g, %g], got %s",
                   name, limit, limit, text);
}

vg_err_t vg_txn_decode(const vg_schema_t *schema, const char *data, size_t len, vg_arena_t *arena,
                       vg_txn_t *txn, char *reason, size_t reasonlen)
{
    json_t *root;
    vg_err_t err = parse(data, len, &root, reason, reasonlen);
    if (err)
        return err;
    memset(txn, 0, sizeof(*txn));

    for (size_t i = 0; i < schema->nfields; i++) {
        int required = i == VG_F_TXN_ID || i == VG_F_CARD_ID;
        err = get_str(root, schema->names[i], required, arena, &txn->str[i], &txn->len[i], reason,
                      reasonlen);
        if (err)
            goto out;
    }
    if ((err = get_ts(root, &txn->ts_ms, reason, reasonlen)))
        goto out;

    json_t *amount = json_object_get(root, "amount");
    if (!amount) {
        err = vg_errf(reason, reasonlen, VG_ERR_INPUT, "missing field amount");
        goto out;
    }
    txn->amount = json_is_number(amount) ? json_number_value(amount) : NAN;
    if (!(txn->amount >= 0) || !isfinite(txn->amount)) {
        char text[48];
        value_text(amount, text, sizeof(text));
        err =
            vg_errf(reason, reasonlen, VG_ERR_INPUT, "amount must be a number >= 0, got %s", text);
        goto out;
    }
    if ((err = get_coord(root, "lat", 90, &txn->lat, reason, reasonlen)) ||
        (err = get_coord(root, "lon", 180, &txn->lon, reason, reasonlen)))
        goto out;
    if (isnan(txn->lat) != isnan(txn->lon)) {
        err = vg_errf(reason, reasonlen, VG_ERR_INPUT, "lat and lon must be given together");
        goto out;
    }
    txn->raw = vg_arena_strndup(arena, data, len);
    txn->raw_len = len;
out:
    json_decref(root);
    return err;
}

vg_err_t vg_label_decode(const char *data, size_t len, vg_arena_t *arena, vg_label_t *label,
                         char *reason, size_t reasonlen)
{
    json_t *root;
    vg_err_t err = parse(data, len, &root, reason, reasonlen);
    if (err)
        return err;
    memset(label, 0, sizeof(*label));
    const char *verdict;
    if ((err = get_str(root, "txn_id", 1, arena, &label->txn_id, NULL, reason, reasonlen)) ||
        (err = get_str(root, "label", 1, arena, &verdict, NULL, reason, reasonlen)))
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
    if ((err = get_ts(root, &label->ts_ms, reason, reasonlen)) ||
        (err = get_str(root, "source", 0, arena, &label->source, NULL, reason, reasonlen)) ||
        (err = get_str(root, "analyst", 0, arena, &label->analyst, NULL, reason, reasonlen)) ||
        (err = get_str(root, "note", 0, arena, &label->note, NULL, reason, reasonlen)))
        goto out;
out:
    json_decref(root);
    return err;
}
