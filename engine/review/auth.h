/*
 * auth.h - analyst authentication for `vigil review`: SHA-256 (FIPS 180-4), HMAC-SHA256
 * (RFC 2104), PBKDF2-HMAC-SHA256 (RFC 8018), the users file, and random tokens.
 *
 * The users file holds one line per credential ('#' starts a comment):
 *
 *   NAME:SALT:HASH    a password: SALT is 32 hex digits (16 random bytes), HASH is the 64
 *                     hex digits of PBKDF2-HMAC-SHA256(password, SALT bytes,
 *                     VG_AUTH_PBKDF2_ITER iterations, 32 bytes)
 *   NAME:*:HASH       an API token: HASH is the hex SHA-256 of the token text (tokens are
 *                     256 random bits, so a fast hash is enough: nothing to brute-force)
 *
 * NAME is 1..64 characters of [A-Za-z0-9._-]. Comparisons of secrets are constant-time.
 */
#ifndef VG_REVIEW_AUTH_H
#define VG_REVIEW_AUTH_H

#include "engine/common.h"

#define VG_AUTH_PBKDF2_ITER 100000

void vg_sha256(const void *data, size_t len, uint8_t out[32]);
void vg_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32]);
/* PBKDF2-HMAC-SHA256 of RFC 8018 section 5.2, any dklen. */
void vg_pbkdf2_sha256(const void *pw, size_t pwlen, const void *salt, size_t saltlen, uint32_t iter,
                      uint8_t *out, size_t dklen);

/* Lowercase hex of n bytes into out (2n + 1 chars). */
void vg_hex(const uint8_t *in, size_t n, char *out);
/* Fills buf with n bytes from the kernel's CSPRNG; VG_ERR_IO if it cannot. */
vg_err_t vg_random_bytes(void *buf, size_t n, char *errbuf, size_t errlen);
/* A fresh 256-bit random token as 64 hex digits (+ NUL). */
vg_err_t vg_random_token(char out[65], char *errbuf, size_t errlen);
/* 1 when name is a valid analyst name. */
int vg_auth_name_ok(const char *name);

typedef struct vg_users vg_users_t;

/* Loads a users file; VG_ERR_CONFIG "FILE:LINE: message" on a malformed line. */
vg_users_t *vg_users_load(const char *path, char *errbuf, size_t errlen);
void vg_users_free(vg_users_t *users);
size_t vg_users_count(const vg_users_t *users);
/* 1 when name has a password line whose hash matches password (all lines are checked, so a
 * wrong name costs as much as a wrong password). */
int vg_users_check_password(const vg_users_t *users, const char *name, const char *password);
/* The name owning token (borrowed, valid until vg_users_free), or NULL. */
const char *vg_users_check_token(const vg_users_t *users, const char *token);

/* The users-file line for a password ("NAME:SALT:HASH\n", malloc'd) with a fresh salt. */
char *vg_users_password_line(const char *name, const char *password, char *errbuf, size_t errlen);
/* The users-file line for an API token ("NAME:*:SHA256\n", malloc'd). */
char *vg_users_token_line(const char *name, const char *token);

#endif
