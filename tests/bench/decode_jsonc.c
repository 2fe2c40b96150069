/*
 * decode_jsonc.c - json-c's side of bench_decode: parse the same messages and read the same
 * fields; prints µs per message. Run by bench_decode (json-c and Jansson cannot share a
 * process: both export json_object_get).
 */
#include "tests/bench/decode_msgs.h"

#include <json-c/json.h>
#include <time.h>

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 300000, total, *lens;
    char **msgs = bench_msgs(n, &lens, &total);
    json_tokener *tok = json_tokener_new();
    struct timespec a, b;
    size_t sink = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (size_t i = 0; i < n; i++) {
        json_tokener_reset(tok);
        json_object *o = json_tokener_parse_ex(tok, msgs[i], (int)lens[i]);
        for (size_t f = 0; f < BENCH_NFIELDS; f++) {
            json_object *v;
            if (json_object_object_get_ex(o, bench_fields[f], &v))
                sink += (size_t)json_object_get_string_len(v);
        }
        json_object_put(o);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / n;
    printf("  json-c parse + fields        %8.3f us/msg\n", us);
    json_tokener_free(tok);
    for (size_t i = 0; i < n; i++)
        free(msgs[i]);
    free(msgs);
    free(lens);
    return sink == 0;
}
