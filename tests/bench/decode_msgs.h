/*
 * decode_msgs.h - the messages both sides of the decode benchmark parse: transactions shaped
 * like the simulator's, all fields of the contract present. Header-only so that the json-c
 * program (which cannot link Jansson) builds the very same bytes.
 */
#ifndef VG_DECODE_MSGS_H
#define VG_DECODE_MSGS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const bench_fields[] = {"txn_id",      "card_id",   "customer_id", "merchant_id",
                                           "terminal_id", "currency",  "mcc",         "country",
                                           "channel",     "device_id", "ip",          "ts",
                                           "amount",      "lat",       "lon"};
#define BENCH_NFIELDS (sizeof(bench_fields) / sizeof(bench_fields[0]))

/* Message i into buf; returns its length. */
static inline int bench_msg(size_t i, char *buf, size_t cap)
{
    long long secs = 1522540800LL + (long long)i;
    int sod = (int)(secs % 86400);
    return snprintf(buf, cap,
                    "{\"txn_id\":\"t%zu\",\"ts\":\"2018-04-%02d T%02d:%02d:%02d.000Z\","
                    "\"card_id\":\"card%06zu\",\"customer_id\":\"C%06zu\","
                    "\"terminal_id\":\"T%05zu\",\"merchant_id\":\"M%04zu\",\"amount\":%zu.%02zu,"
                    "\"currency\":\"EUR\",\"mcc\":\"5411\",\"country\":\"BE\",\"channel\":\"pos\","
                    "\"device_id\":\"d%06zu\",\"ip\":\"10.%zu.%zu.%zu\",\"lat\":50.%04zu,"
                    "\"lon\":4.%04zu}",
                    i, 1 + (int)(i / 86400) % 28, sod / 3600, sod / 60 % 60, sod % 60, i % 5000,
                    i % 5000, i % 10000, i % 2000, i % 300, i % 100, i % 5000, i % 256,
                    (i / 7) % 256, (i / 13) % 256, i % 10000, (i * 7) % 10000);
}

static inline char **bench_msgs(size_t n, size_t **lens_out, size_t *total)
{
    char **msgs = calloc(n, sizeof(char *));
    size_t *lens = calloc(n, sizeof(size_t));
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        char buf[512];
        int len = bench_msg(i, buf, sizeof(buf));
        /* the contract's 'T' separator: the format above keeps a space for readability */
        char *sp = strstr(buf, " T");
        if (sp)
            memmove(sp, sp + 1, strlen(sp + 1) + 1), len--;
        msgs[i] = strdup(buf);
        lens[i] = (size_t)len;
        *total += (size_t)len;
    }
    *lens_out = lens;
    return msgs;
}

#endif
