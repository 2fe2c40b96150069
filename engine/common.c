/*
 * common.c - errors, logging, time, hashing, buffers and arenas shared by every part.
 *
 * Logging writes one line per call to stderr with a UTC timestamp; a single fprintf per
 * line keeps lines whole when librdkafka's threads log at the same time.
 */
#include "engine/common.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *vg_err_str(vg_err_t err)
{
    switch (err) {
    case VG_OK:
        return "success";
    case VG_ERR_NOMEM:
        return "out of memory";
    case VG_ERR_CONFIG:
        return "configuration error";
    case VG_ERR_INPUT:
        return "invalid input";
    case VG_ERR_KAFKA:
        return "kafka error";
    case VG_ERR_STATE:
        return "state store error";
    case VG_ERR_MODEL:
        return "model error";
    case VG_ERR_IO:
        return "I/O error";
    case VG_ERR_RULES:
        return "rules error";
    case VG_ERR_NOTFOUND:
        return "not found";
    case VG_ERR_CONFLICT:
        return "conflict";
    case VG_ERR_STOPPED:
        return "stopped";
    }
    return "unknown error";
}

vg_err_t vg_errf(char *errbuf, size_t errlen, vg_err_t err, const char *fmt, ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* ---- logging ---- */

static vg_log_level_t log_level = VG_LOG_INFO;

void vg_log_set_level(vg_log_level_t level)
{
    log_level = level;
}

vg_err_t vg_log_parse_level(const char *s, vg_log_level_t *level)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < VG_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *level = (vg_log_level_t)i;
            return VG_OK;
        }
    }
    return VG_ERR_CONFIG;
}

void vg_log(vg_log_level_t level, const char *subsystem, const char *fmt, ...)
{
    static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    if (level < log_level)
        return;
    char ts[32], msg[2048];
    vg_time_format(vg_now_ms(), ts);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s %s: %s\n", ts, tags[level], subsystem, msg);
}

/* ---- time ---- */

int64_t vg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t vg_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Howard Hinnant's days_from_civil: exact for every proleptic Gregorian date. */
int64_t vg_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void vg_civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

static int parse_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

vg_err_t vg_time_parse(const char *s, size_t len, int64_t *ms)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, frac = 0;
    /* YYYY-MM-DDTHH:MM:SS is 19 characters; a zone follows, so at least 20. */
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':')
        return VG_ERR_INPUT;
    if (parse_digits(s, 4, &y) || parse_digits(s + 5, 2, &mo) || parse_digits(s + 8, 2, &d) ||
        parse_digits(s + 11, 2, &h) || parse_digits(s + 14, 2, &mi) ||
        parse_digits(s + 17, 2, &sec))
        return VG_ERR_INPUT;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60)
        return VG_ERR_INPUT;
    if ((unsigned)d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
        return VG_ERR_INPUT;
    if (sec == 60) /* a leap second is read as the last millisecond-free second */
        sec = 59;
    size_t i = 19;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        int scale = 100;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            frac += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start)
            return VG_ERR_INPUT;
    }
    int64_t offset_min = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (parse_digits(s + i + 1, 2, &oh) || parse_digits(s + i + 4, 2, &om) || oh > 23 ||
            om > 59)
            return VG_ERR_INPUT;
        offset_min = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
        i += 6;
    } else {
        return VG_ERR_INPUT;
    }
    if (i != len)
        return VG_ERR_INPUT;
    int64_t days = vg_days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    *ms = secs * 1000 + frac;
    return VG_OK;
}

void vg_time_format(int64_t ms, char out[32])
{
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int msec = (int)(ms - secs * 1000);
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int sod = (int)(secs - days * 86400);
    int y;
    unsigned m, d;
    vg_civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) {
        snprintf(out, 32, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", y, m, d, sod / 3600,
                 (sod / 60) % 60, sod % 60, msec);
        return;
    }
    /* The same text without printf: this runs once per decision. */
    int f[7] = {y, (int)m, (int)d, sod / 3600, (sod / 60) % 60, sod % 60, msec};
    static const char tmpl[] = "0000-00-00T00:00:00.000Z";
    static const unsigned char end[7] = {4, 7, 10, 13, 16, 19, 23}; /* after each field */
    memcpy(out, tmpl, sizeof(tmpl));
    for (int i = 0; i < 7; i++)
        for (int pos = end[i] - 1, v = f[i]; v; pos--, v /= 10)
            out[pos] = (char)('0' + v % 10);
}

vg_err_t vg_duration_parse(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0))
        return VG_ERR_INPUT;
    double mult;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60e3;
    else if (strcmp(end, "h") == 0)
        mult = 3600e3;
    else if (strcmp(end, "d") == 0)
        mult = 86400e3;
    else if (strcmp(end, "w") == 0)
        mult = 7 * 86400e3;
    else
        return VG_ERR_INPUT;
    double r = v * mult;
    if ((r < 1 && r != 0) || r > 9e15)
        return VG_ERR_INPUT;
    *ms = (int64_t)llround(r);
    return VG_OK;
}

/* ---- hashing ---- */

uint64_t vg_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void vg_version_of(const void *data, size_t len, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)vg_hash64(data, len, VG_HASH_SEED));
}

const char *vg_shipped_path(const char *rel)
{
    static char buf[4096];
    if (access(rel, R_OK) == 0)
        return rel;
    snprintf(buf, sizeof(buf), "%s/%s", VG_SOURCE_DIR, rel);
    return access(buf, R_OK) == 0 ? buf : rel;
}

vg_err_t vg_read_file(const char *path, char **data, size_t *len, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return vg_errf(errbuf, errlen, VG_ERR_IO, "%s: %s", path, strerror(errno));
    vg_buf_t buf;
    vg_buf_init(&buf);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        vg_buf_append(&buf, chunk, n);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        vg_buf_free(&buf);
        return vg_errf(errbuf, errlen, VG_ERR_IO, "%s: read error", path);
    }
    vg_buf_reserve(&buf, 1);
    buf.data[buf.len] = '\0';
    *data = buf.data;
    if (len)
        *len = buf.len;
    return VG_OK;
}

/* ---- allocation ---- */

static void oom(size_t n)
{
    fprintf(stderr, "vigil: out of memory allocating %zu bytes\n", n);
    abort();
}

void *vg_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *vg_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *vg_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *vg_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = vg_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* ---- buffers ---- */

void vg_buf_init(vg_buf_t *buf)
{
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

void vg_buf_free(vg_buf_t *buf)
{
    free(buf->data);
    vg_buf_init(buf);
}

void vg_buf_reset(vg_buf_t *buf)
{
    buf->len = 0;
    if (buf->data)
        buf->data[0] = '\0';
}

void vg_buf_grow(vg_buf_t *buf, size_t n)
{
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < buf->len + n + 1)
        cap *= 2;
    buf->data = vg_xrealloc(buf->data, cap);
    buf->cap = cap;
}

void vg_buf_printf(vg_buf_t *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    vg_buf_reserve(buf, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
}

void vg_buf_json_str(vg_buf_t *buf, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Once for the worst case (every byte as \u00XX, plus the quotes): the loop below runs
     * for every byte of every string of every decision. */
    vg_buf_reserve(buf, 6 * n + 2);
    char *o = buf->data + buf->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
            *o++ = (char)c;
            continue;
        }
        /* <, > and & are escaped too, so that a record is safe to embed in HTML. */
        *o++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *o++ = (char)c;
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
        }
    }
    *o++ = '"';
    *o = '\0';
    buf->len = (size_t)(o - buf->data);
}

/* Writes the decimal digits of u (u > 0 or the single digit 0) ending at end; returns the
 * start. */
static char *utoa_rev(uint64_t u, char *end)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930"
                                "31323334353637383940414243444546474849505152535455565758596061"
                                "62636465666768697071727374757677787980818283848586878889909192"
                                "93949596979899";
    while (u >= 100) { /* two digits a division */
        unsigned d = (unsigned)(u % 100) * 2;
        u /= 100;
        *--end = pairs[d + 1];
        *--end = pairs[d];
    }
    if (u >= 10) {
        *--end = pairs[u * 2 + 1];
        *--end = pairs[u * 2];
    } else {
        *--end = (char)('0' + u);
    }
    return end;
}

/* 5^0 .. 5^27 (5^27 < 2^63) */
static const uint64_t pow5[] = {
    UINT64_C(1),
    UINT64_C(5),
    UINT64_C(25),
    UINT64_C(125),
    UINT64_C(625),
    UINT64_C(3125),
    UINT64_C(15625),
    UINT64_C(78125),
    UINT64_C(390625),
    UINT64_C(1953125),
    UINT64_C(9765625),
    UINT64_C(48828125),
    UINT64_C(244140625),
    UINT64_C(1220703125),
    UINT64_C(6103515625),
    UINT64_C(30517578125),
    UINT64_C(152587890625),
    UINT64_C(762939453125),
    UINT64_C(3814697265625),
    UINT64_C(19073486328125),
    UINT64_C(95367431640625),
    UINT64_C(476837158203125),
    UINT64_C(2384185791015625),
    UINT64_C(11920928955078125),
    UINT64_C(59604644775390625),
    UINT64_C(298023223876953125),
    UINT64_C(1490116119384765625),
    UINT64_C(7450580596923828125),
};

typedef unsigned __int128 u128;

/* a > 0 as M * 2^E exactly. */
static void decompose(double a, uint64_t *M, int *E)
{
    uint64_t bits;
    memcpy(&bits, &a, sizeof(bits));
    int be = (int)((bits >> 52) & 0x7ff);
    uint64_t frac = bits & ((UINT64_C(1) << 52) - 1);
    *M = be ? frac | (UINT64_C(1) << 52) : frac;
    *E = (be ? be : 1) - 1075;
}

/* round(M * 2^E * 10^k) to the nearest integer, ties to even, as printf rounds its digits:
 * exactly, as M * 5^k (128 bits) shifted by E + k. For 0 <= k <= 27 and a result < 2^64. */
static uint64_t scaled_round(uint64_t M, int E, int k)
{
    u128 p = (u128)M * pow5[k];
    int sh = -(E + k);
    if (sh <= 0)
        return (uint64_t)(p << -sh);
    if (sh >= 128)
        return 0;
    u128 q = p >> sh, rem = p - (q << sh), half = (u128)1 << (sh - 1);
    if (rem > half || (rem == half && (q & 1)))
        q++;
    return (uint64_t)q;
}

/* 1 if m / 10^k (0 <= k <= 27) reads back as M * 2^E (strtod: to nearest, ties to even),
 * decided exactly in 128-bit integers: m / 10^k must lie between the midpoints to a's
 * neighbours, (M -+ 1/2) * 2^E (the lower one (M - 1/4) * 2^E when M is a power of two,
 * whose predecessor is half an ulp closer), times 2^(2 - E - k) / 5^k on both sides. */
static int reads_back(uint64_t m, int k, uint64_t M, int E)
{
    int s = 2 - E - k;
    if (m == 0 || s < 0 || s + (64 - __builtin_clzll(m)) > 126)
        return 0; /* outside what 128 bits hold: printf decides */
    u128 l = (u128)m << s, f = pow5[k];
    u128 up = f * (4 * (u128)M + 2);
    u128 down = f * (4 * (u128)M - (M == (UINT64_C(1) << 52) && E > -1074 ? 1 : 2));
    if (l > down && l < up)
        return 1;
    return (l == up || l == down) && !(M & 1);
}

/* floor(log10(a)) for 1e-11 <= a < 1e15, as libm's log10 gives it, mostly without the call:
 * from the binary exponent and a table of powers of ten. Within a relative 1e-13 of a power
 * of ten, where log10's own rounding may differ from the table's, log10 decides. */
static int floor_log10(double a)
{
    static const double
        p10[] = {1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3,
                 1e-2,  1e-1,  1e0,   1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                 1e8,   1e9,   1e10,  1e11, 1e12, 1e13, 1e14, 1e15, 1e16}; /* p10[i] = 10^(i-12) */
    uint64_t bits;
    memcpy(&bits, &a, sizeof(bits));
    int e2 = (int)((bits >> 52) & 0x7ff) - 1023; /* 2^e2 <= a < 2^(e2+1) */
    int e = (e2 * 1233) >> 12;                   /* about floor(e2 * log10(2)) */
    if (e < -12)
        e = -12;
    while (e > -12 && a < p10[e + 12])
        e--;
    while (a >= p10[e + 13])
        e++;
    if (a < p10[e + 12] * (1 + 1e-13) || a > p10[e + 13] * (1 - 1e-13))
        return (int)floor(log10(a));
    return e;
}

/* The number of decimal digits of u (1 for 0). */
static size_t ndigits(uint64_t u)
{
    static const uint64_t p10[] = {UINT64_C(1),
                                   UINT64_C(10),
                                   UINT64_C(100),
                                   UINT64_C(1000),
                                   UINT64_C(10000),
                                   UINT64_C(100000),
                                   UINT64_C(1000000),
                                   UINT64_C(10000000),
                                   UINT64_C(100000000),
                                   UINT64_C(1000000000),
                                   UINT64_C(10000000000),
                                   UINT64_C(100000000000),
                                   UINT64_C(1000000000000),
                                   UINT64_C(10000000000000),
                                   UINT64_C(100000000000000),
                                   UINT64_C(1000000000000000),
                                   UINT64_C(10000000000000000),
                                   UINT64_C(100000000000000000),
                                   UINT64_C(1000000000000000000),
                                   UINT64_C(10000000000000000000)};
    size_t n = (size_t)((64 - __builtin_clzll(u | 1)) * 1233 >> 12) + 1; /* n or n + 1 */
    return n - (n > 1 && u < p10[n - 1]);
}

/* Writes m / 10^k as printf's %g does below 1e-4: d.ddde-XX, trailing zeros dropped;
 * returns its length. */
static size_t exp_format(uint64_t m, int k, char *out)
{
    size_t nd = ndigits(m), len = 1;
    int e10 = (int)nd - 1 - k; /* the first digit's power of ten */
    utoa_rev(m, out + 1 + nd); /* the digits at out[1 .. nd], then the first moves left */
    out[0] = out[1];
    while (nd > 1 && out[nd] == '0')
        nd--;
    if (nd > 1) {
        out[1] = '.';
        len = nd + 1;
    }
    unsigned ae = (unsigned)(e10 < 0 ? -e10 : e10);
    out[len++] = 'e';
    out[len++] = e10 < 0 ? '-' : '+';
    if (ae >= 100)
        out[len++] = (char)('0' + ae / 100);
    out[len++] = (char)('0' + ae / 10 % 10);
    out[len++] = (char)('0' + ae % 10);
    return len;
}

/* Writes m / 10^k (k >= 0) as a plain decimal (no exponent, trailing zeros dropped);
 * returns its length. */
static size_t sig_format(uint64_t m, int k, char *out)
{
    size_t nd = ndigits(m), len;
    /* nd digits represent m / 10^k; the point goes k digits from the right. */
    if (k == 0) {
        utoa_rev(m, out + nd);
        return nd;
    }
    if ((size_t)k >= nd) { /* 0.000ddd */
        size_t z = (size_t)k - nd;
        out[0] = '0';
        out[1] = '.';
        memset(out + 2, '0', z);
        len = 2 + z + nd;
        utoa_rev(m, out + len);
    } else { /* the digits one place right, then the integer part back over the gap */
        size_t ni = nd - (size_t)k;
        utoa_rev(m, out + nd + 1);
        for (size_t i = 0; i < ni; i++)
            out[i] = out[i + 1];
        out[ni] = '.';
        len = nd + 1;
    }
    while (out[len - 1] == '0')
        len--;
    if (out[len - 1] == '.')
        len--;
    return len;
}

void vg_buf_json_num(vg_buf_t *buf, double v)
{
    /* written in place: at most a sign, "0.0000" and 18 digits, or printf's 24 characters */
    vg_buf_reserve(buf, 32);
    char *out = buf->data + buf->len;
    size_t len = 0;
    double a = fabs(v);
    if (!isfinite(v)) {
        memcpy(out, "null", 4);
        len = 4;
        goto done;
    }
    if (v < 0)
        out[len++] = '-';
    if (a < 1e15 && a == floor(a)) { /* integers: no point, no exponent */
        uint64_t u = (uint64_t)a;
        len += ndigits(u);
        utoa_rev(u, out + len);
        goto done;
    }
    /*
     * The shortest of 15 or 17 significant digits that reads back to the same double, as
     * "%.15g" then "%.17g" would give, but without printf (this runs ~30 times per decision):
     * from 1e-5, plain decimals; below, printf's exponent form (a model's score for most
     * transactions is around 1e-6). printf remains the fallback whenever the check fails.
     */
    if (a >= 1e-11 && a < 1e15) {
        uint64_t M;
        int E, e10 = floor_log10(a), k17 = 16 - e10, k15 = 14 - e10; /* 0 <= k <= 27 */
        decompose(a, &M, &E);
        uint64_t m17 = scaled_round(M, E, k17), m15;
        size_t (*format)(uint64_t, int, char *) = a >= 1e-5 ? sig_format : exp_format;
        /* A 15-digit candidate that reads back is within half an ulp (2^-53) of a, so m17
         * lies within 12 of a multiple of 100 (m17 < 10^17): otherwise it cannot, and is not
         * tried. Digits are written only for the candidate that reads back. */
        if ((m17 % 100 <= 15 || m17 % 100 >= 85) &&
            reads_back(m15 = scaled_round(M, E, k15), k15, M, E)) {
            len += format(m15, k15, out + len);
            goto done;
        }
        /* 17 digits correctly rounded always read back; fewer (e10 one too high) may not */
        if (m17 >= UINT64_C(10000000000000000) || reads_back(m17, k17, M, E)) {
            len += format(m17, k17, out + len);
            goto done;
        }
    }
    len = (size_t)snprintf(out, 32, "%.15g", v);
    if (strtod(out, NULL) != v)
        len = (size_t)snprintf(out, 32, "%.17g", v);
done:
    buf->len += len;
    buf->data[buf->len] = '\0';
}

/* ---- arena ---- */

struct vg_arena_block {
    vg_arena_block_t *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

void vg_arena_init(vg_arena_t *arena, size_t block_size)
{
    arena->head = NULL;
    arena->block_size = block_size ? block_size : 65536;
}

void *vg_arena_alloc(vg_arena_t *arena, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    vg_arena_block_t *b = arena->head;
    if (!b || b->used + n > b->size) {
        size_t size = n > arena->block_size ? n : arena->block_size;
        vg_arena_block_t *nb = vg_xmalloc(sizeof(*nb) + size);
        nb->used = 0;
        nb->size = size;
        nb->next = arena->head;
        arena->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

char *vg_arena_strndup(vg_arena_t *arena, const char *s, size_t n)
{
    char *p = vg_arena_alloc(arena, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void vg_arena_reset(vg_arena_t *arena)
{
    vg_arena_block_t *b = arena->head;
    if (!b)
        return;
    /* Keep the largest recent block: the oldest (last in list) is usually block_size. */
    while (b->next) {
        vg_arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    b->used = 0;
    arena->head = b;
}

void vg_arena_free(vg_arena_t *arena)
{
    vg_arena_block_t *b = arena->head;
    while (b) {
        vg_arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    arena->head = NULL;
}
