/*
 * contract.h - the data contracts: decoding transactions and labels from JSON, and the
 * field schema that names every transaction field a catalogue or rule set may use.
 *
 * A decoded record borrows nothing from the message: every string is copied into the
 * caller's arena, so it lives until that arena is reset (one micro-batch).
 *
 * Every violation of the contract is VG_ERR_INPUT with a reason a user can act on, e.g.
 * "missing field card_id" or "amount must be a number >= 0, got \"12,5\"". The reason is
 * what the dead-letter topic carries.
 */
#ifndef VG_CONTRACT_H
#define VG_CONTRACT_H

#include "engine/common.h"

/* Standard string fields, in a fixed order. Fields a catalogue or rule set names beyond
 * these are registered in a vg_schema_t and get the next indices. */
typedef enum vg_field {
    VG_F_TXN_ID = 0,
    VG_F_CARD_ID,
    VG_F_CUSTOMER_ID,
    VG_F_MERCHANT_ID,
    VG_F_TERMINAL_ID,
    VG_F_CURRENCY,
    VG_F_MCC,
    VG_F_COUNTRY,
    VG_F_CHANNEL,
    VG_F_DEVICE_ID,
    VG_F_IP,
    VG_F_NSTD
} vg_field_t;

#define VG_TXN_MAX_FIELDS 32
/* Largest message accepted, in bytes; a larger one is dead-lettered. */
#define VG_MAX_MESSAGE 1048576

/* The string fields known to this process. Numeric contract fields (ts, amount, lat, lon)
 * are not in it: they have their own members in vg_txn_t. */
typedef struct vg_schema {
    size_t nfields;
    char *names[VG_TXN_MAX_FIELDS];
} vg_schema_t;

/* Registers the standard fields. */
void vg_schema_init(vg_schema_t *schema);
void vg_schema_free(vg_schema_t *schema);
/* Index of a field by name, or -1. */
int vg_schema_field(const vg_schema_t *schema, const char *name);
/* Index of a field, registering it if new; -1 when the schema is full or the name is a
 * numeric contract field (ts, amount, lat, lon). */
int vg_schema_add(vg_schema_t *schema, const char *name);

typedef struct vg_txn {
    const char *str[VG_TXN_MAX_FIELDS]; /* NUL-terminated, NULL when absent */
    uint32_t len[VG_TXN_MAX_FIELDS];
    int64_t ts_ms;   /* event time, epoch milliseconds */
    double amount;   /* >= 0, finite */
    double lat;      /* NAN when absent */
    double lon;      /* NAN when absent */
    const char *raw; /* the message as received (arena copy), for the decision record */
    size_t raw_len;
} vg_txn_t;

typedef struct vg_label {
    const char *txn_id;
    int fraud;           /* 1 fraud, 0 legit */
    int64_t ts_ms;       /* when the label became known */
    const char *source;  /* NULL when absent */
    const char *analyst; /* NULL when absent */
    const char *note;    /* NULL when absent */
} vg_label_t;

/*
 * Decodes one transaction message. Strings, and a copy of the raw bytes, go into arena.
 * On VG_ERR_INPUT, reason holds why (cut to reasonlen). The message need not be
 * NUL-terminated.
 */
vg_err_t vg_txn_decode(const vg_schema_t *schema, const char *data, size_t len, vg_arena_t *arena,
                       vg_txn_t *txn, char *reason, size_t reasonlen);

/* Every message through cJSON and the full contract checks: the specification that
 * vg_txn_decode() must agree with (same code, same record, same reason), kept callable for
 * the tests and the benchmark. */
vg_err_t vg_txn_decode_reference(const vg_schema_t *schema, const char *data, size_t len,
                                 vg_arena_t *arena, vg_txn_t *txn, char *reason, size_t reasonlen);

/* vg_txn_decode()'s allocation-free first try: returns 1 when it decoded the message, into
 * exactly what vg_txn_decode_reference() gives; 0 when it declined (anything but a flat object
 * of plain strings and numbers that satisfies the contract), leaving txn and arena untouched. */
int vg_txn_decode_fast(const vg_schema_t *schema, const char *data, size_t len, vg_arena_t *arena,
                       vg_txn_t *txn);

/* Decodes one label message; same conventions as vg_txn_decode(). */
vg_err_t vg_label_decode(const char *data, size_t len, vg_arena_t *arena, vg_label_t *label,
                         char *reason, size_t reasonlen);

/*
 * Reads the top-level "ts" of a JSON object without a full parse (for merging logs in event
 * time before the pipeline decodes them). VG_ERR_INPUT if there is none or it is malformed;
 * the pipeline's full decode then gives the precise reason.
 */
vg_err_t vg_peek_ts(const char *data, size_t len, int64_t *ms);

#endif
