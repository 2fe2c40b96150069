/*
 * common.h - what every part of vigil shares: the error enum, logging, time, hashing,
 * growable byte buffers and a per-batch arena.
 *
 * Conventions (see docs/architecture.md):
 *  - functions return vg_err_t (VG_OK == 0, errors negative) and write results through
 *    out-parameters; constructors return a pointer, or NULL with a message in errbuf;
 *  - every object has _new/_free and _free(NULL) is a no-op;
 *  - assert() guards internal invariants only, never input.
 */
#ifndef VG_COMMON_H
#define VG_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef enum vg_err {
    VG_OK = 0,
    VG_ERR_NOMEM = -1,  /* allocation failed */
    VG_ERR_CONFIG = -2, /* bad configuration, flag or catalogue */
    VG_ERR_INPUT = -3,  /* malformed input (message, file content) */
    VG_ERR_KAFKA = -4,  /* Kafka client error */
    VG_ERR_STATE = -5,  /* state store (RocksDB) error */
    VG_ERR_MODEL = -6,  /* model load or scoring error */
    VG_ERR_IO = -7,     /* file or socket I/O error */
    VG_ERR_RULES = -8,  /* rule file parse or type error */
    VG_ERR_NOTFOUND = -9,
    VG_ERR_CONFLICT = -10, /* e.g. a case already closed */
    VG_ERR_STOPPED = -11,  /* interrupted by a signal */
} vg_err_t;

/* Short, constant text for an error code ("invalid input"). Never NULL. */
const char *vg_err_str(vg_err_t err);

/* Size of every errbuf in vigil; messages are cut at this length. */
#define VG_ERRLEN 512

/* printf into errbuf (if not NULL) and return err: `return vg_errf(eb, n, VG_ERR_X, ...)`. */
vg_err_t vg_errf(char *errbuf, size_t errlen, vg_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- logging: "2026-11-22T05:52:31.123Z INFO  broker: message" on stderr ---- */

typedef enum vg_log_level {
    VG_LOG_DEBUG = 0,
    VG_LOG_INFO = 1,
    VG_LOG_WARN = 2,
    VG_LOG_ERROR = 3,
} vg_log_level_t;

void vg_log_set_level(vg_log_level_t level);
/* Parses "debug", "info", "warn", "error"; returns VG_ERR_CONFIG for anything else. */
vg_err_t vg_log_parse_level(const char *s, vg_log_level_t *level);
void vg_log(vg_log_level_t level, const char *subsystem, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define vg_debug(sub, ...) vg_log(VG_LOG_DEBUG, sub, __VA_ARGS__)
#define vg_info(sub, ...)  vg_log(VG_LOG_INFO, sub, __VA_ARGS__)
#define vg_warn(sub, ...)  vg_log(VG_LOG_WARN, sub, __VA_ARGS__)
#define vg_error(sub, ...) vg_log(VG_LOG_ERROR, sub, __VA_ARGS__)

/* ---- time ---- */

/* Wall clock, milliseconds since the epoch. */
int64_t vg_now_ms(void);
/* Monotonic clock in nanoseconds, for measuring durations. */
int64_t vg_mono_ns(void);

/*
 * Parses an RFC 3339 timestamp ("2018-04-01T07:19:05Z", "2018-04-01T07:19:05.123+02:00",
 * 'T' or ' ' between date and time, fraction of any length, truncated to milliseconds)
 * into epoch milliseconds. Returns VG_ERR_INPUT for anything else, including impossible
 * dates (month 13, 31 April, hour 24).
 */
vg_err_t vg_time_parse(const char *s, size_t len, int64_t *ms);
/* Formats epoch milliseconds as "2018-04-01T07:19:05.000Z" (24 chars + NUL). */
void vg_time_format(int64_t ms, char out[32]);
/* Days since 1970-01-01 for a civil date, and back. Proleptic Gregorian. */
int64_t vg_days_from_civil(int64_t y, unsigned m, unsigned d);
void vg_civil_from_days(int64_t days, int *y, unsigned *m, unsigned *d);

/*
 * Parses a duration "10m", "1h", "7d", "30s", "500ms" or a bare number of milliseconds
 * into milliseconds. Returns VG_ERR_INPUT on anything else, a negative value, or one below 1 ms
 * other than 0 (callers that need a positive duration check for 0).
 */
vg_err_t vg_duration_parse(const char *s, int64_t *ms);

/* ---- hashing ---- */

/* 64-bit FNV-1a over bytes; used for content versions, not for security. */
uint64_t vg_hash64(const void *data, size_t len, uint64_t seed);
#define VG_HASH_SEED 0xcbf29ce484222325ULL
/* The content version of a file's bytes: 16 lowercase hex digits of vg_hash64. */
void vg_version_of(const void *data, size_t len, char out[17]);

/*
 * A shipped file named relative to the source tree ("features/default.conf"): the path as
 * given if it exists from the current directory, else under the source tree vigil was built
 * from, so defaults work from any directory. Returns a static string or rel itself.
 */
const char *vg_shipped_path(const char *rel);

/* Reads a whole file into a NUL-terminated malloc'd buffer; caller frees. */
vg_err_t vg_read_file(const char *path, char **data, size_t *len, char *errbuf, size_t errlen);

/* ---- growable byte buffer ---- */

typedef struct vg_buf {
    char *data; /* NUL-terminated while len < cap */
    size_t len;
    size_t cap;
} vg_buf_t;

void vg_buf_init(vg_buf_t *buf);
void vg_buf_free(vg_buf_t *buf);
void vg_buf_reset(vg_buf_t *buf);
/* Grows the buffer to hold n more bytes and the NUL; aborts on out-of-memory (the process
 * cannot go on). Use vg_buf_reserve. */
void vg_buf_grow(vg_buf_t *buf, size_t n);
/* Ensure room for n more bytes. Inline with the appends below: encoders call them for every
 * field of every decision. */
static inline void vg_buf_reserve(vg_buf_t *buf, size_t n)
{
    if (buf->len + n + 1 > buf->cap)
        vg_buf_grow(buf, n);
}
static inline void vg_buf_append(vg_buf_t *buf, const void *data, size_t n)
{
    vg_buf_reserve(buf, n);
    memcpy(buf->data + buf->len, data, n);
    buf->len += n;
    buf->data[buf->len] = '\0';
}
/* Appends n <= VG_BUF_PAD bytes from src, which must be readable for VG_BUF_PAD bytes: a
 * fixed-size copy the compiler inlines (two vector moves), where a copy of a variable
 * length short string is a call into libc. */
#define VG_BUF_PAD 64
static inline void vg_buf_append_padded(vg_buf_t *buf, const void *src, size_t n)
{
    vg_buf_reserve(buf, VG_BUF_PAD);
    memcpy(buf->data + buf->len, src, VG_BUF_PAD);
    buf->len += n;
    buf->data[buf->len] = '\0';
}
static inline void vg_buf_putc(vg_buf_t *buf, char c)
{
    vg_buf_reserve(buf, 1);
    buf->data[buf->len++] = c;
    buf->data[buf->len] = '\0';
}
/* Inline so that a literal's length is known when compiling (encoders append dozens a
 * record). */
static inline void vg_buf_puts(vg_buf_t *buf, const char *s)
{
    vg_buf_append(buf, s, strlen(s));
}
void vg_buf_printf(vg_buf_t *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included, escaping as RFC 8259 requires. */
void vg_buf_json_str(vg_buf_t *buf, const char *s, size_t n);
/* Appends a JSON number with up to 17 significant digits (round-trips), or null for NaN/Inf. */
void vg_buf_json_num(vg_buf_t *buf, double v);

/* ---- arena: many small allocations freed together (one per micro-batch) ---- */

typedef struct vg_arena_block vg_arena_block_t;
typedef struct vg_arena {
    vg_arena_block_t *head;
    size_t block_size;
} vg_arena_t;

void vg_arena_init(vg_arena_t *arena, size_t block_size);
/* Memory aligned to 16 bytes, valid until vg_arena_reset() or vg_arena_free(). Aborts on OOM. */
void *vg_arena_alloc(vg_arena_t *arena, size_t n);
char *vg_arena_strndup(vg_arena_t *arena, const char *s, size_t n);
/* Keeps the first block for reuse, frees the rest. */
void vg_arena_reset(vg_arena_t *arena);
void vg_arena_free(vg_arena_t *arena);

/* Aborting allocators for memory the process cannot go on without. */
void *vg_xmalloc(size_t n);
void *vg_xcalloc(size_t n, size_t size);
void *vg_xrealloc(void *p, size_t n);
char *vg_xstrdup(const char *s);

#define VG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
