/*
 * rules.h - the rule language: load a rule file, compile it against the feature vector and
 * the transaction schema, and evaluate it per transaction.
 *
 * A rule file holds lines `ACTION ID [shadow] if CONDITION` (see docs/rules.md for the full
 * language, the missing-value semantics and the exact precedence). Loading resolves every
 * name to an index (feature, transaction field, list handle) and compiles each condition to
 * a small stack-machine program; evaluation then does no allocation and no name lookups.
 *
 * This module knows nothing of the feature catalogue: the caller describes the feature
 * vector (names in order) and the string fields in a vg_rules_env_t.
 *
 * A loaded vg_rules_t is immutable, so one set can be evaluated from several threads, and a
 * hot reload is "load the new set; if it loads, swap the pointer; free the old one".
 */
#ifndef VG_RULES_H
#define VG_RULES_H

#include "engine/common.h"
#include "engine/contract.h"

#include <stdint.h>

typedef enum vg_action {
    VG_ACTION_ALLOW = 0,
    VG_ACTION_REVIEW = 1,
    VG_ACTION_BLOCK = 2
} vg_action_t;

/* "allow", "review", "block" ("?" for anything else). */
const char *vg_action_name(vg_action_t a);

typedef struct vg_rules_env {
    const char *const *features; /* feature names in vector order (may be NULL when 0) */
    size_t nfeatures;
    const vg_schema_t *schema; /* string fields; NULL = the standard fields only */
    int have_model;            /* 0: rules that use `score` never run */
    const char *lists_dir;     /* @name is lists_dir/name.txt; NULL = the rule file's directory
                                  (the current directory for vg_rules_load_buffer) */
} vg_rules_env_t;

typedef struct vg_rules vg_rules_t;

/*
 * Reads, parses and compiles the rule file at path and every list it names. Returns NULL on
 * any error, with every error in errbuf, one per line, "FILE:LINE:COL: message", e.g.
 * "rules.rules:3:12: unknown feature card_cnt_1h (did you mean card_count_1h?)". Errors that
 * do not fit in errbuf are dropped whole (never cut mid-line). env is not kept: the names are
 * copied where needed.
 */
vg_rules_t *vg_rules_load(const char *path, const vg_rules_env_t *env, char *errbuf, size_t errlen);

/* As vg_rules_load(), from memory: name is the file name used in messages; data need not be
 * NUL-terminated and may hold any bytes. */
vg_rules_t *vg_rules_load_buffer(const char *name, const char *data, size_t len,
                                 const vg_rules_env_t *env, char *errbuf, size_t errlen);

/* Frees a rule set; NULL is a no-op. */
void vg_rules_free(vg_rules_t *rules);

/* Rules are numbered 0..count-1 in file order. */
size_t vg_rules_count(const vg_rules_t *rules);
const char *vg_rules_id(const vg_rules_t *rules, size_t i);
vg_action_t vg_rules_action(const vg_rules_t *rules, size_t i);
int vg_rules_shadow(const vg_rules_t *rules, size_t i);
/* Non-zero when rule i mentions `score`: it runs in the POST stage only. */
int vg_rules_uses_score(const vg_rules_t *rules, size_t i);
/* Line of rule i in its file (1-based). */
int vg_rules_line(const vg_rules_t *rules, size_t i);
/* Content hash of the rule file and every list it uses: 16 lowercase hex digits. */
const char *vg_rules_version(const vg_rules_t *rules);

#define VG_RULES_MAX_FIRED 64

typedef struct vg_rules_result {
    vg_action_t action; /* the decision from non-shadow fired rules (allow if none) */
    size_t nfired;      /* fired rules (shadow included), in rule-file order */
    uint16_t fired[VG_RULES_MAX_FIRED]; /* rule indices */
    /* Bookkeeping kept between the two stages; read `action`, not these. */
    uint8_t strongest; /* strongest action of non-shadow fired rules */
    uint8_t any_allow; /* a non-shadow allow rule fired */
    uint8_t truncated; /* more than VG_RULES_MAX_FIRED fired: the highest indices are missing */
} vg_rules_result_t;

typedef enum vg_rules_stage { VG_RULES_PRE = 0, VG_RULES_POST = 1 } vg_rules_stage_t;

/*
 * PRE resets res and evaluates the rules that don't use score; POST evaluates the rules
 * that do (none when the set was loaded without a model or score is NaN) and merges them
 * into res, keeping fired[] in rule-file order. features has env.nfeatures values (NaN =
 * missing). No allocation; strings are only compared (and hashed for list lookups).
 */
void vg_rules_eval(const vg_rules_t *rules, vg_rules_stage_t stage, const vg_txn_t *txn,
                   const double *features, double score, vg_rules_result_t *res);

#endif
