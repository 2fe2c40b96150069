/*
 * ubj.c - a bounds-checked Universal Binary JSON decoder into jansson values.
 *
 * libxgboost 1.7 trusts the structure of the model it loads (a damaged tree array can crash
 * RegTree::LoadModel), so vigil reads a bundle's model itself first and checks it before
 * XGBoost sees it. JSON models go through jansson; UBJ models (draft 12, as XGBoost writes
 * them: big-endian numbers, string keys, optimized "$type#count" arrays) through this
 * decoder. Invariants: never reads outside [data, data + len); nesting is limited to
 * UBJ_MAX_DEPTH; a container's declared count can never exceed the bytes that remain, so a
 * hostile count cannot make it allocate without bound.
 */
#include "models/model_impl.h"

#include <jansson.h>
#include <string.h>

#define UBJ_MAX_DEPTH 64

typedef struct ubj {
    const unsigned char *start, *p, *end;
    char *errbuf;
    size_t errlen;
    int failed;
} ubj_t;

static json_t *fail(ubj_t *u, const char *what)
{
    if (!u->failed)
        vg_errf(u->errbuf, u->errlen, VG_ERR_MODEL, "invalid UBJ at byte %zu: %s",
                (size_t)(u->p - u->start), what);
    u->failed = 1;
    return NULL;
}

static int need(ubj_t *u, size_t n)
{
    if ((size_t)(u->end - u->p) < n) {
        fail(u, "truncated");
        return 0;
    }
    return 1;
}

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads an integer of the given marker; 0 and u->failed on error. */
static int64_t read_int(ubj_t *u, int marker)
{
    size_t n;
    switch (marker) {
    case 'i':
    case 'U':
        n = 1;
        break;
    case 'I':
        n = 2;
        break;
    case 'l':
        n = 4;
        break;
    case 'L':
        n = 8;
        break;
    default:
        fail(u, "expected an integer");
        return 0;
    }
    if (!need(u, n))
        return 0;
    uint64_t v = be(u->p, n);
    u->p += n;
    if (marker == 'U')
        return (int64_t)v;
    /* Sign-extend from n bytes. */
    if (n < 8 && (v >> (8 * n - 1)) & 1)
        v |= ~(uint64_t)0 << (8 * n);
    return (int64_t)v;
}

/* A length: an integer marker then a non-negative value no larger than what remains. */
static size_t read_len(ubj_t *u)
{
    if (!need(u, 1))
        return 0;
    int marker = *u->p++;
    int64_t v = read_int(u, marker);
    if (u->failed)
        return 0;
    if (v < 0 || (uint64_t)v > (uint64_t)(u->end - u->p)) {
        fail(u, "length out of range");
        return 0;
    }
    return (size_t)v;
}

static json_t *value(ubj_t *u, int marker, int depth);

static size_t fixed_size(int marker)
{
    switch (marker) {
    case 'i':
    case 'U':
    case 'C':
        return 1;
    case 'I':
        return 2;
    case 'l':
    case 'd':
        return 4;
    case 'L':
    case 'D':
        return 8;
    default:
        return 1; /* every other value takes at least its marker or a length byte */
    }
}

/* After '[' or '{': reads the optional "$type" and "#count". *count = -1 when absent. */
static void container_header(ubj_t *u, int *type, int64_t *count)
{
    *type = 0;
    *count = -1;
    if (u->p < u->end && *u->p == '$') {
        u->p++;
        if (!need(u, 1))
            return;
        *type = *u->p++;
        if (!(u->p < u->end && *u->p == '#')) {
            fail(u, "typed container without a count");
            return;
        }
    }
    if (u->p < u->end && *u->p == '#') {
        u->p++;
        size_t n = 0;
        if (!need(u, 1))
            return;
        int marker = *u->p++;
        int64_t v = read_int(u, marker);
        if (u->failed)
            return;
        n = (size_t)v;
        if (v < 0 || (*type && n > (size_t)(u->end - u->p) / fixed_size(*type)) ||
            (!*type && n > (size_t)(u->end - u->p))) {
            fail(u, "count out of range");
            return;
        }
        *count = v;
    }
}

static json_t *array(ubj_t *u, int depth)
{
    int type;
    int64_t count;
    container_header(u, &type, &count);
    if (u->failed)
        return NULL;
    json_t *arr = json_array();
    for (int64_t i = 0; count < 0 || i < count; i++) {
        int marker = type;
        if (!marker) {
            if (!need(u, 1))
                break;
            marker = *u->p++;
            if (count < 0 && marker == ']')
                return arr;
        }
        json_t *v = value(u, marker, depth + 1);
        if (!v)
            break;
        json_array_append_new(arr, v);
    }
    if (u->failed) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static json_t *object(ubj_t *u, int depth)
{
    int type;
    int64_t count;
    container_header(u, &type, &count);
    if (u->failed)
        return NULL;
    json_t *obj = json_object();
    for (int64_t i = 0; count < 0 || i < count; i++) {
        if (count < 0) {
            if (!need(u, 1))
                break;
            if (*u->p == '}') {
                u->p++;
                return obj;
            }
        }
        size_t klen = read_len(u);
        if (u->failed)
            break;
        const char *key = (const char *)u->p;
        u->p += klen;
        int marker = type;
        if (!marker) {
            if (!need(u, 1))
                break;
            marker = *u->p++;
        }
        json_t *v = value(u, marker, depth + 1);
        if (!v)
            break;
        if (json_object_setn_new(obj, key, klen, v) != 0) {
            fail(u, "bad key");
            break;
        }
    }
    if (u->failed) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *value(ubj_t *u, int marker, int depth)
{
    if (depth > UBJ_MAX_DEPTH)
        return fail(u, "nested too deeply");
    switch (marker) {
    case 'Z':
        return json_null();
    case 'T':
        return json_true();
    case 'F':
        return json_false();
    case 'i':
    case 'U':
    case 'I':
    case 'l':
    case 'L': {
        int64_t v = read_int(u, marker);
        return u->failed ? NULL : json_integer(v);
    }
    case 'd': {
        if (!need(u, 4))
            return NULL;
        uint32_t bits = (uint32_t)be(u->p, 4);
        u->p += 4;
        float f;
        memcpy(&f, &bits, 4);
        json_t *j = json_real(f);
        return j ? j : fail(u, "non-finite number");
    }
    case 'D': {
        if (!need(u, 8))
            return NULL;
        uint64_t bits = be(u->p, 8);
        u->p += 8;
        double d;
        memcpy(&d, &bits, 8);
        json_t *j = json_real(d);
        return j ? j : fail(u, "non-finite number");
    }
    case 'C':
        if (!need(u, 1))
            return NULL;
        return json_stringn((const char *)u->p++, 1);
    case 'S':
    case 'H': {
        size_t n = read_len(u);
        if (u->failed)
            return NULL;
        json_t *s = json_stringn((const char *)u->p, n);
        u->p += n;
        return s ? s : fail(u, "string is not UTF-8");
    }
    case '[':
        return array(u, depth);
    case '{':
        return object(u, depth);
    default:
        return fail(u, "unknown marker");
    }
}

json_t *vg_ubj_decode(const void *data, size_t len, char *errbuf, size_t errlen)
{
    ubj_t u = {.start = data,
               .p = data,
               .end = (const unsigned char *)data + len,
               .errbuf = errbuf,
               .errlen = errlen};
    if (!need(&u, 1))
        return NULL;
    int marker = *u.p++;
    json_t *root = value(&u, marker, 0);
    if (root && u.p != u.end) {
        json_decref(root);
        return fail(&u, "trailing bytes");
    }
    return root;
}
