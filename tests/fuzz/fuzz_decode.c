/*
 * fuzz_decode.c - libFuzzer harness for the transaction and label decoders: any bytes must
 * either decode or be rejected with a reason, never crash, leak or read out of bounds.
 */
#include "engine/contract.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vg_schema_t schema;
    vg_schema_init(&schema);
    vg_schema_add(&schema, "email");
    vg_arena_t arena;
    vg_arena_init(&arena, 4096);
    char reason[VG_ERRLEN];
    vg_txn_t txn;
    reason[0] = '\0';
    if (vg_txn_decode(&schema, (const char *)data, size, &arena, &txn, reason, sizeof(reason)) ==
        VG_OK) {
        assert(txn.str[VG_F_TXN_ID] && txn.str[VG_F_CARD_ID] && txn.amount >= 0);
    } else {
        assert(reason[0] != '\0');
    }
    vg_label_t label;
    vg_label_decode((const char *)data, size, &arena, &label, reason, sizeof(reason));
    vg_arena_free(&arena);
    vg_schema_free(&schema);
    return 0;
}
