/*
 * bench_decode.c - decode speed of the transaction contract, and the JSON library choice.
 *
 * Prints µs per message for, in one run over the same messages:
 *   baseline   scanning the bytes (memchr for a byte that is not there): the floor
 *   json-c     json_tokener_parse_ex + reading the contract's fields (bench_decode_jsonc)
 *   cJSON      cJSON_ParseWithLength + reading the same fields
 *   jansson    json_loadb + reading the same fields
 *   reference  vg_txn_decode_reference: cJSON + full contract validation + arena copies
 *   vigil      vg_txn_decode: the single-pass fast path (falls back to the reference)
 *   number     encoding a double as JSON: vg_buf_json_num against printf + strtod
 *
 * usage: bench_decode [N]   (default 300000 messages)
 */
#include "engine/contract.h"
#include "tests/bench/decode_msgs.h"

#include <cjson/cJSON.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double per_msg_us(int64_t t0, size_t n)
{
    return (double)(vg_mono_ns() - t0) / 1e3 / (double)n;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 300000, total, *lens;
    char **msgs = bench_msgs(n, &lens, &total);
    printf("bench_decode: %zu messages, %.0f bytes each on average\n", n, (double)total / n);

    volatile size_t sink = 0;
    int64_t t0 = vg_mono_ns();
    for (size_t i = 0; i < n; i++)
        sink += memchr(msgs[i], '\x01', lens[i]) == NULL;
    printf("  baseline (scan bytes)        %8.3f us/msg\n", per_msg_us(t0, n));
    fflush(stdout);

    /* json-c in its own process, built beside this program */
    char cmd[4096], self[4000];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[sl > 0 ? sl : 0] = '\0';
    snprintf(cmd, sizeof(cmd), "%s_jsonc %zu", self, n);
    if (system(cmd) != 0)
        printf("  json-c parse + fields        (bench_decode_jsonc not built: no json-c)\n");

    t0 = vg_mono_ns();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_ParseWithLength(msgs[i], lens[i]);
        for (size_t f = 0; f < BENCH_NFIELDS; f++) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(o, bench_fields[f]);
            if (cJSON_IsString(v))
                sink += strlen(v->valuestring);
        }
        cJSON_Delete(o);
    }
    printf("  cJSON parse + fields         %8.3f us/msg\n", per_msg_us(t0, n));

    t0 = vg_mono_ns();
    for (size_t i = 0; i < n; i++) {
        json_error_t jerr;
        json_t *o = json_loadb(msgs[i], lens[i], JSON_REJECT_DUPLICATES, &jerr);
        for (size_t f = 0; f < BENCH_NFIELDS; f++) {
            json_t *v = json_object_get(o, bench_fields[f]);
            if (json_is_string(v))
                sink += json_string_length(v);
        }
        json_decref(o);
    }
    printf("  jansson parse + fields       %8.3f us/msg\n", per_msg_us(t0, n));

    vg_schema_t schema;
    vg_schema_init(&schema);
    vg_arena_t arena;
    vg_arena_init(&arena, 1 << 20);
    size_t bad = 0;
    char reason[VG_ERRLEN];
    static const struct {
        const char *label;
        vg_err_t (*decode)(const vg_schema_t *, const char *, size_t, vg_arena_t *, vg_txn_t *,
                           char *, size_t);
    } decoders[] = {
        {"vigil reference (cJSON path)", vg_txn_decode_reference},
        {"vigil vg_txn_decode         ", vg_txn_decode},
    };
    double ref_us = 0;
    for (size_t d = 0; d < VG_ARRAY_LEN(decoders); d++) {
        size_t rejected = 0;
        t0 = vg_mono_ns();
        for (size_t i = 0; i < n; i++) {
            vg_txn_t txn;
            if (decoders[d].decode(&schema, msgs[i], lens[i], &arena, &txn, reason, sizeof(reason)))
                rejected++;
            if (i % 2000 == 1999)
                vg_arena_reset(&arena);
        }
        double us = per_msg_us(t0, n);
        vg_arena_reset(&arena);
        if (d == 0)
            ref_us = us;
        printf("  %s %8.3f us/msg  (%.0f msg/s, %zu rejected", decoders[d].label, us, 1e6 / us,
               rejected);
        if (d > 0)
            printf(", %.1fx the reference", ref_us / us);
        printf(")\n");
        bad += rejected;
    }
    vg_arena_free(&arena);
    vg_schema_free(&schema);

    /* Encoding numbers (a decision carries ~40): vg_buf_json_num against the printf way it
     * replaced (%.15g, strtod to check, %.17g when that did not read back), on computed
     * values like a feature vector's (means, logs: most need 17 digits). */
    vg_buf_t out;
    vg_buf_init(&out);
    t0 = vg_mono_ns();
    for (size_t i = 0; i < n; i++) {
        vg_buf_reset(&out);
        vg_buf_json_num(&out, log(1.5 + (double)i));
        sink += out.len;
    }
    printf("  number: vg_buf_json_num      %8.3f us/number\n", per_msg_us(t0, n));
    t0 = vg_mono_ns();
    for (size_t i = 0; i < n; i++) {
        char tmp[32];
        double v = log(1.5 + (double)i);
        snprintf(tmp, sizeof(tmp), "%.15g", v);
        if (strtod(tmp, NULL) != v)
            snprintf(tmp, sizeof(tmp), "%.17g", v);
        sink += strlen(tmp);
    }
    printf("  number: printf + strtod      %8.3f us/number (baseline)\n", per_msg_us(t0, n));
    vg_buf_free(&out);
    for (size_t i = 0; i < n; i++)
        free(msgs[i]);
    free(msgs);
    free(lens);
    return bad ? 1 : (int)(sink == 0);
}
