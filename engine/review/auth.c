/*
 * auth.c - SHA-256, HMAC, PBKDF2, the users file and random tokens; see auth.h.
 *
 * SHA-256 follows FIPS 180-4 section 6.2 directly (one block at a time, big-endian words);
 * PBKDF2 follows RFC 8018 section 5.2 with HMAC-SHA256 as the PRF. The unit tests check
 * the FIPS, RFC 4231 and RFC 7914 vectors. Secrets are compared with a constant-time loop.
 */
#include "engine/review/auth.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- SHA-256 ---- */

typedef struct sha256_ctx {
    uint32_t h[8];
    uint8_t block[64];
    size_t used;
    uint64_t total;
} sha256_ctx_t;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = ROR(w[t - 15], 7) ^ ROR(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = ROR(w[t - 2], 17) ^ ROR(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 =
            hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

static void sha256_init(sha256_ctx_t *ctx)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(ctx->h, iv, sizeof(iv));
    ctx->used = 0;
    ctx->total = 0;
}

static void sha256_update(sha256_ctx_t *ctx, const void *data, size_t len)
{
    const uint8_t *p = data;
    ctx->total += len;
    while (len > 0) {
        size_t take = 64 - ctx->used < len ? 64 - ctx->used : len;
        memcpy(ctx->block + ctx->used, p, take);
        ctx->used += take;
        p += take;
        len -= take;
        if (ctx->used == 64) {
            sha256_block(ctx->h, ctx->block);
            ctx->used = 0;
        }
    }
}

static void sha256_final(sha256_ctx_t *ctx, uint8_t out[32])
{
    uint64_t bits = ctx->total * 8;
    uint8_t pad = 0x80, zero = 0, len[8];
    sha256_update(ctx, &pad, 1);
    while (ctx->used != 56)
        sha256_update(ctx, &zero, 1);
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(ctx, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(ctx->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(ctx->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(ctx->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)ctx->h[i];
    }
}

void vg_sha256(const void *data, size_t len, uint8_t out[32])
{
    sha256_ctx_t ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, data, len);
    sha256_final(&ctx, out);
}

/* ---- HMAC and PBKDF2 ---- */

/* The inner and outer states after absorbing key^ipad and key^opad: PBKDF2 reuses them for
 * every iteration, which halves its cost. */
typedef struct hmac_key {
    sha256_ctx_t inner, outer;
} hmac_key_t;

static void hmac_key_init(hmac_key_t *hk, const void *key, size_t klen)
{
    uint8_t k[64] = {0}, pad[64];
    if (klen > 64)
        vg_sha256(key, klen, k);
    else
        memcpy(k, key, klen);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    sha256_init(&hk->inner);
    sha256_update(&hk->inner, pad, 64);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    sha256_init(&hk->outer);
    sha256_update(&hk->outer, pad, 64);
}

static void hmac_run(const hmac_key_t *hk, const void *m1, size_t l1, const void *m2, size_t l2,
                     uint8_t out[32])
{
    sha256_ctx_t ctx = hk->inner;
    uint8_t ih[32];
    sha256_update(&ctx, m1, l1);
    if (l2)
        sha256_update(&ctx, m2, l2);
    sha256_final(&ctx, ih);
    ctx = hk->outer;
    sha256_update(&ctx, ih, 32);
    sha256_final(&ctx, out);
}

void vg_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32])
{
    hmac_key_t hk;
    hmac_key_init(&hk, key, klen);
    hmac_run(&hk, msg, mlen, NULL, 0, out);
}

void vg_pbkdf2_sha256(const void *pw, size_t pwlen, const void *salt, size_t saltlen, uint32_t iter,
                      uint8_t *out, size_t dklen)
{
    hmac_key_t hk;
    hmac_key_init(&hk, pw, pwlen);
    for (uint32_t block = 1; dklen > 0; block++) {
        uint8_t be[4] = {(uint8_t)(block >> 24), (uint8_t)(block >> 16), (uint8_t)(block >> 8),
                         (uint8_t)block};
        uint8_t u[32], t[32];
        hmac_run(&hk, salt, saltlen, be, 4, u);
        memcpy(t, u, 32);
        for (uint32_t i = 1; i < iter; i++) {
            hmac_run(&hk, u, 32, NULL, 0, u);
            for (int j = 0; j < 32; j++)
                t[j] ^= u[j];
        }
        size_t take = dklen < 32 ? dklen : 32;
        memcpy(out, t, take);
        out += take;
        dklen -= take;
    }
}

/* ---- helpers ---- */

void vg_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

vg_err_t vg_random_bytes(void *buf, size_t n, char *errbuf, size_t errlen)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return vg_errf(errbuf, errlen, VG_ERR_IO, "getrandom: %s", strerror(errno));
        }
        p += got;
        n -= (size_t)got;
    }
    return VG_OK;
}

vg_err_t vg_random_token(char out[65], char *errbuf, size_t errlen)
{
    uint8_t b[32];
    vg_err_t err = vg_random_bytes(b, sizeof(b), errbuf, errlen);
    if (err)
        return err;
    vg_hex(b, sizeof(b), out);
    return VG_OK;
}

int vg_auth_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
            return 0;
    return 1;
}

static int ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

/* ---- users file ---- */

typedef struct cred {
    char name[65];
    int is_token;
    uint8_t salt[16];
    uint8_t hash[32];
} cred_t;

struct vg_users {
    cred_t *creds;
    size_t n;
};

vg_users_t *vg_users_load(const char *path, char *errbuf, size_t errlen)
{
    char *data;
    size_t len;
    if (vg_read_file(path, &data, &len, errbuf, errlen))
        return NULL;
    vg_users_t *users = vg_xcalloc(1, sizeof(*users));
    size_t cap = 0, lineno = 0;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        size_t l = strlen(line);
        while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' '))
            line[--l] = '\0';
        if (l == 0 || line[0] == '#')
            continue;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) {
            vg_errf(errbuf, errlen, VG_ERR_CONFIG, "%s:%zu: expected NAME:SALT:HASH", path, lineno);
            goto fail;
        }
        *c1 = *c2 = '\0';
        cred_t cr = {0};
        if (!vg_auth_name_ok(line)) {
            vg_errf(errbuf, errlen, VG_ERR_CONFIG,
                    "%s:%zu: name must be 1-64 characters of A-Z a-z 0-9 . _ -", path, lineno);
            goto fail;
        }
        strcpy(cr.name, line);
        cr.is_token = strcmp(c1 + 1, "*") == 0;
        if (!cr.is_token && (strlen(c1 + 1) != 32 || unhex(c1 + 1, 16, cr.salt))) {
            vg_errf(errbuf, errlen, VG_ERR_CONFIG,
                    "%s:%zu: salt must be 32 lowercase hex digits (or * for a token)", path,
                    lineno);
            goto fail;
        }
        if (strlen(c2 + 1) != 64 || unhex(c2 + 1, 32, cr.hash)) {
            vg_errf(errbuf, errlen, VG_ERR_CONFIG, "%s:%zu: hash must be 64 lowercase hex digits",
                    path, lineno);
            goto fail;
        }
        if (users->n == cap) {
            cap = cap ? 2 * cap : 8;
            users->creds = vg_xrealloc(users->creds, cap * sizeof(cred_t));
        }
        users->creds[users->n++] = cr;
    }
    free(data);
    return users;
fail:
    free(data);
    vg_users_free(users);
    return NULL;
}

void vg_users_free(vg_users_t *users)
{
    if (!users)
        return;
    free(users->creds);
    free(users);
}

size_t vg_users_count(const vg_users_t *users)
{
    return users->n;
}

int vg_users_check_password(const vg_users_t *users, const char *name, const char *password)
{
    int ok = 0;
    for (size_t i = 0; i < users->n; i++) {
        const cred_t *cr = &users->creds[i];
        if (cr->is_token || strcmp(cr->name, name) != 0)
            continue;
        uint8_t dk[32];
        vg_pbkdf2_sha256(password, strlen(password), cr->salt, 16, VG_AUTH_PBKDF2_ITER, dk, 32);
        ok |= ct_equal(dk, cr->hash, 32);
    }
    if (!ok && users->n > 0) {
        /* an unknown name costs one derivation too, so timing does not reveal names */
        uint8_t dk[32];
        vg_pbkdf2_sha256(password, strlen(password), "vigil", 5, VG_AUTH_PBKDF2_ITER, dk, 32);
    }
    return ok;
}

const char *vg_users_check_token(const vg_users_t *users, const char *token)
{
    uint8_t h[32];
    vg_sha256(token, strlen(token), h);
    const char *who = NULL;
    for (size_t i = 0; i < users->n; i++)
        if (users->creds[i].is_token && ct_equal(h, users->creds[i].hash, 32))
            who = users->creds[i].name;
    return who;
}

char *vg_users_password_line(const char *name, const char *password, char *errbuf, size_t errlen)
{
    uint8_t salt[16], dk[32];
    if (vg_random_bytes(salt, sizeof(salt), errbuf, errlen))
        return NULL;
    vg_pbkdf2_sha256(password, strlen(password), salt, 16, VG_AUTH_PBKDF2_ITER, dk, 32);
    char salthex[33], dkhex[65];
    vg_hex(salt, 16, salthex);
    vg_hex(dk, 32, dkhex);
    size_t n = strlen(name) + 33 + 65 + 4;
    char *line = vg_xmalloc(n);
    snprintf(line, n, "%s:%s:%s\n", name, salthex, dkhex);
    return line;
}

char *vg_users_token_line(const char *name, const char *token)
{
    uint8_t h[32];
    char hex[65];
    vg_sha256(token, strlen(token), h);
    vg_hex(h, 32, hex);
    size_t n = strlen(name) + 65 + 5;
    char *line = vg_xmalloc(n);
    snprintf(line, n, "%s:*:%s\n", name, hex);
    return line;
}
