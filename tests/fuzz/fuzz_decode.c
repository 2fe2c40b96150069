/*
 * fuzz_decode.c - libFuzzer harness for the transaction and label decoders: any bytes must
 * either decode or be rejected with a reason, never crash, leak or read out of bounds; and
 * vg_txn_decode() (fast path first) must agree with vg_txn_decode_reference() (cJSON only):
 * same code, same reason, same record bit for bit (checked with abort(), so also in builds
 * where assert is off).
 */
#include "engine/contract.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof(a)) == 0;
}

static int same_txn(const vg_schema_t *schema, const vg_txn_t *a, const vg_txn_t *b)
{
    for (size_t f = 0; f < schema->nfields; f++)
        if (!a->str[f] != !b->str[f] || a->len[f] != b->len[f] ||
            (a->str[f] && memcmp(a->str[f], b->str[f], a->len[f] + 1) != 0))
            return 0;
    return a->ts_ms == b->ts_ms && same_double(a->amount, b->amount) &&
           same_double(a->lat, b->lat) && same_double(a->lon, b->lon) && a->raw_len == b->raw_len &&
           memcmp(a->raw, b->raw, a->raw_len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vg_schema_t schema;
    vg_schema_init(&schema);
    vg_schema_add(&schema, "email");
    vg_arena_t arena;
    vg_arena_init(&arena, 4096);
    char reason[VG_ERRLEN];
    char ref_reason[VG_ERRLEN];
    vg_txn_t txn, ref;
    reason[0] = ref_reason[0] = '\0';
    vg_err_t err =
        vg_txn_decode(&schema, (const char *)data, size, &arena, &txn, reason, sizeof(reason));
    if (err == VG_OK) {
        assert(txn.str[VG_F_TXN_ID] && txn.str[VG_F_CARD_ID] && txn.amount >= 0);
    } else {
        assert(reason[0] != '\0');
    }
    vg_err_t ref_err = vg_txn_decode_reference(&schema, (const char *)data, size, &arena, &ref,
                                               ref_reason, sizeof(ref_reason));
    if (err != ref_err || (err ? strcmp(reason, ref_reason) != 0 : !same_txn(&schema, &txn, &ref)))
        abort();
    vg_label_t label;
    vg_label_decode((const char *)data, size, &arena, &label, reason, sizeof(reason));
    vg_arena_free(&arena);
    vg_schema_free(&schema);
    return 0;
}
